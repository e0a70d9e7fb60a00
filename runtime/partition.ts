// Partition routing and hash tags (model.md section 1).
//
// The Lua library never computes partitions: callers build every key, tag included,
// before the FCALL. So these functions must match the Rust side bit for bit.

import { randomUUID } from 'node:crypto';
import {
  parseExecutionId,
  parseUuid,
  type BudgetId,
  type ExecutionId,
  type FlowId,
  type HashTag,
  type LaneId,
  type QuotaPolicyId,
} from './ids.js';

const utf8 = new TextEncoder();

// ---------------------------------------------------------------------------------
// CRC-16/XMODEM: poly 0x1021, init 0, no reflection, no final XOR (the Valkey
// Cluster slot hash). One table lookup per byte.

const CRC16_TABLE = ((): Uint16Array => {
  const table = new Uint16Array(256);
  for (let high = 0; high < 256; high++) {
    let crc = high << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
    table[high] = crc; // Uint16Array storage drops the bits shifted past 16
  }
  return table;
})();

export function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (let i = 0; i < bytes.length; i++) {
    crc = ((crc << 8) ^ CRC16_TABLE[((crc >>> 8) ^ bytes[i]!) & 0xff]!) & 0xffff;
  }
  return crc;
}

// ---------------------------------------------------------------------------------
// Partition counts

export interface PartitionConfig {
  readonly numFlowPartitions: number;
  readonly numBudgetPartitions: number;
  readonly numQuotaPartitions: number;
}

export const DEFAULT_PARTITION_CONFIG: PartitionConfig = Object.freeze({
  numFlowPartitions: 256,
  numBudgetPartitions: 32,
  numQuotaPartitions: 32,
});

/** Counts are u16 in Rust, and 0 would divide by zero. */
function requireCount(count: number, name: string): number {
  if (!Number.isInteger(count) || count < 1 || count > 0xffff) {
    throw new RangeError(`${name} must be an integer in 1..65535, got ${count}`);
  }
  return count;
}

/** Throws RangeError unless every count is an integer in 1..65535; returns `cfg`. */
export function validatePartitionConfig(cfg: PartitionConfig): PartitionConfig {
  requireCount(cfg.numFlowPartitions, 'numFlowPartitions');
  requireCount(cfg.numBudgetPartitions, 'numBudgetPartitions');
  requireCount(cfg.numQuotaPartitions, 'numQuotaPartitions');
  return cfg;
}

function readCount(fields: Readonly<Record<string, string>> | null | undefined, field: string, fallback: number): number {
  const text = fields?.[field];
  if (text === undefined || text === '') return fallback;
  if (!/^[0-9]+$/.test(text)) {
    throw new RangeError(`partition config field ${field} is not a decimal integer: ${JSON.stringify(text)}`);
  }
  return requireCount(Number(text), `partition config field ${field}`);
}

/**
 * Builds a PartitionConfig from an HGETALL of `ff:config:partitions`. Absent (or empty)
 * fields take the defaults, as ff-sdk does; a present but malformed one throws, since
 * guessing a count would silently route every id to the wrong partition.
 */
export function readPartitionConfig(fields: Readonly<Record<string, string>> | null | undefined): PartitionConfig {
  return {
    numFlowPartitions: readCount(fields, 'num_flow_partitions', DEFAULT_PARTITION_CONFIG.numFlowPartitions),
    numBudgetPartitions: readCount(fields, 'num_budget_partitions', DEFAULT_PARTITION_CONFIG.numBudgetPartitions),
    numQuotaPartitions: readCount(fields, 'num_quota_partitions', DEFAULT_PARTITION_CONFIG.numQuotaPartitions),
  };
}

// ---------------------------------------------------------------------------------
// Partition indexes

