// Malformed and random ARGV sent straight to every library function (bypassing the
// wrappers' validation), with well-formed KEYS for a real execution. The reply must always
// be the engine's structured reply — never a Lua runtime error and never `internal_error`
// — and the execution's stored state must stay consistent afterwards.
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadSpec } from '../generator/load.js';
import { findKey, type FieldSpec, type FunctionSpec, type KeyRef, type ScalarType } from '../generator/model.js';
import { executionPartition, type ExecutionId } from '../runtime/ids.js';
import type { BudgetId, FlowId, QuotaPolicyId } from '../runtime/ids.js';
import { useServer } from './support/client.js';
import { flowIdOn, newExecutionId } from './support/ids.js';
import { checkExecutionInvariants } from './support/invariants.js';
import { claim, createWaiting } from './support/lifecycle.js';
import { tagOf } from './support/fuzz-tags.js';

const { spec } = loadSpec(`${import.meta.dirname}/../spec`);
const functions = spec.modules.flatMap((m) => m.functions);
const RUNS = Number(process.env.FF_FUZZ_RUNS ?? 12);

interface World {
  readonly executionId: ExecutionId;
  readonly laneId: string;
  readonly flowId: FlowId;
  readonly budgetId: BudgetId;
  readonly quotaPolicyId: QuotaPolicyId;
  readonly upstreamId: ExecutionId;
}

/** A plausible value of a type, in this world. */
function validValue(type: ScalarType | 'constant' | 'list' | 'group', world: World, values?: readonly string[]): fc.Arbitrary<string> {
  switch (type) {
    case 'executionId': return fc.constantFrom(world.executionId, world.upstreamId);
    case 'laneId': return fc.constant(world.laneId);
    case 'flowId': return fc.constant(world.flowId);
    case 'budgetId': return fc.constant(world.budgetId);
    case 'quotaPolicyId': return fc.constant(world.quotaPolicyId);
    case 'integer': case 'timestampMs': case 'durationMs': case 'attemptIndex': case 'epoch':
      return fc.oneof(fc.integer({ min: -3, max: 100_000 }), fc.constantFrom(Date.now(), Date.now() + 60_000, 0, 1)).map(String);
    case 'flag': return fc.constantFrom('1', '', '0');
    case 'json': return fc.constantFrom('{}', '[]', '{"a":1}', 'null', '"x"', '{"routing_requirements":{"required_capabilities":["x"]}}');
    case 'enum': return fc.constantFrom(...(values ?? ['x']));
    case 'capabilities': return fc.constantFrom('', 'gpu', 'a,b', ',,');
    default: return fc.oneof(fc.uuid(), fc.constantFrom('w1', 'k1', 'default', ''));
  }
}

const GARBAGE = ['', ' ', 'x', '-1', '1.5', '-0', 'nan', 'inf', '-inf', '1e400', '0x10', '99999999999999999999', '{', '[1,', '{"a":', 'null', '\u0000', 'é', ':', '}{'];
const garbage = fc.oneof(fc.constantFrom(...GARBAGE), fc.string({ maxLength: 12 }));

function slotValues(field: FieldSpec, world: World): fc.Arbitrary<string[]> {
  if (field.type === 'constant') return fc.oneof(fc.constant<string[]>([field.value ?? '']), garbage.map((g) => [g]));
  if (field.type === 'list' || field.type === 'group') {
    const width = field.type === 'group' ? field.fields!.length : 1;
    const member = field.type === 'group' ? field.fields![0]! : { ...field, type: field.of! };
    return fc.integer({ min: 0, max: 3 }).chain((n) =>
      fc.tuple(
        fc.oneof(fc.constant(String(n)), garbage),
        fc.array(fc.oneof(validValue(member.type, world, member.values), garbage), { minLength: n * width, maxLength: n * width }),
      ).map(([count, items]) => (field.count === 'none' ? items : [count, ...items])),
    );
  }
  return fc.oneof({ weight: 2, arbitrary: validValue(field.type, world, field.values) }, { weight: 3, arbitrary: garbage }).map((v) => [v]);
}

function argvArbitrary(fn: FunctionSpec, world: World): fc.Arbitrary<string[]> {
  // Sometimes too few or too many ARGV, as a confused caller would send.
  return fc.tuple(fc.tuple(...fn.argv.map((f) => slotValues(f, world))), fc.constantFrom('exact', 'exact', 'exact', 'short', 'long')).map(([slots, shape]) => {
    const argv = slots.flat();
    if (shape === 'short') return argv.slice(0, Math.max(0, argv.length - 1));
    if (shape === 'long') return [...argv, 'extra'];
    return argv;
  });
}

