// Helpers for tests aimed at the Lua's own defences: send a generated request with one
// ARGV slot corrupted, and capture keys' contents to show that a refused call wrote nothing.
import type { Redis } from 'ioredis';
import type { FcallRequest } from '../../runtime/transport.js';

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Sends `request` with FCALL after replacing ARGV slots (0-based): a string replaces the
 * slot, `null` drops it and every slot after it (a shorter ARGV).
 */
export function fcallPatched(redis: Redis, request: FcallRequest, patch: { readonly [slot: number]: string | null | undefined } = {}, keys?: readonly string[]): Promise<unknown> {
  let argv = [...request.argv];
  for (const [slot, value] of Object.entries(patch)) {
    if (value === null) argv = argv.slice(0, Number(slot));
  }
  for (const [slot, value] of Object.entries(patch)) {
    if (typeof value === 'string' && Number(slot) < argv.length + 1) argv[Number(slot)] = value;
  }
  const k = keys ?? request.keys;
  return redis.call(request.readOnly ? 'FCALL_RO' : 'FCALL', request.fn, k.length, ...k, ...argv);
}

/** Each key's type, content and absolute expiry (PEXPIRETIME, Redis 7+), to compare before and after a call. */
export async function keyStates(redis: Redis, keys: readonly string[]): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const type = await redis.type(key);
    let content: unknown = null;
    if (type === 'hash') content = await redis.hgetall(key);
    else if (type === 'zset') content = await redis.zrange(key, '0', '-1', 'WITHSCORES');
    else if (type === 'set') content = (await redis.smembers(key)).sort();
    else if (type === 'stream') content = await redis.xrange(key, '-', '+');
    else if (type === 'string') content = await redis.get(key);
    out[key] = { type, content, expireAt: await redis.call('PEXPIRETIME', key) };
  }
  return out;
}
