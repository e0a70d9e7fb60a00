// JSON Schemas for the spec files, checked with ajv before any cross-check runs.

const name = { type: 'string', pattern: '^[a-z][a-z0-9_]*$' } as const;
const scalarTypes = [
  'string', 'keyText', 'integer', 'timestampMs', 'durationMs', 'attemptIndex', 'epoch', 'flag', 'json', 'enum',
  'executionId', 'flowId', 'budgetId', 'quotaPolicyId', 'waitpointId', 'suspensionId', 'signalId', 'leaseId',
  'attemptId', 'edgeId', 'laneId', 'capabilities',
];

const field = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'type'],
  properties: {
    name,
    type: { enum: [...scalarTypes, 'constant', 'list', 'group'] },
    doc: { type: 'string' },
    optional: { type: 'boolean' },
    default: { type: ['string', 'number', 'boolean'] },
    when: name,
    from: name,
    nowPlus: name,
    defaultFrom: {
      type: 'object',
      additionalProperties: false,
      required: ['fn'],
      properties: { fn: { enum: ['twoThirds', 'executionPartition', 'now'] }, arg: name },
    },
    min: { type: 'number' },
    max: { type: 'number' },
    nonEmpty: { type: 'boolean' },
    fraction: { type: 'boolean' },
    asText: { type: 'boolean' },
    refusal: {
      type: 'object',
      additionalProperties: false,
      properties: { code: name, detail: { type: 'string' }, low: { type: 'string' }, high: { type: 'string' } },
    },
    maxBytes: { type: 'integer', minimum: 1 },
    values: { type: 'array', items: { type: 'string' }, minItems: 1 },
    enum: name,
    shape: name,
    value: { type: 'string' },
    of: { enum: scalarTypes },
    count: { enum: ['prefix', 'none'] },
    countName: name,
    layout: { enum: ['columns', 'rows'] },
    fields: { type: 'array', items: { $ref: '#/definitions/field' }, minItems: 1 },
    maxItems: { type: 'integer', minimum: 1 },
  },
};

const replyField = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'type'],
  properties: {
    name,
    type: { enum: [...scalarTypes, 'streamEntries', 'list', 'group'] },
    doc: { type: 'string' },
    optional: { type: 'boolean' },
    values: { type: 'array', items: { type: 'string' }, minItems: 1 },
    enum: name,
    of: { enum: scalarTypes },
    count: { type: 'string' },
    fields: { type: 'array', items: { $ref: '#/definitions/replyField' }, minItems: 1 },
  },
};

const keyRefString = { type: 'string', pattern: '^[a-z_]+\\.[a-z_]+(\\([a-z_, ]*\\))?$' };
const keyRefObject = {
  type: 'object',
  additionalProperties: false,
  required: ['key'],
  properties: {
    name,
    key: keyRefString,
    context: { type: 'object', additionalProperties: name },
    when: name,
    otherwise: keyRefString,
    each: name,
    as: name,
    optional: { type: 'boolean' },
    doc: { type: 'string' },
  },
};