/** The 16 raw bytes of a UUID (any accepted form) in RFC 4122 (big-endian) order. */
export function uuidBytes(uuid: string): Uint8Array {
  const hex = parseUuid(uuid).replaceAll('-', '');
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

// UUID-backed ids hash their raw bytes, never their 36-character text.
const uuidIndex = (uuid: string, count: number): number => crc16(uuidBytes(uuid)) % count;

export function flowPartition(flowId: FlowId, cfg: PartitionConfig): number {
  return uuidIndex(flowId, requireCount(cfg.numFlowPartitions, 'numFlowPartitions'));
}

export function budgetPartition(budgetId: BudgetId, cfg: PartitionConfig): number {
  return uuidIndex(budgetId, requireCount(cfg.numBudgetPartitions, 'numBudgetPartitions'));
}

export function quotaPartition(quotaPolicyId: QuotaPolicyId, cfg: PartitionConfig): number {
  return uuidIndex(quotaPolicyId, requireCount(cfg.numQuotaPartitions, 'numQuotaPartitions'));
}

/** Partition of a flow-less execution: Rust's default `Crc16SoloPartitioner`. */
export function soloPartition(laneId: LaneId, cfg: PartitionConfig): number {
  return crc16(utf8.encode(laneId)) % requireCount(cfg.numFlowPartitions, 'numFlowPartitions');
}

// ---------------------------------------------------------------------------------
// Solo partitioners. The default puts every flow-less execution of a lane on one
// partition, so one busy lane never uses more than one cluster primary. A spreading
// partitioner lets it use several; both are pure and deterministic (same lane, same
// UUID, same config → same partition), as the reference requires of a custom one.

/** Chooses the partition of a flow-less execution, and names every partition a lane can use. */
export interface SoloPartitioner {
  /** The partition of the lane's execution with this UUID: below cfg.numFlowPartitions. */
  partitionOf(laneId: LaneId, uuid: string, cfg: PartitionConfig): number;
  /** Every partition the lane's executions can land on, the lane's own partition first: where its workers look. */
  partitionsOf(laneId: LaneId, cfg: PartitionConfig): readonly number[];
}

/** Today's behaviour and the reference's default: one partition per lane, crc16 of its name. */
export const laneHashPartitioner: SoloPartitioner = Object.freeze({
  partitionOf: (laneId: LaneId, _uuid: string, cfg: PartitionConfig) => soloPartition(laneId, cfg),
  partitionsOf: (laneId: LaneId, cfg: PartitionConfig) => [soloPartition(laneId, cfg)],
});

/**
 * Spreads a lane over `spread` consecutive partitions starting at the lane's own one
 * (wrapping), chosen by crc16 of the execution's UUID bytes: ids stay deterministic, and
 * executions spread evenly whatever the UUID version. A spread of 1 is laneHashPartitioner;
 * a spread above numFlowPartitions uses every partition.
 */
export function spreadLanePartitioner(spread: number): SoloPartitioner {
  requireCount(spread, 'spread');
  const width = (cfg: PartitionConfig) => Math.min(spread, requireCount(cfg.numFlowPartitions, 'numFlowPartitions'));
  return Object.freeze({
    partitionOf(laneId: LaneId, uuid: string, cfg: PartitionConfig): number {
      return (soloPartition(laneId, cfg) + (crc16(uuidBytes(uuid)) % width(cfg))) % cfg.numFlowPartitions;
    },
    partitionsOf(laneId: LaneId, cfg: PartitionConfig): readonly number[] {
      const first = soloPartition(laneId, cfg);
      return Array.from({ length: width(cfg) }, (_, offset) => (first + offset) % cfg.numFlowPartitions);
    },
  });
}

// ---------------------------------------------------------------------------------
// Hash tags

/** Tag prefixes: `fp` for flows and executions, `b` for budgets, `q` for quotas. */
export type TagFamily = 'fp' | 'b' | 'q';

/** `{` + family + `:` + plain decimal index + `}`, e.g. `{fp:7}`. */
export function hashTag(family: TagFamily, index: number): HashTag {
  if (!Number.isInteger(index) || index < 0 || index > 0xffff) {
    throw new RangeError(`partition index must be an integer in 0..65535, got ${index}`);
  }
  return `{${family}:${index}}` as HashTag;
}

export const flowTag = (flowId: FlowId, cfg: PartitionConfig): HashTag => hashTag('fp', flowPartition(flowId, cfg));
export const budgetTag = (budgetId: BudgetId, cfg: PartitionConfig): HashTag =>
  hashTag('b', budgetPartition(budgetId, cfg));
export const quotaTag = (quotaPolicyId: QuotaPolicyId, cfg: PartitionConfig): HashTag =>
  hashTag('q', quotaPartition(quotaPolicyId, cfg));
export const soloTag = (laneId: LaneId, cfg: PartitionConfig): HashTag => hashTag('fp', soloPartition(laneId, cfg));

export const CLUSTER_SLOT_COUNT = 16384;

/**
 * The Valkey cluster slot of a key: only the text between the first `{` and the next
 * `}` is hashed when that text is non-empty; otherwise the whole key is.
 */
export function clusterSlot(key: string): number {
  let hashed = key;
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) hashed = key.slice(open + 1, close);
  }
  return crc16(utf8.encode(hashed)) % CLUSTER_SLOT_COUNT;
}

// ---------------------------------------------------------------------------------
// Minting ExecutionIds. Passing `uuid` gives a deterministic id (any UUID form, any
// version, nil allowed); it stays stable only while numFlowPartitions is unchanged.

/** An execution co-located with its flow: `{fp:<flow partition>}:<uuid>`. */
export function executionIdForFlow(flowId: FlowId, cfg: PartitionConfig, uuid: string = randomUUID()): ExecutionId {
  return parseExecutionId(`${flowTag(flowId, cfg)}:${parseUuid(uuid)}`);
}

/**
 * A flow-less execution, partitioned by its lane: `{fp:<solo partition>}:<uuid>`. A
 * partitioner other than the default (e.g. spreadLanePartitioner) picks among the lane's partitions.
 */
export function soloExecutionId(
  laneId: LaneId,
  cfg: PartitionConfig,
  uuid: string = randomUUID(),
  partitioner: SoloPartitioner = laneHashPartitioner,
): ExecutionId {
  const canonical = parseUuid(uuid);
  return parseExecutionId(`${hashTag('fp', partitioner.partitionOf(laneId, canonical, cfg))}:${canonical}`);
}

// ---------------------------------------------------------------------------------
// FNV-1a helpers (ff-core hash.rs): log digests and scan start offsets only, never
// key material. Strings are hashed as UTF-8.

const FNV_OFFSET_BASIS = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;

export function fnv1aU64(input: string | Uint8Array): bigint {
  const bytes = typeof input === 'string' ? utf8.encode(input) : input;
  let hash = FNV_OFFSET_BASIS;
  for (let i = 0; i < bytes.length; i++) hash = BigInt.asUintN(64, (hash ^ BigInt(bytes[i]!)) * FNV_PRIME);
  return hash;
}

/** Low 32 bits XOR high 32 bits of fnv1aU64, as 8 lowercase hex digits. */
export function fnv1aXor8Hex(input: string | Uint8Array): string {
  const hash = fnv1aU64(input);
  return ((hash & 0xffffffffn) ^ (hash >> 32n)).toString(16).padStart(8, '0');
}

/** Low 16 bits of fnv1aU64 modulo `m`; 0 when `m` is 0. */
export function fnv1aU16Mod(input: string | Uint8Array, m: number): number {
  if (m === 0) return 0;
  return Number(fnv1aU64(input) & 0xffffn) % m;
}
