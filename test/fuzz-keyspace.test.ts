// Fuzz with teeth: every library function is called with malformed ARGV (numeric edge
// texts, non-finite JSON numbers, short and long ARGV, garbage) and with one KEYS slot
// swapped for the same pattern of another context (another lane, worker instance, attempt
// index, waitpoint, signal, edge, or another execution on the same slot). The whole
// keyspace of a dedicated server is snapshotted (SCAN + DUMP) around each call:
// - no Lua runtime error, no `internal_error`;
// - an error reply leaves the keyspace as it was, unless the spec documents that error's
//   write (`writes_on_error:` next to the function);
// - a swapped-in foreign key is never written, whatever the reply.
// FF_FUZZ_RUNS raises the runs per function (default 12); the default run stays short.
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSpec } from '../generator/load.js';
import { findKey, type FieldSpec, type FunctionSpec, type KeyRef, type ScalarType } from '../generator/model.js';
import { rotateWaitpointHmacSecret } from '../generated/suspension.js';
import { FlowFabricClient } from '../runtime/client.js';
import { executionPartition, type BudgetId, type ExecutionId, type FlowId, type QuotaPolicyId } from '../runtime/ids.js';
import { startServer, type RunningServer } from '../tools/local-server.js';
import { flowIdOn, newExecutionId, uniqueLane } from './support/ids.js';
import { claim, createWaiting } from './support/lifecycle.js';
import { tagOf } from './support/fuzz-tags.js';

const specDir = `${import.meta.dirname}/../spec`;
const { spec } = loadSpec(specDir);
const functions = spec.modules.flatMap((m) => m.functions);
const RUNS = Number(process.env.FF_FUZZ_RUNS ?? 12);
const codes = new Set(spec.errors.map((e) => e.code));

let server: RunningServer;
let redis: Redis;
let client: FlowFabricClient;

