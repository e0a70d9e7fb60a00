// Vitest global setup: one redis-server for the whole run (unless FF_TEST_REDIS_URL is set).
// Tests share the server but never its state: every test uses fresh ids, and nothing
// flushes the database.
import type { TestProject } from 'vitest/node';
import { startServer, type RunningServer } from '../../tools/local-server.js';

let server: RunningServer | undefined;

export async function setup(project: TestProject): Promise<void> {
  const url = process.env.FF_TEST_REDIS_URL ?? (server = await startServer()).url;
  project.provide('redisUrl', url);
}

export async function teardown(): Promise<void> {
  await server?.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}
