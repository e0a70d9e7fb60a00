// What the workers' presence records say (engine.md §4.2): `ff:idx:workers` lists instance
// ids, `ff:worker:<id>:alive` lapses when a worker stops renewing it, `ff:worker:<id>:caps`
// holds its capabilities as a comma list. The engine's unblock scanner and a worker deciding
// whether to leave an execution for a capable peer read them the same way.
import { sendCommand } from '../runtime/classify.js';
import type { FlowFabricClient } from '../runtime/client.js';
import { replyText } from '../runtime/reply.js';
import { GlobalKeys } from '../generated/keys.js';

/** Splits a stored comma list, trimming and dropping empties. */
export function splitCsv(text: string | undefined): string[] {
  if (!text) return [];
  return text
    .split(',')
    .map((token) => token.trim())
    .filter((token) => token.length > 0);
}

/** Whether every capability of a stored `required_capabilities` list is in `available`. */
export function capabilitiesSatisfied(requiredCsv: string | undefined, available: ReadonlySet<string>): boolean {
  return splitCsv(requiredCsv).every((token) => available.has(token));
}

/**
 * The union of capabilities advertised by workers whose alive key still exists (the
 * reference's unblock scanner counts every advertised worker, alive or not; a dead one's
 * record must not keep work waiting for it).
 */
export async function liveCapabilities(client: Pick<FlowFabricClient, 'transport'>): Promise<Set<string>> {
  const members = await sendCommand(client.transport, 'SMEMBERS', [GlobalKeys.workersIndex()]);
  const ids = Array.isArray(members) ? members.map((m) => replyText(m) ?? '') : [];
  const union = new Set<string>();
  await Promise.all(
    ids.map(async (id) => {
      const [alive, caps] = await Promise.all([
        sendCommand(client.transport, 'EXISTS', [GlobalKeys.workerAlive(id)]),
        sendCommand(client.transport, 'GET', [GlobalKeys.workerCaps(id)]),
      ]);
      if (Number(alive) === 1) for (const token of splitCsv(replyText(caps))) union.add(token);
    }),
  );
  return union;
}
