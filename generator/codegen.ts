// Runs the whole pipeline in memory: load and check spec, bundle and check Lua, emit every
// generated file with ts-morph, format it. Returns the files; writing them is the CLI's job,
// so a failed check writes nothing.
import { createHash } from 'node:crypto';
import { IndentationText, NewLineKind, Node, Project, QuoteKind, type SourceFile } from 'ts-morph';
import { indexDoc, moduleDoc } from './emit-docs.js';
import { emitErrors } from './emit-errors.js';
import { emitKeys } from './emit-keys.js';
import { emitModule } from './emit-module.js';
import { emitEnums } from './emit-enums.js';
import { emitShapes } from './emit-shapes.js';
import { argvMinimums, emitLuaFacts } from './emit-lua-facts.js';
import { bundleLua, checkLua } from './lua.js';
import { SpecError, formatProblem } from './diagnostics.js';
import { loadSpec } from './load.js';
import type { KeyRef, Spec } from './model.js';
import type { LibraryStampData } from './version-guard.js';

export interface CodegenOptions {
  readonly specDir: string;
  readonly luaDir: string;
  /** Path prefix shown in messages (the repo root). */
  readonly displayRoot?: string;
  /** Fail on spec functions not registered in Lua (otherwise they are warnings). */
  readonly strict?: boolean;
  /** Receives warnings. */
  readonly warn?: (message: string) => void;
}

/** Every generated file, keyed by its path relative to the repository root. */
export function generate(options: CodegenOptions): Map<string, string> {
  const { spec } = loadSpec(options.specDir, options.displayRoot);
  // The guard's minimum: the KEYS before the first one the Lua tolerates missing.
  const required = (keys: readonly KeyRef[]) => {
    const firstOptional = keys.findIndex((k) => k.optional || k.each);
    return firstOptional < 0 ? keys.length : firstOptional;
  };
  const keyCounts = new Map(spec.modules.flatMap((m) => m.functions).map((f) => [f.name, required(f.keys)] as const));
  const bundle = bundleLua(options.luaDir, keyCounts, emitLuaFacts(spec));
  const luaProblems = checkLua(spec, bundle, keyCounts, argvMinimums(spec));
  const unregistered = luaProblems.unregistered ?? [];
  if (options.strict) luaProblems.push(...unregistered);
  else unregistered.forEach((p) => options.warn?.(`warning: ${formatProblem(p)}`));
  if (luaProblems.length > 0) throw new SpecError(luaProblems);

  const project = new Project({
    useInMemoryFileSystem: true,
    manipulationSettings: { indentationText: IndentationText.TwoSpaces, quoteKind: QuoteKind.Single, newLineKind: NewLineKind.LineFeed },
  });
  const files = new Map<string, string>();
  const emit = (path: string, build: (file: SourceFile) => void) => {
    const file = project.createSourceFile(path, '', { overwrite: true });
    build(file);
    file.formatText({ indentSize: 2, convertTabsToSpaces: true, ensureNewLineAtEndOfFile: true, semicolons: 'insert' as never });
    files.set(path, file.getFullText());
  };

  // contract/: the data the core is made of (it imports nothing); generated/: the wrappers on the core.
  emit('contract/errors.ts', (file) => emitErrors(spec, file));
  // The library source is data, not code to format: written verbatim.
  const library = libraryModule(spec, bundle.source, bundle.version);
  files.set('contract/library.ts', library);
  project.createSourceFile('contract/library.ts', library, { overwrite: true });
  files.set(STAMP_PATH, `${JSON.stringify(libraryStamp(spec, bundle.version), null, 2)}\n`);
  files.set('generated/errors.ts', relocated('contract/errors.ts'));
  files.set('generated/library.ts', relocated('contract/library.ts'));
  emit('generated/keys.ts', (file) => emitKeys(spec, file));
  emit('generated/enums.ts', (file) => emitEnums(spec, file));
  emit('generated/shapes.ts', (file) => emitShapes(spec, file));
  for (const module of spec.modules) emit(`generated/${module.name}.ts`, (file) => emitModule(spec, module, file));
  // The index names every export of the modules, so the generated surface reads in one place.
  const exportsOf = (path: string) => exportedNames(project.getSourceFileOrThrow(path));
  const reexports: [string, ExportedName[]][] = [
    ['./errors.js', exportsOf('contract/errors.ts')],
    ['./keys.js', exportsOf('generated/keys.ts')],
    ['./enums.js', exportsOf('generated/enums.ts')],
    ['./shapes.js', exportsOf('generated/shapes.ts')],
    ['./library.js', exportsOf('contract/library.ts')],
    ...spec.modules.map((m): [string, ExportedName[]] => [`./${m.name}.js`, exportsOf(`generated/${m.name}.ts`)]),
  ];
  emit('generated/index.ts', (file) => emitIndex(reexports, file));
  for (const module of spec.modules) files.set(`docs/reference/${module.name}.md`, moduleDoc(spec, module));
  files.set('docs/reference/README.md', indexDoc(spec));
  return files;
}

