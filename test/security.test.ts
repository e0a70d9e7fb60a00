// Security properties: secrets never leave the server in any reply or error, and a signal
// cannot be steered to an execution on another partition by crafting ids.
import { describe, expect, it } from 'vitest';
import { buildDeliverSignal } from '../generated/signal.js';
import { listWaitpointHmacKids, rotateWaitpointHmacSecret } from '../generated/suspension.js';
import { ArgumentError, ScriptError } from '../runtime/errors.js';
import { DEFAULT_PARTITION_CONFIG } from '../runtime/partition.js';
import { useServer } from './support/client.js';
import { newExecutionId } from './support/ids.js';
import { createSuspended, privatePartition, signalArgs } from './support/suspension.js';

describe('waitpoint secrets stay on the server', () => {
  const { client } = useServer();

  it('no reply or error of rotation or listing contains a secret', async () => {
    const partition = privatePartition();
    const secret = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
    const other = 'ffeeddccbbaa99887766554433221100';
    const replies: unknown[] = [];
    replies.push(await rotateWaitpointHmacSecret(client, { partition, newKid: 'sec1', newSecretHex: secret, graceMs: 60_000 }));
    replies.push(await rotateWaitpointHmacSecret(client, { partition, newKid: 'sec1', newSecretHex: secret, graceMs: 60_000 }));
    replies.push(await rotateWaitpointHmacSecret(client, { partition, newKid: 'sec1', newSecretHex: other, graceMs: 60_000 }).catch((e: unknown) => e));
    replies.push(await listWaitpointHmacKids(client, { partition }));
    const conflict = replies[2];
    expect(conflict).toBeInstanceOf(ScriptError);
    expect((conflict as ScriptError).code).toBe('rotation_conflict');
    const text = JSON.stringify(replies, (_k, v: unknown) => (v instanceof Error ? { ...v, message: v.message } : v));
    expect(text).not.toContain(secret);
    expect(text).not.toContain(other);
  });

  it('a malformed secret is refused without echoing it', async () => {
    const bad = 'zz-not-hex-secret-zz';
    const error = await rotateWaitpointHmacSecret(client, { partition: privatePartition(), newKid: 'k9', newSecretHex: bad, graceMs: 1000 }).catch((e: unknown) => e);
    expect(error instanceof ScriptError || error instanceof ArgumentError).toBe(true);
    expect(JSON.stringify({ ...(error as object), message: (error as Error).message })).not.toContain(bad);
  });
});

describe('signals cannot cross partitions', () => {
  const { client, redis } = useServer();

  it('an execution id of another partition is refused before the round trip, and by the Lua when sent raw', async () => {
    const s = await createSuspended(client, { timeoutMs: 60_000 }, 30);
    const foreign = newExecutionId(31);
    // The wrapper builds every key from the execution id, so a crafted id moves all keys
    // together; it cannot point the waitpoint of one partition at an execution of another.
    const honest = buildDeliverSignal(signalArgs(s, 'go'), DEFAULT_PARTITION_CONFIG);
    const crafted = buildDeliverSignal(signalArgs({ ...s, executionId: foreign }, 'go'), DEFAULT_PARTITION_CONFIG);
    expect(crafted.keys.every((k) => k.includes('{fp:31}'))).toBe(true);
    // Raw: the honest keys (partition 30) with the foreign execution id in ARGV.
    const argv = [...honest.argv];
    argv[argv.indexOf(s.executionId)] = foreign;
    const reply = (await redis.call('FCALL', honest.fn, honest.keys.length, ...honest.keys, ...argv)) as unknown[];
    expect(reply[0]).toBe(0);
    expect(['invalid_input', 'invalid_token', 'execution_not_found', 'target_not_signalable']).toContain(reply[1]);
    expect(await redis.hget(`ff:exec:{fp:30}:${s.executionId}:core`, 'public_state')).toBe('suspended');
  });
});
