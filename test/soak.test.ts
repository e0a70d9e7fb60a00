// A short soak in the regular suite; `npm run test:soak` runs a long one (FF_SOAK_STEPS).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../tools/local-server.js';
import { runSoak } from './support/soak.js';

let server: RunningServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server.stop();
});

const steps = Number(process.env.FF_SOAK_STEPS ?? 600);

describe('soak: random operations with faults', () => {
  it(`${steps} steps by 6 workers over 40 executions: every execution accounted for, consistent`, { timeout: Math.max(60_000, steps * 100) }, async () => {
    const report = await runSoak(server, { executions: 40, workers: 6, steps, faultEvery: 97 });
    if (process.env.FF_SOAK_REPORT) console.log(JSON.stringify(report, null, 2));
    expect(report.unexpected).toEqual([]);
    expect(report.violations).toEqual({});
    expect(Object.values(report.finalStates).reduce((a, b) => a + b, 0)).toBe(40);
    expect(report.finalStates['(missing)']).toBeUndefined();
    expect(report.ok).toBeGreaterThan(0);
  });
});
