// The engine on a local three-primary cluster: boot loads the library on every primary,
// every scanner covers every partition (on whichever primary owns it) without one
// CROSSSLOT or MOVED error, and the completion listener hears completions from any node.
import { describe, expect, it } from 'vitest';
import { Engine, SCANNER_NAMES } from '../engine/index.js';
import { purgeExecution } from '../generated/engine.js';
import { executionTag, type ExecutionId } from '../runtime/ids.js';
import { clusterSlot } from '../runtime/partition.js';
import { useLocalCluster } from './support/cluster.js';
import { core, sleep } from './support/exec-ops.js';
import { addMember, complete, link, newTestFlow } from './support/flow.js';
import { newExecutionId, uniqueLane } from './support/ids.js';
import { claim, createClaimed, createWaiting } from './support/lifecycle.js';

const env = useLocalCluster();

describe('the engine on a three-primary cluster', () => {
  it('boots, scans every partition of every family without errors, and acts on every primary', async () => {
    const client = env.client();
    const connection = env.connection().redis;
    const engine = new Engine({ client, logSink: () => undefined, completionListener: true, intervals: { dependency_reconciler: 600_000 } });
    await engine.start();
    try {
      const lane = uniqueLane('cluster');
      const partitions = [0, 24, 77, 86, 131, 193, 255];
      const slots = new Set<number>();
      const delayed: ExecutionId[] = [];
      const leased: ExecutionId[] = [];
      for (const partition of partitions) {
        const executionId = newExecutionId(partition);
        slots.add(clusterSlot(executionTag(executionId)));
        delayed.push((await createWaiting(client, { laneId: lane, executionId, delayUntil: Date.now() + 20 })).executionId);
        leased.push((await createClaimed(client, { laneId: lane, executionId: newExecutionId(partition) }, { leaseTtlMs: 20 })).executionId);
      }
      expect(slots.size).toBe(partitions.length);
      await sleep(40);
      for (const name of SCANNER_NAMES) await engine.runOnce(name);
      const errors = engine.stats().scanners.filter((s) => s.errors > 0).map((s) => `${s.name}: ${s.errors}`);
      expect(errors).toEqual([]);
      const read = (executionId: ExecutionId) => core(connection as never, executionId);
      for (const executionId of delayed) expect((await read(executionId)).eligibility_state).toBe('eligible_now');
      for (const executionId of leased) expect((await read(executionId)).ownership_state).toBe('lease_expired_reclaimable');

      // A completion published on one primary releases a child through the listener.
      const flow = await newTestFlow(client);
      const upstream = await addMember(client, flow);
      const child = await addMember(client, flow);
      await link(client, flow, upstream.executionId, child.executionId);
      await complete(client, await claim(client, upstream));
      const deadline = Date.now() + 3000;
      while ((await read(child.executionId)).eligibility_state !== 'eligible_now' && Date.now() < deadline) await sleep(20);
      expect((await read(child.executionId)).eligibility_state).toBe('eligible_now');

      // The purge names the execution's subordinate keys from its tag: same slot, no CROSSSLOT.
      const finished = await createClaimed(client, { laneId: lane, executionId: newExecutionId(131), inputPayload: 'x' });
      await complete(client, finished);
      expect((await purgeExecution(client, { executionId: finished.executionId, laneId: lane, retentionMs: 0 })).status).toBe('purged');
      expect(await read(finished.executionId)).toEqual({});
    } finally {
      await engine.stop();
    }
  }, 60_000);
});
