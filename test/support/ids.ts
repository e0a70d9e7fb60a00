// Fresh ids for each test, so tests sharing one server never share state.
import { randomUUID } from 'node:crypto';
import { parseLaneId, type ExecutionId, type FlowId, type LaneId } from '../../runtime/ids.js';
import { DEFAULT_PARTITION_CONFIG, flowPartition, hashTag } from '../../runtime/partition.js';

let counter = 0;

/** A lane of its own for one test (lanes key the indexes, so tests do not see each other). */
export function uniqueLane(prefix = 'lane'): LaneId {
  counter += 1;
  return parseLaneId(`${prefix}-${process.pid}-${counter}-${randomUUID().slice(0, 8)}`);
}

/** A new execution id on a given flow partition (default: a random one of 256). */
export function newExecutionId(partition = Math.floor(Math.random() * 256)): ExecutionId {
  return `${hashTag('fp', partition)}:${randomUUID()}` as ExecutionId;
}

/** A flow id whose partition is `partition`, so flow and execution keys share a slot. */
export function flowIdOn(partition: number): FlowId {
  for (;;) {
    const id = randomUUID() as FlowId;
    if (flowPartition(id, DEFAULT_PARTITION_CONFIG) === partition) return id;
  }
}
