// `npm run codegen`: regenerate contract/ and generated/ from spec/ and lua/. On any spec or
// Lua problem it prints every problem as file:line:column and exits 1 without writing anything.
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { STAMP_PATH, generate } from './codegen.js';
import { SpecError } from './diagnostics.js';
import { checkVersionBump, parseStamp, readStamp } from './version-guard.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Directories codegen owns entirely: files there that it did not produce are removed. */
const OWNED_DIRS = ['contract', 'generated', 'docs/reference'];

export function runCodegen(outRoot = root, strict = false, sourceRoot = outRoot): { written: string[]; unchanged: string[] } {
  const files = generate({ specDir: join(sourceRoot, 'spec'), luaDir: join(sourceRoot, 'lua'), displayRoot: sourceRoot, strict, warn: (m) => console.warn(m) });
  // The stamp on disk, from the previous codegen, is the baseline of the version bump rule.
  const stamp = files.get(STAMP_PATH);
  const bump = stamp === undefined ? [] : checkVersionBump(readStamp(join(outRoot, STAMP_PATH)), parseStamp(stamp));
  if (bump.length > 0) throw new SpecError(bump);
  const written: string[] = [];
  const unchanged: string[] = [];
  for (const [name, content] of files) {
    const path = join(outRoot, name);
    mkdirSync(dirname(path), { recursive: true });
    if (existsSync(path) && readFileSync(path, 'utf8') === content) unchanged.push(name);
    else {
      writeFileSync(path, content);
      written.push(name);
    }
  }
  // Files of modules that no longer exist in spec/ would otherwise linger.
  for (const dir of OWNED_DIRS) {
    const full = join(outRoot, dir);
    if (!existsSync(full)) continue;
    for (const name of readdirSync(full)) {
      if (!files.has(`${dir}/${name}`)) rmSync(join(full, name));
    }
  }
  return { written, unchanged };
}

/** Runs the strict check in memory; returns the generated files that differ from disk. */
export function checkSources(sourceRoot = root): string[] {
  const files = generate({ specDir: join(sourceRoot, 'spec'), luaDir: join(sourceRoot, 'lua'), displayRoot: sourceRoot, strict: true });
  return [...files].filter(([name, content]) => !existsSync(join(sourceRoot, name)) || readFileSync(join(sourceRoot, name), 'utf8') !== content).map(([name]) => name);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const started = performance.now();
  try {
    const { written, unchanged } = runCodegen(root, process.argv.includes('--strict'));
    const ms = Math.round(performance.now() - started);
    console.log(`codegen: ${written.length} file(s) written, ${unchanged.length} unchanged (${ms} ms)`);
  } catch (error) {
    if (error instanceof SpecError) {
      console.error(`codegen failed; nothing was written:\n${error.message}`);
      process.exit(1);
    }
    throw error;
  }
}
