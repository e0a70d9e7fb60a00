// The handler's AbortSignal is made when the handler first asks for it (issue 16: none per
// job otherwise): a handler that looks only after it was stopped finds it already aborted,
// with the reason; one that listened before sees it fire once, with the same reason.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { submitExecution, waitForOutcome } from '../operations/executions.js';
import { AttemptTimeoutError, Worker, type Task, type WorkerOptions } from '../worker/index.js';
import { useServer } from './support/client.js';
import { uniqueLane } from './support/ids.js';

describe('Task.signal', () => {
  const { client } = useServer();
  const open: Worker[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((w) => w.close({ timeoutMs: 1000 })));
  });

  function worker(options: Omit<WorkerOptions, 'client'>): Worker {
    const w = new Worker({ client, housekeepingIntervalMs: 100, idleBackoff: { minMs: 10, maxMs: 100 }, installWaitpointSecrets: false, ...options });
    open.push(w);
    return w;
  }

  for (const fast of [false, true]) {
    it(`is already aborted, with the timeout as its reason, when first read after the attempt timed out${fast ? ' (fast path)' : ''}`, async () => {
      const lane = uniqueLane();
      const { executionId } = await submitExecution(client, { kind: 'slow', lane });
      let seen: { aborted: boolean; reason: unknown; same: boolean } | undefined;
      const w = worker({
        lanes: lane,
        ...(fast ? { claimPath: 'fast' as const } : {}),
        attemptTimeoutMs: 150,
        handler: async (task: Task) => {
          await sleep(400);
          seen = { aborted: task.signal.aborted, reason: task.signal.reason, same: task.signal === task.signal };
          return 'late';
        },
      });
      await w.start();
      await waitForOutcome(client, executionId, { timeoutMs: 10_000 });
      for (let i = 0; i < 100 && !seen; i++) await sleep(20);
      expect(seen).toMatchObject({ aborted: true, same: true });
      expect(seen!.reason).toBeInstanceOf(AttemptTimeoutError);
    });
  }

  it('fires once for a handler that listened before the timeout, with the timeout as its reason', async () => {
    const lane = uniqueLane();
    const { executionId } = await submitExecution(client, { kind: 'slow', lane });
    const reasons: unknown[] = [];
    const w = worker({
      lanes: lane,
      attemptTimeoutMs: 150,
      handler: async (task: Task) => {
        expect(task.signal.aborted).toBe(false);
        task.signal.addEventListener('abort', () => reasons.push(task.signal.reason));
        await sleep(400);
        return 'late';
      },
    });
    await w.start();
    await waitForOutcome(client, executionId, { timeoutMs: 10_000 });
    for (let i = 0; i < 100 && reasons.length === 0; i++) await sleep(20);
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toBeInstanceOf(AttemptTimeoutError);
  });
});
