// The facts the Lua library needs from spec/, written as Lua at the top of the bundle
// (after FUNCTION_KEYS), so that no key pattern or ARGV count is typed again in lua/:
// - FUNCTION_ARGV: the number of fixed ARGV slots of every function (the guard refuses
//   fewer, so no body ever reads a missing argument as nil);
// - KEY_CHECKS: per function, a checker that compares every fixed KEYS slot with the key
//   spec/keys.yaml builds from the call's context (`c`: tag, execution_id, lane_id,
//   attempt index, worker instance, waitpoint…, named as the spec binds them). A slot
//   whose placeholders are not all in `c` is not checked, nor one named by the hash tag
//   alone; the body decides what to pass, from stored state, before its first write;
// - ARGV_RULES / ARGV_CHECKS: per function, the rule of every ARGV slot the spec constrains
//   (see argvRule), which the guard checks, and converts, before the body runs: the fixed
//   slots in place; a list or group (its count, each element's members) and the slots after
//   it, whose places are counted from the list's length, into args.<name>.
import { findKey } from './model.js';
import type { EnumSpec, FieldSpec, FunctionSpec, KeyRef, ShapeSpec, Spec } from './model.js';

/** The KEYS the guard requires: those before the first one the Lua tolerates missing. */
export function requiredKeys(fn: FunctionSpec): number {
  const first = fn.keys.findIndex((k) => k.optional || k.each);
  return first < 0 ? fn.keys.length : first;
}

/** Fixed ARGV slots: scalar slots plus the count of each counted list or group. */
export function fixedArgvCount(fn: FunctionSpec): number {
  const repeated = (a: FieldSpec) => a.type === 'list' || a.type === 'group';
  return fn.argv.filter((a) => !repeated(a)).length + fn.argv.filter((a) => repeated(a) && a.count !== 'none').length;
}

interface Alternative {
  /** The Lua expression building the key. */
  readonly expression: string;
  /** The context names it needs (each must be non-nil for the key to be checked). */
  readonly needs: readonly string[];
}

