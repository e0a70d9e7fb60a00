import { describe, it, expect } from 'vitest';
import {
  DEFAULT_LANE_ID,
  IdError,
  LANE_ID_MAX_BYTES,
  assertKeySafe,
  executionPartition,
  executionTag,
  executionUuid,
  isCanonicalUuid,
  laneId,
  newAttemptId,
  newBudgetId,
  newEdgeId,
  newFlowId,
  newLeaseId,
  newQuotaPolicyId,
  newSignalId,
  newSuspensionId,
  newWaitpointId,
  parseAttemptId,
  parseBudgetId,
  parseEdgeId,
  parseExecutionId,
  parseFlowId,
  parseLaneId,
  parseLeaseId,
  parseQuotaPolicyId,
  parseSignalId,
  parseSuspensionId,
  parseUuid,
  parseWaitpointId,
  type ExecutionId,
  type FlowId,
  type IdErrorKind,
} from '../runtime/ids.js';

const CANONICAL = '550e8400-e29b-41d4-a716-446655440000';

/** Runs `fn`, expecting an IdError, and returns it for inspection. */
function idErrorOf(fn: () => unknown): IdError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(IdError);
    return error as IdError;
  }
  throw new Error('expected an IdError');
}

describe('parseUuid', () => {
  it.each([
    ['hyphenated', CANONICAL],
    ['uppercase hyphenated', CANONICAL.toUpperCase()],
    ['mixed case', '550E8400-e29b-41D4-a716-446655440000'],
    ['simple', '550e8400e29b41d4a716446655440000'],
    ['uppercase simple', '550E8400E29B41D4A716446655440000'],
    ['braced', `{${CANONICAL}}`],
    ['braced uppercase', `{${CANONICAL.toUpperCase()}}`],
    ['urn', `urn:uuid:${CANONICAL}`],
    ['urn uppercase hex', `urn:uuid:${CANONICAL.toUpperCase()}`],
  ])('accepts the %s form and returns canonical text', (_form, text) => {
    expect(parseUuid(text)).toBe(CANONICAL);
  });

  it.each([
    ['empty', ''],
    ['too short', CANONICAL.slice(0, 35)],
    ['too long', `${CANONICAL}0`],
    ['non-hex digit', '550e8400-e29b-41d4-a716-44665544000g'],
    ['misplaced hyphens', '550e840-0e29b-41d4-a716-446655440000'],
    ['braced simple form', '{550e8400e29b41d4a716446655440000}'],
    ['unclosed brace', `{${CANONICAL}`],
    ['urn with simple form', 'urn:uuid:550e8400e29b41d4a716446655440000'],
    ['uppercase urn prefix', `URN:UUID:${CANONICAL}`],
    ['surrounding space', ` ${CANONICAL}`],
  ])('rejects %s', (_case, text) => {
    const error = idErrorOf(() => parseUuid(text, 'FlowId'));
    expect(error.kind).toBe('InvalidUuid');
    expect(error.idType).toBe('FlowId');
    expect(error.input).toBe(text);
  });

  it('isCanonicalUuid accepts only lowercase hyphenated', () => {
    expect(isCanonicalUuid(CANONICAL)).toBe(true);
    expect(isCanonicalUuid(CANONICAL.toUpperCase())).toBe(false);
    expect(isCanonicalUuid('550e8400e29b41d4a716446655440000')).toBe(false);
    expect(isCanonicalUuid(`{${CANONICAL}}`)).toBe(false);
  });
});

