// Emits one TypeScript module per spec module: for each function an Args interface that
// carries the function's description, a Result union discriminated on `status`, a pure
// request builder, a pure reply parser and a thin async wrapper. Each function is written
// by a FunctionEmitter, which holds what its parts share (the spec, the function, the
// imports and the locals of its builder) instead of passing them from helper to helper.
import { StructureKind, type ImportDeclarationStructure, type SourceFile } from 'ts-morph';
import {
  findKey,
  isExecContext,
  type Arg,
  type EncodeRules,
  type FunctionSpec,
  type KeyRef,
  type ModuleSpec,
  type ReplyField,
  type ReplyVariant,
  type ScalarType,
  type Slot,
  type Spec,
} from './model.js';
import { listType, presenceNote } from './normalise.js';
import { camel, docLines, pascal, quote, typeBase, wrapperName } from './names.js';
import { encodeExpr, isTextLike, readExpr, readerExpr, shapeTypeName, tsType, typeInfo } from './types.js';

/** Where each runtime name the generated code may import lives. */
const RUNTIME_MODULES: Record<string, string> = {
  encodeId: 'encode', encodeInteger: 'encode', checkInteger: 'encode', encodeFlag: 'encode', encodeJson: 'encode', encodeEnum: 'encode',
  encodeText: 'encode', encodeCapabilities: 'encode', expectArgs: 'encode', expectArray: 'encode', expectObjects: 'encode', twoThirds: 'encode',
  requireSameTag: 'encode', RequestBuilder: 'encode', ArglessRequestBuilder: 'encode',
  fieldText: 'decode', fieldParsed: 'decode', fieldEnum: 'decode', fieldInteger: 'decode', fieldJson: 'decode', fieldFlag: 'decode', fieldOptional: 'decode',
  parsedReader: 'decode', enumReader: 'decode', readList: 'decode', readGroups: 'decode', fieldStreamEntries: 'decode',
  bareText: 'decode', StreamEntry: 'decode',
  readEnvelope: 'reply', readUntaggedEnvelope: 'reply',
  ReplyParseError: 'errors',
  executionTag: 'ids', executionPartition: 'ids', parseExecutionId: 'ids', parseFlowId: 'ids', parseBudgetId: 'ids', parseQuotaPolicyId: 'ids',
  parseWaitpointId: 'ids', parseSuspensionId: 'ids', parseSignalId: 'ids', parseLeaseId: 'ids', parseAttemptId: 'ids',
  parseEdgeId: 'ids', parseLaneId: 'ids',
  ExecutionId: 'ids', FlowId: 'ids', BudgetId: 'ids', QuotaPolicyId: 'ids', WaitpointId: 'ids', SuspensionId: 'ids',
  SignalId: 'ids', LeaseId: 'ids', AttemptId: 'ids', EdgeId: 'ids', LaneId: 'ids', HashTag: 'ids',
  flowTag: 'partition', budgetTag: 'partition', quotaTag: 'partition', hashTag: 'partition',
  FunctionCaller: 'transport',
};
const TYPE_ONLY = new Set([
  'ExecutionId', 'FlowId', 'BudgetId', 'QuotaPolicyId', 'WaitpointId', 'SuspensionId', 'SignalId', 'LeaseId', 'AttemptId', 'EdgeId', 'LaneId',
  'HashTag', 'FunctionCaller', 'StreamEntry', 'RequestBuilder', 'ArglessRequestBuilder',
]);
const MODULE_ORDER = ['decode', 'encode', 'errors', 'ids', 'partition', 'reply', 'transport'];

/** Longer lines are written one element per line. */
const LINE_WIDTH = 100;

/** The runtime names and key classes one generated module imports. */
class Imports {
  readonly runtime = new Set<string>();
  readonly keyClasses = new Set<string>();
  /** Interfaces of JSON shapes (generated/shapes.ts). */
  readonly shapes = new Set<string>();
  /** Named enum types (generated/enums.ts). */
  readonly enums = new Set<string>();

  use(name: string): void {
    this.runtime.add(name);
  }