function luaString(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** The key of one reference as a Lua concatenation over the context table `c`. */
function alternative(spec: Spec, fn: FunctionSpec, ref: KeyRef): Alternative {
  const found = findKey(spec, ref.context, ref.key);
  if (!found) throw new Error(`${fn.name}: unknown key ${ref.context}.${ref.key}`);
  const { context, key } = found;
  const needs: string[] = [];
  const parts: string[] = [];
  let last = 0;
  for (const match of key.pattern.matchAll(/\{([a-z_]+)\}/g)) {
    if (match.index! > last) parts.push(luaString(key.pattern.slice(last, match.index)));
    const placeholder = match[1]!;
    let name: string;
    if (placeholder === 'tag') name = 'tag';
    else if (context.params.includes(placeholder)) name = ref.contextBind[placeholder] ?? placeholder;
    else name = ref.args?.[key.params.indexOf(placeholder)] ?? placeholder;
    if (!needs.includes(name)) needs.push(name);
    parts.push(`v_${name}`);
    last = match.index! + match[0].length;
  }
  if (last < key.pattern.length) parts.push(luaString(key.pattern.slice(last)));
  return { expression: parts.join(' .. '), needs };
}

/** A Lua local name for a context value (`c.<name>` is read once per call). */
const local = (name: string) => `v_${name}`;

function checker(spec: Spec, fn: FunctionSpec, required: number): string[] {
  const checks: string[] = [];
  const names = new Set<string>();
  fn.keys.forEach((ref, i) => {
    if (ref.each !== undefined) return; // per-element keys: the body checks them
    const main = alternative(spec, fn, ref);
    // A conditional key whose condition is not part of the key itself (create's delay_until):
    // with the condition in c, exactly the key it selects is expected.
    if (ref.when && ref.otherwise && !main.needs.includes(ref.when)) {
      const other = alternative(spec, fn, ref.otherwise);
      const needs = [...new Set([...main.needs, ...other.needs])].filter((n) => n !== 'tag');
      needs.forEach((n) => names.add(n));
      names.add(ref.when);
      const slot = `keys[${i + 1}]`;
      const guardNil = [...needs.map((n) => `${local(n)} ~= nil`), ...(i < required ? [] : [`${slot} ~= nil`])];
      const pick = `${local(ref.when)} ~= nil and ${main.expression} or ${other.expression}`;
      checks.push(`    if ${[...guardNil, `${slot} ~= (${pick})`].join(' and ')} then return ${luaString(ref.name)}, ${i + 1}, ${pick} end`);
      return;
    }
    const alternatives = [main];
    if (ref.otherwise) alternatives.push(alternative(spec, fn, ref.otherwise));
    const needs = [...new Set(alternatives.flatMap((a) => a.needs))];
    // A key named by the hash tag alone (a partition index) can only be another partition's,
    // and the call's other keys pin the tag; not checking it keeps hot paths cheap.
    if (needs.every((n) => n === 'tag')) return;
    needs.forEach((n) => names.add(n));
    const slot = `keys[${i + 1}]`;
    // Slots the guard guarantees are present need no nil test; `tag` is always given. An
    // execution's core key already matched by check_core_key (c.core_checked) is not rebuilt.
    const known = needs.filter((n) => n !== 'tag').map((n) => `${local(n)} ~= nil`);
    if (ref.context === 'exec' && ref.key === 'core' && !ref.otherwise) {
      names.add('core_checked');
      known.unshift(`not ${local('core_checked')}`);
    }
    const present = i < required ? [] : [`${slot} ~= nil`];
    const differs = alternatives.map((a) => `${slot} ~= ${a.expression}`);
    const expected = alternatives.map((a) => a.expression).join(` .. ' or ' .. `);
    checks.push(`    if ${[...known, ...present, ...differs].join(' and ')} then return ${luaString(ref.name)}, ${i + 1}, ${expected} end`);
  });
  if (checks.length === 0) return [];
  const ordered = [...names].sort();
  return [`    local ${ordered.map(local).join(', ')} = ${ordered.map((n) => `c.${n}`).join(', ')}`, ...checks];
}

/** The fewest ARGV the guard accepts per function (argv_min, else every fixed slot). */
export function argvMinimums(spec: Spec): Map<string, number> {
  return new Map(spec.modules.flatMap((m) => m.functions).map((f) => [f.name, f.argvMin ?? fixedArgvCount(f)] as const));
}

const INTEGER_TYPES = new Set(['integer', 'timestampMs', 'durationMs']);
/** Integers compared with stored text (the engine compares them as strings): checked, kept as text. */
const COUNT_TYPES = new Set(['attemptIndex', 'epoch']);
/** Ids that name a record: never empty. Lease, attempt and lane ids are compared with stored state instead. */
const NAMING_IDS = new Set(['executionId', 'flowId', 'budgetId', 'quotaPolicyId', 'waitpointId', 'suspensionId', 'signalId', 'edgeId']);

const luaValue = (value: string | number | boolean): string => (typeof value === 'string' ? luaString(value) : String(value));

/**
 * The Lua rule of one ARGV slot, or undefined when the spec puts no constraint on it that
 * the Lua can check (free text, flags, capability lists: the body parses those itself).
 * `empty` says whether the empty string is accepted: the slot is optional, has a default
 * (the Lua applies it: `def`), is sent only `when` another argument is present, is a
 * client-clock `nowPlus` timestamp of an optional duration. A value the wrapper derives
 * (`defaultFrom`) is always sent, so required. An enum's default only stands for a missing value. `refusal` (spec) gives
 * the slot its own error code or the reference's texts.
 */
/** What the generated check of one ARGV slot needs to know (see argvRule). */
interface RuleData {
  readonly index: number;
  readonly kind: 'int' | 'number' | 'count' | 'json' | 'enum' | 'nonempty';
  readonly empty: boolean;
  /** Lua literal of the value an empty (when accepted) or missing value becomes. */
  readonly def: string | undefined;
  readonly min: number | undefined;
  readonly max: number | undefined;
  /** The reference's text for a missing, non-numeric or too-low value (refusal.low); a missing value gets it from the guard. */
  readonly low: boolean;
  /** The Lua table of the rule, for the refusal texts. */
  readonly table: string;
}

export function argvRule(slot: FieldSpec, index: number, params: readonly FieldSpec[] = [], enums: readonly EnumSpec[] = []): string | undefined {
  return ruleData(slot, index, params, enums)?.table;
}

function ruleData(slot: FieldSpec, index: number, params: readonly FieldSpec[], enums: readonly EnumSpec[]): RuleData | undefined {
  const clockOptional = slot.nowPlus !== undefined && params.some((p) => p.name === slot.nowPlus && (p.optional || p.default !== undefined));
  // An enum's default is the wrapper's and the reference's for a missing value; an empty one is refused.
  const defaulted = slot.default !== undefined && slot.type !== 'enum';
  const empty = slot.optional === true || defaulted || slot.when !== undefined || clockOptional;
  const fields = [`i = ${index}`, `name = ${luaString(slot.name)}`];
  let kind: RuleData['kind'];
  let def: string | undefined;
  let min: number | undefined;
  let max: number | undefined;
  const bounds = () => {
    min = slot.min;
    max = slot.max;
    if (slot.min !== undefined) fields.push(`min = ${slot.min}`, `min_text = ${luaString(String(slot.min))}`);
    if (slot.max !== undefined) fields.push(`max = ${slot.max}`, `max_text = ${luaString(String(slot.max))}`);
  };
  if (INTEGER_TYPES.has(slot.type) && !slot.asText) {
    kind = slot.fraction ? 'number' : 'int';
    bounds();
    // A `when` slot's default is the wrapper's: sent empty, the Lua leaves the feature off.
    if (typeof slot.default === 'number' && slot.when === undefined) def = String(slot.default);
  } else if (COUNT_TYPES.has(slot.type) || (INTEGER_TYPES.has(slot.type) && slot.asText)) {
    kind = 'count';
    max = slot.max;
    if (slot.max !== undefined) fields.push(`max = ${slot.max}`, `max_text = ${luaString(String(slot.max))}`);
  } else if (slot.type === 'json') {
    kind = 'json';
    if (slot.shape) fields.push(`shape = SHAPES.${slot.shape}`);
  } else if (slot.type === 'enum' && slot.values) {
    kind = 'enum';
    // A slot that takes a whole named enum checks against ENUMS (generated once); a narrowed one against its own set.
    const whole = slot.enum !== undefined && enums.find((e) => e.name === slot.enum)?.values.join() === slot.values.join();
    const set = whole ? `ENUMS.${slot.enum}` : `{ ${slot.values.map((v) => `[${luaString(v)}] = true`).join(', ')} }`;
    fields.push(`values = ${set}`, `list = ${luaString(slot.values.join(', '))}`);
    if (slot.default !== undefined) def = luaValue(slot.default);
  } else if ((slot.nonEmpty || NAMING_IDS.has(slot.type)) && !empty) {
    kind = 'nonempty';
  } else {
    return undefined;
  }
  fields.push(`kind = ${luaString(kind)}`);
  if (def !== undefined) fields.push(`def = ${def}`);
  if (empty) fields.push('empty = true');
  const refusal = slot.refusal;
  if (refusal?.code) fields.push(`code = ${luaString(refusal.code)}`);
  if (refusal?.detail) fields.push(`detail = ${luaString(refusal.detail)}`);
  if (refusal?.low) fields.push(`low = ${luaString(refusal.low)}`);
  if (refusal?.high) fields.push(`high = ${luaString(refusal.high)}`);
  return { index, kind, empty, def, min, max, low: refusal?.low !== undefined, table: `{ ${fields.join(', ')} }` };
}

/** Where one rule's check reads its value and puts the converted one, and its rule table. */
interface RuleSite {
  /** The Lua expression of the raw value (`args[3]`, `args[o + 1]`). */
  readonly src: string;
  /** Where the converted value goes (`args[3]` in place; `args.now_ms`, `row.delta` for a repeated or tail slot). */
  readonly dst: string;
  /** The Lua expression of the rule table (`R[2]`). */
  readonly rule: string;
  /** The rule table a refusal names, when it differs (an element's: `argv_element(R[2], 'usage[' .. e .. '].delta')`). */
  readonly refusal?: string;
}

/**
 * The straight-line Lua check of one slot (rule `R[k]`), converting `args` in place: no
 * loop over rule tables on the hot path, only the comparisons this slot needs. `missing`:
 * the slot may be absent (past argv_min), which is accepted and left to the body, or takes
 * the default. `site` moves the read and the result elsewhere (slots after a list or group).
 */
function ruleCode(r: RuleData, k: number, missing: boolean, site?: RuleSite): string[] {
  const i = r.index;
  const src = site?.src ?? `args[${i}]`;
  const dst = site?.dst ?? `args[${i}]`;
  const rule = site?.rule ?? `R[${k}]`;
  const refuse = (why: string) => `return argv_refusal(${site?.refusal ?? rule}, ${why}, v)`;
  const numeric = r.kind === 'int' || r.kind === 'number';
  // What an empty or missing value does.
  const onEmpty: string[] = [];
  if (r.empty) {
    if (r.def !== undefined) onEmpty.push(`${dst} = ${r.def}`);
    else if (numeric) onEmpty.push(`${dst} = nil`);
  } else if (!missing) {
    onEmpty.push(refuse(`'empty'`));
  } else {
    if (r.def === undefined && r.low) onEmpty.push(refuse(`'empty'`));
    else onEmpty.push(`if v == '' then ${refuse(`'empty'`)} end`, ...(r.def !== undefined ? [`${dst} = ${r.def}`] : []));
  }
  const isEmpty = missing ? `v == '' or v == nil` : `v == ''`;
  // A value that leaves its slot is copied first; the check below converts it where it needs to.
  const lines = [`v = ${src}`, ...(dst !== src ? [`${dst} = v`] : [])];
  const branch = (check: string[]) => {
    if (onEmpty.length === 0 && check.length === 0) return;
    if (onEmpty.length === 0) {
      lines.push(`if not (${isEmpty}) then`, ...check.map((l) => `  ${l}`), 'end');
      return;
    }
    lines.push(`if ${isEmpty} then`, ...onEmpty.map((l) => `  ${l}`));
    if (check.length > 0) lines.push('else', ...check.map((l) => `  ${l}`));
    lines.push('end');
  };
  switch (r.kind) {
    case 'nonempty':
      lines.push(`if v == '' then ${refuse(`'empty'`)} end`);
      break;
    case 'int':
    case 'number': {
      // A remembered text (helpers.lua: ARGV_INTS, ARGV_NUMBERS) is one table read, no parse.
      const parse = r.kind === 'int' ? 'ARGV_INTS[v] or parse_int(v)' : 'ARGV_NUMBERS[v] or parse_number(v)';
      const check = [`local n = ${parse}`, `if n == nil then ${refuse(`parse_number(v) == nil and 'nan' or 'int'`)} end`];
      if (r.min !== undefined) check.push(`if n < ${r.min} then ${refuse(`'low'`)} end`);
      if (r.max !== undefined) check.push(`if n > ${r.max} then ${refuse(`'high'`)} end`);
      check.push(`${dst} = n`);
      branch(check);
      break;
    }
    case 'count': {
      // A canonical count parse_int remembered is one table read (helpers.lua: count_text).
      const check = [`if (ARGV_INTS[v] or -1) < 0 and not count_text(v) then ${refuse(`parse_number(v) == nil and 'nan' or 'low'`)} end`];
      if (r.max !== undefined) check.push(`if (ARGV_INTS[v] or tonumber(v)) > ${r.max} then ${refuse(`'high'`)} end`);
      branch(check);
      break;
    }
    case 'json':
      branch([`local bad = json_arg(${rule}, args, v)`, 'if bad then return bad end']);
      break;
    case 'enum':
      branch([`if not ${rule}.values[v] then ${refuse(`'enum'`)} end`]);
      break;
  }
  return lines;
}

const isRepeated = (slot: FieldSpec) => slot.type === 'list' || slot.type === 'group';

/** The wire name of a counted list's count (refusal texts): `countName`, else `<list>_count`. */
export function countName(list: FieldSpec): string {
  return list.countName ?? `${list.name}_count`;
}

/** The members of a repeated slot as the fields of one element: a group's fields, or the list's element type. */
function elementMembers(list: FieldSpec): FieldSpec[] {
  if (list.type === 'group') return [...(list.fields ?? [])];
  const { count: _count, countName: _name, maxItems: _max, of, ...rest } = list;
  return [{ ...rest, type: of ?? 'string' }];
}

/** The rules of one function's ARGV: its fixed slots, and for a list or group its count, its elements' members and the slots after it. */
interface ArgvPlan {
  /** Rules of the slots before the first list or group, in slot order (their index is the wire index). */
  readonly fixed: RuleData[];
  readonly repeated?: {
    readonly slot: FieldSpec;
    /** Wire index of the count (count: prefix), or of the first element (count: none). */
    readonly index: number;
    readonly counted: boolean;
    readonly count: RuleData | undefined;
    /** Each member's name and rule (undefined: copied as sent). */
    readonly members: readonly { readonly name: string; readonly rule: RuleData | undefined }[];
    /** The slots after it: name, position in the fixed numbering (the list counted as its count), rule. */
    readonly tail: readonly { readonly name: string; readonly position: number; readonly rule: RuleData | undefined }[];
  };
}

function argvPlan(fn: FunctionSpec, enums: readonly EnumSpec[]): ArgvPlan {
  const fixed: RuleData[] = [];
  const at = fn.argv.findIndex(isRepeated);
  const before = at < 0 ? fn.argv : fn.argv.slice(0, at);
  before.forEach((slot, i) => {
    const rule = ruleData(slot, i + 1, fn.params, enums);
    if (rule) fixed.push(rule);
  });
  if (at < 0) return { fixed };
  const slot = fn.argv[at]!;
  const index = at + 1;
  const counted = slot.count !== 'none';
  const count = counted
    ? ruleData({ name: countName(slot), type: 'integer', min: 0, ...(slot.maxItems !== undefined ? { max: slot.maxItems } : {}) }, index, [], enums)
    : undefined;
  const members = elementMembers(slot).map((m) => ({ name: m.name, rule: ruleData({ ...m, optional: false }, index, [], enums) }));
  const tail = fn.argv.slice(at + 1).map((t, j) => ({ name: t.name, position: index + (counted ? 1 : 0) + j, rule: ruleData(t, index + (counted ? 1 : 0) + j, fn.params, enums) }));
  return { fixed, repeated: { slot, index, counted, count, members, tail } };
}

/** The rules of a plan in R order (fixed, count, members, tail), each with its R index. */
function planRules(plan: ArgvPlan): RuleData[] {
  const rules = [...plan.fixed];
  const r = plan.repeated;
  if (r) {
    if (r.count) rules.push(r.count);
    for (const m of r.members) if (m.rule) rules.push(m.rule);
    for (const t of r.tail) if (t.rule) rules.push(t.rule);
  }
  return rules;
}

/**
 * A function's ARGV check: its rules' code in slot order; `args.n` first for a function with a
 * repeated tail. After a list or group: its count (an integer >= 0, at most maxItems), the
 * ARGV count it implies (exact, but for tail slots past argv_min, which may be missing), each
 * element's members by the same rules as fixed slots (refusals name `<list>[i]` or
 * `<group>[i].<member>`, i from 1), the elements handed to the body as `args.<list>` (a
 * list's values, or one table per group element keyed by member name), then every slot after
 * it, at its place counted from the count, checked the same way and handed over as `args.<name>`.
 */
function argvChecker(fn: FunctionSpec, plan: ArgvPlan): string[] {
  const minimum = fn.argvMin ?? fixedArgvCount(fn);
  const body: string[] = [];
  const rules = planRules(plan);
  const r = plan.repeated;
  if (r) body.push('args.n = #args -- before a nil slot makes # unreliable');
  if (rules.length > 0 || r) body.push('local v');
  plan.fixed.forEach((rule, k) => body.push(...ruleCode(rule, k + 1, rule.index > minimum)));
  if (r) {
    let k = plan.fixed.length;
    const width = r.members.length;
    const name = r.slot.name;
    // The element count, and `o`: the wire index of the last element, after which the tail starts.
    if (r.counted) {
      const rule = `R[${++k}]`;
      body.push(`v = args[${r.index}]`, 'local count = parse_int(v)', `if count == nil then return argv_refusal(${rule}, parse_number(v) == nil and 'nan' or 'int', v) end`);
      body.push(`if count < 0 then return argv_refusal(${rule}, 'low', v) end`);
      if (r.slot.maxItems !== undefined) body.push(`if count > ${r.slot.maxItems} then return argv_refusal(${rule}, 'high', v) end`);
      body.push(`local o = ${r.index} + ${width === 1 ? 'count' : `${width} * count`}`);
      const required = Math.max(0, Math.min(r.tail.length, minimum - r.index));
      const most = r.tail.length;
      const low = required === 0 ? 'o' : `o + ${required}`;
      const high = most === 0 ? 'o' : `o + ${most}`;
      const paren = (e: string) => (e === 'o' ? e : `(${e})`);
      const expected = required === most ? paren(low) : `${paren(low)} .. '${most - required === 1 ? ' or ' : ' to '}' .. ${paren(high)}`;
      const test = required === most ? `args.n ~= ${low}` : `args.n < ${low} or args.n > ${high}`;
      body.push(`if ${test} then return { 0, 'invalid_input', 'expected ' .. ${expected} .. ' ARGV for ${countName(r.slot)} ' .. v .. ', got: ' .. args.n } end`);
    } else {
      // Uncounted: the rest of ARGV (the spec check keeps such a list last).
      body.push(`local count = args.n - ${r.index - 1}`);
      if (width > 1) {
        body.push(`if count % ${width} ~= 0 then return { 0, 'invalid_input', '${name} needs ${width} ARGV per element, got: ' .. count } end`, `count = count / ${width}`);
      }
      if (r.slot.maxItems !== undefined) body.push(`if count > ${r.slot.maxItems} then return { 0, 'invalid_input', '${name} must have at most ${r.slot.maxItems} elements, got: ' .. count } end`);
    }
    const first = r.counted ? r.index : r.index - 1; // elements start after it
    const group = r.slot.type === 'group';
    const rows = r.slot.layout === 'rows';
    const loop: string[] = [];
    if (group) loop.push('local row = {}');
    r.members.forEach((m, mi) => {
      const offset = !group ? 'e' : rows ? (width === 1 ? 'e' : `(e - 1) * ${width} + ${mi + 1}`) : mi === 0 ? 'e' : `${mi === 1 ? 'count' : `${mi} * count`} + e`;
      const src = `args[${first} + ${offset}]`;
      const dst = group ? `row.${m.name}` : 'items[e]';
      if (!m.rule) {
        loop.push(`${dst} = ${src}`);
        return;
      }
      if (m.rule.kind === 'json') throw new Error(`${fn.name}: a JSON member of a list or group (${name}.${m.name}) has no Lua check; send it as its own slot`);
      const label = group ? `'${name}[' .. e .. '].${m.name}'` : `'${name}[' .. e .. ']'`;
      const rule = `R[${++k}]`;
      loop.push(...ruleCode(m.rule, 0, false, { src, dst, rule, refusal: `argv_element(${rule}, ${label})` }));
    });
    if (group) loop.push('items[e] = row');
    body.push('local items = {}', 'for e = 1, count do', ...loop.map((l) => `  ${l}`), 'end', `args.${name} = items`);
    r.tail.forEach((t, j) => {
      const src = `args[o + ${j + 1}]`;
      const dst = `args.${t.name}`;
      if (!t.rule) body.push(`${dst} = ${src}`);
      else body.push(...ruleCode(t.rule, 0, t.position > minimum, { src, dst, rule: `R[${++k}]` }));
    });
  }
  if (body.length === 0) return [];
  return [`  ${fn.name} = function(args, R)`, ...body.map((l) => `    ${l}`), '  end,'];
}

/**
 * KEY.<context>_<key>(tag, …): every key pattern of spec/keys.yaml as a builder over its
 * placeholders in pattern order (the hash tag, the context's params, the key's own; global
 * keys have no tag). Lua code builds keys and channel names only with these.
 */
export function keyBuilders(spec: Spec): string[] {
  const lines = ['-- generated from spec/keys.yaml: a builder per key pattern, KEY.<context>_<key>(tag, <placeholders in order>)', 'local KEY = {'];
  for (const context of spec.keys.contexts) {
    for (const key of context.keys) {
      const params: string[] = [];
      const parts: string[] = [];
      let last = 0;
      for (const match of key.pattern.matchAll(/\{([a-z_]+)\}/g)) {
        if (match.index! > last) parts.push(luaString(key.pattern.slice(last, match.index)));
        const name = match[1]!;
        if (!params.includes(name)) params.push(name);
        parts.push(name);
        last = match.index! + match[0].length;
      }
      if (last < key.pattern.length) parts.push(luaString(key.pattern.slice(last)));
      lines.push(`  ${context.name}_${key.name} = function(${params.join(', ')}) return ${parts.join(' .. ')} end,`);
    }
  }
  lines.push('}');
  return lines;
}

const LUA_TYPE: Record<string, string | undefined> = { string: 'string', number: 'number', boolean: 'boolean', object: 'table', array: 'table', any: undefined };
const A_TYPE: Record<string, string> = { string: 'a string', number: 'a number', boolean: 'a boolean', object: 'an object', array: 'an array', any: 'any value' };

/**
 * SHAPES.<name>: each JSON shape of spec/shapes.yaml for check_shape (helpers.lua): its
 * members as { name, Lua type, 'a <type>' }, with the nested shape or the array's element
 * type, and the value type of a map. Nested shapes are written before the shapes using them.
 */
export function luaShapes(spec: Spec): string[] {
  const lines = ['-- generated from spec/shapes.yaml: the shape of every JSON argument, checked by check_argv', 'local SHAPES = {}'];
  const done = new Set<string>();
  const write = (shape: ShapeSpec) => {
    if (done.has(shape.name)) return;
    done.add(shape.name);
    for (const m of shape.fields) if (m.shape) write(spec.shapes.find((s) => s.name === m.shape)!);
    const members = shape.fields.map((m) => {
      const parts = [luaString(m.name), LUA_TYPE[m.type] ? luaString(LUA_TYPE[m.type]!) : 'false', luaString(A_TYPE[m.type]!)];
      if (m.shape) parts.push(`shape = SHAPES.${m.shape}`);
      if (m.type === 'array' && m.of && LUA_TYPE[m.of]) parts.push(`of = ${luaString(LUA_TYPE[m.of]!)}`, `of_text = ${luaString(`an array of ${m.of}s`)}`);
      return `{ ${parts.join(', ')} }`;
    });
    const values = shape.values && LUA_TYPE[shape.values] ? `, values = ${luaString(LUA_TYPE[shape.values]!)}, values_text = ${luaString(A_TYPE[shape.values]!)}` : '';
    lines.push(`SHAPES.${shape.name} = { fields = { ${members.join(', ')} }${values} }`);
  };
  for (const shape of spec.shapes) write(shape);
  return lines;
}

/** Lua source lines for the generated facts (FUNCTION_ARGV and KEY_CHECKS). */
export function emitLuaFacts(spec: Spec): string[] {
  const functions = spec.modules.flatMap((m) => m.functions).sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const fn of functions) {
    const unlisted = fn.writesOnError.filter((code) => !fn.errors.includes(code));
    if (unlisted.length > 0) throw new Error(`${fn.file}:${fn.line}: ${fn.name}: writes_on_error names ${unlisted.join(', ')}, not in its errors list`);
  }
  const lines = [
    '-- generated from spec/keys.yaml: the value a placeholder takes when the stored record has none',
    `local DEFAULTS = {${Object.entries(spec.keys.defaults).map(([k, v]) => ` ${k} = ${luaString(v)}`).join(',')} }`,
    ...keyBuilders(spec),
    ...luaShapes(spec),
    '-- generated from spec/enums.yaml: every named enum, its values in order and each value a key set to true',
    'local ENUMS = {',
    ...spec.enums.map((e) => `  ${e.name} = { ${e.values.map(luaString).join(', ')}, ${e.values.map((v) => `[${luaString(v)}] = true`).join(', ')} },`),
    '}',
    '-- generated from spec/: the fewest ARGV every function accepts (argv_min, else its fixed slots)',
    'local FUNCTION_ARGV = {',
    ...[...argvMinimums(spec)].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, n]) => `  ${name} = ${n},`),
    '}',
    '-- generated from spec/keys.yaml: per function, the first KEYS slot (name, index, expected key) that is',
    '-- not the key its context c names; slots whose context values are absent, and partition',
    '-- indexes named by the hash tag alone, are not checked',
    'local KEY_CHECKS = {',
  ];
  for (const fn of functions) {
    const body = checker(spec, fn, requiredKeys(fn));
    if (body.length === 0) continue;
    lines.push(`  ${fn.name} = function(keys, c)`, ...body, '  end,');
  }
  lines.push('}');
  lines.push(
    '-- generated from spec/: per function, the rule of every ARGV slot the spec constrains (the fixed',
    '-- slots; after a list or group: its count, its members, the slots after it)',
    '-- (kind int | number | count | json | enum | nonempty; empty: the empty string is accepted;',
    '-- def: what an empty or missing value becomes), for the refusal texts (argv_refusal)',
    'local ARGV_RULES = {',
  );
  const plans = new Map(functions.map((fn) => [fn.name, argvPlan(fn, spec.enums)] as const));
  for (const fn of functions) {
    const rules = planRules(plans.get(fn.name)!);
    if (rules.length === 0) continue;
    lines.push(`  ${fn.name} = {`, ...rules.map((r) => `    ${r.table},`), '  },');
  }
  lines.push('}');
  lines.push(
    '-- generated from ARGV_RULES: per function, the straight-line check the guard runs before the',
    '-- body (R = the function\'s ARGV_RULES): refuses, or converts args in place',
    '-- (the helpers it calls are defined in lua/helpers.lua, after this generated part)',
    'local parse_int, parse_number, count_text, argv_refusal, json_arg',
    '-- numeric ARGV texts already parsed (text → number), kept by parse_int and parse_number',
    'local ARGV_INTS, ARGV_NUMBERS = {}, {}',
    '-- a list element\'s rule under the element\'s own name (`usage[2].delta`), built only to refuse it',
    'local function argv_element(rule, name) return setmetatable({ name = name }, { __index = rule }) end',
    'local ARGV_CHECKS = {',
  );
  for (const fn of functions) lines.push(...argvChecker(fn, plans.get(fn.name)!));
  lines.push('}');
  return lines;
}
