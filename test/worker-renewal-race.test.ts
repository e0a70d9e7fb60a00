// A renewal that crosses the task's own complete on the wire is refused by the server (the
// attempt already ended) and must not count as a lost lease or abort anything: with renewals
// every few milliseconds and many short handlers, such crossings happen on most runs.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { submitExecution, waitForOutcome } from '../operations/executions.js';
import type { ExecutionId } from '../runtime/ids.js';
import { Worker } from '../worker/index.js';
import { useServer } from './support/client.js';
import { uniqueLane } from './support/ids.js';

describe('Worker renewal racing the complete', () => {
  const { client } = useServer();
  const open: Worker[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((w) => w.close({ timeoutMs: 1000 })));
  });

  it('a renewal refused after the attempt completed is not a lost lease', async () => {
    const lane = uniqueLane();
    const ids: ExecutionId[] = [];
    for (let i = 0; i < 150; i++) ids.push((await submitExecution(client, { lane, kind: 'race', input: { i } })).executionId);
    const aborted: string[] = [];
    const w = new Worker({
      client,
      lanes: lane,
      concurrency: 8,
      renewEveryMs: 1,
      installWaitpointSecrets: false,
      idleBackoff: { minMs: 10, maxMs: 50 },
      handler: async (task) => {
        task.signal.addEventListener('abort', () => aborted.push(task.executionId));
        await sleep(2 + (ids.indexOf(task.executionId) % 5));
        return 'done';
      },
    });
    open.push(w);
    await w.start();
    const views = await Promise.all(ids.map((id) => waitForOutcome(client, id, { timeoutMs: 20_000 })));
    await w.close();
    expect(views.every((v) => v.publicState === 'completed' && v.attempts === 1)).toBe(true);
    expect(w.counters.renewals).toBeGreaterThan(0);
    expect({ leaseLost: w.counters.leaseLost, completed: w.counters.completed, aborted }).toEqual({ leaseLost: 0, completed: 150, aborted: [] });
  });
});