  declarations(): ImportDeclarationStructure[] {
    const byModule = new Map<string, string[]>();
    for (const name of this.runtime) {
      const module = RUNTIME_MODULES[name];
      if (!module) throw new Error(`generator: no runtime module known for '${name}'`);
      byModule.set(module, [...(byModule.get(module) ?? []), name]);
    }
    const named = (names: string[]) => [
      ...names.filter((n) => !TYPE_ONLY.has(n)).sort(),
      ...names.filter((n) => TYPE_ONLY.has(n)).sort().map((n) => `type ${n}`),
    ];
    const declarations: ImportDeclarationStructure[] = MODULE_ORDER.filter((m) => byModule.has(m)).map((m) => ({
      kind: StructureKind.ImportDeclaration,
      moduleSpecifier: `../runtime/${m}.js`,
      namedImports: named(byModule.get(m)!),
    }));
    if (this.shapes.size > 0) {
      declarations.push({ kind: StructureKind.ImportDeclaration, moduleSpecifier: './shapes.js', namedImports: [...this.shapes].sort().map((n) => `type ${n}`) });
    }
    if (this.enums.size > 0) {
      declarations.push({ kind: StructureKind.ImportDeclaration, moduleSpecifier: './enums.js', namedImports: [...this.enums].sort().map((n) => `type ${n}`) });
    }
    if (this.keyClasses.size > 0) {
      declarations.push({ kind: StructureKind.ImportDeclaration, moduleSpecifier: './keys.js', namedImports: [...this.keyClasses].sort() });
    }
    return declarations;
  }
}

export function emitModule(spec: Spec, module: ModuleSpec, file: SourceFile): void {
  const imports = new Imports();
  const blocks = module.functions.map((fn) => new FunctionEmitter(spec, fn, imports).emit());
  const header = [
    `// Generated by \`npm run codegen\` from spec/${module.file} and lua/. Do not edit by hand.`,
    '//',
    ...module.doc.split('\n').map((line) => `// ${line}`.trimEnd()),
    ...imports.declarations().map(wrapImport),
  ];
  file.replaceWithText([header.join('\n'), ...blocks].join('\n\n'));
}

/** An import declaration, one name per line when it would be long. */
function wrapImport(declaration: ImportDeclarationStructure): string {
  const all = declaration.namedImports as string[];
  // A declaration of types only is written `import type { … }`.
  const typesOnly = all.every((n) => n.startsWith('type '));
  const names = typesOnly ? all.map((n) => n.slice('type '.length)) : all;
  const keyword = typesOnly ? 'import type' : 'import';
  const flat = `${keyword} { ${names.join(', ')} } from '${declaration.moduleSpecifier}';`;
  if (flat.length <= LINE_WIDTH) return flat;
  return `${keyword} {\n${names.map((n) => `  ${n},`).join('\n')}\n} from '${declaration.moduleSpecifier}';`;
}

/** `{ a, b }` on one line, or one member per line when long. */
function objectLiteral(members: readonly string[], indent: string): string {
  const flat = `{ ${members.join(', ')} }`;
  if (flat.length + indent.length <= LINE_WIDTH) return flat;
  return `{\n${members.map((m) => `${indent}  ${m},`).join('\n')}\n${indent}}`;
}

function docComment(text: string, indent = ''): string {
  const lines = text.split('\n');
  if (lines.length === 1) return `${indent}/** ${lines[0]} */`;
  return [`${indent}/**`, ...lines.map((line) => `${indent} *${line === '' ? '' : ` ${line}`}`), `${indent} */`].join('\n');
}

const isCatchAll = (variant: ReplyVariant) => variant.subStatus === '*';

function variantStatus(variant: ReplyVariant): string {
  return variant.as ?? variant.subStatus ?? variant.status;
}

/** How a builder refers to one argument after checking it. */
interface Local {
  /** The local's name. */
  readonly name: string;
  /** The argument as a typed value (for keys, tags and derived defaults). */
  readonly typed: string;
  /** What its ARGV slot sends. */
  readonly wire: string;
  /** Test that the caller gave it (a text argument must also be non-empty); only optional scalars have one. */
  readonly present?: string;
}

class FunctionEmitter {
  private readonly base: string;
  private readonly wrapper: string;
  private readonly locals = new Map<string, Local>();
  /** Arguments the builder needs as typed values, not only as wire text. */
  private readonly typedUses = new Set<string>();

  constructor(
    private readonly spec: Spec,
    private readonly fn: FunctionSpec,
    private readonly imports: Imports,
  ) {
    this.base = typeBase(fn.name);
    this.wrapper = wrapperName(fn.name);
    this.collectTypedUses();
  }

