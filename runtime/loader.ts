// Puts the function library on the server at the version this package was built with:
// check `ff_version`, load with FUNCTION LOAD REPLACE when missing or different, verify.
// On a cluster every primary gets the same treatment.
import { FUNCTION_NAMES, LIBRARY_SOURCE, LIBRARY_VERSION } from '../contract/library.js';
import { classifyWith, isFunctionMissing, sendCommand } from './classify.js';
import { FlowFabricError, LibraryError } from './errors.js';
import { replyText } from './reply.js';
import type { Transport } from './transport.js';

export interface EnsureLibraryOptions {
  /** Library source to load; defaults to the bundled one. */
  readonly source?: string;
  /** Version the source declares; defaults to the bundled one. */
  readonly version?: string;
  /** Attempts of FUNCTION LOAD on transient errors (default 3). */
  readonly attempts?: number;
  /** Pause between attempts in ms (default 1000). */
  readonly retryDelayMs?: number;
}

/** What ensureLibrary did on one primary. */
export interface LibraryStatus {
  readonly before: string | undefined;
  readonly after: string;
  readonly loaded: boolean;
}

/** Reads the loaded library's version, or undefined when the library is absent. */
export async function loadedVersion(transport: Transport): Promise<string | undefined> {
  try {
    const reply = await transport.fcall({ fn: 'ff_version', keys: [], argv: [] });
    const text = replyText(reply);
    if (text === undefined) throw new LibraryError('version_mismatch', 'ff_version returned a non-string reply');
    return text;
  } catch (error) {
    // Only "no such function" means absent; an auth or connection failure is reported as such.
    if (isFunctionMissing(error)) return undefined;
    throw classifyWith(transport, error);
  }
}

/** The function names a loaded `flowfabric` library registers (FUNCTION LIST). */
export async function registeredFunctions(transport: Transport): Promise<Set<string>> {
  const reply = await sendCommand(transport, 'FUNCTION', ['LIST', 'LIBRARYNAME', 'flowfabric']);
  const names = new Set<string>();
  // [[library_name, name, engine, lua, functions, [[name, f, description, d, flags, […]], …]], …]
  // (RESP3 clients may hand back maps; both are walked the same way.)
  const visit = (value: unknown): void => {
    const items = value instanceof Map ? [...value].flat() : Array.isArray(value) ? value : value && typeof value === 'object' ? Object.entries(value).flat() : undefined;
    if (!items) return;
    for (let i = 0; i + 1 < items.length; i++) {
      const key = replyText(items[i]);
      const next = replyText(items[i + 1]);
      if (key === 'name' && next?.startsWith('ff_')) names.add(next);
    }
    items.forEach(visit);
  };
  visit(reply);
  return names;
}

export async function ensureLibrary(transport: Transport, options: EnsureLibraryOptions = {}): Promise<LibraryStatus[]> {
  const primaries = await transport.primaries();
  return Promise.all(primaries.map((primary) => ensureOnPrimary(primary, options)));
}

async function ensureOnPrimary(transport: Transport, options: EnsureLibraryOptions): Promise<LibraryStatus> {
  const source = options.source ?? LIBRARY_SOURCE;
  const version = options.version ?? LIBRARY_VERSION;
  const before = await loadedVersion(transport);
  // Same version and every expected function present: nothing to do. (A library of the same
  // version that lacks functions — an older build during development — is replaced.)
  if (before === version && (options.source !== undefined || (await hasAllFunctions(transport)))) {
    return { before, after: before, loaded: false };
  }
  await loadWithRetries(transport, source, options.attempts ?? 3, options.retryDelayMs ?? 1000);
  const after = await loadedVersion(transport);
  if (after !== version) {
    throw new LibraryError(
      after === undefined ? 'missing' : 'version_mismatch',
      `after loading, the server reports library version ${after ?? '(none)'}; expected ${version}`,
      version,
      after,
    );
  }
  return { before, after, loaded: true };
}

async function hasAllFunctions(transport: Transport): Promise<boolean> {
  const names = await registeredFunctions(transport);
  return FUNCTION_NAMES.every((name) => names.has(name));
}

async function loadWithRetries(transport: Transport, source: string, attempts: number, delayMs: number): Promise<void> {
  let last: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      await transport.command('FUNCTION', ['LOAD', 'REPLACE', source]);
      return;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (/Error compiling|syntax error|^ERR Error/.test(message)) {
        throw new LibraryError('compile', `the server refused the library: ${message}`, undefined, undefined, { cause: error });
      }
      last = classifyWith(transport, error);
      if (last instanceof FlowFabricError && !last.retryable) break;
      if (attempt < attempts) await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
  throw new LibraryError('load_failed', `FUNCTION LOAD failed: ${(last as Error).message}`, undefined, undefined, { cause: last });
}
