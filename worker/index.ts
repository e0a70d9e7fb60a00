// The worker layer: what a team writes a handler against. The claim, lease, presence and
// context modules are the Worker's parts and stay internal.
export { Worker, type Handler, type WorkerCounters, type WorkerEvent, type WorkerOptions } from './worker.js';
export { Task, type FailOptions, type Suspension, type SuspendOptions, type TaskEnding } from './task.js';
export type { AttemptKind, ClaimPath, ClaimedLease, IssueNextGrant } from './claim.js';
export type { ResumeSignal } from './context.js';
export { AttemptTimeoutError, DuplicateWorkerError, LeaseLostError, NonRetryableError, TaskFinishedError, WorkerClosingError } from './errors.js';
export { ioredisWakeSource, wakeChannel, type OnWake, type WakeListener, type WakeSource } from './wake.js';
