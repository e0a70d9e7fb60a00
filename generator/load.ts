// Loads spec/*.yaml: parses with source positions, validates each file against its JSON
// Schema, converts to the model, then cross-checks across files. Every problem is reported
// with file, line and column; nothing is generated while any remains.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { crossCheck } from './check.js';
import { SourceFile, SpecError, type SpecProblem } from './diagnostics.js';
import { normaliseArgs, normaliseReplyField, normaliseSlots } from './normalise.js';
import type { ContextSpec, EnumSpec, ErrorSpec, ShapeMember, ShapeSpec, FieldSpec, FunctionSpec, KeyLayout, KeyRef, ModuleSpec, ReplyFieldSpec, ReplyVariant, ScalarType, Spec, TagSource } from './model.js';
import { enumsSchema, errorsSchema, keysSchema, moduleSchema, shapesSchema } from './schema.js';

const ajv = new Ajv({ allErrors: true, strict: false });
const validateModule = ajv.compile(moduleSchema);
const validateKeys = ajv.compile(keysSchema);
const validateErrors = ajv.compile(errorsSchema);
const validateEnums = ajv.compile(enumsSchema);
const validateShapes = ajv.compile(shapesSchema);

function schemaProblems(source: SourceFile, errors: readonly ErrorObject[] | null | undefined): SpecProblem[] {
  if (!errors) return [];
  // oneOf produces one error per branch; report the most specific (deepest) ones only.
  const deepest = Math.max(...errors.map((e) => e.instancePath.split('/').length));
  const seen = new Set<string>();
  const problems: SpecProblem[] = [];
  for (const error of errors) {
    if (error.keyword === 'oneOf' && errors.length > 1) continue;
    if (error.instancePath.split('/').length < deepest - 1 && errors.length > 1) continue;
    const path = error.instancePath.split('/').slice(1).map(unescapePointer);
    const extra =
      error.keyword === 'additionalProperties'
        ? ` '${String((error.params as { additionalProperty: string }).additionalProperty)}'`
        : error.keyword === 'enum'
          ? ` (${((error.params as { allowedValues: unknown[] }).allowedValues ?? []).join(', ')})`
          : '';
    const message = `${error.instancePath || '/'} ${error.message ?? 'is invalid'}${extra}`;
    if (seen.has(message)) continue;
    seen.add(message);
    const target = error.keyword === 'additionalProperties' ? [...path, (error.params as { additionalProperty: string }).additionalProperty] : path;
    problems.push(source.problem(target, message, error.keyword === 'additionalProperties'));
  }
  return problems;
}

function unescapePointer(segment: string): string | number {
  const text = segment.replace(/~1/g, '/').replace(/~0/g, '~');
  return /^\d+$/.test(text) ? Number(text) : text;
}

function readSource(file: string, displayRoot: string): SourceFile {
  return new SourceFile(relative(displayRoot, file) || basename(file), readFileSync(file, 'utf8'));
}

function yamlProblems(source: SourceFile): SpecProblem[] {
  return source.doc.errors.map((error) => ({
    file: source.file,
    line: error.linePos?.[0]?.line ?? 1,
    column: error.linePos?.[0]?.col ?? 1,
    message: error.message.split('\n')[0] ?? error.message,
  }));
}

/** Loads and checks a whole spec directory. Throws SpecError listing every problem. */
export function loadSpec(specDir: string, displayRoot = join(specDir, '..')): { spec: Spec; sources: Map<string, SourceFile> } {
  const problems: SpecProblem[] = [];
  const sources = new Map<string, SourceFile>();
  const load = (fileName: string): SourceFile => {
    const source = readSource(join(specDir, fileName), displayRoot);
    sources.set(fileName, source);
    problems.push(...yamlProblems(source));
    return source;
  };

  const keysSource = load('keys.yaml');
  const errorsSource = load('errors.yaml');
  // Optional: a spec without named enums has no enums.yaml.
  const enumsSource = existsSync(join(specDir, 'enums.yaml')) ? load('enums.yaml') : undefined;
  const shapesSource = existsSync(join(specDir, 'shapes.yaml')) ? load('shapes.yaml') : undefined;
  const moduleFiles = readdirSync(specDir)
    .filter((f) => f.endsWith('.yaml') && !SHARED_FILES.has(f))
    .sort();
  const moduleSources = moduleFiles.map(load);
  if (problems.length > 0) throw new SpecError(problems);

  const keysData = keysSource.doc.toJS() as unknown;
  if (!validateKeys(keysData)) problems.push(...schemaProblems(keysSource, validateKeys.errors));
  const errorsData = errorsSource.doc.toJS() as unknown;
  if (!validateErrors(errorsData)) problems.push(...schemaProblems(errorsSource, validateErrors.errors));
  const enumsData = enumsSource ? (enumsSource.doc.toJS() as unknown) : { enums: {} };
  if (enumsSource && !validateEnums(enumsData)) problems.push(...schemaProblems(enumsSource, validateEnums.errors));
  const shapesData = shapesSource ? (shapesSource.doc.toJS() as unknown) : { shapes: {} };
  if (shapesSource && !validateShapes(shapesData)) problems.push(...schemaProblems(shapesSource, validateShapes.errors));
  const moduleData = moduleSources.map((source) => {
    const data = source.doc.toJS() as unknown;
    if (!validateModule(data)) problems.push(...schemaProblems(source, validateModule.errors));
    return data;
  });
  if (problems.length > 0) throw new SpecError(problems);

  const keys = toKeyLayout(keysData as RawKeys);
  const errors = toErrors(errorsData as RawErrors);
  const enums = Object.entries((enumsData as RawEnums).enums).map(([name, e]): EnumSpec => ({ name, doc: e.doc, values: e.values }));
  moduleData.forEach((data, i) => resolveEnums(data as RawModule, enums, moduleSources[i]!, problems));
  if (problems.length > 0) throw new SpecError(problems);
  const modules = moduleData.map((data, i) => toModule(data as RawModule, moduleSources[i]!, moduleFiles[i]!, problems, enums));
  const shapes = toShapes(shapesData as RawShapes);
  const spec: Spec = { keys, enums, shapes, errors, modules };
  problems.push(...crossCheck(spec, sources));
  if (problems.length > 0) throw new SpecError(problems);
  return { spec, sources };
}