/** Where codegen records the library version and signature hashes, for the version bump rule. */
export const STAMP_PATH = 'contract/library-stamp.json';

function libraryStamp(spec: Spec, version: string): LibraryStampData {
  return { version, signatures: Object.fromEntries(functionSignatures(spec)) };
}

/** Each function's wire signature (KEYS names, ARGV names and types), hashed. */
export function functionSignatures(spec: Spec): Map<string, string> {
  const entries = spec.modules
    .flatMap((m) => m.functions)
    .map((f) => {
      const text = `${f.keys.map((k) => (k.each ? `${k.name}*` : k.name)).join(',')};${f.argv.map((a) => `${a.name}:${a.type}`).join(',')}`;
      return [f.name, createHash('sha256').update(text).digest('hex').slice(0, 12)] as const;
    })
    .sort(([a], [b]) => (a < b ? -1 : 1));
  return new Map(entries);
}

function templateLiteral(text: string): string {
  return `\`${text.replace(/\\/g, '\\\\').replace(/`/g, '\\`').replace(/\$\{/g, '\\${')}\``;
}

function libraryModule(spec: Spec, source: string, version: string): string {
  const names = spec.modules.flatMap((m) => m.functions.map((f) => f.name)).sort();
  return [
    '// Generated by `npm run codegen` from lua/*.lua and spec/. Do not edit by hand.',
    '',
    '/** Library version, read from lua/version.lua (its single source). */',
    `export const LIBRARY_VERSION = '${version}';`,
    '',
    '/** Every function the library registers, as declared in spec/. */',
    `export const FUNCTION_NAMES = [${names.map((n) => `\n  '${n}',`).join('')}\n] as const;`,
    '',
    '/** The bundled library: every lua/*.lua file under one `#!lua name=flowfabric` header. */',
    `export const LIBRARY_SOURCE = ${templateLiteral(source)};`,
    '',
  ].join('\n');
}

interface ExportedName {
  readonly name: string;
  readonly typeOnly: boolean;
}

function exportedNames(file: SourceFile): ExportedName[] {
  return [...file.getExportedDeclarations()]
    .map(([name, declarations]) => ({ name, typeOnly: declarations.every((d) => Node.isInterfaceDeclaration(d) || Node.isTypeAliasDeclaration(d)) }))
    .sort((a, b) => Number(a.typeOnly) - Number(b.typeOnly) || (a.name < b.name ? -1 : 1));
}

function emitIndex(reexports: readonly (readonly [string, readonly ExportedName[]])[], file: SourceFile): void {
  const lines = ['// Generated by `npm run codegen` from spec/. Do not edit by hand.'];
  for (const [specifier, names] of reexports) {
    const listed = names.map((n) => (n.typeOnly ? `type ${n.name}` : n.name));
    const flat = `export { ${listed.join(', ')} } from '${specifier}';`;
    lines.push(flat.length <= 100 ? flat : `export {\n${listed.map((n) => `  ${n},`).join('\n')}\n} from '${specifier}';`);
  }
  file.replaceWithText(lines.join('\n'));
}

/** A contract/ module re-exported beside the wrappers, so generated/ offers the whole generated surface. */
function relocated(path: string): string {
  return [
    '// Generated by `npm run codegen`. Do not edit by hand.',
    `// Defined in ${path}, below the core that reads it; re-exported here with the wrappers.`,
    `export * from '../${path.replace(/\.ts$/, '.js')}';`,
    '',
  ].join('\n');
}
