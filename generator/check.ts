// Cross-file checks that a schema cannot express: references resolve, names are unique,
// every function's KEYS stay on one partition family (one cluster slot), replies are
// unambiguous and every error code is in the catalogue.
import type { SourceFile, SpecProblem } from './diagnostics.js';
import { findKey, type FieldSpec, type FunctionSpec, type KeyRef, type ReplyField, type Spec } from './model.js';

const INTEGER_TYPES = new Set(['integer', 'timestampMs', 'durationMs', 'attemptIndex', 'epoch']);
const TAG_ARG_TYPES: Record<string, string[]> = {
  execution: ['executionId'],
  flow: ['flowId'],
  budget: ['budgetId'],
  quota: ['quotaPolicyId'],
  partition: ['integer'],
};

export function crossCheck(spec: Spec, sources: Map<string, SourceFile>): SpecProblem[] {
  const problems: SpecProblem[] = [];
  const seen = new Map<string, string>();
  const codes = new Set(spec.errors.map((e) => e.code));

  for (const module of spec.modules) {
    const source = sources.get(module.file)!;
    if (`${module.name}.yaml` !== module.file) {
      problems.push(source.problem(['module'], `module name '${module.name}' must match its file name '${module.file}'`));
    }
    for (const fn of module.functions) {
      const at = (path: (string | number)[], message: string, onKey = false) =>
        problems.push(source.problem(['functions', fn.name, ...path], `${fn.name}: ${message}`, onKey));
      const other = seen.get(fn.name);
      if (other) at([], `duplicate function name (also declared in ${other})`, true);
      seen.set(fn.name, module.file);
      checkFunction(spec, fn, codes, at);
    }
  }
  return problems;
}

type Report = (path: (string | number)[], message: string, onKey?: boolean) => void;

