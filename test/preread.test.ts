// readExecutionContext: the typed pre-read of the exec_core fields some KEYS depend on.
import { describe, expect, it } from 'vitest';
import { ExecKeys } from '../generated/keys.js';
import { ReplyParseError } from '../runtime/errors.js';
import { readExecutionContext } from '../operations/preread.js';
import { useServer } from './support/client.js';
import { suspendClaimed } from './support/exec-ops.js';
import { newExecutionId } from './support/ids.js';
import { createClaimed, createWaiting } from './support/lifecycle.js';

describe('readExecutionContext', () => {
  const { client, redis } = useServer();

  it('answers the engine defaults for a missing execution', async () => {
    await expect(readExecutionContext(client.transport, newExecutionId())).resolves.toEqual({
      exists: false, laneId: 'default', currentAttemptIndex: 0, hasAttempt: false, totalAttemptCount: 0, currentLeaseEpoch: 0, currentWorkerInstanceId: '',
    });
  });

  it('reads a waiting execution (no attempt yet)', async () => {
    const c = await createWaiting(client);
    await expect(readExecutionContext(client.transport, c.executionId)).resolves.toEqual({
      exists: true, laneId: c.laneId, currentAttemptIndex: 0, hasAttempt: false, totalAttemptCount: 0, currentLeaseEpoch: 0, currentWorkerInstanceId: '',
    });
  });

  it('reads the lease, attempt, suspension and waitpoint of a suspended execution', async () => {
    const c = await createClaimed(client, {}, { workerInstanceId: 'pre-1' });
    const leased = await readExecutionContext(client.transport, c.executionId);
    expect(leased).toEqual({
      exists: true, laneId: c.laneId, currentAttemptIndex: 0, hasAttempt: true, totalAttemptCount: 1, currentLeaseEpoch: 1,
      currentWorkerInstanceId: 'pre-1', currentLeaseId: c.lease.leaseId, currentAttemptId: c.lease.attemptId,
    });
    const waitpointId = await suspendClaimed(client, c);
    const suspended = await readExecutionContext(client.transport, c.executionId);
    expect(suspended.currentWaitpointId).toBe(waitpointId);
    expect(suspended.currentSuspensionId).toBe(await redis.hget(new ExecKeys(c.executionId).core(), 'current_suspension_id'));
  });

  it('refuses a stored value that is not what the engine writes', async () => {
    const c = await createWaiting(client);
    await redis.hset(new ExecKeys(c.executionId).core(), 'total_attempt_count', 'many');
    await expect(readExecutionContext(client.transport, c.executionId)).rejects.toBeInstanceOf(ReplyParseError);
  });
});
