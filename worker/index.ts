// The worker layer: what a team writes a handler against.
export * from './claim.js';
export * from './context.js';
export * from './errors.js';
export * from './lease.js';
export * from './presence.js';
export * from './task.js';
export * from './worker.js';