function checkFunction(spec: Spec, fn: FunctionSpec, codes: Set<string>, at: Report): void {
  const args = new Map<string, FieldSpec>();
  const slotNames = new Set<string>();
  fn.params.forEach((param, i) => {
    if (args.has(param.name)) at(['params', i, 'name'], `duplicate argument name '${param.name}'`);
    args.set(param.name, param);
    checkField(param, ['params', i], at);
  });
  fn.argv.forEach((slot, i) => {
    if (slotNames.has(slot.name)) at(['argv', i, 'name'], `duplicate ARGV name '${slot.name}'`);
    slotNames.add(slot.name);
    checkField(slot, ['argv', i], at);
    if (slot.from !== undefined) {
      if (!args.has(slot.from)) at(['argv', i, 'from'], `'from' names unknown argument '${slot.from}' (declare it in params or an earlier ARGV slot)`);
      return;
    }
    // The guard counts the places of the slots after a list from its length: one list or group per
    // function, an uncounted one (the rest of ARGV) last, a count name only where a count is sent.
    if (slot.type === 'list' || slot.type === 'group') {
      if (fn.argv.findIndex((a) => a.type === 'list' || a.type === 'group') !== i) at(['argv', i], `'${slot.name}': one list or group per function (the places after it are counted from its length)`);
      if (slot.count === 'none' && i !== fn.argv.length - 1) at(['argv', i, 'count'], `'${slot.name}': an uncounted list takes the rest of ARGV and must be last (or send its count: count: prefix)`);
    }
    if (slot.countName !== undefined && (!['list', 'group'].includes(slot.type) || slot.count === 'none')) at(['argv', i, 'countName'], `'${slot.name}': countName names the count of a counted list or group`);
    if (slot.type === 'constant' || slot.nowPlus !== undefined) return;
    if (args.has(slot.name)) at(['argv', i, 'name'], `duplicate argument name '${slot.name}' (use 'from' to send an argument twice)`);
    args.set(slot.name, slot);
  });
  const known = (name: string) => args.has(name);
  [...fn.params, ...fn.argv].forEach((field, i) => {
    const path = i < fn.params.length ? ['params', i] : ['argv', i - fn.params.length];
    for (const ref of ['when', 'nowPlus'] as const) {
      const target = field[ref];
      if (target !== undefined && !known(target)) at([...path, ref], `'${ref}' names unknown argument '${target}'`);
    }
    if (field.when !== undefined && known(field.when) && !isOptionalScalar(args.get(field.when)!)) {
      at([...path, 'when'], `'when' needs an optional single-value argument, got '${field.when}'`);
    }
    const from = field.defaultFrom;
    if (from && from.fn !== 'now' && (from.arg === undefined || !known(from.arg))) at([...path, 'defaultFrom'], `'defaultFrom' needs a known argument, got '${from.arg ?? ''}'`);
  });

  // The tag decides the slot; it must come from an argument of the right type.
  let family: string | undefined;
  if (fn.tag.from !== 'none') {
    const tagArg = args.get(fn.tag.arg);
    const kind = fn.tag.from === 'partition' ? 'partition' : fn.tag.from;
    if (!tagArg) at(['tag'], `tag argument '${fn.tag.arg}' is not an argument of the function`);
    else if (!TAG_ARG_TYPES[kind]!.includes(tagArg.type)) at(['tag'], `tag argument '${fn.tag.arg}' must be of type ${TAG_ARG_TYPES[kind]!.join(' or ')}`);
    family = fn.tag.from === 'partition' ? fn.tag.family : fn.tag.from === 'budget' ? 'b' : fn.tag.from === 'quota' ? 'q' : 'fp';
  } else if (fn.keys.length > 0) {
    at(['tag'], "a function with KEYS needs a tag source (e.g. 'tag: { execution: execution_id }')");
  }

  const keyNames = new Set<string>();
  fn.keys.forEach((ref, i) => {
    if (keyNames.has(ref.name)) at(['keys', i], `duplicate KEYS name '${ref.name}' (give one an explicit 'name')`);
    keyNames.add(ref.name);
    checkKeyRef(spec, ref, args, family, ['keys', i], at);
    if (ref.otherwise) checkKeyRef(spec, ref.otherwise, args, family, ['keys', i, 'otherwise'], at);
    if (ref.when !== undefined && !args.has(ref.when)) at(['keys', i, 'when'], `'when' names unknown argument '${ref.when}'`);
    else if (ref.when !== undefined && !isOptionalScalar(args.get(ref.when)!)) {
      at(['keys', i, 'when'], `'when' needs an optional single-value argument, got '${ref.when}'`);
    }
  });

  // Replies: one variant per status, or sub-status variants only.
  const plain = new Set<string>();
  const withSub = new Set<string>();
  fn.replies.forEach((variant) => {
    const path = ['replies', variant.subStatus ? `${variant.status}:${variant.subStatus}` : variant.status];
    if (variant.subStatus) withSub.add(variant.status);
    else plain.add(variant.status);
    if (variant.subStatus && plain.has(variant.status)) at(path, `two variants on status ${variant.status}: a plain one and one with sub-status '${variant.subStatus}'`, true);
    if (!variant.subStatus && withSub.has(variant.status)) at(path, `two variants on status ${variant.status}: a plain one and sub-status ones`, true);
    if (variant.subStatus === '*') {
      if (!variant.as) at(path, `the catch-all ${variant.status}:* needs 'as', the status its typed result carries`, true);
      else if (fn.replies.some((v) => v.status === variant.status && v.subStatus === variant.as)) {
        at(path, `the catch-all's 'as: ${variant.as}' is also a sub-status of ${variant.status}`, true);
      }
    } else if (variant.as) at(path, `'as' belongs to a catch-all variant (${variant.status}:*) only`, true);
    checkReplyFields(variant.fields, path, at);
  });
  if (fn.envelope === 'bare' && (fn.replies.length !== 1 || fn.replies[0]!.fields.length !== 1)) {
    at(['replies'], 'a bare reply has exactly one variant with one field');
  }
  fn.errors.forEach((code, i) => {
    if (!codes.has(code)) at(['errors', i], `unknown error code '${code}' (add it to spec/errors.yaml)`);
  });
}

