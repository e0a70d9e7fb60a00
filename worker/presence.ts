// How a worker announces itself, as the reference's direct-claim worker does (engine.md
// §4.2): the alive key `ff:worker:<wiid>:alive` (SET NX PX 2×TTL, refused if another live
// worker has the id), its capability CSV at `ff:worker:<wiid>:caps` and its id in
// `ff:idx:workers`, which the engine's unblock scanner reads to decide whether a capable
// worker exists (§2.10). Unlike the reference, the alive key is kept fresh while the worker
// runs and all three are removed when it stops.
import { sendCommand } from '../runtime/classify.js';
import type { FlowFabricClient } from '../runtime/client.js';
import { GlobalKeys } from '../generated/keys.js';
import { DuplicateWorkerError } from './errors.js';

export class Presence {
  private readonly aliveKey: string;
  private readonly capsKey: string;
  private readonly ttlMs: number;

  constructor(
    private readonly client: FlowFabricClient,
    private readonly workerInstanceId: string,
    /** Sorted, de-duplicated CSV ('' for none). */
    private readonly capabilitiesCsv: string,
    leaseTtlMs: number,
  ) {
    this.aliveKey = GlobalKeys.workerAlive(workerInstanceId);
    this.capsKey = GlobalKeys.workerCaps(workerInstanceId);
    this.ttlMs = Math.max(2 * leaseTtlMs, 1000);
  }

  /** Takes the alive key (DuplicateWorkerError if held) and advertises the capabilities. */
  async announce(): Promise<void> {
    const taken = await sendCommand(this.client.transport, 'SET', [this.aliveKey, '1', 'NX', 'PX', this.ttlMs]);
    if (taken === null || taken === undefined) throw new DuplicateWorkerError(this.workerInstanceId);
    await this.advertise();
  }

  /**
   * Extends the alive key; takes it again if it lapsed (a long pause), and re-advertises a
   * capability set. A worker without capabilities cleared its records at announce() and
   * nothing of ours writes them again, so its refresh is the alive key alone (issue 16: the
   * DEL + SREM each refresh were two of an idle worker's five commands every period).
   */
  async refresh(): Promise<void> {
    const extended = await sendCommand(this.client.transport, 'SET', [this.aliveKey, '1', 'XX', 'PX', this.ttlMs]);
    if (extended === null || extended === undefined) await sendCommand(this.client.transport, 'SET', [this.aliveKey, '1', 'NX', 'PX', this.ttlMs]);
    if (this.capabilitiesCsv !== '') await this.advertise();
  }

  /** Removes the alive key, the capability record and the index entry. */
  async withdraw(): Promise<void> {
    await Promise.all([
      sendCommand(this.client.transport, 'DEL', [this.aliveKey, this.capsKey]),
      sendCommand(this.client.transport, 'SREM', [GlobalKeys.workersIndex(), this.workerInstanceId]),
    ]);
  }

  /**
   * Writes the capability record and the index entry, or, without capabilities, removes any
   * left by an earlier run under this instance id (the engine's unblock scanner must not count
   * this worker as capable of anything).
   */
  private async advertise(): Promise<void> {
    if (this.capabilitiesCsv === '') {
      await Promise.all([
        sendCommand(this.client.transport, 'DEL', [this.capsKey]),
        sendCommand(this.client.transport, 'SREM', [GlobalKeys.workersIndex(), this.workerInstanceId]),
      ]);
      return;
    }
    await sendCommand(this.client.transport, 'SET', [this.capsKey, this.capabilitiesCsv]);
    await sendCommand(this.client.transport, 'SADD', [GlobalKeys.workersIndex(), this.workerInstanceId]);
  }
}
