// Solo partitioners: the default stays the reference's crc16 of the lane; the spreading
// one is deterministic, stays within the lane's partitions and spreads evenly.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { executionPartition, parseLaneId } from '../runtime/ids.js';
import {
  DEFAULT_PARTITION_CONFIG,
  laneHashPartitioner,
  soloExecutionId,
  soloPartition,
  spreadLanePartitioner,
  type PartitionConfig,
} from '../runtime/partition.js';

const cfg = DEFAULT_PARTITION_CONFIG;
const lane = parseLaneId('default'); // crc16 0xD656 → partition 86 (model.md 1.5)
const NIL = '00000000-0000-0000-0000-000000000000';

describe('laneHashPartitioner (the default)', () => {
  it('is the reference partition of the lane whatever the UUID', () => {
    expect(laneHashPartitioner.partitionOf(lane, NIL, cfg)).toBe(86);
    expect(laneHashPartitioner.partitionOf(lane, randomUUID(), cfg)).toBe(86);
    expect(laneHashPartitioner.partitionsOf(lane, cfg)).toEqual([86]);
  });

  it('is what soloExecutionId uses when no partitioner is given', () => {
    expect(soloExecutionId(lane, cfg, NIL)).toBe(`{fp:86}:${NIL}`);
    expect(soloExecutionId(lane, cfg, NIL, laneHashPartitioner)).toBe(`{fp:86}:${NIL}`);
  });
});

describe('spreadLanePartitioner', () => {
  it('names the lane partition and the next ones, wrapping at the partition count', () => {
    expect(spreadLanePartitioner(4).partitionsOf(lane, cfg)).toEqual([86, 87, 88, 89]);
    const small: PartitionConfig = { ...cfg, numFlowPartitions: 88 };
    const first = soloPartition(lane, small);
    expect(spreadLanePartitioner(4).partitionsOf(lane, small)).toEqual([0, 1, 2, 3].map((o) => (first + o) % 88));
  });

  it('with a spread of 1 is the default', () => {
    for (let i = 0; i < 50; i++) {
      const uuid = randomUUID();
      expect(spreadLanePartitioner(1).partitionOf(lane, uuid, cfg)).toBe(laneHashPartitioner.partitionOf(lane, uuid, cfg));
    }
  });

  it('is deterministic: the same lane and UUID give the same id, any UUID spelling', () => {
    const spread = spreadLanePartitioner(16);
    const uuid = randomUUID();
    const id = soloExecutionId(lane, cfg, uuid, spread);
    expect(soloExecutionId(lane, cfg, uuid.toUpperCase(), spread)).toBe(id);
    expect(soloExecutionId(lane, cfg, uuid.replaceAll('-', ''), spread)).toBe(id);
  });

  it('keeps every execution on one of the lane partitions and uses them evenly', () => {
    const spread = spreadLanePartitioner(8);
    const allowed = spread.partitionsOf(lane, cfg);
    const counts = new Map<number, number>();
    const n = 8_000;
    for (let i = 0; i < n; i++) {
      const partition = executionPartition(soloExecutionId(lane, cfg, randomUUID(), spread));
      counts.set(partition, (counts.get(partition) ?? 0) + 1);
    }
    expect([...counts.keys()].sort((a, b) => a - b)).toEqual([...allowed].sort((a, b) => a - b));
    // 1 000 expected per partition; 6 standard deviations (~±180) never trips by chance.
    for (const count of counts.values()) expect(Math.abs(count - n / 8)).toBeLessThan(200);
  });

  it('caps the spread at the partition count', () => {
    const small: PartitionConfig = { ...cfg, numFlowPartitions: 3 };
    expect([...spreadLanePartitioner(100).partitionsOf(lane, small)].sort()).toEqual([0, 1, 2]);
    for (let i = 0; i < 30; i++) expect(spreadLanePartitioner(100).partitionOf(lane, randomUUID(), small)).toBeLessThan(3);
  });

  it('refuses a spread that is not an integer in 1..65535', () => {
    expect(() => spreadLanePartitioner(0)).toThrow(RangeError);
    expect(() => spreadLanePartitioner(1.5)).toThrow(/spread must be an integer/);
    expect(() => spreadLanePartitioner(70_000)).toThrow(RangeError);
  });
});
