// Public entry point of ff-script: the runtime (client, loader, errors, ids, partitions,
// transport) and everything generated from spec/ (wrappers, key builders, error catalogue,
// the bundled library).
export * from './operations/admission.js';
export * from './runtime/client.js';
export * from './runtime/classify.js';
export * from './operations/config.js';
export * from './operations/executions.js';
export * from './runtime/decode.js';
export * from './runtime/encode.js';
export * from './runtime/errors.js';
export * from './operations/flows.js';
export * from './operations/inspect.js';
export * from './operations/lanes.js';
export * from './runtime/ids.js';
export * from './runtime/ioredis.js';
export * from './runtime/loader.js';
export * from './runtime/partition.js';
export * from './operations/preread.js';
export { issueNextGrant, DEFAULT_GRANT_TTL_MS, type Grant, type GrantRequest, type SkipEvent } from './operations/scheduler.js';
export * from './runtime/reply.js';
export * from './operations/stream-tail.js';
export * from './operations/waitpoints.js';
export * from './worker/index.js';
export * from './engine/index.js';
export type * from './runtime/transport.js';
export * from './generated/index.js';
