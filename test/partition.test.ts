import { describe, it, expect } from 'vitest';
import {
  CLUSTER_SLOT_COUNT,
  DEFAULT_PARTITION_CONFIG,
  budgetPartition,
  budgetTag,
  clusterSlot,
  crc16,
  executionIdForFlow,
  flowPartition,
  flowTag,
  fnv1aU16Mod,
  fnv1aU64,
  fnv1aXor8Hex,
  hashTag,
  quotaPartition,
  quotaTag,
  readPartitionConfig,
  soloExecutionId,
  soloPartition,
  soloTag,
  uuidBytes,
  validatePartitionConfig,
  type PartitionConfig,
} from '../runtime/partition.js';
import {
  IdError,
  executionPartition,
  executionTag,
  executionUuid,
  isCanonicalUuid,
  parseBudgetId,
  parseFlowId,
  parseLaneId,
  parseQuotaPolicyId,
} from '../runtime/ids.js';

const bytesOf = (text: string): Uint8Array => new TextEncoder().encode(text);
const cfg = DEFAULT_PARTITION_CONFIG;
const withFlowCount = (numFlowPartitions: number): PartitionConfig => ({ ...cfg, numFlowPartitions });

const FLOW_A = parseFlowId('550e8400-e29b-41d4-a716-446655440000');
const FLOW_B = parseFlowId('6ba7b810-9dad-11d1-80b4-00c04fd430c8');
const BUDGET_UUID = '123e4567-e89b-12d3-a456-426614174000';

describe('crc16 (CRC-16/XMODEM)', () => {
  it('matches the standard check value', () => {
    expect(crc16(bytesOf('123456789'))).toBe(0x31c3);
  });

  it('matches the Valkey slot of key "foo"', () => {
    expect(crc16(bytesOf('foo')) % 16384).toBe(12182);
  });

  it('is 0 for empty input', () => {
    expect(crc16(new Uint8Array())).toBe(0);
  });
});

describe('clusterSlot (model.md 1.4)', () => {
  it.each([
    ['{fp:0}', 14926],
    ['{fp:24}', 360],
    ['{fp:77}', 3838],
    ['{fp:86}', 3809],
    ['{fp:193}', 149],
    ['{b:0}', 10502],
    ['{b:9}', 14383],
    ['{q:9}', 8732],
    ['{q:31}', 17],
  ])('%s -> slot %i', (tag, slot) => {
    expect(clusterSlot(tag)).toBe(slot);
  });

  it('uses the first tag of an execution key', () => {
    expect(clusterSlot('ff:exec:{fp:24}:{fp:24}:0f8fad5b-d9cb-469f-a165-70867728950e:core')).toBe(360);
    expect(clusterSlot('ff:flow:{fp:24}:550e8400-e29b-41d4-a716-446655440000:core')).toBe(360);
  });

  it('hashes the whole key when there is no usable tag', () => {
    expect(clusterSlot('foo')).toBe(12182);
    expect(clusterSlot('{}foo')).toBe(crc16(bytesOf('{}foo')) % CLUSTER_SLOT_COUNT);
    expect(clusterSlot('foo{')).toBe(crc16(bytesOf('foo{')) % CLUSTER_SLOT_COUNT);
    // `{}` comes first and is empty, so the later `{bar}` does not count.
    expect(clusterSlot('foo{}{bar}')).toBe(crc16(bytesOf('foo{}{bar}')) % CLUSTER_SLOT_COUNT);
  });

  it('hashes from the first { to the next }', () => {
    expect(clusterSlot('a{foo}b')).toBe(12182);
    expect(clusterSlot('foo{{bar}}')).toBe(clusterSlot('{bar'));
  });
});

describe('uuidBytes', () => {
  it('returns the 16 raw bytes in printed order', () => {
    expect(Array.from(uuidBytes(FLOW_A))).toEqual([
      0x55, 0x0e, 0x84, 0x00, 0xe2, 0x9b, 0x41, 0xd4, 0xa7, 0x16, 0x44, 0x66, 0x55, 0x44, 0x00, 0x00,
    ]);
  });

  it('accepts every UUID form', () => {
    expect(uuidBytes('550E8400E29B41D4A716446655440000')).toEqual(uuidBytes(FLOW_A));
  });

  it('rejects non-UUIDs', () => {
    expect(() => uuidBytes('not-a-uuid')).toThrow(IdError);
  });
});

