// The spec as the generator sees it after loading and validation. Names are snake_case,
// as on the wire and in the Lua; TypeScript names are derived from them mechanically.

export type ScalarType =
  | 'string'
  | 'keyText'
  | 'integer'
  | 'timestampMs'
  | 'durationMs'
  | 'attemptIndex'
  | 'epoch'
  | 'flag'
  | 'json'
  | 'enum'
  | 'executionId'
  | 'flowId'
  | 'budgetId'
  | 'quotaPolicyId'
  | 'waitpointId'
  | 'suspensionId'
  | 'signalId'
  | 'leaseId'
  | 'attemptId'
  | 'edgeId'
  | 'laneId'
  | 'capabilities';

/** A value as spec/ declares it (an ARGV slot, a key-only parameter or a group member), before normalising. */
export interface FieldSpec {
  readonly name: string;
  readonly type: ScalarType | 'constant' | 'list' | 'group';
  readonly doc?: string;
  readonly optional?: boolean;
  readonly default?: string | number | boolean;
  /** The slot is sent empty unless this other argument is present. */
  readonly when?: string;
  /** The slot's value is another argument's value (declared in params or earlier ARGV). */
  readonly from?: string;
  /** The slot is `Date.now()` plus this duration argument (a client-clock timestamp). */
  readonly nowPlus?: string;
  /** Default computed from another argument with a named runtime helper. */
  readonly defaultFrom?: { readonly fn: 'twoThirds' | 'executionPartition' | 'now'; readonly arg?: string };
  readonly min?: number;
  readonly max?: number;
  readonly nonEmpty?: boolean;
  /** An integer slot whose Lua accepts any number text (the reference floors it). */
  readonly fraction?: boolean;
  /** A non-negative integer slot the Lua compares as text with a stored value (digits kept as sent, as the reference). */
  readonly asText?: boolean;
  /**
   * How the Lua refuses this slot where the reference has its own words: `code` (from
   * spec/errors.yaml, instead of invalid_input, with `detail` if given), or the detail
   * texts `low` (not a number, empty, or below min) and `high` (above max).
   */
  readonly refusal?: { readonly code?: string; readonly detail?: string; readonly low?: string; readonly high?: string };
  readonly maxBytes?: number;
  readonly values?: readonly string[];
  /** A named enum of spec/enums.yaml; `values`, when also given, narrow it (a subset). */
  readonly enum?: string;
  /** A json slot: the named shape of spec/shapes.yaml its value must have. */
  readonly shape?: string;
  readonly value?: string;
  readonly of?: ScalarType;
  readonly count?: 'prefix' | 'none';
  /** A counted list's count as the refusal texts name it (the reference's `dim_count`); default `<name>_count`. */
  readonly countName?: string;
  readonly layout?: 'columns' | 'rows';
  readonly fields?: readonly FieldSpec[];
  readonly maxItems?: number;
}

/** A reply field as spec/ declares it, before normalising. */
export interface ReplyFieldSpec {
  readonly name: string;
  readonly type: ScalarType | 'streamEntries' | 'list' | 'group';
  readonly doc?: string;
  readonly optional?: boolean;
  readonly values?: readonly string[];
  readonly enum?: string;
  readonly of?: ScalarType;
  /** For groups: the earlier integer field holding the count, or `rest` for the remaining fields. */
  readonly count?: string;
  readonly fields?: readonly ReplyFieldSpec[];
}

export interface ReplyVariant {
  /** Wire status (`OK`, `ALREADY_SATISFIED`, …). */
  readonly status: string;
  /**
   * For `OK:sub_status` variants: the literal first field that tells them apart. `*` is the
   * catch-all (`OK:*`): any sub-status no other variant names, for values another writer
   * may have stored; its result carries `status: as` and the wire value in `subStatus`.
   */
  readonly subStatus?: string;
  /** The catch-all's `status` in the typed result. */
  readonly as?: string;
  readonly fields: readonly ReplyField[];
  readonly doc?: string;
}

interface ReplyFieldCommon {
  /** Wire name (snake_case). */
  readonly name: string;
  /** Property name in the typed result. */
  readonly property: string;
  readonly optional: boolean;
}