/** What a `when` condition can test: an argument the caller may leave out, of one value. */
function isOptionalScalar(field: FieldSpec): boolean {
  return field.optional === true && field.default === undefined && field.defaultFrom === undefined && field.type !== 'list' && field.type !== 'group';
}

function checkField(field: FieldSpec, path: (string | number)[], at: Report): void {
  if (field.type === 'enum' && !field.values) at(path, `'${field.name}': an enum needs 'values'`);
  if (field.type === 'constant' && field.value === undefined) at(path, `'${field.name}': a constant needs 'value'`);
  if (field.type === 'list' && !field.of) at(path, `'${field.name}': a list needs 'of'`);
  if (field.type === 'group' && !field.fields) at(path, `'${field.name}': a group needs 'fields'`);
  if ((field.min !== undefined || field.max !== undefined) && !INTEGER_TYPES.has(field.type)) {
    at(path, `'${field.name}': min/max apply to integer types only`);
  }
  field.fields?.forEach((member, i) => checkField(member, [...path, 'fields', i], at));
}

function checkKeyRef(spec: Spec, ref: KeyRef, args: Map<string, FieldSpec>, family: string | undefined, path: (string | number)[], at: Report): void {
  const found = findKey(spec, ref.context, ref.key);
  if (!found) {
    at(path, `unknown key reference '${ref.context}.${ref.key}' (not in spec/keys.yaml)`);
    return;
  }
  const { context, key } = found;
  if (context.family === 'none') at(path, `'${ref.context}.${ref.key}' has no hash tag: a global key in KEYS would CROSSSLOT on a cluster`);
  else if (family !== undefined && context.family !== family) {
    at(path, `'${ref.context}.${ref.key}' is on partition family '${context.family}' but the function's tag is on '${family}': KEYS spanning two families would CROSSSLOT on a cluster`);
  }
  const bound = ref.args ?? key.params;
  if (bound.length !== key.params.length) {
    at(path, `'${ref.context}.${ref.key}' takes ${key.params.length} argument(s) (${key.params.join(', ')}), got ${bound.length}`);
  }
  const elementName = ref.each !== undefined ? ref.eachAs || key.params[0] : undefined;
  for (const name of bound) {
    if (name === elementName) continue;
    if (!args.has(name)) at(path, `key argument '${name}' of '${ref.context}.${ref.key}' is not an argument of the function`);
  }
  for (const param of context.params) {
    const source = ref.contextBind[param] ?? param;
    if (!args.has(source)) at(path, `context parameter '${param}' of '${ref.context}' needs argument '${source}'`);
  }
  if (ref.each !== undefined) {
    const list = args.get(ref.each);
    if (!list || list.type !== 'list') at(path, `'each' must name a list argument, got '${ref.each}'`);
  }
}

function checkReplyFields(fields: readonly ReplyField[], path: (string | number)[], at: Report): void {
  const names = new Set<string>();
  fields.forEach((field, i) => {
    if (names.has(field.name)) at([...path, i], `duplicate reply field '${field.name}'`);
    names.add(field.name);
    if (field.kind === 'group' && field.countField !== undefined) {
      const counter = fields.slice(0, i).find((f) => f.name === field.countField);
      if (!counter || counter.kind !== 'scalar' || !INTEGER_TYPES.has(counter.type)) at([...path, i], `'${field.name}': count must name an earlier integer field or 'rest'`);
    }
    const repeated = field.kind === 'list' || (field.kind === 'group' && field.countField === undefined);
    if (repeated && i !== fields.length - 1) at([...path, i], `'${field.name}': a field that takes the rest of the reply must be last`);
  });
}
