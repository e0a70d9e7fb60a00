// dependency_reconciler (engine.md §2.11): the safety net behind the completion listener.
// For each child waiting on dependencies it resolves every unresolved edge whose upstream
// is terminal (operations/flows resolveEdge, the listener's own step), so completions lost
// while the listener was disconnected, or never published, still release the child.
import { ExecKeys } from '../../generated/keys.js';
import { resolveEdge } from '../../operations/flows.js';
import { parseEdgeId, parseExecutionId, parseFlowId } from '../../runtime/ids.js';
import { laneScanner, type LaneSource } from '../lanes.js';
import type { Scanner } from '../runner.js';
import { drainIndex, hmget, smembers, type IndexScanOptions } from '../scan.js';

export function dependencyReconcilerScanner(options: IndexScanOptions, lanes: LaneSource): Scanner {
  return laneScanner('dependency_reconciler', lanes, async (laneId, keys, ctx) => {
    await drainIndex(ctx, {
      key: keys.laneBlockedDependencies(laneId),
      max: '+inf',
      ...options,
      // Scored by the child's creation time: the lag is how long the oldest child has existed.
      lagBase: ctx.now(),
      async handle(member) {
        const child = new ExecKeys(parseExecutionId(member));
        const [flowText] = await hmget(ctx, child.core(), ['flow_id']);
        if (!flowText) return 'stays';
        const flowId = parseFlowId(flowText);
        let resolved = 0;
        for (const edge of await smembers(ctx, child.depsUnresolved())) {
          const resolution = await resolveEdge(ctx.client, flowId, parseEdgeId(edge));
          if (resolution.result && resolution.result.status !== 'already_resolved') resolved++;
        }
        if (resolved > 0) ctx.log.debug('dependencies resolved by the reconciler', { execution: member, edges: resolved });
        return resolved > 0 ? 'done' : 'stays';
      },
    });
  });
}
