// A bounded random mix of engine operations by several workers over many executions, with
// faults injected (connections killed mid-flight, the library flushed), ending with an
// account of every execution. Used by test/soak.test.ts (small) and `npm run test:soak`.
import { randomInt } from 'node:crypto';
import { Redis } from 'ioredis';
import {
  cancelExecution,
  claimExecution,
  completeExecution,
  createExecution,
  delayExecution,
  failExecution,
  reclaimExecution,
} from '../../generated/execution.js';
import { ExecKeys } from '../../generated/keys.js';
import { markLeaseExpiredIfDue, renewLease } from '../../generated/lease.js';
import { issueClaimGrant, issueReclaimGrant, promoteDelayed } from '../../generated/scheduling.js';
import { FlowFabricClient } from '../../runtime/client.js';
import { FlowFabricError, LibraryError, ReplyParseError, ScriptError, TransportError } from '../../runtime/errors.js';
import { newAttemptId, newLeaseId, type ExecutionId, type LaneId } from '../../runtime/ids.js';
import { readExecutionContext } from '../../operations/preread.js';
import type { RunningServer } from '../../tools/local-server.js';
import { newExecutionId, uniqueLane } from './ids.js';
import { checkExecutionInvariants } from './invariants.js';

export interface SoakOptions {
  readonly executions: number;
  readonly workers: number;
  readonly steps: number;
  /** One fault every this many steps (0: none). */
  readonly faultEvery: number;
}

export interface SoakReport {
  readonly steps: number;
  readonly ok: number;
  /** Structured refusals (stale lease, not eligible…): expected under contention. */
  readonly refused: Record<string, number>;
  /** Transport errors caused by the injected faults. */
  readonly transport: number;
  readonly faults: Record<string, number>;
  /** Final public state → count. */
  readonly finalStates: Record<string, number>;
  /** Invariant violations per execution (must be empty). */
  readonly violations: Record<string, string[]>;
  /** Errors that must never happen (parse errors, internal_error, argument errors…). */
  readonly unexpected: string[];
}

interface Lease {
  readonly executionId: ExecutionId;
  readonly leaseId: ReturnType<typeof newLeaseId>;
  readonly leaseEpoch: number;
  readonly attemptId: ReturnType<typeof newAttemptId>;
  readonly attemptIndex: number;
}

const pick = <T>(items: readonly T[]): T => items[randomInt(items.length)]!;

