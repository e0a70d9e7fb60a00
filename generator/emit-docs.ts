// Emits the Markdown reference: one page per spec module (every function with its doc,
// arguments, KEYS, ARGV, replies, errors and deviations) and an index page.
import { findKey, type Arg, type FunctionSpec, type KeyRef, type ModuleSpec, type ReplyField, type Slot, type Spec } from './model.js';
import { camel, typeBase, wrapperName } from './names.js';
import { presenceNote } from './normalise.js';

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n+/g, ' ').trim();

/** A reply field's kind as spec/ names it. */
const replyKind = (field: ReplyField) => (field.kind === 'scalar' ? field.type : field.kind);

function replyFieldType(field: ReplyField): string {
  switch (field.kind) {
    case 'scalar':
      return field.type === 'enum' ? enumValues(field.values) : field.type;
    case 'list':
      return `list of ${field.of}`;
    case 'group':
      return `group of (${field.members.map((m) => `${m.name}: ${replyKind(m)}`).join(', ')})`;
    case 'streamEntries':
      return 'streamEntries';
  }
}

const enumValues = (values: readonly string[] | undefined) => (values ?? []).map((v) => `\`${v}\``).join(' \\| ');

function argType(arg: Arg): string {
  switch (arg.kind) {
    case 'scalar':
      return arg.type === 'enum' ? enumValues(arg.rules.values) : arg.type;
    case 'list':
      return `list of ${arg.of}`;
    case 'group':
      return `group of (${arg.members.map((m) => `${m.name}: ${m.type}`).join(', ')})`;
  }
}

function argumentRow(arg: Arg): string {
  const required = arg.presence.kind === 'required' ? 'yes' : 'no';
  const { min, max } = arg.kind === 'scalar' || arg.kind === 'list' ? arg.rules : {};
  const limits = min !== undefined && max !== undefined ? `From ${min} to ${max}.` : min !== undefined ? `At least ${min}.` : max !== undefined ? `At most ${max}.` : '';
  const doc = [arg.doc ?? '', presenceNote(arg) ?? '', limits].filter(Boolean).join(' ');
  return `| \`${arg.property}\` | ${argType(arg)} | ${required} | ${cell(doc)} |`;
}

function keyRow(spec: Spec, ref: KeyRef, position: string): string {
  const found = findKey(spec, ref.context, ref.key);
  let pattern = found ? `\`${found.key.pattern}\`` : '?';
  if (ref.when && ref.otherwise) {
    const other = findKey(spec, ref.otherwise.context, ref.otherwise.key);
    pattern += ` if \`${camel(ref.when)}\` is given, else \`${other?.key.pattern ?? '?'}\``;
  }
  if (ref.each) pattern += `, one per element of \`${camel(ref.each)}\``;
  if (ref.optional) pattern += ' (the engine accepts a call without it)';
  return `| ${position} | \`${ref.name}\` | ${pattern} | ${found?.key.type ?? ''} |`;
}

function argvRow(fn: FunctionSpec, slot: Slot, position: number): string {
  const arg = 'arg' in slot ? fn.args.find((a) => a.name === slot.arg) : undefined;
  let encoding: string;
  switch (slot.kind) {
    case 'constant':
      encoding = `constant \`"${slot.value}"\``;
      break;
    case 'clockPlus':
      encoding = `client now + \`${camel(slot.duration)}\` (ms)`;
      break;
    case 'value':
      if (slot.arg !== slot.name) encoding = `value of \`${camel(slot.arg)}\``;
      else {
        const type = arg?.kind === 'scalar' ? arg.type : 'string';
        encoding = type === 'flag' ? '`"1"` / `""`' : type === 'json' ? 'JSON text' : type === 'capabilities' ? 'sorted comma-separated list' : type;
        if (arg?.presence.kind === 'optional') encoding += ', `""` when absent';
      }
      break;
    case 'list':
    case 'group':
      encoding = `${slot.countFirst ? 'count, then ' : ''}${arg ? argType(arg) : ''}${slot.kind === 'group' ? (slot.layout === 'rows' ? ' (row by row)' : ' (column by column)') : ''}`;
      if (arg?.presence.kind === 'optional') encoding += ', `""` when absent';
      break;
  }
  if (slot.when) encoding += `, \`""\` unless \`${camel(slot.when)}\` is given`;
  const at = slot.kind === 'list' || slot.kind === 'group' ? `${position}…` : String(position);
  return `| ${at} | \`${slot.name}\` | ${encoding} |`;
}

