// Shared by the worker soak test and its child processes: which attempts throw.
import { createHash } from 'node:crypto';

/** Whether the soak handler throws on this attempt: a fixed function of id and attempt, so the test can predict every outcome. */
export function throws(executionId: string, attemptIndex: number, failRate: number): boolean {
  const digest = createHash('sha1').update(`${executionId}/${attemptIndex}`).digest();
  return digest.readUInt32BE(0) / 0x1_0000_0000 < failRate;
}