/** One field of a reply variant, one shape per kind. */
export type ReplyField =
  | (ReplyFieldCommon & { readonly kind: 'scalar'; readonly type: ScalarType; readonly values: readonly string[] | undefined })
  | (ReplyFieldCommon & { readonly kind: 'streamEntries' })
  | (ReplyFieldCommon & { readonly kind: 'list'; readonly of: ScalarType; readonly values: readonly string[] | undefined })
  /** Repeated groups of fields: as many as an earlier integer field says, or the rest of the reply. */
  | (ReplyFieldCommon & { readonly kind: 'group'; readonly members: readonly ReplyField[]; readonly countField: string | undefined });

export interface KeyRef {
  /** Name of the slot (the Lua `K` field). */
  readonly name: string;
  readonly context: string;
  readonly key: string;
  /** Arguments bound, in order, to the key's own placeholders; absent means same-named arguments. */
  readonly args?: readonly string[];
  /** Context parameter → argument name bindings (e.g. another execution's id). */
  readonly contextBind: Readonly<Record<string, string>>;
  /** Use `key` only when this argument is present, else `otherwise`. */
  readonly when?: string;
  readonly otherwise?: KeyRef;
  /** Repeat the key once per element of this list argument, binding `eachAs`. */
  readonly each?: string;
  readonly eachAs?: string;
  /** The Lua tolerates this key (and the ones after it) missing: the wrapper always sends it, but the guard does not require it. */
  readonly optional?: boolean;
  readonly doc?: string;
}

export type TagSource =
  | { readonly from: 'none' }
  | { readonly from: 'execution' | 'flow' | 'budget' | 'quota'; readonly arg: string }
  | { readonly from: 'partition'; readonly family: 'fp' | 'b' | 'q'; readonly arg: string };

// ---- the normalised view the emitters read: one shape per kind, decided once while loading ----

/** Limits an encoder checks. */
export interface EncodeRules {
  readonly min?: number | undefined;
  readonly max?: number | undefined;
  readonly nonEmpty?: boolean | undefined;
  readonly maxBytes?: number | undefined;
  readonly values?: readonly string[] | undefined;
  /** A json value's shape (spec/shapes.yaml). */
  readonly shape?: string | undefined;
}

/** What happens when the caller leaves an argument out. */
export type Presence =
  | { readonly kind: 'required' }
  /** Sent as the empty string (a list or group: as empty). */
  | { readonly kind: 'optional' }
  | { readonly kind: 'default'; readonly value: string | number | boolean }
  /** Computed from another argument by a runtime helper. */
  | { readonly kind: 'derived'; readonly fn: 'twoThirds' | 'executionPartition'; readonly from: string }
  /** The client clock, `Date.now()`. */
  | { readonly kind: 'clock' };

interface ArgCommon {
  /** Wire name (snake_case). */
  readonly name: string;
  /** Property name in the Args interface. */
  readonly property: string;
  readonly doc: string | undefined;
  readonly presence: Presence;
  /** The TypeScript type of the property. */
  readonly tsType: string;
}

export interface ScalarArg extends ArgCommon {
  readonly kind: 'scalar';
  readonly type: ScalarType;
  readonly rules: EncodeRules;
  /** The named enum type (generated/enums.ts) the property uses, when the slot takes all its values. */
  readonly enumType?: string;
}

export interface ListArg extends ArgCommon {
  readonly kind: 'list';
  readonly of: ScalarType;
  readonly rules: EncodeRules;
  readonly maxItems: number | undefined;
}

export interface GroupMember {
  readonly name: string;
  readonly property: string;
  readonly type: ScalarType;
  readonly rules: EncodeRules;
  readonly tsType: string;
}

export interface GroupArg extends ArgCommon {
  readonly kind: 'group';
  readonly members: readonly GroupMember[];
  readonly maxItems: number | undefined;
}

/** One value the caller passes: a property of the function's Args. */
export type Arg = ScalarArg | ListArg | GroupArg;

interface SlotCommon {
  /** Wire name of the ARGV slot. */
  readonly name: string;
  /** Sent empty unless this argument is present. */
  readonly when: string | undefined;
}

