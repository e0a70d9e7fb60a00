// Every ```ts snippet of README.md and docs/ compiles against the package's sources, with
// 'ff-script' mapped to index.ts as a user's import would reach it. A snippet that stops
// compiling (an API renamed, a type narrowed) fails here, with its Markdown file and line.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { markdownFiles, snippetModule, snippetsOf, type Snippet } from '../tools/doc-snippets.js';
import { ENTRY_POINTS } from '../tools/public-api.js';

const root = join(import.meta.dirname, '..');
// Inside the repository, so the snippets resolve ioredis and @types/node as the package does.
mkdirSync(join(root, 'node_modules', '.cache'), { recursive: true });
const work = mkdtempSync(join(root, 'node_modules', '.cache', 'doc-snippets-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const snippets = markdownFiles(root).flatMap((file) => snippetsOf(file, readFileSync(join(root, file), 'utf8')));

/** Compiles the snippets; returns tsc's diagnostics with each position mapped to the Markdown file. */
function compile(all: readonly Snippet[]): string[] {
  const names = all.map((_, i) => `snippet-${i}.ts`);
  all.forEach((snippet, i) => writeFileSync(join(work, names[i]!), snippetModule(snippet)));
  const tsconfig = {
    extends: join(root, 'tsconfig.json'),
    compilerOptions: {
      noEmit: true,
      // A snippet shows a use; it need not use every name it binds.
      noUnusedLocals: false,
      noUnusedParameters: false,
      // Each subpath of the package, as the API report knows them.
      paths: Object.fromEntries(ENTRY_POINTS.map(([subpath, source]) => [subpath, [join(root, source)]])),
    },
    files: names,
    include: [],
  };
  writeFileSync(join(work, 'tsconfig.json'), JSON.stringify(tsconfig));
  try {
    execFileSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', work, '--pretty', 'false'], { cwd: work, stdio: 'pipe' });
    return [];
  } catch (error) {
    const output = String((error as { stdout?: Buffer }).stdout ?? error);
    return output
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        const match = /snippet-(\d+)\.ts\((\d+),(\d+)\): (.*)$/.exec(line);
        if (!match) return line;
        const snippet = all[Number(match[1])]!;
        const at = Number(match[2]) - 1 - snippet.context.length;
        return at < 0 ? `${snippet.file}:${snippet.line} (ts-context above the block): ${match[4]}` : `${snippet.file}:${snippet.line + at}: ${match[4]}`;
      });
  }
}

describe('documentation snippets', () => {
  it('are found in README.md', () => {
    expect(snippets.filter((s) => s.file === 'README.md').length).toBeGreaterThan(2);
  });

  it('compile against the package', { timeout: 120_000 }, () => {
    expect(compile(snippets), 'fix the snippet (or the API), at the Markdown line given').toEqual([]);
  });

  it('a snippet that does not compile is reported at its Markdown line', { timeout: 120_000 }, () => {
    const bad = snippetsOf('BAD.md', ['# t', '```ts', "import { parseLaneId } from 'ff-script';", 'const n: number = parseLaneId("x");', '```'].join('\n'));
    expect(compile(bad)).toEqual([expect.stringMatching(/^BAD\.md:4: error TS2322/)]);
  });
});
