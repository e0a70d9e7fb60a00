// One sweeper per lane at a time (issue 16): the workers of a lane take turns at its sweep,
// as BullMQ's workers take turns at their stalled-job check, so 100 idle workers on one lane
// read its indexes about once per interval between them instead of 100 times. A turn is a
// short key, SET NX PX for one housekeeping interval and left to lapse; whoever asks first
// once it lapsed sweeps next. Nothing depends on it for correctness: every call a sweep
// leads to re-checks, and a lease another turn found expired stays in the lease-expiry
// index for the next sweeper to find.
//
// The key is an ff-script extension declared in spec/keys.yaml (global `sweep_turn`,
// docs/worker.md); the reference never reads or writes it.
import { GlobalKeys } from '../generated/keys.js';
import { sendCommand } from '../runtime/classify.js';
import type { FlowFabricClient } from '../runtime/client.js';
import type { LaneId } from '../runtime/ids.js';

/** The key of a lane's sweep turn: `ff:ext:sweep_turn:<lane>` (one key, any cluster slot), built from the spec. */
export function sweepTurnKey(laneId: LaneId): string {
  return GlobalKeys.sweepTurn(laneId);
}

/** Takes the lane's sweep turn for `ttlMs` unless another worker holds it; true when taken. */
export async function takeSweepTurn(client: FlowFabricClient, laneId: LaneId, workerInstanceId: string, ttlMs: number): Promise<boolean> {
  const reply = await sendCommand(client.transport, 'SET', [sweepTurnKey(laneId), workerInstanceId, 'NX', 'PX', ttlMs]);
  return reply !== null && reply !== undefined;
}
