// The version bump rule, enforced: when any function's wire signature (names, KEYS, ARGV)
// differs from the last generated library but lua/version.lua still says the same version,
// codegen refuses, so a client of the new signatures can never mistake an old library for
// its own.
import { existsSync, readFileSync } from 'node:fs';
import type { SpecProblem } from './load.js';

export interface LibraryStamp {
  readonly version: string;
  readonly fingerprint: string;
}

/** Reads the version and fingerprint recorded in a previously generated library module. */
export function readStamp(libraryModulePath: string): LibraryStamp | undefined {
  return existsSync(libraryModulePath) ? parseStamp(readFileSync(libraryModulePath, 'utf8')) : undefined;
}

/** The version and fingerprint written in a library module's text. */
export function parseStamp(text: string): LibraryStamp | undefined {
  const version = /export const LIBRARY_VERSION = '([^']*)'/.exec(text)?.[1];
  const fingerprint = /export const SIGNATURE_FINGERPRINT = '([^']*)'/.exec(text)?.[1];
  return version !== undefined && fingerprint !== undefined ? { version, fingerprint } : undefined;
}

export function checkVersionBump(previous: LibraryStamp | undefined, next: LibraryStamp): SpecProblem[] {
  if (!previous || previous.version !== next.version || previous.fingerprint === next.fingerprint) return [];
  return [
    {
      file: 'lua/version.lua',
      line: 1,
      column: 1,
      message: `function signatures changed (fingerprint ${previous.fingerprint} → ${next.fingerprint}) but the library version is still '${next.version}': bump lua/version.lua`,
    },
  ];
}
