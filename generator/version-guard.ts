// The version bump rule, enforced. The loader reloads a library whose version differs, or
// that lacks a function this package expects; so adding a function needs no bump, but
// changing or removing one does: otherwise a client of the new signature could take an
// old library of the same version for its own. Codegen records each function's signature
// hash in a stamp file (contract/library-stamp.json) and refuses a change under the same version.
import { existsSync, readFileSync } from 'node:fs';
import type { SpecProblem } from './diagnostics.js';

/** The stamp as written to disk. */
export interface LibraryStampData {
  readonly version: string;
  /** Function name → signature hash. */
  readonly signatures: Readonly<Record<string, string>>;
}

export interface LibraryStamp {
  readonly version: string;
  /** Function name → signature hash. */
  readonly signatures: ReadonlyMap<string, string>;
}

/** Reads a stamp file written by a previous codegen, if there is one. */
export function readStamp(path: string): LibraryStamp | undefined {
  return existsSync(path) ? parseStamp(readFileSync(path, 'utf8')) : undefined;
}

export function parseStamp(text: string): LibraryStamp {
  const data = JSON.parse(text) as LibraryStampData;
  return { version: data.version, signatures: new Map(Object.entries(data.signatures)) };
}

export function checkVersionBump(previous: LibraryStamp | undefined, next: LibraryStamp): SpecProblem[] {
  if (!previous || previous.version !== next.version) return [];
  const changed = [...previous.signatures].filter(([name, hash]) => next.signatures.get(name) !== hash).map(([name]) => name);
  if (changed.length === 0) return [];
  return [
    {
      file: 'lua/version.lua',
      line: 1,
      column: 1,
      message: `the wire signature of ${changed.join(', ')} changed or was removed, but the library version is still '${next.version}': bump lua/version.lua`,
    },
  ];
}