describe('UUID-backed ids', () => {
  const parsers = {
    FlowId: parseFlowId,
    BudgetId: parseBudgetId,
    QuotaPolicyId: parseQuotaPolicyId,
    WaitpointId: parseWaitpointId,
    SuspensionId: parseSuspensionId,
    SignalId: parseSignalId,
    LeaseId: parseLeaseId,
    AttemptId: parseAttemptId,
    EdgeId: parseEdgeId,
  };

  it.each(Object.entries(parsers))('%s parses to canonical text and names itself in errors', (idType, parse) => {
    expect(parse(CANONICAL.toUpperCase())).toBe(CANONICAL);
    expect(idErrorOf(() => parse('x')).idType).toBe(idType);
  });

  it.each([
    newFlowId,
    newBudgetId,
    newQuotaPolicyId,
    newWaitpointId,
    newSuspensionId,
    newSignalId,
    newLeaseId,
    newAttemptId,
    newEdgeId,
  ])('%o mints canonical v4 UUIDs', (mint) => {
    const id = mint();
    expect(isCanonicalUuid(id)).toBe(true);
    expect(id[14]).toBe('4');
    expect(mint()).not.toBe(id);
  });
});

describe('parseExecutionId (model.md 2.2)', () => {
  it('accepts the canonical form and keeps the text unchanged', () => {
    const text = `{fp:42}:${CANONICAL}`;
    const id = parseExecutionId(text);
    expect(id).toBe(text);
    expect(executionPartition(id)).toBe(42);
    expect(executionTag(id)).toBe('{fp:42}');
    expect(executionUuid(id)).toBe(CANONICAL);
  });

  it('accepts the u16 bounds', () => {
    expect(executionPartition(parseExecutionId(`{fp:0}:${CANONICAL}`))).toBe(0);
    expect(executionPartition(parseExecutionId(`{fp:65535}:${CANONICAL}`))).toBe(65535);
  });

  it('does not check the index against a partition count', () => {
    expect(executionPartition(parseExecutionId(`{fp:9999}:${CANONICAL}`))).toBe(9999);
  });

  const failures: Array<[string, string, IdErrorKind, string]> = [
    ['bare UUID', CANONICAL, 'MissingTag', CANONICAL],
    ['empty string', '', 'MissingTag', ''],
    ['old {p:N} family', `{p:1}:${CANONICAL}`, 'MissingTag', `{p:1}:${CANONICAL}`],
    ['uppercase prefix', `{FP:1}:${CANONICAL}`, 'MissingTag', `{FP:1}:${CANONICAL}`],
    ['no "}:" after prefix', `{fp:1}${CANONICAL}`, 'MissingTag', `{fp:1}${CANONICAL}`],
    ['prefix only', '{fp:', 'MissingTag', '{fp:'],
    ['empty index', `{fp:}:${CANONICAL}`, 'InvalidPartitionIndex', ''],
    ['non-numeric index', `{fp:x}:${CANONICAL}`, 'InvalidPartitionIndex', 'x'],
    ['negative index', `{fp:-1}:${CANONICAL}`, 'InvalidPartitionIndex', '-1'],
    ['u16 overflow', `{fp:65536}:${CANONICAL}`, 'InvalidPartitionIndex', '65536'],
    // Rust accepts these two; we require the canonical tag text (see ids.ts).
    ['plus sign', `{fp:+7}:${CANONICAL}`, 'InvalidPartitionIndex', '+7'],
    ['leading zeros', `{fp:007}:${CANONICAL}`, 'InvalidPartitionIndex', '007'],
    ['spaces in index', `{fp: 7}:${CANONICAL}`, 'InvalidPartitionIndex', ' 7'],
    ['garbage UUID', '{fp:7}:not-a-uuid', 'InvalidUuid', 'not-a-uuid'],
    ['missing UUID', '{fp:7}:', 'InvalidUuid', ''],
    // Valid UUIDs for Rust, but Lua compares ids byte-for-byte.
    ['uppercase UUID', `{fp:7}:${CANONICAL.toUpperCase()}`, 'InvalidUuid', CANONICAL.toUpperCase()],
    ['simple UUID', '{fp:7}:550e8400e29b41d4a716446655440000', 'InvalidUuid', '550e8400e29b41d4a716446655440000'],
    ['braced UUID', `{fp:7}:{${CANONICAL}}`, 'InvalidUuid', `{${CANONICAL}}`],
    ['first "}:" is used', `{fp:7}:x}:${CANONICAL}`, 'InvalidUuid', `x}:${CANONICAL}`],
  ];

  it.each(failures)('rejects %s', (_case, text, kind, detail) => {
    const error = idErrorOf(() => parseExecutionId(text));
    expect(error.kind).toBe(kind);
    expect(error.idType).toBe('ExecutionId');
    expect(error.input).toBe(text);
    expect(error.detail).toBe(detail);
    expect(error.message).toContain('ExecutionId');
  });
});

