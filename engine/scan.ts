// Reading the indexes the scanners walk. drainIndex pages through a sorted set so that
// members a scanner leaves in place (not due, backed off, already marked) do not hide the
// members behind them: the next page starts after the ones that stayed.
import { sendCommand } from '../runtime/classify.js';
import { replyText } from '../runtime/reply.js';
import type { ScanContext } from './runner.js';

/** What a handler did with one member. */
export type ItemOutcome =
  /** The state changed (and the member normally left the index). */
  | 'done'
  /** Looked at, nothing to do now; the member stays in the index. */
  | 'stays'
  /** Recognised as already handled without a call (a cache hit); stays, and is not overdue. */
  | 'known';

/** How much of an index a scanner reads: the engine's per-scanner batch options. */
export interface IndexScanOptions {
  /** Members read per page (the reference's LIMIT). */
  readonly batchSize: number;
  /** Members looked at per partition and cycle. */
  readonly maxPerPartition: number;
}

export interface DrainOptions extends IndexScanOptions {
  readonly key: string;
  /** Upper score bound: `now` for due indexes, '+inf' for blocked sets. */
  readonly max: number | '+inf';
  /** When set, lag = lagBase − score of the oldest member that was not `known`. */
  readonly lagBase?: number;
  handle(member: string, score: number): Promise<ItemOutcome>;
}

export async function drainIndex(ctx: ScanContext, options: DrainOptions): Promise<void> {
  let offset = 0;
  let seen = 0;
  let lagTaken = options.lagBase === undefined;
  while (!ctx.stopping()) {
    const page = await zrangeByScore(ctx, options.key, '-inf', options.max, offset, options.batchSize);
    if (page.length === 0) return;
    seen += page.length;
    // A page's members are handled at once: each is its own atomic call on its own record.
    const outcomes = await Promise.all(page.map(([member, score]) => handleOne(ctx, options, member, score)));
    let stayed = 0;
    outcomes.forEach((outcome, i) => {
      if (outcome !== 'done') stayed++;
      if (!lagTaken && outcome !== 'known' && outcome !== 'skipped') {
        lagTaken = true;
        ctx.lag(Math.max(0, options.lagBase! - page[i]![1]));
      }
    });
    if (page.length < options.batchSize || seen >= options.maxPerPartition) return;
    offset += stayed;
  }
}

async function handleOne(ctx: ScanContext, options: DrainOptions, member: string, score: number): Promise<ItemOutcome | 'skipped' | 'failed'> {
  if (ctx.stopping()) return 'skipped';
  if (ctx.tracker.shouldSkip(member)) {
    ctx.skipped();
    return 'skipped';
  }
  try {
    const outcome = await options.handle(member, score);
    ctx.tracker.success(member);
    if (outcome === 'done') ctx.processed();
    return outcome;
  } catch (error) {
    ctx.failed(error, member);
    return 'failed';
  }
}

/** ZRANGEBYSCORE … WITHSCORES LIMIT offset count, as [member, score] pairs. */
export async function zrangeByScore(ctx: Pick<ScanContext, 'client'>, key: string, min: number | string, max: number | string, offset: number, count: number): Promise<[string, number][]> {
  const reply = await sendCommand(ctx.client.transport, 'ZRANGEBYSCORE', [key, min, max, 'WITHSCORES', 'LIMIT', offset, count]);
  const out: [string, number][] = [];
  if (!Array.isArray(reply)) return out;
  // RESP3 answers [member, score] pairs; RESP2 a flat member, score, … list.
  if (reply.length > 0 && Array.isArray(reply[0])) {
    for (const pair of reply as unknown[][]) out.push([replyText(pair[0]) ?? '', Number(replyText(pair[1]))]);
    return out;
  }
  for (let i = 0; i + 1 < reply.length; i += 2) out.push([replyText(reply[i]) ?? '', Number(replyText(reply[i + 1]))]);
  return out;
}

/** HMGET as texts (undefined for missing fields). */
export async function hmget(ctx: Pick<ScanContext, 'client'>, key: string, fields: readonly string[]): Promise<(string | undefined)[]> {
  const reply = await sendCommand(ctx.client.transport, 'HMGET', [key, ...fields]);
  return fields.map((_, i) => (Array.isArray(reply) ? replyText(reply[i]) : undefined));
}

export async function smembers(ctx: Pick<ScanContext, 'client'>, key: string): Promise<string[]> {
  const reply = await sendCommand(ctx.client.transport, 'SMEMBERS', [key]);
  return Array.isArray(reply) ? reply.map((m) => replyText(m) ?? '') : [];
}

/** One SSCAN page: the members and the cursor to go on from ('0': the pass is complete); undefined for a reply of another shape. */
export async function sscanPage(ctx: Pick<ScanContext, 'client'>, key: string, cursor: string, count: number): Promise<{ cursor: string; members: string[] } | undefined> {
  const reply = await sendCommand(ctx.client.transport, 'SSCAN', [key, cursor, 'COUNT', count]);
  if (!Array.isArray(reply) || reply.length < 2) return undefined;
  return { cursor: replyText(reply[0]) ?? '0', members: Array.isArray(reply[1]) ? reply[1].map((m) => replyText(m) ?? '') : [] };
}

/** Every member of a set, by SSCAN pages of `count` (no single huge reply). */
export async function* sscanAll(ctx: Pick<ScanContext, 'client' | 'stopping'>, key: string, count = 100): AsyncGenerator<string[]> {
  let cursor = '0';
  do {
    const page = await sscanPage(ctx, key, cursor, count);
    if (!page) return;
    cursor = page.cursor;
    if (page.members.length > 0) yield page.members;
  } while (cursor !== '0' && !ctx.stopping());
}