describe('worked examples (model.md 1.5)', () => {
  it.each([
    ['550e8400-e29b-41d4-a716-446655440000', 0x9018, 24, 24],
    ['6ba7b810-9dad-11d1-80b4-00c04fd430c8', 0xf34d, 77, 13],
    ['123e4567-e89b-12d3-a456-426614174000', 0x6c89, 137, 9],
    ['ffffffff-ffff-ffff-ffff-ffffffffffff', 0x0041, 65, 1],
    ['00000000-0000-0000-0000-000000000000', 0x0000, 0, 0],
  ])('UUID %s -> crc16 %i, flow %i, budget/quota %i', (uuid, crc, flowIndex, smallIndex) => {
    expect(crc16(uuidBytes(uuid))).toBe(crc);
    expect(flowPartition(parseFlowId(uuid), cfg)).toBe(flowIndex);
    expect(budgetPartition(parseBudgetId(uuid), cfg)).toBe(smallIndex);
    expect(quotaPartition(parseQuotaPolicyId(uuid), cfg)).toBe(smallIndex);
  });

  it('gives the tags of the examples', () => {
    expect(flowTag(FLOW_A, cfg)).toBe('{fp:24}');
    expect(flowTag(FLOW_B, cfg)).toBe('{fp:77}');
    expect(budgetTag(parseBudgetId(BUDGET_UUID), cfg)).toBe('{b:9}');
    expect(quotaTag(parseQuotaPolicyId(BUDGET_UUID), cfg)).toBe('{q:9}');
  });

  it.each([
    ['default', 0xd656, 86],
    ['workers-a', 0x2ec1, 193],
    ['gpu-pool', 0xa283, 131],
  ])('solo lane %s -> crc16 %i, partition %i', (lane, crc, index) => {
    expect(crc16(bytesOf(lane))).toBe(crc);
    expect(soloPartition(parseLaneId(lane), cfg)).toBe(index);
    expect(soloTag(parseLaneId(lane), cfg)).toBe(`{fp:${index}}`);
  });

  it('more checks: other flow counts', () => {
    expect(flowPartition(FLOW_A, withFlowCount(4))).toBe(0);
    expect(flowPartition(FLOW_A, withFlowCount(1024))).toBe(24);
  });

  it('pitfall: hashing the UUID text gives a different (wrong) answer', () => {
    const textCrc = crc16(bytesOf(FLOW_A));
    expect(textCrc).toBe(0xa206);
    expect(textCrc % 256).toBe(6);
    expect(flowPartition(FLOW_A, cfg)).not.toBe(6);
  });
});

describe('hashTag', () => {
  it('formats plain decimal tags', () => {
    expect(hashTag('fp', 7)).toBe('{fp:7}');
    expect(hashTag('b', 0)).toBe('{b:0}');
    expect(hashTag('q', 31)).toBe('{q:31}');
    expect(hashTag('fp', 65535)).toBe('{fp:65535}');
  });

  it.each([-1, 65536, 1.5, Number.NaN])('rejects index %s', (index) => {
    expect(() => hashTag('fp', index)).toThrow(RangeError);
  });
});