describe('parseLaneId (model.md 2.3)', () => {
  it.each(['default', 'workers-a', 'gpu pool', ' ', '~!@#$%^&*()', 'x'.repeat(LANE_ID_MAX_BYTES)])(
    'accepts %j',
    (text) => {
      expect(parseLaneId(text)).toBe(text);
    },
  );

  it('laneId is an alias and DEFAULT_LANE_ID is "default"', () => {
    expect(laneId('gpu-pool')).toBe('gpu-pool');
    expect(DEFAULT_LANE_ID).toBe('default');
  });

  const failures: Array<[string, string, IdErrorKind, number | undefined]> = [
    ['empty', '', 'Empty', undefined],
    ['65 bytes', 'x'.repeat(65), 'TooLong', 65],
    ['too many UTF-8 bytes', 'é'.repeat(33), 'TooLong', 66],
    ['tab', 'a\tb', 'NonPrintable', 1],
    ['newline', 'lane\n', 'NonPrintable', 4],
    ['DEL', '\u007f', 'NonPrintable', 0],
    ['non-ASCII', 'café', 'NonPrintable', 3],
    ['open brace', 'a{b', 'InvalidCharacter', 1],
    ['close brace', 'ab}', 'InvalidCharacter', 2],
    ['hash tag', '{fp:1}', 'InvalidCharacter', 0],
  ];

  it.each(failures)('rejects %s', (_case, text, kind, detail) => {
    const error = idErrorOf(() => parseLaneId(text));
    expect(error.kind).toBe(kind);
    expect(error.idType).toBe('LaneId');
    expect(error.input).toBe(text);
    expect(error.detail).toBe(detail);
  });
});

describe('assertKeySafe', () => {
  it('returns safe text unchanged', () => {
    expect(assertKeySafe('wpk:550e8400', 'WaitpointKey')).toBe('wpk:550e8400');
    expect(assertKeySafe('tenant a/b', 'Namespace')).toBe('tenant a/b');
  });

  it('rejects braces', () => {
    const error = idErrorOf(() => assertKeySafe('worker-{1}', 'WorkerInstanceId'));
    expect(error.kind).toBe('InvalidCharacter');
    expect(error.idType).toBe('WorkerInstanceId');
    expect(error.detail).toBe(7);
    expect(idErrorOf(() => assertKeySafe('}', 'Namespace')).kind).toBe('InvalidCharacter');
  });

  it('rejects empty text unless allowed', () => {
    expect(idErrorOf(() => assertKeySafe('', 'Namespace')).kind).toBe('Empty');
    expect(assertKeySafe('', 'IdempotencyKey', { allowEmpty: true })).toBe('');
    expect(idErrorOf(() => assertKeySafe('{', 'IdempotencyKey', { allowEmpty: true })).kind).toBe('InvalidCharacter');
  });
});

describe('branded types', () => {
  it('keep id kinds apart at compile time but are plain strings at runtime', () => {
    const executionId: ExecutionId = parseExecutionId(`{fp:1}:${CANONICAL}`);
    const flowId: FlowId = parseFlowId(CANONICAL);
    // @ts-expect-error an ExecutionId is not a FlowId
    const wrong: FlowId = executionId;
    // @ts-expect-error a plain string is not a FlowId
    const unchecked: FlowId = CANONICAL;
    const asText: string = flowId;
    expect(typeof wrong).toBe('string');
    expect(typeof unchecked).toBe('string');
    expect(asText).toBe(CANONICAL);
  });
});
