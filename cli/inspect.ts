// `ff-script inspect <execution-id>`: one execution as the engine holds it, laid out for a
// person (or as JSON for scripts). Read-only.
import { parseExecutionId } from '../runtime/ids.js';
import { inspectExecution, type ExecutionDetails } from '../operations/inspect.js';
import { type CliCommand, SERVER_HELP, serverOptions, UsageError, withClient } from './connection.js';

/** An epoch-ms time as ISO text with its distance from now. */
export function when(ms: number | undefined, now = Date.now()): string {
  if (ms === undefined) return '-';
  // Index scores can be +inf (no timeout) or not a time at all: show them as they are.
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return ms === Infinity ? 'never' : String(ms);
  const delta = ms - now;
  const abs = Math.abs(delta);
  const span = abs < 1000 ? `${abs} ms` : abs < 120_000 ? `${(abs / 1000).toFixed(1)} s` : abs < 7_200_000 ? `${Math.round(abs / 60_000)} min` : `${(abs / 3_600_000).toFixed(1)} h`;
  return `${new Date(ms).toISOString()} (${delta >= 0 ? `in ${span}` : `${span} ago`})`;
}

const clip = (text: string, max = 120): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text);
const pairs = (entries: readonly (readonly [string, string | number | undefined])[]): string =>
  entries.flatMap(([k, v]) => (v === undefined || v === '' ? [] : [`${k} ${v}`])).join(' · ');

