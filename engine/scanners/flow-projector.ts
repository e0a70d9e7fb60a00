// flow_projector (engine.md §2.13): writes each flow's observability summary from a sample
// of at most 50 members, and drops finished or deleted flows from the partition's index.
import { ExecKeys, FlowKeys, PartitionKeys } from '../../generated/keys.js';
import { deriveFlowState } from '../../operations/flows.js';
import { sendCommand } from '../../runtime/classify.js';
import { parseExecutionId, parseFlowId } from '../../runtime/ids.js';
import { hashTag } from '../../runtime/partition.js';
import { replyText } from '../../runtime/reply.js';
import type { Scanner, ScanContext } from '../runner.js';
import { sscanAll } from '../scan.js';

const SAMPLE = 50;
const COUNTED = ['completed', 'failed', 'cancelled', 'expired', 'skipped', 'active', 'suspended', 'waiting', 'delayed', 'rate_limited', 'waiting_children'];
const TERMINAL = new Set(['completed', 'failed', 'cancelled', 'expired', 'skipped']);

export function flowProjectorScanner(): Scanner {
  return {
    name: 'flow_projector',
    family: 'flow',
    async scanPartition(partition, ctx) {
      const index = PartitionKeys.forPartition(partition).flowIndex();
      for await (const flows of sscanAll(ctx, index)) {
        for (const flow of flows) {
          try {
            await project(ctx, partition, index, flow);
          } catch (error) {
            ctx.failed(error);
          }
        }
      }
    },
  };
}

async function project(ctx: ScanContext, partition: number, index: string, flow: string): Promise<void> {
  const keys = new FlowKeys(hashTag('fp', partition), parseFlowId(flow));
  const send = (name: string, args: (string | number)[]) => sendCommand(ctx.client.transport, name, args);
  if (Number(await send('EXISTS', [keys.core()])) === 0) {
    await send('SREM', [index, flow]);
    return;
  }
  const total = Number(await send('SCARD', [keys.members()]));
  if (!(total > 0)) return;
  const sample = await send('SRANDMEMBER', [keys.members(), SAMPLE]);
  const states: string[] = [];
  for (const raw of Array.isArray(sample) ? sample : []) {
    const state = replyText(await send('HGET', [new ExecKeys(parseExecutionId(replyText(raw) ?? '')).core(), 'public_state']));
    states.push(state ?? 'unknown');
  }
  if (states.length === 0) return;
  const counts = Object.fromEntries(COUNTED.map((s) => [s, states.filter((x) => x === s).length]));
  const derived = deriveFlowState(states.filter((s) => s !== 'unknown'));
  await send('HSET', [
    keys.summary(),
    'total_members', total, 'sampled_members', states.length,
    'members_completed', counts.completed!, 'members_failed', counts.failed!, 'members_cancelled', counts.cancelled!,
    'members_expired', counts.expired!, 'members_skipped', counts.skipped!, 'members_active', counts.active!,
    'members_suspended', counts.suspended!, 'members_waiting', counts.waiting!, 'members_delayed', counts.delayed!,
    'members_rate_limited', counts.rate_limited!, 'members_waiting_children', counts.waiting_children!,
    'public_flow_state', derived, 'last_summary_update_at', ctx.now(),
  ]);
  ctx.processed();
  if (states.length === total && states.every((s) => TERMINAL.has(s))) await send('SREM', [index, flow]);
}