/** The spec files that are not modules. */
const SHARED_FILES = new Set(['keys.yaml', 'errors.yaml', 'enums.yaml', 'shapes.yaml']);

interface RawShapes {
  shapes: Record<string, { doc: string; closed?: boolean; values?: ShapeSpec['values']; fields?: Record<string, Omit<ShapeMember, 'name'>> }>;
}

function toShapes(raw: RawShapes): ShapeSpec[] {
  return Object.entries(raw.shapes).map(([name, s]) => ({
    name,
    doc: s.doc,
    closed: s.closed ?? false,
    ...(s.values !== undefined ? { values: s.values } : {}),
    fields: Object.entries(s.fields ?? {}).map(([member, m]) => ({ name: member, ...m })),
  }));
}

/**
 * Fills in `values` of every field that names an enum (`enum: <name>`), in place, before the
 * model is built: a field's own `values` must be a subset of its enum's.
 */
function resolveEnums(raw: RawModule, enums: readonly EnumSpec[], source: SourceFile, problems: SpecProblem[]): void {
  const byName = new Map(enums.map((e) => [e.name, e]));
  const visit = (field: { enum?: string; values?: readonly string[]; fields?: readonly unknown[] }, path: (string | number)[]) => {
    for (const [i, member] of (field.fields ?? []).entries()) visit(member as typeof field, [...path, 'fields', i]);
    if (field.enum === undefined) return;
    const named = byName.get(field.enum);
    if (!named) {
      problems.push(source.problem([...path, 'enum'], `unknown enum '${field.enum}' (spec/enums.yaml)`));
      return;
    }
    const outside = (field.values ?? []).filter((v) => !named.values.includes(v));
    if (outside.length > 0) problems.push(source.problem([...path, 'values'], `${outside.join(', ')} not in enum ${named.name}`));
    if (field.values === undefined) (field as { values?: readonly string[] }).values = named.values;
  };
  for (const [name, fn] of Object.entries(raw.functions)) {
    const at = ['functions', name];
    (fn.params ?? []).forEach((f, i) => visit(f, [...at, 'params', i]));
    fn.argv.forEach((f, i) => visit(f, [...at, 'argv', i]));
    for (const [status, variant] of Object.entries(fn.replies)) {
      const fields = Array.isArray(variant) ? variant : variant.fields;
      fields.forEach((f, i) => visit(f, [...at, 'replies', status, ...(Array.isArray(variant) ? [] : ['fields']), i]));
    }
  }
}

// ---- raw shapes (as validated by the schemas) and their conversion to the model ----

interface RawEnums {
  enums: Record<string, { doc: string; values: string[] }>;
}

interface RawKeys {
  params: Record<string, ScalarType>;
  defaults?: Record<string, string>;
  contexts: Record<string, { doc: string; family: ContextSpec['family']; params: string[]; keys: Record<string, { pattern: string; type: string; doc: string }> }>;
}
interface RawErrors {
  codes: Record<string, { class: string; doc: string; detail?: boolean }>;
}
type RawKeyRef = string | { name?: string; key: string; context?: Record<string, string>; when?: string; otherwise?: string; each?: string; as?: string; optional?: boolean; doc?: string };
interface RawFunction {
  doc: string;
  tag: 'none' | Record<string, string>;
  params?: FieldSpec[];
  keys: RawKeyRef[];
  argv: FieldSpec[];
  envelope?: FunctionSpec['envelope'];
  replies: Record<string, ReplyFieldSpec[] | { doc?: string; as?: string; fields: ReplyFieldSpec[] }>;
  errors?: string[];
  deviations?: string[];
  readonly?: boolean;
  extension?: boolean;
  argv_min?: number;
  writes_on_error?: string[];
}
interface RawModule {
  module: string;
  doc: string;
  functions: Record<string, RawFunction>;
}

