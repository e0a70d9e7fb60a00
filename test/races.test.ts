// Many workers racing for the same executions: every execution is claimed exactly once,
// through the contract's grant → claim path and through the fast path alike.
import { describe, expect, it } from 'vitest';
import { claimExecution } from '../generated/execution.js';
import { claimNextEligible } from '../generated/fastpath.js';
import { ExecKeys } from '../generated/keys.js';
import { issueClaimGrant } from '../generated/scheduling.js';
import { ScriptError } from '../runtime/errors.js';
import { newAttemptId, newLeaseId, type ExecutionId } from '../runtime/ids.js';
import { useServer } from './support/client.js';
import { newExecutionId, uniqueLane } from './support/ids.js';
import { checkExecutionInvariants } from './support/invariants.js';
import { createWaiting } from './support/lifecycle.js';

const WORKERS = 8;

describe('claim races', () => {
  const { client, redis } = useServer();

  it('8 workers grant-and-claim the same 30 executions: each is claimed once', async () => {
    const laneId = uniqueLane('race');
    const ids: ExecutionId[] = [];
    for (let i = 0; i < 30; i++) ids.push((await createWaiting(client, { laneId, executionId: newExecutionId(21) })).executionId);
    const claims = await Promise.all(
      Array.from({ length: WORKERS }, async (_, w) => {
        const won: ExecutionId[] = [];
        for (const executionId of [...ids].sort(() => Math.random() - 0.5)) {
          const worker = { workerId: `racer-${w}`, workerInstanceId: `racer-${w}-1` };
          try {
            await issueClaimGrant(client, { executionId, laneId, ...worker, grantTtlMs: 2000 });
            await claimExecution(client, { executionId, laneId, ...worker, leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: 30_000 });
            won.push(executionId);
          } catch (error) {
            if (!(error instanceof ScriptError)) throw error;
          }
        }
        return won;
      }),
    );
    const all = claims.flat();
    expect(all.length).toBe(ids.length);
    expect(new Set(all).size).toBe(ids.length);
    for (const id of ids) {
      expect(await redis.hget(new ExecKeys(id).core(), 'current_lease_epoch')).toBe('1');
      expect(await checkExecutionInvariants(redis, id)).toEqual([]);
    }
  });

  it('8 workers drain a lane through the fast path: each execution claimed once', async () => {
    const partition = 22;
    const laneId = uniqueLane('race');
    const ids: ExecutionId[] = [];
    for (let i = 0; i < 40; i++) ids.push((await createWaiting(client, { laneId, executionId: newExecutionId(partition) })).executionId);
    const claims = await Promise.all(
      Array.from({ length: WORKERS }, async (_, w) => {
        const won: ExecutionId[] = [];
        for (;;) {
          const r = await claimNextEligible(client, { workerId: `fast-${w}`, workerInstanceId: `fast-${w}-1`, laneId, partition, leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: 30_000 });
          if (r.status === 'empty') return won;
          won.push(r.executionId);
        }
      }),
    );
    const all = claims.flat();
    expect([...all].sort()).toEqual([...ids].sort());
    for (const id of ids) expect(await checkExecutionInvariants(redis, id)).toEqual([]);
  });
});