export const moduleSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['module', 'doc', 'functions'],
  definitions: { field, replyField },
  properties: {
    module: name,
    doc: { type: 'string' },
    functions: {
      type: 'object',
      propertyNames: { pattern: '^ff_[a-z0-9_]+$' },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['doc', 'tag', 'keys', 'argv', 'replies'],
        properties: {
          doc: { type: 'string', minLength: 1 },
          tag: {
            oneOf: [
              { const: 'none' },
              {
                type: 'object',
                additionalProperties: false,
                minProperties: 1,
                maxProperties: 1,
                properties: { execution: name, flow: name, budget: name, quota: name, flow_partition: name, budget_partition: name, quota_partition: name },
              },
            ],
          },
          params: { type: 'array', items: { $ref: '#/definitions/field' } },
          keys: { type: 'array', items: { oneOf: [keyRefString, keyRefObject] } },
          argv: { type: 'array', items: { $ref: '#/definitions/field' } },
          envelope: { enum: ['standard', 'untagged', 'bare'] },
          replies: {
            type: 'object',
            minProperties: 1,
            propertyNames: { pattern: '^[A-Z][A-Z_]*(:([a-z_]+|\\*))?$' },
            additionalProperties: {
              oneOf: [
                { type: 'array', items: { $ref: '#/definitions/replyField' } },
                {
                  type: 'object',
                  additionalProperties: false,
                  required: ['fields'],
                  properties: {
                    doc: { type: 'string' },
                    as: { type: 'string', pattern: '^[a-z][a-z_]*$' },
                    fields: { type: 'array', items: { $ref: '#/definitions/replyField' } },
                  },
                },
              ],
            },
          },
          errors: { type: 'array', items: { type: 'string' }, uniqueItems: true },
          deviations: { type: 'array', items: { type: 'string', minLength: 1 } },
          readonly: { type: 'boolean' },
          extension: { type: 'boolean' },
          // The fewest ARGV the Lua accepts (default: every fixed slot); the guard refuses fewer.
          argv_min: { type: 'integer', minimum: 0 },
          // Error codes whose reply comes after a documented write (lease-expiry marking…).
          writes_on_error: { type: 'array', items: name, uniqueItems: true },
        },
      },
    },
  },
} as const;

export const keysSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['params', 'families', 'contexts'],
  properties: {
    params: { type: 'object', additionalProperties: { enum: scalarTypes.concat([]) } },
    defaults: { type: 'object', additionalProperties: { type: 'string' } },
    families: { type: 'object', additionalProperties: { type: 'object', properties: { doc: { type: 'string' } } } },
    contexts: {
      type: 'object',
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['doc', 'family', 'params', 'keys'],
        properties: {
          doc: { type: 'string' },
          family: { enum: ['fp', 'b', 'q', 'none'] },
          params: { type: 'array', items: name },
          keys: {
            type: 'object',
            additionalProperties: {
              type: 'object',
              additionalProperties: false,
              required: ['pattern', 'type', 'doc'],
              properties: {
                pattern: { type: 'string', pattern: '^ff:' },
                type: { enum: ['hash', 'string', 'zset', 'set', 'stream', 'none', 'channel'] },
                doc: { type: 'string' },
              },
            },
          },
        },
      },
    },
  },
} as const;

export const errorsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['codes'],
  properties: {
    codes: {
      type: 'object',
      propertyNames: { pattern: '^[a-z][a-z0-9_]*$' },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['class', 'doc'],
        properties: {
          class: { enum: ['terminal', 'retryable', 'cooperative', 'informational', 'advisory', 'bug', 'expected', 'soft_error'] },
          doc: { type: 'string' },
          detail: { type: 'boolean' },
        },
      },
    },
  },
} as const;

export const enumsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['enums'],
  properties: {
    enums: {
      type: 'object',
      propertyNames: { pattern: '^[a-z][a-z0-9_]*$' },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['doc', 'values'],
        properties: {
          doc: { type: 'string' },
          values: { type: 'array', items: { type: 'string', pattern: '^[a-z][a-z0-9_]*$' }, minItems: 1, uniqueItems: true },
        },
      },
    },
  },
} as const;

const shapeType = { enum: ['string', 'number', 'boolean', 'object', 'array', 'any'] };
export const shapesSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['shapes'],
  properties: {
    shapes: {
      type: 'object',
      propertyNames: { pattern: '^[a-z][a-z0-9_]*$' },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['doc'],
        properties: {
          doc: { type: 'string' },
          closed: { type: 'boolean' },
          values: { enum: ['string', 'number', 'boolean', 'any'] },
          fields: {
            type: 'object',
            propertyNames: { pattern: '^[a-z][a-z0-9_]*$' },
            additionalProperties: {
              type: 'object',
              additionalProperties: false,
              required: ['type'],
              properties: { type: shapeType, of: { enum: ['string', 'number', 'boolean', 'any'] }, shape: { type: 'string', pattern: '^[a-z][a-z0-9_]*$' } },
            },
          },
        },
      },
    },
  },
} as const;