  emit(): string {
    return [this.argsInterface(), this.resultType(), this.builder(), this.parser(), this.wrapperFunction()].filter((part) => part !== '').join('\n\n');
  }

  // ---- declarations ----

  /** The function's description: on the Args interface, the first thing a reader meets (or on the Result). */
  private description(): string {
    const fn = this.fn;
    const lines = [docLines(fn.doc), '', `Lua function \`${fn.name}\`${fn.readonly ? ' (read-only, sent with FCALL_RO)' : ''}${fn.extension ? '; an extension beyond the FlowFabric v0.2.0 contract' : ''}.`];
    if (fn.deviations.length > 0) {
      lines.push('', 'Deliberate deviations from the reference:');
      for (const d of fn.deviations) lines.push(`- ${docLines(d)}`);
    }
    return lines.join('\n');
  }

  private argsInterface(): string {
    if (this.fn.args.length === 0) return '';
    const properties = this.fn.args.map((arg) => {
      for (const type of this.idTypes(arg)) this.imports.use(type);
      if (arg.kind === 'scalar' && arg.rules.shape) this.imports.shapes.add(shapeTypeName(arg.rules.shape));
      if (arg.kind === 'scalar' && arg.enumType) this.imports.enums.add(arg.enumType);
      const doc = [arg.doc ? docLines(arg.doc) : '', presenceNote(arg) ?? ''].filter(Boolean).join(' ');
      const optional = arg.presence.kind !== 'required';
      return `${doc ? `${docComment(doc, '  ')}\n` : ''}  readonly ${arg.property}${optional ? '?' : ''}: ${arg.tsType};`;
    });
    return `${docComment(this.description())}\nexport interface ${this.base}Args {\n${properties.join('\n')}\n}`;
  }

  private resultType(): string {
    const doc = `Successful replies of {@link ${this.wrapper}}, discriminated on \`status\`.`;
    const lead = this.fn.args.length === 0 ? `${this.description()}\n\n${doc}` : doc;
    const replies = this.fn.replies;
    const type = replies.length === 1 ? this.variantType(replies[0]!, '') : replies.map((v) => `\n  | ${this.variantType(v, '  ')}`).join('');
    return `${docComment(lead)}\nexport type ${this.base}Result = ${type};`;
  }

  private variantType(variant: ReplyVariant, indent: string): string {
    const members = [`readonly status: ${quote(variantStatus(variant))};`];
    if (isCatchAll(variant)) members.push('/** The sub-status as the server sent it. */', 'readonly subStatus: string;');
    for (const field of variant.fields) members.push(`readonly ${field.property}${field.optional ? '?' : ''}: ${this.replyTs(field)};`);
    return `{\n${members.map((m) => `${indent}  ${m}`).join('\n')}\n${indent}}`;
  }

  private replyTs(field: ReplyField): string {
    switch (field.kind) {
      case 'streamEntries':
        this.imports.use('StreamEntry');
        return 'readonly StreamEntry[]';
      case 'list':
        return listType(this.scalarTs(field.of, field.values));
      case 'group':
        return `readonly { ${field.members.map((m) => `readonly ${m.property}${m.optional ? '?' : ''}: ${this.replyTs(m)}`).join('; ')} }[]`;
      case 'scalar':
        return this.scalarTs(field.type, field.values);
    }
  }

  private scalarTs(type: ScalarType, values: readonly string[] | undefined): string {
    const ts = tsType(type, values);
    if (typeInfo(type).parser) this.imports.use(ts);
    return ts;
  }

  /** The branded id types an argument's TypeScript type names. */
  private idTypes(arg: Arg): string[] {
    const types = arg.kind === 'scalar' ? [arg.type] : arg.kind === 'list' ? [arg.of] : arg.members.map((m) => m.type);
    return types.filter((t) => typeInfo(t).parser).map((t) => typeInfo(t).ts);
  }