/** What one ARGV slot sends. */
export type Slot =
  | (SlotCommon & { readonly kind: 'constant'; readonly value: string })
  /** A scalar argument's wire text (the slot's own argument, or another one's with `from`). */
  | (SlotCommon & { readonly kind: 'value'; readonly arg: string })
  /** The client clock plus a duration argument. */
  | (SlotCommon & { readonly kind: 'clockPlus'; readonly duration: string })
  | (SlotCommon & { readonly kind: 'list'; readonly arg: string; readonly countFirst: boolean })
  | (SlotCommon & { readonly kind: 'group'; readonly arg: string; readonly countFirst: boolean; readonly layout: 'columns' | 'rows' });

export interface FunctionSpec {
  readonly name: string;
  readonly doc: string;
  readonly tag: TagSource;
  /** As declared: key-only parameters. */
  readonly params: readonly FieldSpec[];
  readonly keys: readonly KeyRef[];
  /** As declared: the ARGV slots. */
  readonly argv: readonly FieldSpec[];
  /** Every argument the caller passes, in declaration order (params, then ARGV). */
  readonly args: readonly Arg[];
  /** What each ARGV slot sends, in wire order. */
  readonly slots: readonly Slot[];
  readonly envelope: 'standard' | 'untagged' | 'bare';
  readonly replies: readonly ReplyVariant[];
  readonly errors: readonly string[];
  readonly deviations: readonly string[];
  readonly readonly: boolean;
  readonly extension: boolean;
  /** The fewest ARGV the Lua accepts (`argv_min:`); absent: every fixed slot. */
  readonly argvMin: number | undefined;
  /** Error codes replied after a documented write (`writes_on_error:`); every other error reply writes nothing. */
  readonly writesOnError: readonly string[];
  /** Where the function is declared, for messages. */
  readonly file: string;
  readonly line: number;
}

export interface ModuleSpec {
  readonly name: string;
  readonly doc: string;
  readonly file: string;
  readonly functions: readonly FunctionSpec[];
}

export interface KeySpec {
  readonly name: string;
  readonly pattern: string;
  readonly type: string;
  readonly doc: string;
  /** Placeholders in pattern order, without `tag` and the context's own params. */
  readonly params: readonly string[];
}

export interface ContextSpec {
  readonly name: string;
  readonly doc: string;
  readonly family: 'fp' | 'b' | 'q' | 'none';
  readonly params: readonly string[];
  readonly keys: readonly KeySpec[];
}

export interface KeyLayout {
  readonly params: Readonly<Record<string, ScalarType>>;
  /** The value a placeholder takes when the stored record has none (`lane_id: default`). */
  readonly defaults: Readonly<Record<string, string>>;
  readonly contexts: readonly ContextSpec[];
}

export interface ErrorSpec {
  readonly code: string;
  readonly class: string;
  readonly doc: string;
  readonly detail: boolean;
}

/** A member of a JSON shape. */
export interface ShapeMember {
  readonly name: string;
  readonly type: 'string' | 'number' | 'boolean' | 'object' | 'array' | 'any';
  /** For arrays: the element type. */
  readonly of?: 'string' | 'number' | 'boolean' | 'any';
  /** For objects: the named shape. */
  readonly shape?: string;
}

/** A named JSON shape of spec/shapes.yaml: an object with declared members, or a map of one value type. */
export interface ShapeSpec {
  readonly name: string;
  readonly doc: string;
  readonly fields: readonly ShapeMember[];
  readonly values?: 'string' | 'number' | 'boolean' | 'any';
  readonly closed: boolean;
}

/** A named value set of spec/enums.yaml. */
export interface EnumSpec {
  readonly name: string;
  readonly doc: string;
  readonly values: readonly string[];
}

export interface Spec {
  readonly keys: KeyLayout;
  readonly enums: readonly EnumSpec[];
  readonly shapes: readonly ShapeSpec[];
  readonly errors: readonly ErrorSpec[];
  readonly modules: readonly ModuleSpec[];
}

// ---- queries ----

/** A key of spec/keys.yaml by context and name. */
export function findKey(spec: Spec, contextName: string, keyName: string): { context: ContextSpec; key: KeySpec } | undefined {
  const context = spec.keys.contexts.find((c) => c.name === contextName);
  const key = context?.keys.find((k) => k.name === keyName);
  return context && key ? { context, key } : undefined;
}

/** The execution's own context: its keys carry the execution's tag, not the function's. */
export function isExecContext(context: ContextSpec): boolean {
  return context.family === 'fp' && context.params.length === 1 && context.params[0] === 'execution_id';
}
