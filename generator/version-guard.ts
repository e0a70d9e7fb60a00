// The version bump rule, enforced. The loader reloads a library whose version differs, or
// that lacks a function this package expects; so adding a function needs no bump, but
// changing or removing one does: otherwise a client of the new signature could take an
// old library of the same version for its own. Codegen compares each function's signature
// hash with the last generated library and refuses such a change under the same version.
import { existsSync, readFileSync } from 'node:fs';
import type { SpecProblem } from './load.js';

export interface LibraryStamp {
  readonly version: string;
  /** Function name → signature hash. */
  readonly signatures: ReadonlyMap<string, string>;
}

/** Reads the stamp recorded in a previously generated library module. */
export function readStamp(libraryModulePath: string): LibraryStamp | undefined {
  return existsSync(libraryModulePath) ? parseStamp(readFileSync(libraryModulePath, 'utf8')) : undefined;
}

/** The version and signature hashes written in a library module's text. */
export function parseStamp(text: string): LibraryStamp | undefined {
  const version = /export const LIBRARY_VERSION = '([^']*)'/.exec(text)?.[1];
  const block = /export const FUNCTION_SIGNATURES = \{([^}]*)\}/.exec(text)?.[1];
  if (version === undefined || block === undefined) return undefined;
  const signatures = new Map([...block.matchAll(/(ff_[a-z0-9_]+): '([0-9a-f]+)'/g)].map((m) => [m[1]!, m[2]!] as const));
  return { version, signatures };
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