  private wrapperFunction(): string {
    const fn = this.fn;
    const hasArgs = fn.args.length > 0;
    this.imports.use('FunctionCaller');
    const lines = [`Calls \`${fn.name}\`${hasArgs ? ` (see {@link ${this.base}Args})` : ''} and reads its reply.`];
    if (fn.errors.length > 0) lines.push('', `@throws ScriptError with code ${fn.errors.map((c) => `\`${c}\``).join(', ')}.`);
    const params = `client: FunctionCaller${hasArgs ? `, args: ${this.base}Args` : ''}`;
    return [
      docComment(lines.join('\n')),
      `export function ${this.wrapper}(${params}): Promise<${this.base}Result> {`,
      `  return client.call(build${this.base}(${hasArgs ? 'args, ' : ''}client.partitions), parse${this.base});`,
      '}',
    ].join('\n');
  }

  // ---- request builder ----

  /** Which arguments keys, tags, defaults, clock slots and `when` conditions read as typed values. */
  private collectTypedUses(): void {
    const fn = this.fn;
    const use = (name: string | undefined) => name !== undefined && this.typedUses.add(name);
    if (fn.tag.from !== 'none') use(fn.tag.arg);
    const visitKey = (ref: KeyRef) => {
      const found = findKey(this.spec, ref.context, ref.key);
      const element = ref.each !== undefined ? ref.eachAs || found?.key.params[0] : undefined;
      for (const name of ref.args ?? found?.key.params ?? []) if (name !== element) use(name);
      for (const param of found?.context.params ?? []) use(ref.contextBind[param] ?? param);
      use(ref.each);
      use(ref.when);
      if (ref.otherwise) visitKey(ref.otherwise);
    };
    fn.keys.forEach(visitKey);
    for (const arg of fn.args) if (arg.presence.kind === 'derived') use(arg.presence.from);
    for (const slot of fn.slots) {
      use(slot.when);
      if (slot.kind === 'clockPlus') use(slot.duration);
    }
  }

  private builder(): string {
    const fn = this.fn;
    const hasArgs = fn.args.length > 0;
    const usesPartitions = fn.tag.from === 'flow' || fn.tag.from === 'budget' || fn.tag.from === 'quota';
    const lines = [`const fn = ${quote(fn.name)};`];
    if (hasArgs) {
      this.imports.use('expectArgs');
      lines.push('expectArgs(fn, args);');
    }
    // Arguments whose default derives from another one come after it.
    const derived = (arg: Arg) => arg.presence.kind === 'derived';
    for (const arg of [...fn.args.filter((a) => !derived(a)), ...fn.args.filter(derived)]) lines.push(this.argLocal(arg));
    if (fn.keys.length > 0) {
      const keyLines: string[] = [];
      const contexts = new Map<string, string>();
      const keys = fn.keys.map((ref) => `    ${this.keyExpr(ref, contexts, keyLines)},${ref.name === ref.key ? '' : ` // ${ref.name}`}`);
      // Execution keys carry their own tag; the function's tag is declared only where it is read.
      if (keyLines.some((line) => /\btag\b/.test(line))) lines.push(this.tagStatement());
      lines.push(...keyLines, `const keys = [\n${keys.join('\n')}\n  ];`);
    }
    const argv = fn.slots.map((slot) => this.slotLine(slot));
    const argvText = argv.length > 0 ? `[\n${argv.join('\n')}\n    ]` : '[]';
    const request = ['fn', fn.keys.length > 0 ? 'keys' : 'keys: []', `argv: ${argvText}`, ...(fn.readonly ? ['readOnly: true'] : [])];
    lines.push(argv.length > 0 ? `return {\n${request.map((m) => `    ${m},`).join('\n')}\n  };` : `return ${objectLiteral(request, '  ')};`);

    const doc = docComment(`Validates the arguments and builds the KEYS and ARGV of \`${fn.name}\`, without sending anything.`);
    const params = [...(hasArgs ? ['args'] : []), ...(usesPartitions ? ['partitions'] : [])].join(', ');
    this.imports.use(hasArgs ? 'RequestBuilder' : 'ArglessRequestBuilder');
    const type = hasArgs ? `RequestBuilder<${this.base}Args>` : 'ArglessRequestBuilder';
    return `${doc}\nexport const build${this.base}: ${type} = (${params}) => {\n${lines.map((l) => `  ${l}`).join('\n')}\n};`;
  }

  /** The one local of an argument: checked, defaulted, and encoded unless a typed use needs the value. */
  private argLocal(arg: Arg): string {
    const name = arg.property;
    const source = `args.${name}`;
    const label = quote(arg.name);
    if (arg.kind === 'list' || arg.kind === 'group') {
      const check = arg.kind === 'group' ? 'expectObjects' : 'expectArray';
      this.imports.use(check);
      const value = arg.presence.kind === 'optional' ? `${source} ?? []` : source;
      const max = arg.maxItems !== undefined ? `, ${arg.maxItems}` : '';
      const item =
        arg.kind === 'list'
          ? this.encode(arg.of, arg.name, 'item', arg.rules)
          : objectLiteral(arg.members.map((m) => `${m.property}: ${this.encode(m.type, `${arg.name}.${m.name}`, `item.${m.property}`, m.rules)}`), '  ');
      this.locals.set(arg.name, { name, typed: name, wire: name });
      return `const ${name} = ${check}(fn, ${label}, ${value}${max}).map((item) => ${arg.kind === 'group' ? `(${item})` : item});`;
    }
    const textLike = isTextLike(arg.type);
    const integer = typeInfo(arg.type).integer !== undefined;
    const typed = this.typedUses.has(arg.name);
    // An integer the builder reads as a number is checked, kept as a number, and written at the slot.
    const keepNumber = integer && typed;
    const encode = (value: string) => this.encode(arg.type, arg.name, value, arg.rules, keepNumber);
    const presence = arg.presence;
    if (presence.kind === 'optional') {
      const absent = typed ? 'undefined' : "''";
      const present = textLike ? `(${name} !== undefined && ${name} !== '')` : `${name} !== undefined`;
      const wire = !typed ? name : keepNumber ? `${name} === undefined ? '' : String(${name})` : `${name} ?? ''`;
      this.locals.set(arg.name, { name, typed: name, wire, present });
      return `const ${name} = ${source} === undefined ? ${absent} : ${encode(source)};`;
    }
    const value = presence.kind === 'required' ? source : `${source} ?? ${this.defaultExpr(presence)}`;
    this.locals.set(arg.name, { name, typed: name, wire: keepNumber ? `String(${name})` : name });
    return `const ${name} = ${encode(value)};`;
  }

  private defaultExpr(presence: Extract<Arg['presence'], { kind: 'default' | 'derived' | 'clock' }>): string {
    switch (presence.kind) {
      case 'default':
        return typeof presence.value === 'string' ? quote(presence.value) : String(presence.value);
      case 'clock':
        // The client clock, for slots where the engine expects the caller's time.
        return 'Date.now()';
      case 'derived':
        this.imports.use(presence.fn);
        return `${presence.fn}(${this.local(presence.from).typed})`;
    }
  }

  private encode(type: ScalarType, name: string, value: string, rules: EncodeRules, keepNumber = false): string {
    const names = new Set<string>();
    const expr = encodeExpr(type, name, value, rules, names, keepNumber);
    names.forEach((n) => this.imports.use(n));
    return expr;
  }

  /** The test of a `when` condition (the checker allows only optional single values there). */
  private given(name: string): string {
    const present = this.local(name).present;
    if (present === undefined) throw new Error(`generator: ${this.fn.name}: 'when' names '${name}', which is not an optional single value`);
    return present;
  }

  private local(name: string): Local {
    const local = this.locals.get(name);
    if (!local) throw new Error(`generator: ${this.fn.name} reads argument '${name}' before it is declared`);
    return local;
  }

  private tagStatement(): string {
    const tag = this.fn.tag;
    if (tag.from === 'none') return '';
    const arg = this.local(tag.arg).typed;
    switch (tag.from) {
      case 'execution':
        this.imports.use('executionTag');
        return `const tag = executionTag(${arg});`;
      case 'flow':
      case 'budget':
      case 'quota':
        this.imports.use(`${tag.from}Tag`);
        return `const tag = ${tag.from}Tag(${arg}, partitions);`;
      case 'partition':
        this.imports.use('hashTag');
        return `const tag = hashTag(${quote(tag.family)}, ${arg});`;
    }
  }

  /** The key builder object of a key's context, declared on first use. */
  private contextInstance(ref: KeyRef, contexts: Map<string, string>, lines: string[]): string {
    const context = this.spec.keys.contexts.find((c) => c.name === ref.context)!;
    const params = context.params.map((p) => ref.contextBind[p] ?? p);
    const id = `${ref.context}(${params.join(',')})`;
    const existing = contexts.get(id);
    if (existing) return existing;
    const suffix = params.filter((p, i) => p !== context.params[i]).map(pascal).join('');
    const variable = `${camel(ref.context)}${suffix}Keys`;
    const className = `${pascal(ref.context)}Keys`;
    this.imports.keyClasses.add(className);
    const args = params.map((p) => this.local(p).typed);
    if (isExecContext(context)) {
      lines.push(`const ${variable} = new ${className}(${args.join(', ')});`);
      const tagArg = this.fn.tag.from === 'execution' ? this.fn.tag.arg : undefined;
      if (params[0] !== tagArg) {
        this.imports.use('requireSameTag');
        lines.push(`requireSameTag(fn, ${quote(params[0]!)}, ${variable}.tag, tag);`);
      }
    } else {
      lines.push(`const ${variable} = new ${className}(${['tag', ...args].join(', ')});`);
    }
    contexts.set(id, variable);
    return variable;
  }

  private keyExpr(ref: KeyRef, contexts: Map<string, string>, lines: string[]): string {
    const single = (r: KeyRef, element?: { name: string; variable: string }): string => {
      const { key } = findKey(this.spec, r.context, r.key)!;
      const instance = this.contextInstance(r, contexts, lines);
      const bound = (r.args ?? key.params).map((name) => (element && name === element.name ? element.variable : this.local(name).typed));
      return `${instance}.${camel(r.key)}(${bound.join(', ')})`;
    };
    if (ref.each !== undefined) {
      const { key } = findKey(this.spec, ref.context, ref.key)!;
      const elementName = ref.eachAs || key.params[0]!;
      const variable = camel(elementName);
      return `...${this.local(ref.each).typed}.map((${variable}) => ${single(ref, { name: elementName, variable })})`;
    }
    const expr = single(ref);
    if (ref.when !== undefined && ref.otherwise) return `${this.given(ref.when)} ? ${expr} : ${single(ref.otherwise)}`;
    return expr;
  }

  /** One ARGV line, with the slot's name as a comment where the expression does not show it. */
  private slotLine(slot: Slot): string {
    let expr: string;
    let named = false;
    switch (slot.kind) {
      case 'constant':
        expr = quote(slot.value);
        break;
      case 'clockPlus': {
        const duration = this.local(slot.duration);
        this.imports.use('encodeInteger');
        expr = `${duration.typed} === undefined ? '' : encodeInteger(fn, ${quote(slot.name)}, Date.now() + ${duration.typed}, 0)`;
        break;
      }
      case 'value': {
        const local = this.local(slot.arg);
        expr = local.wire;
        named = slot.arg === slot.name;
        break;
      }
      case 'list': {
        const list = this.local(slot.arg).name;
        expr = slot.countFirst ? `String(${list}.length), ...${list}` : `...${list}`;
        named = true;
        break;
      }
      case 'group': {
        const group = this.local(slot.arg).name;
        const arg = this.fn.args.find((a) => a.name === slot.arg);
        const members = arg?.kind === 'group' ? arg.members.map((m) => m.property) : [];
        const parts =
          slot.layout === 'rows'
            ? [`...${group}.flatMap((item) => [${members.map((m) => `item.${m}`).join(', ')}])`]
            : members.map((m) => `...${group}.map((item) => item.${m})`);
        expr = [...(slot.countFirst ? [`String(${group}.length)`] : []), ...parts].join(',\n      ');
        named = true;
        break;
      }
    }
    if (slot.when !== undefined) expr = `${this.given(slot.when)} ? ${expr} : ''`;
    return `      ${expr},${named ? '' : ` // ${slot.name}`}`;
  }

  // ---- reply parser ----

  private parser(): string {
    const fn = this.fn;
    const doc = docComment(`Reads the reply of \`${fn.name}\`; failure replies throw a ScriptError.`);
    const head = `${doc}\nexport function parse${this.base}(reply: unknown): ${this.base}Result {\n  const fn = ${quote(fn.name)};`;
    if (fn.envelope === 'bare') {
      this.imports.use('bareText');
      const variant = fn.replies[0]!;
      const field = variant.fields[0]!;
      return `${head}\n  return { status: ${quote(variantStatus(variant))}, ${camel(field.name)}: bareText(fn, reply) };\n}`;
    }
    const reader = fn.envelope === 'untagged' ? 'readUntaggedEnvelope' : 'readEnvelope';
    this.imports.use(reader);
    this.imports.use('ReplyParseError');
    const readsFields = fn.replies.some((v) => v.fields.length > 0 || v.subStatus !== undefined);
    const lines = [`const { status${readsFields ? ', fields' : ''} } = ${reader}(fn, reply);`, 'switch (status) {'];
    for (const status of [...new Set(fn.replies.map((v) => v.status))]) {
      const variants = fn.replies.filter((v) => v.status === status);
      lines.push(`  case ${quote(status)}: {`);
      if (variants.length === 1 && !variants[0]!.subStatus) {
        lines.push(...this.variantObject(variants[0]!, 0, '    '));
      } else {
        this.imports.use('fieldText');
        lines.push(`    const subStatus = fieldText(fn, 'sub_status', fields, 0);`, '    switch (subStatus) {');
        for (const variant of variants.filter((v) => !isCatchAll(v))) {
          lines.push(`      case ${quote(variant.subStatus!)}: {`, ...this.variantObject(variant, 1, '        '), '      }');
        }
        lines.push('    }');
        const catchAll = variants.find(isCatchAll);
        if (catchAll) lines.push(...this.variantObject(catchAll, 1, '    '));
        else lines.push(`    throw new ReplyParseError(fn, 'sub_status', \`unexpected sub-status \${subStatus} for \${status}\`);`);
      }
      lines.push('  }');
    }
    lines.push('}', `throw new ReplyParseError(fn, 'status', \`unexpected status \${status}\`);`);
    return `${head}\n${lines.map((l) => `  ${l}`).join('\n')}\n}`;
  }

  private variantObject(variant: ReplyVariant, offset: number, indent: string): string[] {
    const lines: string[] = [];
    const previous = new Map<string, string>();
    const members = [`status: ${quote(variantStatus(variant))}`];
    if (isCatchAll(variant)) members.push('subStatus');
    variant.fields.forEach((field, i) => {
      const variable = field.property;
      const isCounter = variant.fields.some((f) => f.kind === 'group' && f.countField === field.name);
      const read = this.readField(field, field.name, String(offset + i), previous);
      if (isCounter) {
        lines.push(`const ${variable} = ${read};`);
        previous.set(field.name, variable);
        members.push(variable);
      } else if (field.optional) {
        lines.push(`const ${variable} = ${read};`);
        members.push(`...(${variable} !== undefined ? { ${variable} } : {})`);
      } else {
        members.push(`${variable}: ${read}`);
      }
    });
    lines.push(`return ${objectLiteral(members, indent)};`);
    return lines.map((line) => `${indent}${line}`);
  }

  private readField(field: ReplyField, label: string, index: string, previous: Map<string, string>): string {
    const names = new Set<string>();
    const expr = readFieldExpr(field, label, index, previous, names);
    names.forEach((n) => this.imports.use(n));
    return expr;
  }
}

