// Shortcuts for the suspension and signal tests: a key ring on the partitions a test uses,
// a suspended execution, and signal arguments with sensible defaults. Everything goes
// through the generated wrappers.
import { createHmac, randomInt } from 'node:crypto';
import { ExecKeys, PartitionKeys } from '../../generated/keys.js';
import { deliverSignal, bufferSignalForPendingWaitpoint, type DeliverSignalArgs, type BufferSignalForPendingWaitpointArgs } from '../../generated/signal.js';
import { createPendingWaitpoint, suspendExecution, type SuspendExecutionArgs } from '../../generated/suspension.js';
import type { FlowFabricClient } from '../../runtime/client.js';
import { executionPartition, newSignalId, newSuspensionId, newWaitpointId, type ExecutionId, type WaitpointId } from '../../runtime/ids.js';
import { installWaitpointSecret } from '../../operations/waitpoints.js';
import { newExecutionId } from './ids.js';
import { createClaimed, type Claimed } from './lifecycle.js';

/** The key every ordinary test partition is bootstrapped with (kid k1). */
export const TEST_SECRET_HEX = '5f0e1d2c3b4a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0';

/**
 * A flow partition no other test file uses (above the default 256), for tests that rotate
 * or replace the key ring and must not disturb tokens minted elsewhere.
 */
export function privatePartition(): number {
  return 1000 + randomInt(60_000);
}

/** Makes sure the execution's partition has a key ring (idempotent; keeps an existing one). */
export async function ensureKeyring(client: FlowFabricClient, executionId: ExecutionId): Promise<void> {
  await installWaitpointSecret(client, executionPartition(executionId), { secretHex: TEST_SECRET_HEX });
}

/** A claimed (active, leased) execution whose partition has a key ring. */
export async function claimedWithKeyring(client: FlowFabricClient, partition?: number, leaseTtlMs?: number): Promise<Claimed> {
  const executionId = newExecutionId(partition);
  await ensureKeyring(client, executionId);
  return createClaimed(client, { executionId }, leaseTtlMs !== undefined ? { leaseTtlMs } : {});
}

/** The suspend arguments of a lease holder, with a fresh suspension and waitpoint. */
export function suspendArgs(c: Claimed, overrides: Partial<SuspendExecutionArgs> = {}): SuspendExecutionArgs {
  const waitpointId = overrides.waitpointId ?? newWaitpointId();
  return {
    executionId: c.executionId,
    laneId: c.laneId,
    workerInstanceId: c.workerInstanceId,
    ...c.lease,
    suspensionId: newSuspensionId(),
    waitpointId,
    waitpointKey: `wpk:${waitpointId}`,
    resumeConditionJson: { condition_type: 'signal_set', required_signal_names: ['go'], signal_match_mode: 'any', minimum_signal_count: 1 },
    resumePolicyJson: { resume_target: 'runnable', close_waitpoint_on_resume: true },
    ...overrides,
  };
}

export interface Suspended extends Claimed {
  readonly suspensionId: string;
  readonly waitpointId: WaitpointId;
  readonly waitpointKey: string;
  readonly token: string;
}

/** Claims a fresh execution and suspends it (status OK expected). */
export async function createSuspended(client: FlowFabricClient, overrides: Partial<SuspendExecutionArgs> = {}, partition?: number): Promise<Suspended> {
  const c = await claimedWithKeyring(client, partition);
  return suspendClaimed(client, c, overrides);
}

export async function suspendClaimed(client: FlowFabricClient, c: Claimed, overrides: Partial<SuspendExecutionArgs> = {}): Promise<Suspended> {
  const result = await suspendExecution(client, suspendArgs(c, overrides));
  if (result.status !== 'OK') throw new Error(`expected a suspension, got ${result.status}`);
  return { ...c, suspensionId: result.suspensionId, waitpointId: result.waitpointId, waitpointKey: result.waitpointKey, token: result.waitpointToken };
}

/** What every signal sent to a waitpoint carries, with a fresh signal id. */
function signalFields(target: { executionId: ExecutionId; waitpointId: WaitpointId; token: string }, signalName: string) {
  return {
    signalId: newSignalId(),
    executionId: target.executionId,
    waitpointId: target.waitpointId,
    signalName,
    signalCategory: 'custom',
    sourceType: 'external_api',
    sourceIdentity: 'test',
    waitpointToken: target.token,
  };
}

/** Delivery arguments for a waitpoint, with a fresh signal id. */
export function signalArgs(
  target: { executionId: ExecutionId; laneId: Claimed['laneId']; waitpointId: WaitpointId; token: string },
  signalName: string,
  overrides: Partial<DeliverSignalArgs> = {},
): DeliverSignalArgs {
  return { ...signalFields(target, signalName), laneId: target.laneId, ...overrides };
}

export function deliver(client: FlowFabricClient, target: Parameters<typeof signalArgs>[0], signalName: string, overrides: Partial<DeliverSignalArgs> = {}) {
  return deliverSignal(client, signalArgs(target, signalName, overrides));
}

export function bufferArgs(
  target: { executionId: ExecutionId; waitpointId: WaitpointId; token: string },
  signalName: string,
  overrides: Partial<BufferSignalForPendingWaitpointArgs> = {},
): BufferSignalForPendingWaitpointArgs {
  return { ...signalFields(target, signalName), ...overrides };
}

export function buffer(client: FlowFabricClient, target: Parameters<typeof bufferArgs>[0], signalName: string, overrides: Partial<BufferSignalForPendingWaitpointArgs> = {}) {
  return bufferSignalForPendingWaitpoint(client, bufferArgs(target, signalName, overrides));
}

/** Creates a pending waitpoint for a claimed execution. */
export async function createPending(client: FlowFabricClient, c: Claimed, expiresInMs = 60_000) {
  const waitpointId = newWaitpointId();
  const result = await createPendingWaitpoint(client, {
    executionId: c.executionId,
    attemptIndex: c.lease.attemptIndex,
    waitpointId,
    waitpointKey: `wpk:${waitpointId}`,
    expiresInMs,
  });
  return { ...c, waitpointId: result.waitpointId, waitpointKey: result.waitpointKey, token: result.waitpointToken };
}

/** Standard HMAC-SHA1 token, computed independently of the engine (model.md §8.2). */
export function expectedToken(kid: string, secretHex: string, waitpointId: string, waitpointKey: string, createdAt: string): string {
  const digest = createHmac('sha1', Buffer.from(secretHex, 'hex')).update(`${waitpointId}|${waitpointKey}|${createdAt}`).digest('hex');
  return `${kid}:${digest}`;
}

/** The execution's key builders. */
export function keysOf(executionId: ExecutionId): { exec: ExecKeys; index: PartitionKeys } {
  const exec = new ExecKeys(executionId);
  return { exec, index: new PartitionKeys(exec.tag) };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