export function formatExecution(details: ExecutionDetails, now = Date.now()): string {
  const { execution: e } = details;
  const lines: string[] = [];
  const section = (title: string) => lines.push('', title);
  lines.push(`execution ${e.executionId}`);
  lines.push(`  ${pairs([['lane', e.laneId], ['namespace', e.namespace], ['kind', e.kind], ['priority', e.priority]])}`);
  lines.push(`  state        ${e.publicState}`);
  const s = e.state;
  lines.push(`  lifecycle    ${s.lifecyclePhase} · ownership ${s.ownershipState} · eligibility ${s.eligibilityState}`);
  lines.push(`  blocking     ${s.blockingReason}${s.blockingDetail ? ` (${s.blockingDetail})` : ''} · outcome ${s.terminalOutcome} · attempt ${s.attemptState}`);
  lines.push(`  created      ${when(e.createdAt, now)}`);
  if (e.startedAt !== undefined) lines.push(`  started      ${when(e.startedAt, now)}`);
  if (e.completedAt !== undefined) lines.push(`  completed    ${when(e.completedAt, now)}`);
  if (e.delayUntil !== undefined) lines.push(`  delayed to   ${when(e.delayUntil, now)}`);
  lines.push(`  counts       attempts ${e.attempts} · retries ${e.retryCount} · reclaims ${e.reclaimCount} · replays ${e.replayCount}`);
  if (e.failureReason) lines.push(`  failure      ${e.failureReason}`);
  if (e.cancellationReason) lines.push(`  cancelled    ${e.cancellationReason}`);
  if (e.progress) lines.push(`  progress     ${pairs([['pct', e.progress.pct], ['message', e.progress.message]])}`);
  if (e.result !== undefined) lines.push(`  result       ${clip(e.result)}`);
  if (e.requiredCapabilities) lines.push(`  requires     ${e.requiredCapabilities.join(', ')}`);

  section(`attempts (${details.attempts.length} of ${details.totalAttempts})`);
  if (details.attempts.length === 0) lines.push('  none yet');
  for (const a of details.attempts) {
    lines.push(`  #${a.index} ${a.type ?? '?'} · ${a.state ?? '?'} · ${pairs([['worker', a.workerInstanceId ?? a.workerId], ['epoch', a.leaseEpoch]])}`);
    lines.push(`      started ${when(a.startedAt ?? a.createdAt, now)}${a.endedAt !== undefined ? ` · ended ${when(a.endedAt, now)}` : ''}`);
    const why = pairs([['reason', a.reason], ['failure', a.failureReason], ['category', a.failureCategory]]);
    if (why) lines.push(`      ${why}`);
  }

  section('lease');
  const l = details.lease;
  if (!l) lines.push('  none');
  else {
    lines.push(`  ${l.leaseId} · epoch ${l.leaseEpoch ?? '?'} · worker ${l.workerInstanceId ?? l.workerId ?? '?'}`);
    lines.push(`  acquired ${when(l.acquiredAt, now)}`);
    lines.push(`  expires  ${when(l.expiresAt, now)} · renew by ${when(l.renewalDeadline, now)}`);
  }

  const sp = details.suspension;
  if (sp) {
    section(`suspension (${sp.open ? 'open' : `closed: ${sp.closeReason ?? '?'}`})`);
    lines.push(`  ${sp.suspensionId} · ${pairs([['reason', sp.reasonCode], ['attempt', sp.attemptIndex], ['by', sp.requestedBy]])}`);
    lines.push(`  since ${when(sp.createdAt, now)} · timeout ${when(sp.timeoutAt, now)} → ${sp.timeoutBehavior ?? 'fail'}`);
    if (sp.resumeCondition) lines.push(`  condition ${clip(sp.resumeCondition)}`);
  }

  section(`waitpoints (${details.waitpoints.length})`);
  if (details.waitpoints.length === 0) lines.push('  none');
  for (const w of details.waitpoints) {
    lines.push(`  ${w.waitpointId} · ${w.state ?? '?'}${w.waitpointKey ? ` · key ${w.waitpointKey}` : ''} · signals ${w.signalCount} (matched ${w.matchedSignalCount})`);
    if (w.condition) {
      const matchers = w.condition.matchers.map((m) => `${m.name || '*'} ${m.satisfied ? '✓' : '·'}`).join(', ');
      lines.push(`      match ${w.condition.matchMode} ${w.condition.satisfiedCount}/${w.condition.matchMode === 'all' ? w.condition.matchers.length : w.condition.minimumSignalCount}: ${matchers}`);
    }
    if (w.closedAt !== undefined) lines.push(`      closed ${when(w.closedAt, now)}${w.closeReason ? ` (${w.closeReason})` : ''}`);
  }

  section(`signals (${details.signals.length} of ${details.totalSignals})`);
  if (details.signals.length === 0) lines.push('  none');
  for (const sig of details.signals) {
    lines.push(`  ${when(sig.acceptedAt, now)} · ${sig.name ?? '?'} · ${sig.effect ?? '?'}${sig.sourceIdentity ? ` · from ${sig.sourceType ?? ''} ${sig.sourceIdentity}` : ''}`);
  }

  const o = details.output;
  section(o ? `output of attempt ${o.attemptIndex} (${o.frameCount} frames, ${o.totalBytes} bytes${o.closedAt !== undefined ? `, closed: ${o.closedReason ?? '?'}` : ', open'})` : 'output');
  if (!o || o.frames.length === 0) lines.push('  none');
  for (const f of o?.frames ?? []) lines.push(`  ${f.id} · ${f.frameType ?? '?'} · ${clip(f.payload, 100)}`);

  const fl = details.flow;
  if (fl) {
    section(`flow ${fl.flowId} (${pairs([['state', fl.flowState], ['kind', fl.flowKind], ['nodes', fl.nodeCount], ['edges', fl.edgeCount]])})`);
    if (fl.unsatisfiedRequired !== undefined) lines.push(`  dependencies: ${fl.unsatisfiedRequired} unsatisfied, ${fl.impossibleRequired ?? 0} impossible`);
    for (const edge of fl.incoming) lines.push(`  waits on ${edge.executionId} (${edge.state ?? '?'}, ${edge.dependencyKind ?? '?'})`);
    for (const edge of fl.outgoing) lines.push(`  feeds    ${edge.executionId} (${edge.state ?? '?'}, ${edge.dependencyKind ?? '?'})`);
    if (fl.incoming.length === 0 && fl.outgoing.length === 0) lines.push('  no edges');
  }
  return lines.join('\n');
}

export const inspectCommand: CliCommand = {
  summary: "show one execution: state, attempts, lease, suspension, waitpoints, signals, output, flow (read-only)",
  usage: [
    'ff-script inspect <execution-id> [--json] [--frames N] [--url URL] [--cluster]',
    '  <execution-id>  e.g. {fp:7}:0f8fad5b-d9cb-469f-a165-70867728950e (quote the braces in a shell)',
    '  --frames N      output frames to show from the end of the stream (default 10)',
    '  --json          print the typed read (inspectExecution) as JSON',
    SERVER_HELP,
  ].join('\n'),
  positionals: true,
  options: { ...serverOptions, json: { type: 'boolean', default: false }, frames: { type: 'string', default: '10' } },
  async run(values, positionals) {
    if (positionals.length !== 1) throw new UsageError('give exactly one execution id');
    let executionId;
    try {
      executionId = parseExecutionId(positionals[0]!);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    const frames = Number(values.frames);
    if (!Number.isSafeInteger(frames) || frames < 0) throw new UsageError('--frames must be a non-negative integer');
    const details = await withClient(values, (client) => inspectExecution(client, executionId, { frames }));
    if (!details) {
      console.error(`ff-script inspect: no execution ${executionId} on this server`);
      return 1;
    }
    console.log(values.json ? JSON.stringify(details, null, 2) : formatExecution(details));
    return 0;
  },
};
