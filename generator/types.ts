// How each spec type is typed, encoded and decoded in generated code. The generator is the
// only thing that knows this mapping; runtime/encode.ts and runtime/decode.ts do the work.
import type { EncodeRules, ScalarType } from './model.js';
import { quote } from './names.js';

interface TypeInfo {
  readonly ts: string;
  /** Runtime parser for id types. */
  readonly parser?: string;
  readonly integer?: { min?: number; max?: number };
}

const U32_MAX = 4294967295;

const TYPES: Record<ScalarType, TypeInfo> = {
  string: { ts: 'string' },
  keyText: { ts: 'string' },
  integer: { ts: 'number', integer: {} },
  timestampMs: { ts: 'number', integer: { min: 0 } },
  durationMs: { ts: 'number', integer: { min: 0 } },
  attemptIndex: { ts: 'number', integer: { min: 0, max: U32_MAX } },
  epoch: { ts: 'number', integer: { min: 0 } },
  flag: { ts: 'boolean' },
  json: { ts: 'unknown' },
  enum: { ts: 'string' },
  executionId: { ts: 'ExecutionId', parser: 'parseExecutionId' },
  flowId: { ts: 'FlowId', parser: 'parseFlowId' },
  budgetId: { ts: 'BudgetId', parser: 'parseBudgetId' },
  quotaPolicyId: { ts: 'QuotaPolicyId', parser: 'parseQuotaPolicyId' },
  waitpointId: { ts: 'WaitpointId', parser: 'parseWaitpointId' },
  suspensionId: { ts: 'SuspensionId', parser: 'parseSuspensionId' },
  signalId: { ts: 'SignalId', parser: 'parseSignalId' },
  leaseId: { ts: 'LeaseId', parser: 'parseLeaseId' },
  attemptId: { ts: 'AttemptId', parser: 'parseAttemptId' },
  edgeId: { ts: 'EdgeId', parser: 'parseEdgeId' },
  laneId: { ts: 'LaneId', parser: 'parseLaneId' },
  capabilities: { ts: 'readonly string[]' },
};

export function typeInfo(type: ScalarType): TypeInfo {
  return TYPES[type];
}

/** The generated interface of a JSON shape (generated/shapes.ts). */
export function shapeTypeName(shape: string): string {
  return `${shape.split('_').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('')}Json`;
}

export function tsType(type: ScalarType, values?: readonly string[], shape?: string): string {
  if (type === 'enum' && values) return values.map(quote).join(' | ');
  if (type === 'json' && shape) return shapeTypeName(shape);
  return TYPES[type].ts;
}

/** True when the encoded wire text is the value itself, and an empty text counts as absent. */
export function isTextLike(type: ScalarType): boolean {
  return TYPES[type].ts !== 'number' && type !== 'flag' && type !== 'json' && type !== 'capabilities';
}


/**
 * Expression that validates `value` and yields its wire text (or branded id). With
 * `keepNumber`, an integer is checked and yielded as a number instead.
 */
export function encodeExpr(type: ScalarType, argName: string, value: string, rules: EncodeRules, imports: Set<string>, keepNumber = false): string {
  const info = TYPES[type];
  const name = quote(argName);
  if (info.parser) {
    imports.add('encodeId');
    imports.add(info.parser);
    return `encodeId(fn, ${name}, ${value}, ${info.parser})`;
  }
  if (info.integer) {
    const helper = keepNumber ? 'checkInteger' : 'encodeInteger';
    imports.add(helper);
    const min = rules.min ?? info.integer.min;
    const max = rules.max ?? info.integer.max;
    const bounds = max !== undefined ? `, ${min ?? 'undefined'}, ${max}` : min !== undefined ? `, ${min}` : '';
    return `${helper}(fn, ${name}, ${value}${bounds})`;
  }
  switch (type) {
    case 'capabilities':
      imports.add('encodeCapabilities');
      return `encodeCapabilities(fn, ${name}, ${value})`;
    case 'flag':
      imports.add('encodeFlag');
      return `encodeFlag(fn, ${name}, ${value})`;
    case 'json':
      imports.add('encodeJson');
      return rules.shape ? `encodeJson(fn, ${name}, ${value}, true)` : `encodeJson(fn, ${name}, ${value})`;
    case 'enum':
      imports.add('encodeEnum');
      return `encodeEnum(fn, ${name}, ${value}, [${(rules.values ?? []).map(quote).join(', ')}])`;
    default: {
      imports.add('encodeText');
      const options: string[] = [];
      if (type === 'keyText') options.push('keySafe: true');
      if (rules.nonEmpty) options.push('nonEmpty: true');
      if (rules.maxBytes !== undefined) options.push(`maxBytes: ${rules.maxBytes}`);
      return `encodeText(fn, ${name}, ${value}${options.length ? `, { ${options.join(', ')} }` : ''})`;
    }
  }
}

/** A direct read of one reply field: `fields[index]` read as `type`. */
export function readExpr(type: ScalarType, values: readonly string[] | undefined, label: string, index: string, imports: Set<string>): string {
  const info = TYPES[type];
  const args = `fn, ${quote(label)}, fields, ${index}`;
  if (info.parser) {
    imports.add('fieldParsed');
    imports.add(info.parser);
    return `fieldParsed(${args}, ${info.parser})`;
  }
  if (type === 'enum') {
    imports.add('fieldEnum');
    return `fieldEnum(${args}, [${(values ?? []).map(quote).join(', ')}] as const)`;
  }
  return `${readerExpr(type, values, imports)}(${args})`;
}

/** A reader `(fn, field, fields, index) => T` for a reply field type. */
export function readerExpr(type: ScalarType, values: readonly string[] | undefined, imports: Set<string>): string {
  const info = TYPES[type];
  if (info.parser) {
    imports.add('parsedReader');
    imports.add(info.parser);
    return `parsedReader(${info.parser})`;
  }
  if (info.integer) {
    imports.add('fieldInteger');
    return 'fieldInteger';
  }
  switch (type) {
    case 'flag':
      imports.add('fieldFlag');
      return 'fieldFlag';
    case 'json':
      imports.add('fieldJson');
      return 'fieldJson';
    case 'enum':
      imports.add('enumReader');
      return `enumReader([${(values ?? []).map(quote).join(', ')}] as const)`;
    default:
      imports.add('fieldText');
      return 'fieldText';
  }
}
