// The timeout scanners (engine.md §2.4, §2.5, §2.6, §2.14): attempt timeouts and execution
// deadlines expire the execution (ff_expire_execution, which publishes a flow member's
// completion); suspension timeouts apply the suspension's timeout behaviour
// (ff_expire_suspension, which publishes terminal outcomes too); never-committed pending
// waitpoints are closed (ff_close_waitpoint).
import { expireExecution } from '../../generated/execution.js';
import { PartitionKeys } from '../../generated/keys.js';
import { closeWaitpoint } from '../../generated/suspension.js';
import { readExecutionContext } from '../../operations/preread.js';
import { expireSuspensionOf } from '../../operations/waitpoints.js';
import { sendCommand } from '../../runtime/classify.js';
import { ScriptError } from '../../runtime/errors.js';
import { parseExecutionId, parseWaitpointId } from '../../runtime/ids.js';
import { replyText } from '../../runtime/reply.js';
import type { Scanner, ScanContext } from '../runner.js';
import { drainIndex, type IndexScanOptions } from '../scan.js';

type ExpireReason = 'attempt_timeout' | 'execution_deadline';

async function expire(ctx: ScanContext, member: string, reason: ExpireReason): Promise<'done'> {
  const executionId = parseExecutionId(member);
  const context = await readExecutionContext(ctx.client.transport, executionId);
  const result = await expireExecution(ctx.client, {
    executionId,
    laneId: context.laneId,
    currentAttemptIndex: context.currentAttemptIndex,
    currentWorkerInstanceId: context.currentWorkerInstanceId,
    expireReason: reason,
  });
  if (result.status === 'expired') ctx.log.debug(`execution expired (${reason})`, { execution: member, from: result.expiredFrom });
  return 'done';
}

function expiryScanner(name: ExpireReason, options: IndexScanOptions): Scanner {
  return {
    name,
    family: 'flow',
    async scanPartition(partition, ctx) {
      const keys = PartitionKeys.forPartition(partition);
      const now = ctx.now();
      await drainIndex(ctx, {
        key: name === 'attempt_timeout' ? keys.attemptTimeout() : keys.executionDeadline(),
        max: now,
        ...options,
        lagBase: now,
        handle: (member) => expire(ctx, member, name),
      });
    },
  };
}

export const attemptTimeoutScanner = (options: IndexScanOptions): Scanner => expiryScanner('attempt_timeout', options);
export const executionDeadlineScanner = (options: IndexScanOptions): Scanner => expiryScanner('execution_deadline', options);

export function suspensionTimeoutScanner(options: IndexScanOptions): Scanner {
  return {
    name: 'suspension_timeout',
    family: 'flow',
    async scanPartition(partition, ctx) {
      const now = ctx.now();
      await drainIndex(ctx, {
        key: PartitionKeys.forPartition(partition).suspensionTimeout(),
        max: now,
        ...options,
        lagBase: now,
        async handle(member) {
          const result = await expireSuspensionOf(ctx.client, parseExecutionId(member));
          if (result.status === 'not_yet_due') return 'stays';
          ctx.log.debug('suspension timed out', { execution: member, behaviour: result.status });
          return 'done';
        },
      });
    },
  };
}

export function pendingWaitpointExpiryScanner(options: IndexScanOptions): Scanner {
  return {
    name: 'pending_wp_expiry',
    family: 'flow',
    async scanPartition(partition, ctx) {
      const keys = PartitionKeys.forPartition(partition);
      const index = keys.pendingWaitpointExpiry();
      const now = ctx.now();
      await drainIndex(ctx, {
        key: index,
        max: now,
        ...options,
        lagBase: now,
        async handle(member) {
          const waitpointId = parseWaitpointId(member);
          const owner = replyText(await sendCommand(ctx.client.transport, 'HGET', [keys.waitpoint(waitpointId), 'execution_id']));
          // A waitpoint hash that is gone (purged) never comes back: its entry only hides others.
          if (!owner) return removeStale(ctx, index, member);
          try {
            await closeWaitpoint(ctx.client, { executionId: parseExecutionId(owner), waitpointId, reason: 'never_committed' });
          } catch (error) {
            if (error instanceof ScriptError && (error.code === 'waitpoint_not_found' || error.code === 'waitpoint_not_open')) return removeStale(ctx, index, member);
            throw error;
          }
          return 'done';
        },
      });
    },
  };
}

async function removeStale(ctx: ScanContext, index: string, member: string): Promise<'done'> {
  await sendCommand(ctx.client.transport, 'ZREM', [index, member]);
  ctx.log.debug('stale pending-waitpoint entry removed', { waitpoint: member });
  return 'done';
}