function replySection(fn: FunctionSpec): string[] {
  const lines = ['**Replies**', ''];
  if (fn.envelope === 'bare') {
    lines.push(`A bare string: \`${fn.replies[0]!.fields[0]!.name}\`.`, '');
    return lines;
  }
  lines.push('| status | fields |', '| --- | --- |');
  for (const variant of fn.replies) {
    const wire =
      variant.subStatus === '*'
        ? `${variant.status} + any other sub-status (\`${variant.as}\`, with \`subStatus\`)`
        : variant.subStatus
          ? `${variant.status} + \`${variant.subStatus}\``
          : variant.status;
    const fields = variant.fields.map((f) => `\`${camel(f.name)}\`: ${replyFieldType(f)}${f.optional ? ' (optional)' : ''}`).join(', ');
    lines.push(`| ${wire} | ${fields || '—'} |`);
  }
  if (fn.envelope === 'untagged') lines.push('', 'The reply has no leading status integer: `[status, field…]`.');
  lines.push('');
  return lines;
}

function functionSection(spec: Spec, fn: FunctionSpec): string[] {
  const fixedKeys = fn.keys.filter((k) => !k.each);
  const lines = [
    `## \`${fn.name}\` → \`${wrapperName(fn.name)}()\``,
    '',
    fn.doc,
    '',
    [fn.readonly ? 'Read-only (`FCALL_RO`).' : '', fn.extension ? 'Extension beyond the FlowFabric v0.2.0 contract.' : ''].filter(Boolean).join(' '),
    '',
  ];
  if (fn.args.length > 0) {
    lines.push(`**Arguments** (\`${typeBase(fn.name)}Args\`)`, '', '| name | type | required | notes |', '| --- | --- | --- | --- |', ...fn.args.map(argumentRow), '');
  }
  if (fn.keys.length > 0) {
    lines.push(`**KEYS** (${fixedKeys.length}${fn.keys.length > fixedKeys.length ? ' + N' : ''})`, '', '| # | name | pattern | type |', '| --- | --- | --- | --- |');
    fn.keys.forEach((ref, i) => lines.push(keyRow(spec, ref, ref.each ? `${i + 1}…` : String(i + 1))));
    lines.push('');
  }
  if (fn.slots.length > 0) {
    lines.push(`**ARGV** (${fn.slots.length})`, '', '| # | name | encoding |', '| --- | --- | --- |', ...fn.slots.map((slot, i) => argvRow(fn, slot, i + 1)), '');
  }
  lines.push(...replySection(fn));
  if (fn.errors.length > 0) {
    lines.push('**Errors**', '', '| code | class | meaning |', '| --- | --- | --- |');
    for (const code of fn.errors) {
      const info = spec.errors.find((e) => e.code === code)!;
      lines.push(`| \`${code}\` | ${info.class} | ${cell(info.doc)} |`);
    }
    lines.push('');
  }
  if (fn.deviations.length > 0) lines.push('**Deviations from the reference**', '', ...fn.deviations.map((d) => `- ${d}`), '');
  return lines;
}

export function moduleDoc(spec: Spec, module: ModuleSpec): string {
  const lines = [
    `<!-- Generated by \`npm run codegen\` from spec/${module.file}. Do not edit by hand. -->`,
    `# ${module.name}`,
    '',
    module.doc,
    '',
    ...module.functions.map((f) => `- [\`${f.name}\`](#${f.name})`),
    '',
    ...module.functions.flatMap((f) => functionSection(spec, f)),
  ];
  return `${lines.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd()}\n`;
}

export function indexDoc(spec: Spec): string {
  const lines = [
    '<!-- Generated by `npm run codegen` from spec/. Do not edit by hand. -->',
    '# Function reference',
    '',
    'Every function of the library, by module. Each page lists a function\'s arguments, KEYS,',
    'ARGV, replies, error codes and deliberate deviations from the FlowFabric v0.2.0 reference.',
    '',
    '| module | functions |',
    '| --- | --- |',
    ...spec.modules.map((m) => `| [${m.name}](${m.name}.md) | ${m.functions.map((f) => `\`${f.name}\``).join(', ')} |`),
    '',
    '## Error codes',
    '',
    '| code | class | meaning |',
    '| --- | --- | --- |',
    ...spec.errors.map((e) => `| \`${e.code}\` | ${e.class} | ${cell(e.doc)} |`),
  ];
  return `${lines.join('\n')}\n`;
}
