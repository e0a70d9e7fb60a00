// `npm run demo`: a small real system on a throwaway redis-server (or REDIS_URL): the engine
// (its scanners and completion listener), three workers sharing two lanes, and a producer.
// It runs image jobs of which some fail and are retried, an approval that suspends until a
// signal arrives, a two-step flow whose second step waits for the first, and a job whose
// worker process is killed mid-task and which another worker reclaims once the engine has
// marked the lease expired. Progress is printed as it happens, then a summary.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { Engine } from '../engine/index.js';
import {
  FlowFabricClient,
  NonRetryableError,
  Worker,
  addDependency,
  createFlowFor,
  getExecution,
  signalExecution,
  submitExecution,
  waitForOutcome,
  type ExecutionId,
  type ExecutionView,
  type Task,
  type WorkerEvent,
} from '../index.js';
import { startServer, type RunningServer } from '../tools/local-server.js';

const started = Date.now();
const clock = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s`;
const say = (text: string) => console.log(`${clock()}  ${text}`);

const names = new Map<string, string>();
const nameOf = (id: string) => names.get(id) ?? id.slice(-8);

async function main(): Promise<void> {
  let server: RunningServer | undefined;
  const url = process.env.REDIS_URL ?? (server = await startServer()).url;
  say(`server ${url}${server ? ` (throwaway ${server.binary})` : ''}`);
  const redis = new Redis(url, { maxRetriesPerRequest: 1, autoResendUnfulfilledCommands: false });
  const client = FlowFabricClient.fromIoredis(redis, { autoLoad: true });
  const suffix = Date.now().toString(36);
  const lanes = { images: `demo-images-${suffix}`, approvals: `demo-approvals-${suffix}`, crash: `demo-crash-${suffix}` };

  // The engine boots the server (library, partition record, waitpoint key rings) and scans.
  const engine = new Engine({
    client,
    lanes: Object.values(lanes).map((l) => l as never),
    intervals: { lease_expiry: 250, delayed_promoter: 100, suspension_timeout: 250, unblock: 500, dependency_reconciler: 500 },
    // The index reconciler reads state and index membership in two steps, so it can flag an
    // execution that moved in between; the demo shows errors only.
    logLevel: 'error',
  });
  await engine.start();
  say('engine started: 14 scanners and the completion listener');

  // Three workers on the image and approval lanes; the engine does the housekeeping.
  const images = async (task: Task<{ n: number; size: number }>) => {
    await task.progress(10, 'decoding');
    await new Promise((resolve) => setTimeout(resolve, 40 + Math.random() * 80));
    if (task.input.size > 4000) throw new NonRetryableError(`image ${task.input.n} too large`);
    if (task.input.n % 4 === 1 && task.attemptIndex === 0) throw new Error(`flaky storage on image ${task.input.n}`);
    return { thumbnail: `thumb-${task.input.n}.png`, attempt: task.attemptIndex };
  };
  const approvals = async (task: Task<{ doc: string }>) => {
    if (task.attemptKind !== 'resumed') {
      await task.suspend({ signals: ['approved'], timeoutMs: 20_000 });
      return;
    }
    return { doc: task.input.doc, approvedBy: (task.signals[0]?.data as { by?: string } | undefined)?.by };
  };
  const steps = async (task: Task<{ step: string }>) => `${task.input.step} done`;
  const handler = (task: Task) => {
    if (task.kind === 'resize') return images(task as Task<{ n: number; size: number }>);
    if (task.kind === 'approval') return approvals(task as Task<{ doc: string }>);
    return steps(task as Task<{ step: string }>);
  };
  const workers = ['a', 'b', 'c'].map(
    (name) =>
      new Worker({
        client,
        lanes: [lanes.images, lanes.approvals],
        workerId: 'demo-worker',
        workerInstanceId: `worker-${name}-${suffix}`,
        concurrency: 3,
        leaseTtlMs: 3000,
        selfService: false,
        housekeepingIntervalMs: 250,
        idleBackoff: { minMs: 20, maxMs: 200 },
        installWaitpointSecrets: false,
        handler,
      }),
  );
  const report = (worker: string) => (event: WorkerEvent) => {
    const id = 'executionId' in event && event.executionId ? nameOf(event.executionId) : '';
    switch (event.type) {
      case 'claimed':
        if (event.attemptKind !== 'fresh') say(`${worker} claimed ${id} (${event.attemptKind}, attempt ${event.attemptIndex})`);
        break;
      case 'completed':
        say(`${worker} completed ${id}`);
        break;
      case 'retrying':
        say(`${worker} ${id} failed, retry scheduled: ${event.reason}`);
        break;
      case 'failed':
        say(`${worker} ${id} failed for good: ${event.reason}`);
        break;
      case 'suspended':
        say(`${worker} suspended ${id}, waiting for a signal`);
        break;
      case 'leaseLost':
        say(`${worker} lost the lease on ${id} (${event.code})`);
        break;
      case 'error':
        say(`${worker} error${id ? ` on ${id}` : ''}: ${String(event.error)}`);
        break;
      default:
        break;
    }
  };
  workers.forEach((w, i) => w.on('event', report(`worker-${'abc'[i]}`)));
  await Promise.all(workers.map((w) => w.start()));
  say('workers a, b, c started (3 slots each)');

  const submitted: ExecutionId[] = [];
  const track = (name: string, id: ExecutionId) => {
    names.set(id, name);
    submitted.push(id);
    return id;
  };

  // 1. Image jobs: every fourth fails once (retried after 200 ms), one is refused for good.
  const retry = { maxRetries: 2, backoff: { type: 'fixed' as const, delayMs: 200 } };
  for (let n = 0; n < 12; n++) {
    const size = n === 7 ? 5000 : 800;
    track(`image#${n}`, (await submitExecution(client, { lane: lanes.images, kind: 'resize', input: { n, size }, retry })).executionId);
  }
  say('submitted 12 image jobs (retry: 2, fixed 200 ms)');

  // 2. An approval that waits for a signal.
  const approval = track('approval', (await submitExecution(client, { lane: lanes.approvals, kind: 'approval', input: { doc: 'contract-42' } })).executionId);

  // 3. A two-step flow: publish waits for fetch.
  const flowId = await createFlowFor(client, { kind: 'pipeline', namespace: 'demo' });
  const fetchStep = track('flow:fetch', (await submitExecution(client, { lane: lanes.images, kind: 'step', input: { step: 'fetch' }, flowId })).executionId);
  const publishStep = track('flow:publish', (await submitExecution(client, { lane: lanes.images, kind: 'step', input: { step: 'publish' }, flowId })).executionId);
  await addDependency(client, { flowId, upstream: fetchStep, downstream: publishStep });
  say('submitted a two-step flow: fetch → publish');

  // 4. A job whose worker process dies mid-task.
  track('crash-job', (await submitExecution(client, { lane: lanes.crash, kind: 'step', input: { step: 'survive a crash' } })).executionId);
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./crashing-worker.ts', import.meta.url)), url, lanes.crash], { stdio: ['ignore', 'pipe', 'inherit'] });
  const claimedByChild = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const message = JSON.parse(line) as { claimed?: string; ready?: string };
      if (message.ready) say(`process ${child.pid} (${message.ready}) started on the crash lane`);
      if (message.claimed) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the crashing worker exited early (${String(code)})`)));
  });
  await claimedByChild;
  child.removeAllListeners('exit');
  child.kill('SIGKILL');
  say(`process ${child.pid} claimed crash-job and was killed (SIGKILL) mid-task`);
  const replacement = new Worker({
    client,
    lanes: lanes.crash,
    workerId: 'demo-worker',
    workerInstanceId: `replacement-${suffix}`,
    selfService: false,
    housekeepingIntervalMs: 250,
    idleBackoff: { minMs: 20, maxMs: 200 },
    installWaitpointSecrets: false,
    handler,
  });
  replacement.on('event', report('replacement'));
  await replacement.start();
  say('replacement worker started; the engine will mark the lost lease expired after 1.5 s');

  // The approval arrives from "outside" once the handler has suspended.
  for (let i = 0; i < 200 && (await getExecution(client, approval))?.publicState !== 'suspended'; i++) await new Promise((r) => setTimeout(r, 25));
  await signalExecution(client, approval, { name: 'approved', data: { by: 'ops@demo' }, source: 'demo' });
  say('signal "approved" delivered to approval');

  const outcomes: ExecutionView[] = [];
  for (const id of submitted) outcomes.push(await waitForOutcome(client, id, { timeoutMs: 20_000 }));

  await Promise.all([...workers, replacement].map((w) => w.close({ timeoutMs: 5000 })));
  await engine.stop();

  console.log('\nsummary');
  for (const view of outcomes) {
    const detail = view.publicState === 'completed' ? view.result : view.failureReason;
    console.log(`  ${nameOf(view.executionId).padEnd(13)} ${view.publicState.padEnd(10)} attempts ${view.attempts}${view.reclaimCount ? ` (reclaims ${view.reclaimCount})` : ''}  ${detail ?? ''}`);
  }
  const count = (state: string) => outcomes.filter((o) => o.publicState === state).length;
  console.log(`  ${count('completed')} completed, ${count('failed')} failed, ${outcomes.reduce((s, o) => s + o.attempts, 0)} attempts`);
  for (const [i, w] of [...workers, replacement].entries()) {
    const c = w.counters;
    console.log(`  ${(i < 3 ? `worker-${'abc'[i]}` : 'replacement').padEnd(12)} claimed ${c.claimed}, completed ${c.completed}, retried ${c.retried}, failed ${c.failed}, suspended ${c.suspended}, reclaimed ${c.reclaimed}, renewals ${c.renewals}`);
  }
  console.log(`  elapsed ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const expected = { completed: 15, failed: 1 };
  redis.disconnect();
  await server?.stop();
  if (count('completed') !== expected.completed || count('failed') !== expected.failed) {
    throw new Error(`expected ${expected.completed} completed and ${expected.failed} failed`);
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
