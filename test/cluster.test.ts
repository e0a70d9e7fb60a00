// The library on a real three-primary cluster through the ioredis Cluster adapter: loaded
// on every primary, and executions on partitions spread over all slots run their life
// without a single CROSSSLOT or MOVED error.
import { describe, it } from 'vitest';
import { expectLibraryOnEveryPrimary, expectResumesOnEveryPrimary, expectRunsOnEveryPrimary, useLocalCluster } from './support/cluster.js';

const env = useLocalCluster();

describe('on a three-primary cluster', () => {
  it('loads the library on every primary', () => expectLibraryOnEveryPrimary(env.client()));

  it('runs executions on partitions owned by every primary', () => expectRunsOnEveryPrimary(env.client()));

  it('suspends, signals, resumes and completes on partitions owned by every primary', () => expectResumesOnEveryPrimary(env.client()));
});
