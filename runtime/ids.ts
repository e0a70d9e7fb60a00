// Identifier types and validation (model.md section 2).
//
// Every id is a plain string at runtime. The brands exist only for the type checker,
// so an ExecutionId cannot be passed where a FlowId is expected. Values only get a
// brand by going through a parse or mint function in this module or partition.ts.

import { randomUUID } from 'node:crypto';

declare const brand: unique symbol;

/** A string the type checker tells apart from other strings by `Name`. */
export type Branded<Name extends string> = string & { readonly [brand]: Name };

export type ExecutionId = Branded<'ExecutionId'>;
export type FlowId = Branded<'FlowId'>;
export type BudgetId = Branded<'BudgetId'>;
export type QuotaPolicyId = Branded<'QuotaPolicyId'>;
export type WaitpointId = Branded<'WaitpointId'>;
export type SuspensionId = Branded<'SuspensionId'>;
export type SignalId = Branded<'SignalId'>;
export type LeaseId = Branded<'LeaseId'>;
export type AttemptId = Branded<'AttemptId'>;
export type EdgeId = Branded<'EdgeId'>;
export type LaneId = Branded<'LaneId'>;
/** A complete hash tag including braces, e.g. `{fp:24}`, `{b:9}`, `{q:31}`. */
export type HashTag = Branded<'HashTag'>;

/** Names of the UUID-backed id kinds; `Uuid` is used for an untyped UUID. */
export type UuidIdType =
  | 'Uuid'
  | 'FlowId'
  | 'BudgetId'
  | 'QuotaPolicyId'
  | 'WaitpointId'
  | 'SuspensionId'
  | 'SignalId'
  | 'LeaseId'
  | 'AttemptId'
  | 'EdgeId';

export type IdErrorKind =
  | 'MissingTag'
  | 'InvalidPartitionIndex'
  | 'InvalidUuid'
  | 'Empty'
  | 'TooLong'
  | 'NonPrintable'
  | 'InvalidCharacter';

/**
 * Thrown when text is not a valid id.
 * `input` is the whole text given; `detail` is the offending part, as in the Rust
 * error variants: the index text, the UUID text, the byte length (TooLong) or the
 * position of the bad character (NonPrintable, InvalidCharacter).
 */
export class IdError extends Error {
  readonly kind: IdErrorKind;
  readonly idType: string;
  readonly input: string;
  readonly detail: string | number | undefined;

  constructor(kind: IdErrorKind, idType: string, input: string, message: string, detail?: string | number) {
    super(`invalid ${idType} ${JSON.stringify(input)}: ${message}`);
    this.name = 'IdError';
    this.kind = kind;
    this.idType = idType;
    this.input = input;
    this.detail = detail;
  }
}

// ---------------------------------------------------------------------------------
// UUIDs

const CANONICAL_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SIMPLE_UUID = /^[0-9a-f]{32}$/i;
const HYPHENATED_UUID = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i;
const URN_PREFIX = 'urn:uuid:';

/** True for the lowercase hyphenated 36-character form the Lua side expects. */
export function isCanonicalUuid(text: string): boolean {
  return CANONICAL_UUID.test(text);
}

/**
 * The 32 hex digits of a UUID in any form the Rust `uuid` 1.x parser accepts, or
 * undefined. Like that parser, braces and the `urn:uuid:` prefix (lowercase only)
 * may only wrap the hyphenated form; hex digits may be any case.
 */
function uuidHexDigits(text: string): string | undefined {
  if (text.length === 32) return SIMPLE_UUID.test(text) ? text : undefined;
  let hyphenated: string;
  if (text.length === 36) hyphenated = text;
  else if (text.length === 38 && text.startsWith('{') && text.endsWith('}')) hyphenated = text.slice(1, -1);
  else if (text.length === 45 && text.startsWith(URN_PREFIX)) hyphenated = text.slice(URN_PREFIX.length);
  else return undefined;
  const groups = HYPHENATED_UUID.exec(hyphenated);
  return groups ? groups.slice(1).join('') : undefined;
}

