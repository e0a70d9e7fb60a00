// What every case gets from the runner, the row type cases report, and small helpers
// shared by more than one case (ids, server CPU, optional generated wrappers).
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { FlowFabricClient } from '../runtime/client.js';
import { parseExecutionId, parseLaneId, type ExecutionId, type LaneId } from '../runtime/ids.js';
import { hashTag } from '../runtime/partition.js';
import type { Plan } from './measure.js';

export interface Context {
  readonly quick: boolean;
  /** Every `--flag` given to the run (e.g. --growth-full), for cases with heavier variants. */
  readonly flags: ReadonlySet<string>;
  readonly url: string;
  /** The bench's connection; wrappers and raw calls of cases 1, 2, 4 and 5 go through it. */
  readonly redis: Redis;
  readonly client: FlowFabricClient;
  /** Distinct per process run, so lanes and queue names never meet earlier runs' data. */
  readonly runId: string;
  readonly plan: Plan;
  /** Everything generated/index.ts exports right now (wrappers appear as modules land). */
  readonly generated: Readonly<Record<string, unknown>>;
  /** Functions the server's loaded library registers (a spec can be generated before its Lua exists). */
  readonly loaded: ReadonlySet<string>;
}

/** One line of the results table. `value` undefined means the case could not run (see note). */
export interface Row {
  readonly case: string;
  readonly measurement: string;
  readonly value: number | undefined;
  readonly unit: string;
  readonly ratio?: { readonly value: number; readonly of: string };
  readonly note?: string;
  /** Per-round values behind a median, for the JSON file. */
  readonly rounds?: readonly number[];
}

export interface Case {
  readonly name: string;
  run(ctx: Context): Promise<Row[]>;
}

/** A generated export by name, when it exists; the caller states the shape it expects. */
export function optionalExport<T>(ctx: Context, name: string): T | undefined {
  const value = ctx.generated[name];
  return typeof value === 'function' ? (value as T) : undefined;
}

/** The Lua function behind a wrapper name: suspendExecution → ff_suspend_execution. */
export function functionOf(wrapperName: string): string {
  return `ff_${wrapperName.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}`;
}

/** A wrapper that can run now: generated, and its function registered on the server. */
export function optionalWrapper<T>(ctx: Context, name: string): T | undefined {
  return ctx.loaded.has(functionOf(name)) ? optionalExport<T>(ctx, name) : undefined;
}

/** Why a wrapper cannot run yet, or undefined when it can. */
export function whyUnavailable(ctx: Context, name: string): string | undefined {
  if (!optionalExport(ctx, name)) return `generated/ has no ${name}`;
  if (!ctx.loaded.has(functionOf(name))) return `${functionOf(name)} is not in the library`;
  return undefined;
}

export function unavailable(caseName: string, measurement: string, reasons: readonly string[]): Row {
  return { case: caseName, measurement, value: undefined, unit: '', note: `not available yet: ${reasons.join('; ')}` };
}

/** Names of the functions registered by the loaded `flowfabric` library (FUNCTION LIST). */
export async function loadedFunctions(redis: Redis): Promise<Set<string>> {
  const libraries = (await redis.call('FUNCTION', 'LIST', 'LIBRARYNAME', 'flowfabric')) as unknown[][];
  const names = new Set<string>();
  for (const library of libraries) {
    const functions = library[library.indexOf('functions') + 1];
    if (!Array.isArray(functions)) continue;
    for (const fn of functions as unknown[][]) names.add(String(fn[fn.indexOf('name') + 1]));
  }
  return names;
}

/** A new execution id on a random one of the 256 flow partitions, as real traffic spreads. */
export function randomExecutionId(): ExecutionId {
  return parseExecutionId(`${hashTag('fp', Math.floor(Math.random() * 256))}:${randomUUID()}`);
}

let laneCounter = 0;
export function benchLane(ctx: Context, label: string): LaneId {
  laneCounter += 1;
  return parseLaneId(`bench-${ctx.runId}-${label}-${laneCounter}`);
}

/** Server CPU time so far (used_cpu_sys + used_cpu_user from INFO cpu), in seconds. */
export async function serverCpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info);
    if (!match) throw new Error(`INFO cpu has no ${name}`);
    return Number(match[1]);
  };
  return field('used_cpu_sys') + field('used_cpu_user');
}

/** The message of anything thrown, for a row's note. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
