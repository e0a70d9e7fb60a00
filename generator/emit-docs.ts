// Emits the Markdown reference: one page per spec module (every function with its doc,
// arguments, KEYS, ARGV, replies, errors and deviations) and an index page.
import { callerFields, findKey } from './check.js';
import type { FieldSpec, FunctionSpec, KeyRef, ModuleSpec, ReplyFieldSpec, Spec } from './model.js';
import { camel, typeBase, wrapperName } from './names.js';

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n+/g, ' ').trim();

function fieldType(field: FieldSpec | ReplyFieldSpec): string {
  if (field.type === 'enum') return (field.values ?? []).map((v) => `\`${v}\``).join(' \\| ');
  if (field.type === 'list') return `list of ${field.of}`;
  if (field.type === 'group') return `group of (${(field.fields ?? []).map((f) => `${f.name}: ${f.type}`).join(', ')})`;
  return field.type;
}

function argumentRow(field: FieldSpec): string {
  const required = field.optional || field.default !== undefined || field.defaultFrom ? 'no' : 'yes';
  const extra = [
    field.default !== undefined ? `default \`${JSON.stringify(field.default)}\`` : '',
    field.defaultFrom ? (field.defaultFrom.fn === 'now' ? 'default: the client clock (ms)' : `default ${field.defaultFrom.fn}(${camel(field.defaultFrom.arg ?? '')})`) : '',
    field.min !== undefined ? `min ${field.min}` : '',
    field.max !== undefined ? `max ${field.max}` : '',
  ].filter(Boolean);
  const doc = [field.doc ?? '', extra.join(', ')].filter(Boolean).join(' — ');
  return `| \`${camel(field.name)}\` | ${fieldType(field)} | ${required} | ${cell(doc)} |`;
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

function argvRow(field: FieldSpec, position: number): string {
  let encoding: string = field.type;
  if (field.type === 'constant') encoding = `constant \`"${field.value}"\``;
  else if (field.from) encoding = `value of \`${camel(field.from)}\``;
  else if (field.nowPlus) encoding = `client now + \`${camel(field.nowPlus)}\` (ms)`;
  else if (field.type === 'flag') encoding = '`"1"` / `""`';
  else if (field.type === 'json') encoding = 'JSON text';
  else if (field.type === 'capabilities') encoding = 'sorted comma-separated list';
  else if (field.type === 'list' || field.type === 'group') {
    encoding = `${field.count === 'none' ? '' : 'count, then '}${fieldType(field)}${field.layout === 'rows' ? ' (row by row)' : field.type === 'group' ? ' (column by column)' : ''}`;
  }
  if (field.optional && !field.from) encoding += ', `""` when absent';
  if (field.when) encoding += `, \`""\` unless \`${camel(field.when)}\` is given`;
  const slot = field.type === 'list' || field.type === 'group' ? `${position}…` : String(position);
  return `| ${slot} | \`${field.name}\` | ${encoding} |`;
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
    const fields = variant.fields.map((f) => `\`${camel(f.name)}\`: ${fieldType(f)}${f.optional ? ' (optional)' : ''}`).join(', ');
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
  const fields = callerFields(fn);
  if (fields.length > 0) {
    lines.push(`**Arguments** (\`${typeBase(fn.name)}Args\`)`, '', '| name | type | required | notes |', '| --- | --- | --- | --- |', ...fields.map(argumentRow), '');
  }
  if (fn.keys.length > 0) {
    lines.push(`**KEYS** (${fixedKeys.length}${fn.keys.length > fixedKeys.length ? ' + N' : ''})`, '', '| # | name | pattern | type |', '| --- | --- | --- | --- |');
    fn.keys.forEach((ref, i) => lines.push(keyRow(spec, ref, ref.each ? `${i + 1}…` : String(i + 1))));
    lines.push('');
  }
  if (fn.argv.length > 0) {
    lines.push(`**ARGV** (${fn.argv.length})`, '', '| # | name | encoding |', '| --- | --- | --- |', ...fn.argv.map((a, i) => argvRow(a, i + 1)), '');
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