/** Parses any accepted UUID form; returns the canonical lowercase hyphenated text. */
export function parseUuid(text: string, idType: UuidIdType = 'Uuid'): string {
  // Fast path: ids minted by this package (and sent back by the engine) are canonical.
  if (CANONICAL_UUID.test(text)) return text;
  const hex = uuidHexDigits(text)?.toLowerCase();
  if (hex === undefined) throw new IdError('InvalidUuid', idType, text, 'not a UUID', text);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export const parseFlowId = (text: string): FlowId => parseUuid(text, 'FlowId') as FlowId;
export const parseBudgetId = (text: string): BudgetId => parseUuid(text, 'BudgetId') as BudgetId;
export const parseQuotaPolicyId = (text: string): QuotaPolicyId =>
  parseUuid(text, 'QuotaPolicyId') as QuotaPolicyId;
export const parseWaitpointId = (text: string): WaitpointId => parseUuid(text, 'WaitpointId') as WaitpointId;
export const parseSuspensionId = (text: string): SuspensionId =>
  parseUuid(text, 'SuspensionId') as SuspensionId;
export const parseSignalId = (text: string): SignalId => parseUuid(text, 'SignalId') as SignalId;
export const parseLeaseId = (text: string): LeaseId => parseUuid(text, 'LeaseId') as LeaseId;
export const parseAttemptId = (text: string): AttemptId => parseUuid(text, 'AttemptId') as AttemptId;
export const parseEdgeId = (text: string): EdgeId => parseUuid(text, 'EdgeId') as EdgeId;

// randomUUID() already yields canonical lowercase hyphenated v4 text.
export const newFlowId = (): FlowId => randomUUID() as FlowId;
export const newBudgetId = (): BudgetId => randomUUID() as BudgetId;
export const newQuotaPolicyId = (): QuotaPolicyId => randomUUID() as QuotaPolicyId;
export const newWaitpointId = (): WaitpointId => randomUUID() as WaitpointId;
export const newSuspensionId = (): SuspensionId => randomUUID() as SuspensionId;
export const newSignalId = (): SignalId => randomUUID() as SignalId;
export const newLeaseId = (): LeaseId => randomUUID() as LeaseId;
export const newAttemptId = (): AttemptId => randomUUID() as AttemptId;
export const newEdgeId = (): EdgeId => randomUUID() as EdgeId;

// ---------------------------------------------------------------------------------
// ExecutionId: `{fp:N}:<uuid>` (model.md 2.2)

const EXECUTION_PREFIX = '{fp:';
const TAG_END = '}:';
// Canonical decimal only: no sign, no leading zeros except "0" itself. Rust would
// also accept `{fp:+7}` or `{fp:007}`, but those carry a tag text that differs from
// the one every key builder produces, so their keys would land in another slot.
const CANONICAL_INDEX = /^(?:0|[1-9][0-9]{0,4})$/;
const MAX_PARTITION_INDEX = 0xffff;

/**
 * Validates `{fp:N}:<uuid>` and returns the text unchanged.
 * Stricter than Rust on purpose: N must be canonical decimal (see above) and the UUID
 * must already be canonical lowercase hyphenated, because the Lua compares ids
 * byte-for-byte. N is not checked against the partition count (caller's job).
 */
export function parseExecutionId(text: string): ExecutionId {
  if (!text.startsWith(EXECUTION_PREFIX)) {
    throw new IdError('MissingTag', 'ExecutionId', text, `must start with "${EXECUTION_PREFIX}"`, text);
  }
  const tagEnd = text.indexOf(TAG_END, EXECUTION_PREFIX.length);
  if (tagEnd < 0) {
    throw new IdError('MissingTag', 'ExecutionId', text, `no "${TAG_END}" after "${EXECUTION_PREFIX}"`, text);
  }
  const indexText = text.slice(EXECUTION_PREFIX.length, tagEnd);
  if (!CANONICAL_INDEX.test(indexText) || Number(indexText) > MAX_PARTITION_INDEX) {
    throw new IdError(
      'InvalidPartitionIndex',
      'ExecutionId',
      text,
      `partition index ${JSON.stringify(indexText)} is not a canonical decimal in 0..65535`,
      indexText,
    );
  }
  const uuidText = text.slice(tagEnd + TAG_END.length);
  if (!isCanonicalUuid(uuidText)) {
    throw new IdError(
      'InvalidUuid',
      'ExecutionId',
      text,
      `${JSON.stringify(uuidText)} is not a lowercase hyphenated UUID`,
      uuidText,
    );
  }
  return text as ExecutionId;
}

// The accessors below trust the brand: a branded ExecutionId has passed validation.
const tagEndOf = (id: ExecutionId): number => id.indexOf(TAG_END, EXECUTION_PREFIX.length);

/** The N of `{fp:N}`, read from the id itself (never re-hashed, config-independent). */
export function executionPartition(id: ExecutionId): number {
  return Number(id.slice(EXECUTION_PREFIX.length, tagEndOf(id)));
}

/** The id's own hash tag, e.g. `{fp:24}`. */
export function executionTag(id: ExecutionId): HashTag {
  return id.slice(0, tagEndOf(id) + 1) as HashTag;
}

/** The UUID part of the id (canonical lowercase hyphenated). */
export function executionUuid(id: ExecutionId): string {
  return id.slice(tagEndOf(id) + TAG_END.length);
}

// ---------------------------------------------------------------------------------
// LaneId (model.md 2.3) and free text that ends up inside keys

export const LANE_ID_MAX_BYTES = 64;
/** The lane Lua falls back to; hard-coded like Rust's infallible `LaneId::new`. */
export const DEFAULT_LANE_ID = 'default' as LaneId;

const utf8 = new TextEncoder();

/** Index of the first `{` or `}`, or -1. A brace inside a key can move its hash tag. */
function braceIndex(text: string): number {
  const open = text.indexOf('{');
  const close = text.indexOf('}');
  if (open < 0) return close;
  if (close < 0) return open;
  return Math.min(open, close);
}

/**
 * Rust's rules (non-empty, at most 64 bytes, every byte 0x20..0x7E) plus one of our
 * own: no `{` or `}`, since the lane is embedded in index keys.
 */
// 1 to 64 printable ASCII characters other than `{` and `}`: the common case, checked
// without encoding; anything else goes through the detailed checks for a precise error.
const PLAIN_LANE = /^[\x20-\x7a\x7c\x7e]{1,64}$/;

export function parseLaneId(text: string): LaneId {
  if (PLAIN_LANE.test(text)) return text as LaneId;
  if (text.length === 0) throw new IdError('Empty', 'LaneId', text, 'must not be empty');
  const bytes = utf8.encode(text);
  if (bytes.length > LANE_ID_MAX_BYTES) {
    throw new IdError('TooLong', 'LaneId', text, `${bytes.length} bytes, at most ${LANE_ID_MAX_BYTES}`, bytes.length);
  }
  const badByte = bytes.findIndex((b) => b < 0x20 || b > 0x7e);
  if (badByte >= 0) {
    throw new IdError('NonPrintable', 'LaneId', text, `byte ${badByte} is not printable ASCII`, badByte);
  }
  // All bytes are ASCII from here on, so string index equals byte index.
  const brace = braceIndex(text);
  if (brace >= 0) {
    throw new IdError('InvalidCharacter', 'LaneId', text, `"${text[brace]}" at byte ${brace}`, brace);
  }
  return text as LaneId;
}

export const laneId = parseLaneId;

export interface KeySafeOptions {
  /** Accept "" (for optional values such as an absent idempotency key). Default false. */
  readonly allowEmpty?: boolean;
}

/**
 * Checks free text that callers embed in keys (worker instance id, namespace,
 * waitpoint key, idempotency key): rejects `{` and `}`, and "" unless allowed.
 * Returns the text so it can be used inline.
 */
export function assertKeySafe(text: string, name: string, options: KeySafeOptions = {}): string {
  if (text.length === 0 && !options.allowEmpty) throw new IdError('Empty', name, text, 'must not be empty');
  const brace = braceIndex(text);
  if (brace >= 0) {
    throw new IdError('InvalidCharacter', name, text, `"${text[brace]}" at index ${brace}`, brace);
  }
  return text;
}