beforeAll(async () => {
  server = await startServer();
  redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
  client = FlowFabricClient.fromIoredis(redis);
  await client.ensureLibrary({ retryDelayMs: 50 });
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

/** The ids of one call's true context: a real execution (claimed or not) and its partition. */
interface World {
  readonly executionId: ExecutionId;
  readonly otherExecutionId: ExecutionId;
  readonly laneId: string;
  readonly flowId: FlowId;
  readonly budgetId: BudgetId;
  readonly quotaPolicyId: QuotaPolicyId;
  readonly workerId: string;
  readonly workerInstanceId: string;
  readonly leaseId: string;
  readonly leaseEpoch: string;
  readonly attemptId: string;
  readonly waitpointId: string;
  readonly signalId: string;
  readonly edgeId: string;
}

/** The world of a call to fn: ff_create_execution gets an execution not yet created. */
async function makeWorld(claimed: boolean, fn?: FunctionSpec): Promise<World> {
  // The dedicated server holds only this call's world: FLUSHALL keeps snapshots small (the
  // function library survives it).
  await redis.flushall();
  const partition = Math.floor(Math.random() * 256);
  const fresh = fn?.name === 'ff_create_execution';
  const created = fresh ? { executionId: newExecutionId(partition), laneId: uniqueLane() } : await createWaiting(client, { executionId: newExecutionId(partition) });
  const lease = claimed && !fresh ? await claim(client, created) : undefined;
  // A waitpoint key ring, so suspension calls get as far as their writes.
  await rotateWaitpointHmacSecret(client, { partition, newKid: 'k1', newSecretHex: 'ab'.repeat(32), graceMs: 0 });
  return {
    executionId: created.executionId,
    otherExecutionId: newExecutionId(partition),
    laneId: created.laneId,
    flowId: flowIdOn(executionPartition(created.executionId)),
    budgetId: randomUUID() as BudgetId,
    quotaPolicyId: randomUUID() as QuotaPolicyId,
    workerId: 'worker-a',
    workerInstanceId: lease?.workerInstanceId ?? 'worker-a-1',
    leaseId: lease?.lease.leaseId ?? randomUUID(),
    leaseEpoch: String(lease?.lease.leaseEpoch ?? 1),
    attemptId: lease?.lease.attemptId ?? randomUUID(),
    waitpointId: randomUUID(),
    signalId: randomUUID(),
    edgeId: randomUUID(),
  };
}

// ---------------------------------------------------------------------------
// ARGV
// ---------------------------------------------------------------------------

/** A well-formed value of a slot in this world (what a correct caller would send). */
function plausible(field: FieldSpec, world: World): string {
  if (field.type === 'constant') return field.value ?? '';
  const byName: Record<string, string> = {
    execution_id: world.executionId, lane_id: world.laneId, flow_id: world.flowId, budget_id: world.budgetId,
    quota_policy_id: world.quotaPolicyId, worker_id: world.workerId, worker_instance_id: world.workerInstanceId,
    lease_id: world.leaseId, lease_epoch: world.leaseEpoch, attempt_id: world.attemptId, attempt_index: '0',
    waitpoint_id: world.waitpointId, signal_id: world.signalId, edge_id: world.edgeId,
  };
  const known = byName[field.name];
  if (known !== undefined) return known;
  switch (field.type) {
    case 'timestampMs': return String(Date.now() + 60_000);
    case 'durationMs': return String(field.min !== undefined && field.min > 1 ? field.min : 30_000);
    case 'integer': case 'attemptIndex': case 'epoch': return String(field.min ?? (field.default !== undefined ? field.default : 1));
    case 'flag': return '';
    case 'json': return '{}';
    case 'enum': return field.values?.[0] ?? '';
    case 'capabilities': return '';
    default: return field.optional ? '' : randomUUID();
  }
}

const NUMERIC_EDGES = ['-0', '+1', '1e3', '0x10', ' 1', '1 ', '01', '00', '1.0', '1.5', '9223372036854775808', '-9223372036854775809', '9007199254740993', 'nan', 'inf', '-inf', '1e400', '', 'x'];
const JSON_EDGES = ['{"a":1e999}', '[1e999]', '-1e999', '{"max_retries":1e400}', '{"routing_requirements":{"required_capabilities":["x"]},"n":1e999}', '{', 'null', '"x"', '[]', '{"a":{"b":[1,2,{"c":-1e309}]}}'];
const GARBAGE = ['', ' ', 'x', '-1', '{', '}{', '\u0000', 'é', ':', 'null'];

function edgeValue(type: ScalarType | 'constant' | 'list' | 'group'): fc.Arbitrary<string> {
  switch (type) {
    case 'integer': case 'timestampMs': case 'durationMs': case 'attemptIndex': case 'epoch':
      return fc.constantFrom(...NUMERIC_EDGES);
    case 'json': return fc.constantFrom(...JSON_EDGES);
    default: return fc.oneof(fc.constantFrom(...GARBAGE), fc.string({ maxLength: 8 }));
  }
}

const INTEGER_SLOTS = new Set(['integer', 'timestampMs', 'durationMs', 'attemptIndex', 'epoch']);
const isRepeated = (field: FieldSpec) => field.type === 'list' || field.type === 'group';

/** The edge texts for a slot of this type. */
function edgePool(field: FieldSpec): readonly string[] {
  return field.type === 'json' ? JSON_EDGES : INTEGER_SLOTS.has(field.type) ? NUMERIC_EDGES : GARBAGE;
}

/** The fields of one element of a list or group: a group's members, or the list's element type. */
function elementMembers(field: FieldSpec): FieldSpec[] {
  return field.type === 'group' ? [...field.fields!] : [{ ...field, type: field.of! }];
}

function slotValues(field: FieldSpec, world: World): fc.Arbitrary<string[]> {
  if (field.type === 'list' || field.type === 'group') {
    const members = elementMembers(field);
    // Columns (the spec's groups are columns): n values of each member in turn.
    const column = (m: FieldSpec, n: number) => fc.array(fc.oneof(fc.constant(plausible(m, world)), edgeValue(m.type)), { minLength: n, maxLength: n });
    return fc.integer({ min: 0, max: 2 }).chain((n) =>
      fc.tuple(
        fc.oneof(fc.constant(String(n)), fc.constantFrom(...NUMERIC_EDGES)),
        fc.tuple(...members.map((m) => column(m, n))),
      ).map(([count, columns]) => (field.count === 'none' ? columns.flat() : [count, ...columns.flat()])),
    );
  }
  return fc.oneof({ weight: 2, arbitrary: fc.constant(plausible(field, world)) }, { weight: 3, arbitrary: edgeValue(field.type) }).map((v) => [v]);
}

/**
 * Mostly a correct ARGV with one slot replaced by an edge value (so the call gets as far as
 * its writes), sometimes every slot at random; then as sent, short by 1..3 or long by 2.
 */
function argvArbitrary(fn: FunctionSpec, world: World): fc.Arbitrary<string[]> {
  const plausibleSlots = fn.argv.map((f) => (f.type === 'list' || f.type === 'group' ? (f.count === 'none' ? [] : ['0']) : [plausible(f, world)]));
  const oneBad = fn.argv.length === 0
    ? fc.constant<string[][]>([])
    : fc.integer({ min: 0, max: fn.argv.length - 1 }).chain((i) =>
      slotValues(fn.argv[i]!, world).chain((values) =>
        fc.oneof(fc.constant(values), edgeValue(fn.argv[i]!.type).map((v) => [v])).map((bad) => plausibleSlots.map((slot, j) => (j === i ? bad : slot)))));
  const allRandom = fc.tuple(...fn.argv.map((f) => slotValues(f, world)));
  const shapes = fc.oneof(fc.constant(0), fc.constant(0), fc.constant(0), fc.integer({ min: 1, max: 3 }), fc.constant(-1));
  return fc.tuple(fc.oneof({ weight: 4, arbitrary: oneBad }, { weight: 1, arbitrary: allRandom }), shapes).map(([slots, cut]) => {
    const argv = slots.flat();
    if (cut > 0) return argv.slice(0, Math.max(0, argv.length - cut)); // short
    if (cut < 0) return [...argv, 'extra', '-0']; // long
    return argv;
  });
}

function plausibleArgv(fn: FunctionSpec, world: World): string[] {
  return fn.argv.flatMap((f) => (f.type === 'list' || f.type === 'group' ? (f.count === 'none' ? [] : ['0']) : [plausible(f, world)]));
}

// ---------------------------------------------------------------------------
// KEYS
// ---------------------------------------------------------------------------

/** A placeholder's value in the world; `foreign` gives the same kind of value of another context. */
function placeholderValue(fn: FunctionSpec, world: World, name: string, foreign: boolean): string {
  const field = [...fn.params, ...fn.argv].find((f) => f.name === name);
  const type = field?.type ?? spec.keys.params[name];
  if (name === 'execution_id' || type === 'executionId') {
    if (foreign) return world.otherExecutionId;
    return name.includes('upstream') ? world.otherExecutionId : world.executionId;
  }
  if (type === 'laneId') return foreign ? uniqueLane('other') : world.laneId;
  if (type === 'flowId') return foreign ? flowIdOn(executionPartition(world.executionId)) : world.flowId;
  if (type === 'budgetId') return foreign ? randomUUID() : world.budgetId;
  if (type === 'quotaPolicyId') return foreign ? randomUUID() : world.quotaPolicyId;
  if (type === 'attemptIndex' || type === 'integer') return foreign ? '7' : '0';
  if (type === 'waitpointId') return foreign ? randomUUID() : world.waitpointId;
  if (type === 'signalId') return foreign ? randomUUID() : world.signalId;
  if (type === 'edgeId') return foreign ? randomUUID() : world.edgeId;
  if (name.includes('worker_instance')) return foreign ? 'worker-z-9' : world.workerInstanceId;
  return foreign ? `other-${name}` : 'w1';
}

/** The KEYS of a call in this world; `swap` names one slot index and the placeholder to make foreign there. */
function buildKeys(fn: FunctionSpec, world: World, swap?: { slot: number; placeholder: string }): string[] {
  const tag = tagOf(fn, world);
  const one = (ref: KeyRef, index: number): string => {
    const { context, key } = findKey(spec, ref.context, ref.key)!;
    return key.pattern.replace(/\{([a-z_]+)\}/g, (_, placeholder: string) => {
      if (placeholder === 'tag') return tag;
      const bound = context.params.includes(placeholder) ? (ref.contextBind[placeholder] ?? placeholder) : (ref.args?.[key.params.indexOf(placeholder)] ?? placeholder);
      return placeholderValue(fn, world, bound, swap?.slot === index && swap.placeholder === placeholder);
    });
  };
  return fn.keys.flatMap((ref, index) => (ref.each ? [] : [ref.when && ref.otherwise ? one(ref.otherwise, index) : one(ref, index)]));
}

/** Every (slot, placeholder) of a function whose key names a context other than the tag. */
function swappable(fn: FunctionSpec): { slot: number; placeholder: string; name: string }[] {
  const found: { slot: number; placeholder: string; name: string }[] = [];
  fn.keys.forEach((ref, slot) => {
    if (ref.each) return;
    const used = ref.when && ref.otherwise ? ref.otherwise : ref;
    const { key } = findKey(spec, used.context, used.key)!;
    for (const match of key.pattern.matchAll(/\{([a-z_]+)\}/g)) {
      // A quota window's dimension is the caller's choice, not a context the call belongs to.
      if (match[1] !== 'tag' && match[1] !== 'dimension') found.push({ slot, placeholder: match[1]!, name: ref.name });
    }
  });
  return found;
}

// ---------------------------------------------------------------------------
// Keyspace snapshots
// ---------------------------------------------------------------------------

type Snapshot = Map<string, string>;

/** Every key of the dedicated server with its DUMP (and whether it has a TTL). */
async function snapshot(): Promise<Snapshot> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  const pipeline = redis.pipeline();
  for (const key of keys) pipeline.dumpBuffer(key).pttl(key);
  const results = (await pipeline.exec()) ?? [];
  const shot: Snapshot = new Map();
  keys.forEach((key, i) => {
    const dump = results[2 * i]?.[1] as Buffer | null;
    const ttl = results[2 * i + 1]?.[1] as number;
    if (dump) shot.set(key, `${dump.toString('hex')}|${ttl >= 0 ? 'ttl' : 'none'}`);
  });
  return shot;
}

function changedKeys(before: Snapshot, after: Snapshot): string[] {
  const names = new Set([...before.keys(), ...after.keys()]);
  return [...names].filter((k) => before.get(k) !== after.get(k)).sort();
}

interface Outcome {
  readonly reply: unknown;
  readonly changed: string[];
}

async function call(fn: FunctionSpec, keys: string[], argv: string[]): Promise<Outcome> {
  const before = await snapshot();
  let reply: unknown;
  try {
    reply = await redis.call(fn.readonly ? 'FCALL_RO' : 'FCALL', fn.name, keys.length, ...keys, ...argv);
  } catch (error) {
    throw new Error(`${fn.name} raised a server error for KEYS ${JSON.stringify(keys)} ARGV ${JSON.stringify(argv)}: ${(error as Error).message}`);
  }
  return { reply, changed: changedKeys(before, await snapshot()) };
}

/** The checks every fuzzed call must pass. */
function expectSafe(fn: FunctionSpec, keys: string[], argv: string[], { reply, changed }: Outcome): void {
  const what = `${fn.name} KEYS ${JSON.stringify(keys)} ARGV ${JSON.stringify(argv)} → ${JSON.stringify(reply)}`;
  if (fn.envelope === 'bare') return;
  expect(Array.isArray(reply), what).toBe(true);
  const [head, status] = reply as unknown[];
  const failed = fn.envelope === 'standard' ? head === 0 : false;
  if (!failed) return;
  expect(status, what).not.toBe('internal_error');
  const code = String(status).split(':')[0]!;
  expect(codes.has(code), `unknown code in ${what}`).toBe(true);
  if (!fn.writesOnError.includes(code)) {
    expect(changed, `error reply changed the keyspace: ${what}`).toEqual([]);
  }
}

/** Values sampled from a list: all of them in the full run (FF_FUZZ_FULL=1), else `count` at random. */
function sample<T>(values: readonly T[], count: number): T[] {
  if (process.env.FF_FUZZ_FULL) return [...values];
  return fc.sample(fc.shuffledSubarray([...values], { minLength: Math.min(count, values.length), maxLength: Math.min(count, values.length) }), 1)[0]!;
}

describe('malformed ARGV: structured refusal, and an error reply writes nothing', () => {
  // Deterministic classes: a correct ARGV with one slot set to each edge text of its kind,
  // and the correct ARGV cut short; each against a claimed or unclaimed execution.
  it.each(functions.map((f) => [f.name, f] as const))('%s: one bad slot, short ARGV', async (_name, fn) => {
    const cases: { slot?: number; value?: string; cut?: number }[] = [];
    fn.argv.forEach((field, slot) => {
      if (field.type === 'list' || field.type === 'group') return;
      const pool = field.type === 'json' ? JSON_EDGES : ['integer', 'timestampMs', 'durationMs', 'attemptIndex', 'epoch'].includes(field.type) ? NUMERIC_EDGES : GARBAGE;
      for (const value of sample(pool, 3)) cases.push({ slot, value });
    });
    const width = fn.argv.filter((f) => f.type !== 'list' && f.type !== 'group').length;
    for (const cut of sample(Array.from({ length: width }, (_, i) => i + 1), 2)) cases.push({ cut });
    for (const c of cases) {
      const world = await makeWorld(Math.random() < 0.5, fn);
      const keys = buildKeys(fn, world);
      let argv = plausibleArgv(fn, world);
      if (c.slot !== undefined) argv = argv.map((v, i) => (i === c.slot ? c.value! : v));
      if (c.cut !== undefined) argv = argv.slice(0, argv.length - c.cut);
      expectSafe(fn, keys, argv, await call(fn, keys, argv));
    }
  });

  // Past a list or group: its elements' members and the slots after it, whose places the guard
  // counts from the list's length. Two well-formed elements, then one member of the second
  // element or one tail slot set to each edge text of its kind (a number the server would not
  // take is refused with invalid_input), a count that disagrees with the columns, a short ARGV.
  const repeating = functions.filter((f) => f.argv.some(isRepeated));
  it.each(repeating.map((f) => [f.name, f] as const))('%s: bad element or tail slot after its list', async (_name, fn) => {
    const at = fn.argv.findIndex(isRepeated);
    const list = fn.argv[at]!;
    const members = elementMembers(list);
    const tail = fn.argv.slice(at + 1);
    const cases: { label: string; member?: number; tailSlot?: number; value?: string; count?: string; cut?: number }[] = [];
    members.forEach((m, member) => {
      for (const value of sample(edgePool(m), 3)) cases.push({ label: `${list.name}[2].${m.name}`, member, value });
    });
    tail.forEach((t, tailSlot) => {
      for (const value of sample(edgePool(t), 3)) cases.push({ label: t.name, tailSlot, value });
    });
    if (list.count !== 'none') cases.push({ label: 'count too high', count: '3' }, { label: 'count too low', count: '1' }, { label: 'short', cut: 1 });
    for (const c of cases) {
      const world = await makeWorld(Math.random() < 0.5, fn);
      const keys = buildKeys(fn, world);
      const rows = [0, 1].map(() => members.map((m) => plausible(m, world)));
      if (c.member !== undefined) rows[1]![c.member] = c.value!;
      const elements = list.type === 'group' && list.layout === 'rows' ? rows.flat() : members.flatMap((_, m) => rows.map((row) => row[m]!));
      const after = tail.map((t, i) => (i === c.tailSlot ? c.value! : plausible(t, world)));
      const before = fn.argv.slice(0, at).map((f) => plausible(f, world));
      let argv = [...before, ...(list.count === 'none' ? [] : [c.count ?? '2']), ...elements, ...after];
      if (c.cut !== undefined) argv = argv.slice(0, argv.length - c.cut);
      const outcome = await call(fn, keys, argv);
      expectSafe(fn, keys, argv, outcome);
      const field = c.member !== undefined ? members[c.member]! : c.tailSlot !== undefined ? tail[c.tailSlot]! : undefined;
      // The last tail slot may be missing only past argv_min (the list counted as its count slot).
      const lastRequired = fn.argvMin === undefined || fn.argvMin >= at + 1 + tail.length;
      const refused = field ? INTEGER_SLOTS.has(field.type) && c.value !== '' : c.count !== undefined || (c.cut !== undefined && lastRequired);
      if (refused) expect((outcome.reply as unknown[]).slice(0, 2), `${fn.name} ${c.label} = ${JSON.stringify(c.value ?? c.count ?? c.cut)}: ${JSON.stringify(outcome.reply)}`).toEqual([0, 'invalid_input']);
    }
  });

  // Random mixes on top (counts, lists, several bad slots, long ARGV).
  it.each(functions.map((f) => [f.name, f] as const))('%s: random ARGV', async (_name, fn) => {
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.integer({ min: 0, max: 2 ** 31 }), async (claimed, seed) => {
        const world = await makeWorld(claimed, fn);
        const keys = buildKeys(fn, world);
        const argv = fc.sample(argvArbitrary(fn, world), { numRuns: 1, seed })[0]!;
        expectSafe(fn, keys, argv, await call(fn, keys, argv));
      }),
      { numRuns: RUNS },
    );
  });
});

describe('foreign KEYS: another context in one slot is refused or left untouched', () => {
  const cases = functions.flatMap((fn) => swappable(fn).map((s) => [`${fn.name} ${s.name}[${s.placeholder}]`, fn, s] as const));

  it.each(cases)('%s', async (_label, fn, swap) => {
    for (const claimed of [true, false]) {
      const world = await makeWorld(claimed, fn);
      const keys = buildKeys(fn, world, swap);
      const foreignKey = keys[swap.slot]!;
      const argv = plausibleArgv(fn, world);
      const outcome = await call(fn, keys, argv);
      expectSafe(fn, keys, argv, outcome);
      expect(outcome.changed, `${fn.name} wrote the foreign ${swap.name} ${foreignKey}: ${JSON.stringify(outcome.reply)}`).not.toContain(foreignKey);
    }
  });
});
