// The server's clock, as the engine's scanners, the scheduler and the worker read it
// (engine.md conventions: one TIME as seconds × 1000 + floor(µs / 1000)).
import { sendCommand } from '../runtime/classify.js';
import type { FlowFabricClient } from '../runtime/client.js';
import { ReplyParseError } from '../runtime/errors.js';
import { replyText } from '../runtime/reply.js';

/** The server clock in epoch ms (one TIME). */
export async function serverTimeMs(client: Pick<FlowFabricClient, 'transport'>): Promise<number> {
  const reply = await sendCommand(client.transport, 'TIME', []);
  if (!Array.isArray(reply) || reply.length < 2) throw new ReplyParseError('TIME', 'reply', 'expected [seconds, microseconds]');
  const seconds = Number(replyText(reply[0]));
  const micros = Number(replyText(reply[1]));
  if (!Number.isFinite(seconds) || !Number.isFinite(micros)) throw new ReplyParseError('TIME', 'reply', 'non-numeric');
  return seconds * 1000 + Math.floor(micros / 1000);
}
