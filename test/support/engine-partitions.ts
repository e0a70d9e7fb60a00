// Partition counts of the engine tests' private servers, shared with their worker
// processes (which must not import vitest). Small counts keep each scanner cycle short.
import type { PartitionConfig } from '../../runtime/partition.js';

export const ENGINE_TEST_PARTITIONS: PartitionConfig = { numFlowPartitions: 8, numBudgetPartitions: 4, numQuotaPartitions: 4 };
