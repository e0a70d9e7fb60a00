// Public entry point of ff-script, chosen name by name: the client, the generated wrappers
// (with their Args and Result types, builders, parsers and key builders), the error classes,
// ids and partitions, the library loader, the multi-call operations a user calls, the worker
// and the engine.
// Reply decoders, argument encoders and the envelope reader stay internal; what a transport
// author needs is in `ff-script/transport` (transport.ts). The whole surface is recorded in
// api/public-api.txt, which test/public-api.test.ts compares with this file's exports.

// The client and its transport.
export { FlowFabricClient, call, type Call, type CallEvent, type ClientOptions, type Settled, type SettledAll } from './runtime/client.js';
export { IoredisTransport, classifyIoredisError, type IoredisLike } from './runtime/ioredis.js';
export type { BatchReply, FcallRequest, FunctionCaller, Transport } from './runtime/transport.js';
export type { StreamEntry } from './runtime/decode.js';
export type { ArglessRequestBuilder, RequestBuilder } from './runtime/encode.js';

// Errors.
export {
  ArgumentError,
  FlowFabricError,
  LibraryError,
  ReplyParseError,
  ScriptError,
  TransportError,
  isErrorCode,
  isScriptError,
  type ErrorClass,
  type ErrorCode,
  type LibraryErrorKind,
  type TransportErrorKind,
} from './runtime/errors.js';

// Ids.
export {
  DEFAULT_LANE_ID,
  IdError,
  LANE_ID_MAX_BYTES,
  assertKeySafe,
  executionPartition,
  executionTag,
  executionUuid,
  isCanonicalUuid,
  laneId,
  newAttemptId,
  newBudgetId,
  newEdgeId,
  newFlowId,
  newLeaseId,
  newQuotaPolicyId,
  newSignalId,
  newSuspensionId,
  newWaitpointId,
  parseAttemptId,
  parseBudgetId,
  parseEdgeId,
  parseExecutionId,
  parseFlowId,
  parseLaneId,
  parseLeaseId,
  parseQuotaPolicyId,
  parseSignalId,
  parseSuspensionId,
  parseUuid,
  parseWaitpointId,
  type AttemptId,
  type Branded,
  type BudgetId,
  type EdgeId,
  type ExecutionId,
  type FlowId,
  type HashTag,
  type IdErrorKind,
  type KeySafeOptions,
  type LaneId,
  type LeaseId,
  type QuotaPolicyId,
  type SignalId,
  type SuspensionId,
  type UuidIdType,
  type WaitpointId,
} from './runtime/ids.js';

// Partitions and cluster slots.
export {
  CLUSTER_SLOT_COUNT,
  DEFAULT_PARTITION_CONFIG,
  budgetPartition,
  budgetTag,
  clusterSlot,
  executionIdForFlow,
  flowPartition,
  flowTag,
  hashTag,
  quotaPartition,
  quotaTag,
  readPartitionConfig,
  soloExecutionId,
  soloPartition,
  soloTag,
  validatePartitionConfig,
  type PartitionConfig,
  type TagFamily,
} from './runtime/partition.js';

// The library on the server.
export { ensureLibrary, loadedVersion, registeredFunctions, type EnsureLibraryOptions, type LibraryStatus } from './runtime/loader.js';

// Operations: several calls with their pre-reads.
export {
  admitOrBlock,
  blockedSetFor,
  readExecutionLane,
  readQuotaLimits,
  reportUsage,
  reportUsageAndBlockOnBreach,
  usageDedupKey,
  type AdmissionClient,
  type AdmitOrBlockArgs,
  type BlockedSet,
  type BlockingReason,
  type QuotaAdmissionOutcome,
  type QuotaLimits,
  type ReportUsageAndBlockArgs,
  type ReportUsageArgs,
  type UsageAdmissionOutcome,
} from './operations/admission.js';
export { loadPartitionConfig } from './operations/config.js';
export {
  OutcomeTimeoutError,
  addDependency,
  cancelExecutionById,
  createFlowFor,
  getExecution,
  hashReply,
  isTerminalState,
  retryPolicyJson,
  signalExecution,
  submitExecution,
  waitForOutcome,
  type Backoff,
  type ExecutionView,
  type PublicState,
  type RetryPolicy,
  type SignalOptions,
  type SubmitOptions,
  type Submitted,
  type WaitOptions,
} from './operations/executions.js';
export {
  inspectExecution,
  type AttemptDetails,
  type EdgeDetails,
  type ExecutionDetails,
  type FlowMembership,
  type FrameDetails,
  type InspectOptions,
  type LeaseDetails,
  type MatcherDetails,
  type OutputDetails,
  type SignalDetails,
  type SuspensionDetails,
  type WaitpointDetails,
} from './operations/inspect.js';
export {
  LANE_INDEXES,
  PARTITION_INDEXES,
  listLanes,
  readLaneStats,
  type IndexHead,
  type LaneIndex,
  type LanePartitionStats,
  type LaneStats,
  type LaneStatsOptions,
  type LanesReport,
  type PartitionIndex,
  type PartitionTimers,
} from './operations/lanes.js';
export { DEFAULT_GRANT_TTL_MS, issueGrants, issueNextGrant, type Grant, type GrantRequest, type GrantsRequest, type SkipEvent } from './operations/scheduler.js';
export {
  applyDependency,
  applyOutcome,
  deriveFlowState,
  promoteBlocked,
  readFlowOutcome,
  readGraphRevision,
  readLane,
  replay,
  resolveEdge,
  resolveOutgoing,
  stageEdge,
  type ApplyOutcome,
  type DerivedFlowState,
  type EdgeResolution,
  type FlowClient,
  type FlowOutcome,
  type StageEdgeArgs,
} from './operations/flows.js';
export { readExecutionContext, type ExecutionContext } from './operations/preread.js';
export { MAX_TAIL_BLOCK_MS, STREAM_READ_HARD_CAP, tailAttemptStream, type StreamFrame, type TailEnd, type TailOptions } from './operations/stream-tail.js';
export {
  DEFAULT_WAITPOINT_GRACE_MS,
  DEFAULT_WAITPOINT_KID,
  claimResumed,
  deliverSignalTo,
  expireSuspensionOf,
  installWaitpointSecret,
  installWaitpointSecretEverywhere,
  readSuspensionContext,
  resumeSuspendedExecution,
  rotateWaitpointSecretEverywhere,
  type InstallSecretOptions,
  type PartitionRotation,
  type RotateEverywhereOptions,
  type RotationReport,
  type SecretInstall,
} from './operations/waitpoints.js';

// The worker and the engine, each through the index that chooses its own surface.
export * from './worker/index.js';
export * from './engine/index.js';

// Everything generated from spec/, named one by one in generated/index.ts: the wrapper,
// builder, parser, Args and Result type of every function, the key builders, the error
// catalogue and the bundled library.
export * from './generated/index.js';
