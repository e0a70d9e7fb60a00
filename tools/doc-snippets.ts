// The TypeScript snippets of the documentation, ready to compile against the package.
// A ```ts block is compiled as a module of its own, importing 'ff-script' as a user would.
// Names a snippet uses without defining (a client from the snippet before it) come from an
// HTML comment right above the block, which readers of the rendered page do not see:
//
//   <!-- ts-context
//   import { FlowFabricClient } from 'ff-script';
//   declare const client: FlowFabricClient;
//   -->
//
// A block marked ```ts nocheck is not compiled: keep that for fragments that cannot be made whole.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface Snippet {
  /** The Markdown file, relative to the root. */
  readonly file: string;
  /** 1-based line of the first code line in the Markdown file. */
  readonly line: number;
  /** Lines of hidden context put before the code. */
  readonly context: readonly string[];
  readonly code: readonly string[];
}

const SKIPPED_DIRS = new Set(['node_modules', 'dist', '.git', 'fixtures']);

export function markdownFiles(root: string, dir = ''): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = dir === '' ? entry.name : `${dir}/${entry.name}`;
    if (entry.isDirectory()) return SKIPPED_DIRS.has(entry.name) || entry.name.startsWith('.') ? [] : markdownFiles(root, path);
    return entry.name.endsWith('.md') ? [path] : [];
  });
}

export function snippetsOf(file: string, text: string): Snippet[] {
  const lines = text.split('\n');
  const snippets: Snippet[] = [];
  let context: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '<!-- ts-context') {
      const end = lines.indexOf('-->', i);
      if (end < 0) throw new Error(`${file}:${i + 1}: ts-context comment is not closed with a line '-->'`);
      context = lines.slice(i + 1, end);
      i = end;
      continue;
    }
    const fence = /^```(ts|typescript)\b(.*)$/.exec(line);
    if (!fence) {
      if (line.trim() !== '') context = [];
      continue;
    }
    const end = lines.indexOf('```', i + 1);
    if (end < 0) throw new Error(`${file}:${i + 1}: code block is not closed`);
    if (!/\bnocheck\b/.test(fence[2]!)) snippets.push({ file, line: i + 2, context, code: lines.slice(i + 1, end) });
    context = [];
    i = end;
  }
  return snippets;
}

/** The module text of a snippet: its context, then its code; `export {}` keeps it a module. */
export function snippetModule(snippet: Snippet): string {
  return [...snippet.context, ...snippet.code, 'export {};', ''].join('\n');
}