export async function runSoak(server: RunningServer, options: SoakOptions): Promise<SoakReport> {
  const admin = new Redis(server.url, { maxRetriesPerRequest: 1 });
  const connections = Array.from({ length: options.workers }, () => new Redis(server.url, { maxRetriesPerRequest: 2, autoResendUnfulfilledCommands: false }));
  const clients = connections.map((c) => FlowFabricClient.fromIoredis(c, { autoLoad: true, load: { retryDelayMs: 20 } }));
  const report = { steps: 0, ok: 0, refused: {} as Record<string, number>, transport: 0, faults: {} as Record<string, number>, finalStates: {} as Record<string, number>, violations: {} as Record<string, string[]>, unexpected: [] as string[] };
  try {
    await clients[0]!.ensureLibrary();
    const laneId: LaneId = uniqueLane('soak');
    const ids: ExecutionId[] = [];
    for (let i = 0; i < options.executions; i++) {
      const executionId = newExecutionId(randomInt(8));
      await createExecution(clients[0]!, { executionId, laneId, namespace: 'soak', executionKind: 'soak', priority: randomInt(5), policyJson: { max_reclaim_count: 3 } });
      ids.push(executionId);
    }

    const record = (error: unknown) => {
      if (error instanceof ScriptError && error.code !== 'internal_error') report.refused[error.code] = (report.refused[error.code] ?? 0) + 1;
      else if (error instanceof TransportError || error instanceof LibraryError) report.transport += 1;
      else report.unexpected.push(error instanceof FlowFabricError || error instanceof ReplyParseError ? `${error.name}: ${error.message}` : String(error));
    };

    const worker = async (index: number) => {
      const client = clients[index]!;
      const workerId = `soak-${index}`;
      const workerInstanceId = `soak-${index}-1`;
      const held: Lease[] = [];
      const lease = (l: Lease) => ({ executionId: l.executionId, laneId, workerInstanceId, leaseId: l.leaseId, leaseEpoch: l.leaseEpoch, attemptId: l.attemptId, attemptIndex: l.attemptIndex });
      const ops: (() => Promise<unknown>)[] = [
        async () => {
          const executionId = pick(ids);
          await issueClaimGrant(client, { executionId, laneId, workerId, workerInstanceId, grantTtlMs: 2000 });
          const c = await claimExecution(client, { executionId, laneId, workerId, workerInstanceId, leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: 50 + randomInt(400) });
          held.push({ executionId, leaseId: c.leaseId, leaseEpoch: c.leaseEpoch, attemptId: c.attemptId, attemptIndex: c.attemptIndex });
        },
        async () => held.length && renewLease(client, { ...lease(held[randomInt(held.length)]!), leaseTtlMs: 300 }),
        async () => held.length && completeExecution(client, { ...lease(held.splice(randomInt(held.length), 1)[0]!), resultPayload: 'done' }),
        async () => held.length && failExecution(client, { ...lease(held.splice(randomInt(held.length), 1)[0]!), failureReason: 'soak', retryPolicyJson: { max_retries: 2, backoff: { type: 'fixed', delay_ms: 20 } } }),
        async () => held.length && delayExecution(client, { ...lease(held.splice(randomInt(held.length), 1)[0]!), delayUntil: Date.now() + 30 }),
        async () => promoteDelayed(client, { executionId: pick(ids), laneId, nowMs: Date.now() }),
        async () => markLeaseExpiredIfDue(client, { executionId: pick(ids) }),
        async () => {
          const executionId = pick(ids);
          const context = await readExecutionContext(client.transport, executionId);
          await issueReclaimGrant(client, { executionId, laneId, workerId, workerInstanceId, grantTtlMs: 2000 });
          const r = await reclaimExecution(client, { executionId, laneId, workerId, workerInstanceId, currentAttemptIndex: context.currentAttemptIndex, leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: 300 });
          if (r.status === 'OK') held.push({ executionId, leaseId: r.leaseId, leaseEpoch: r.leaseEpoch, attemptId: r.attemptId, attemptIndex: r.attemptIndex });
        },
        async () => {
          if (randomInt(6) !== 0) return undefined;
          const executionId = pick(ids);
          const context = await readExecutionContext(client.transport, executionId);
          return cancelExecution(client, {
            executionId, laneId, currentAttemptIndex: context.currentAttemptIndex, currentWorkerInstanceId: context.currentWorkerInstanceId,
            ...(context.currentWaitpointId ? { currentWaitpointId: context.currentWaitpointId } : {}), reason: 'soak', source: 'operator_override',
          });
        },
      ];
      while (report.steps < options.steps) {
        report.steps += 1;
        try {
          await pick(ops)();
          report.ok += 1;
        } catch (error) {
          record(error);
        }
        if (options.faultEvery > 0 && report.steps % options.faultEvery === 0) await injectFault(index);
      }
    };

    const injectFault = async (index: number) => {
      const kind = pick(['kill', 'kill', 'flush']);
      report.faults[kind] = (report.faults[kind] ?? 0) + 1;
      try {
        if (kind === 'flush') await admin.call('FUNCTION', 'FLUSH');
        else await admin.call('CLIENT', 'KILL', 'ID', String(await connections[(index + 1) % connections.length]!.client('ID')));
      } catch {
        // A fault that could not be injected (connection already down) is just skipped.
      }
    };

    await Promise.all(clients.map((_, i) => worker(i)));
    // The account is read through the admin connection: faults only ever hit the workers'.
    await FlowFabricClient.fromIoredis(admin).ensureLibrary();
    for (const executionId of ids) {
      const state = (await admin.hget(new ExecKeys(executionId).core(), 'public_state')) ?? '(missing)';
      report.finalStates[state] = (report.finalStates[state] ?? 0) + 1;
      const violations = await checkExecutionInvariants(admin, executionId);
      if (violations.length > 0) report.violations[executionId] = violations;
    }
    return report;
  } finally {
    connections.forEach((c) => c.disconnect());
    admin.disconnect();
  }
}