function readFieldExpr(field: ReplyField, label: string, index: string, previous: Map<string, string>, names: Set<string>): string {
  switch (field.kind) {
    case 'streamEntries':
      names.add('fieldStreamEntries');
      return `fieldStreamEntries(fn, ${quote(label)}, fields, ${index})`;
    case 'list':
      names.add('readList');
      return `readList(fn, ${quote(label)}, fields, ${index}, ${readerExpr(field.of, field.values, names)})`;
    case 'group': {
      names.add('readGroups');
      const count = field.countField !== undefined ? previous.get(field.countField)! : 'undefined';
      // Each member's label names the group and its position: `${label}.member`.
      const read = field.members.map(
        (m, i) => `${m.property}: ${readFieldExpr(m, `\${label}.${m.name}`, `at + ${i}`, previous, names).replace(`'\${label}.${m.name}'`, `\`\${label}.${m.name}\``)}`,
      );
      return `readGroups(fn, ${quote(label)}, fields, ${index}, ${field.members.length}, ${count}, (at, label) => ({ ${read.join(', ')} }))`;
    }
    case 'scalar':
      if (field.optional) {
        names.add('fieldOptional');
        return `fieldOptional(fn, ${quote(label)}, fields, ${index}, ${readerExpr(field.type, field.values, names)})`;
      }
      return readExpr(field.type, field.values, label, index, names);
  }
}