const PLACEHOLDER = /\{([a-z_]+)\}/g;

function toKeyLayout(raw: RawKeys): KeyLayout {
  const contexts: ContextSpec[] = Object.entries(raw.contexts).map(([name, ctx]) => ({
    name,
    doc: ctx.doc,
    family: ctx.family,
    params: ctx.params,
    keys: Object.entries(ctx.keys).map(([keyName, key]) => ({
      name: keyName,
      pattern: key.pattern,
      type: key.type,
      doc: key.doc,
      params: [...key.pattern.matchAll(PLACEHOLDER)]
        .map((m) => m[1]!)
        .filter((p) => p !== 'tag' && !ctx.params.includes(p)),
    })),
  }));
  return { params: raw.params, defaults: raw.defaults ?? {}, contexts };
}

function toErrors(raw: RawErrors): ErrorSpec[] {
  return Object.entries(raw.codes).map(([code, e]) => ({ code, class: e.class, doc: e.doc, detail: e.detail ?? false }));
}

/** Parses `context.key(a, b)` into its parts. */
export function parseKeyExpression(text: string): { context: string; key: string; args: string[] | undefined } {
  const match = /^([a-z_]+)\.([a-z_]+)(?:\(([a-z_, ]*)\))?$/.exec(text);
  if (!match) return { context: '', key: '', args: undefined };
  const args = match[3] === undefined ? undefined : match[3].split(',').map((s) => s.trim()).filter(Boolean);
  return { context: match[1]!, key: match[2]!, args };
}

function toKeyRef(raw: RawKeyRef): KeyRef {
  const object = typeof raw === 'string' ? { key: raw } : raw;
  const parsed = parseKeyExpression(object.key);
  const otherwise = object.otherwise === undefined ? undefined : toKeyRef(object.otherwise);
  return {
    name: object.name ?? parsed.key,
    context: parsed.context,
    key: parsed.key,
    ...(parsed.args !== undefined ? { args: parsed.args } : {}),
    contextBind: object.context ?? {},
    ...(object.when !== undefined ? { when: object.when } : {}),
    ...(otherwise !== undefined ? { otherwise } : {}),
    ...(object.each !== undefined ? { each: object.each, eachAs: object.as ?? '' } : {}),
    ...(object.optional ? { optional: true } : {}),
    ...(object.doc !== undefined ? { doc: object.doc } : {}),
  };
}

function toTag(raw: RawFunction['tag']): TagSource {
  if (raw === 'none') return { from: 'none' };
  const [kind, arg] = Object.entries(raw)[0]!;
  switch (kind) {
    case 'flow_partition':
      return { from: 'partition', family: 'fp', arg };
    case 'budget_partition':
      return { from: 'partition', family: 'b', arg };
    case 'quota_partition':
      return { from: 'partition', family: 'q', arg };
    default:
      return { from: kind as 'execution' | 'flow' | 'budget' | 'quota', arg };
  }
}

function toReplies(raw: RawFunction['replies'], problem: (path: (string | number)[], message: string) => void): ReplyVariant[] {
  return Object.entries(raw).map(([key, value]) => {
    const [status, subStatus] = key.split(':') as [string, string | undefined];
    const declared = Array.isArray(value) ? value : value.fields;
    const fields = declared.map((field, i) => normaliseReplyField(field, (message) => problem([key, i], message)));
    const doc = Array.isArray(value) ? undefined : value.doc;
    const as = Array.isArray(value) ? undefined : value.as;
    return { status, ...(subStatus ? { subStatus } : {}), ...(as ? { as } : {}), fields, ...(doc ? { doc } : {}) };
  });
}

function toModule(raw: RawModule, source: SourceFile, fileName: string, problems: SpecProblem[], enums: readonly EnumSpec[]): ModuleSpec {
  const functions = Object.entries(raw.functions).map(([name, fn]): FunctionSpec => ({
    name,
    doc: fn.doc.trim(),
    tag: toTag(fn.tag),
    params: fn.params ?? [],
    keys: fn.keys.map(toKeyRef),
    argv: fn.argv,
    args: normaliseArgs(fn.params ?? [], fn.argv, enums),
    slots: normaliseSlots(fn.argv),
    envelope: fn.envelope ?? 'standard',
    replies: toReplies(fn.replies, (path, message) => problems.push(source.problem(['functions', name, 'replies', ...path], `${name}: ${message}`))),
    errors: fn.errors ?? [],
    deviations: fn.deviations ?? [],
    readonly: fn.readonly ?? false,
    extension: fn.extension ?? false,
    argvMin: fn.argv_min,
    writesOnError: fn.writes_on_error ?? [],
    file: source.file,
    line: source.keyAt(['functions', name]).line,
  }));
  return { name: raw.module, doc: raw.doc.trim(), file: fileName, functions };
}