/** Well-formed KEYS for the function, built from the key patterns of spec/keys.yaml. */
function buildKeys(fn: FunctionSpec, world: World): string[] {
  const tag = tagOf(fn, world);
  const valueFor = (name: string): string => {
    const field = [...fn.params, ...fn.argv].find((f) => f.name === name);
    const type = field?.type ?? spec.keys.params[name];
    if (name === 'execution_id' || type === 'executionId') return name.includes('upstream') ? world.upstreamId : world.executionId;
    if (type === 'laneId') return world.laneId;
    if (type === 'flowId') return world.flowId;
    if (type === 'budgetId') return world.budgetId;
    if (type === 'quotaPolicyId') return world.quotaPolicyId;
    if (type === 'attemptIndex' || type === 'integer') return '0';
    if (type === 'keyText' || type === 'string') return 'w1';
    return randomUUID();
  };
  const one = (ref: KeyRef, element?: string): string => {
    const { context, key } = findKey(spec, ref.context, ref.key)!;
    const bound = ref.args ?? key.params;
    return key.pattern.replace(/\{([a-z_]+)\}/g, (_, name: string) => {
      if (name === 'tag') return tag;
      if (context.params.includes(name)) return valueFor(ref.contextBind[name] ?? name);
      const arg = bound[key.params.indexOf(name)] ?? name;
      return element ?? valueFor(arg);
    });
  };
  return fn.keys.flatMap((ref) => (ref.each ? [one(ref, randomUUID())] : [ref.when && ref.otherwise && Math.random() < 0.5 ? one(ref.otherwise) : one(ref)]));
}

describe('every function answers malformed ARGV with a structured reply', () => {
  const { client, redis } = useServer();
  const codes = new Set(spec.errors.map((e) => e.code));

  it.each(functions.map((f) => [f.name, f] as const))('%s', async (_name, fn) => {
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.integer({ min: 0, max: 2 ** 31 }), async (claimed, seed) => {
        const partition = seed % 256;
        const created = await createWaiting(client, { executionId: newExecutionId(partition) });
        if (claimed) await claim(client, created);
        const world: World = {
          executionId: created.executionId,
          laneId: created.laneId,
          flowId: flowIdOn(executionPartition(created.executionId)),
          budgetId: randomUUID() as BudgetId,
          quotaPolicyId: randomUUID() as QuotaPolicyId,
          upstreamId: newExecutionId(partition),
        };
        const keys = buildKeys(fn, world);
        const argv = fc.sample(argvArbitrary(fn, world), { numRuns: 1, seed })[0]!;
        let reply: unknown;
        try {
          reply = await redis.call(fn.readonly ? 'FCALL_RO' : 'FCALL', fn.name, keys.length, ...keys, ...argv);
        } catch (error) {
          throw new Error(`${fn.name} raised a server error for ARGV ${JSON.stringify(argv)}: ${(error as Error).message}`);
        }
        if (fn.envelope === 'bare') return;
        expect(Array.isArray(reply), `${fn.name} reply ${JSON.stringify(reply)}`).toBe(true);
        const [head, status] = reply as unknown[];
        if (head === 0) {
          expect(status, `${fn.name} ARGV ${JSON.stringify(argv)}: ${JSON.stringify(reply)}`).not.toBe('internal_error');
          expect(codes.has(String(status).split(':')[0]!), `unknown code ${String(status)}`).toBe(true);
        } else if (fn.envelope === 'standard') {
          expect(head).toBe(1);
        }
        const violations = await checkExecutionInvariants(redis, world.executionId);
        expect(violations, `${fn.name} ARGV ${JSON.stringify(argv)} → ${JSON.stringify(reply)}`).toEqual([]);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('every function refuses too few KEYS before touching anything', () => {
  const { client, redis } = useServer();

  // The KEYS a function requires: those before the first one its Lua tolerates missing.
  const required = (fn: FunctionSpec) => {
    const first = fn.keys.findIndex((k) => k.optional || k.each);
    return first < 0 ? fn.keys.length : first;
  };

  it.each(functions.filter((f) => required(f) > 0).map((f) => [f.name, f] as const))('%s', async (_name, fn) => {
    const created = await createWaiting(client, { executionId: newExecutionId(5) });
    const world: World = {
      executionId: created.executionId,
      laneId: created.laneId,
      flowId: flowIdOn(5),
      budgetId: randomUUID() as BudgetId,
      quotaPolicyId: randomUUID() as QuotaPolicyId,
      upstreamId: newExecutionId(5),
    };
    const keys = buildKeys(fn, world).slice(0, required(fn) - 1);
    const argv = fc.sample(argvArbitrary(fn, world), { numRuns: 1, seed: 7 })[0]!;
    const before = await redis.hgetall(`ff:exec:{fp:5}:${created.executionId}:core`);
    const reply = await redis.call(fn.readonly ? 'FCALL_RO' : 'FCALL', fn.name, keys.length, ...keys, ...argv);
    expect(reply).toEqual([0, 'invalid_input', expect.stringContaining('KEYS')]);
    expect(await redis.hgetall(`ff:exec:{fp:5}:${created.executionId}:core`)).toEqual(before);
  });
});