describe('minting ExecutionIds', () => {
  it('co-locates a flow member with its flow (model.md 1.5)', () => {
    const id = executionIdForFlow(FLOW_A, cfg, '0f8fad5b-d9cb-469f-a165-70867728950e');
    expect(id).toBe('{fp:24}:0f8fad5b-d9cb-469f-a165-70867728950e');
    expect(executionPartition(id)).toBe(24);
    expect(executionTag(id)).toBe(flowTag(FLOW_A, cfg));
    expect(`ff:exec:${executionTag(id)}:${id}:core`).toBe(
      'ff:exec:{fp:24}:{fp:24}:0f8fad5b-d9cb-469f-a165-70867728950e:core',
    );
  });

  it('canonicalises a caller-supplied UUID in any form', () => {
    const id = executionIdForFlow(FLOW_A, cfg, '{0F8FAD5B-D9CB-469F-A165-70867728950E}');
    expect(executionUuid(id)).toBe('0f8fad5b-d9cb-469f-a165-70867728950e');
  });

  it('accepts the nil UUID for deterministic ids', () => {
    expect(soloExecutionId(parseLaneId('default'), cfg, '00000000000000000000000000000000')).toBe(
      '{fp:86}:00000000-0000-0000-0000-000000000000',
    );
  });

  it('mints a fresh canonical UUID by default', () => {
    const a = executionIdForFlow(FLOW_B, cfg);
    const b = executionIdForFlow(FLOW_B, cfg);
    expect(a).not.toBe(b);
    expect(executionTag(a)).toBe('{fp:77}');
    expect(isCanonicalUuid(executionUuid(a))).toBe(true);
    expect(executionTag(soloExecutionId(parseLaneId('workers-a'), cfg))).toBe('{fp:193}');
  });

  it('rejects an invalid caller UUID', () => {
    expect(() => executionIdForFlow(FLOW_A, cfg, 'nope')).toThrow(IdError);
  });
});

describe('PartitionConfig', () => {
  it('has the documented defaults', () => {
    expect(DEFAULT_PARTITION_CONFIG).toEqual({ numFlowPartitions: 256, numBudgetPartitions: 32, numQuotaPartitions: 32 });
    expect(validatePartitionConfig(DEFAULT_PARTITION_CONFIG)).toBe(DEFAULT_PARTITION_CONFIG);
  });

  it.each([0, -1, 65536, 2.5, Number.NaN])('rejects count %s', (count) => {
    expect(() => validatePartitionConfig({ ...cfg, numBudgetPartitions: count })).toThrow(RangeError);
    expect(() => flowPartition(FLOW_A, withFlowCount(count))).toThrow(RangeError);
  });

  it('accepts the u16 extremes', () => {
    expect(() => validatePartitionConfig({ numFlowPartitions: 1, numBudgetPartitions: 65535, numQuotaPartitions: 1 })).not.toThrow();
    expect(flowPartition(FLOW_A, withFlowCount(1))).toBe(0);
  });

  it('reads ff:config:partitions, defaulting absent fields', () => {
    expect(readPartitionConfig({})).toEqual(DEFAULT_PARTITION_CONFIG);
    expect(readPartitionConfig(null)).toEqual(DEFAULT_PARTITION_CONFIG);
    expect(readPartitionConfig({ num_flow_partitions: '1024', num_quota_partitions: '8' })).toEqual({
      numFlowPartitions: 1024,
      numBudgetPartitions: 32,
      numQuotaPartitions: 8,
    });
  });

  it('rejects malformed stored counts', () => {
    expect(() => readPartitionConfig({ num_flow_partitions: 'abc' })).toThrow(RangeError);
    expect(() => readPartitionConfig({ num_budget_partitions: '0' })).toThrow(RangeError);
    expect(() => readPartitionConfig({ num_quota_partitions: '70000' })).toThrow(RangeError);
    expect(() => readPartitionConfig({ num_flow_partitions: '-4' })).toThrow(RangeError);
  });
});

describe('FNV-1a helpers (model.md 1.6)', () => {
  it('fnv1aU64', () => {
    expect(fnv1aU64('gpu,cuda')).toBe(0x32511bb2804b7648n);
    expect(fnv1aU64('')).toBe(0xcbf29ce484222325n);
    expect(fnv1aU64(bytesOf('gpu,cuda'))).toBe(fnv1aU64('gpu,cuda'));
  });

  it('fnv1aXor8Hex', () => {
    expect(fnv1aXor8Hex('gpu,cuda')).toBe('b21a6dfa');
    expect(fnv1aXor8Hex('')).toMatch(/^[0-9a-f]{8}$/);
  });

  it('fnv1aU16Mod', () => {
    expect(fnv1aU16Mod('worker-a', 256)).toBe(253);
    expect(fnv1aU16Mod('worker-a', 0)).toBe(0);
  });
});
