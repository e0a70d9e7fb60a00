// Log lines a person can follow: one line per event, at a chosen level, to a sink the
// embedding process picks (console by default).
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

const RANK: Readonly<Record<LogLevel, number>> = { error: 0, warn: 1, info: 2, debug: 3 };

/** Receives every line at or above the engine's level. */
export type LogSink = (level: LogLevel, message: string, fields?: Readonly<Record<string, unknown>>) => void;

export interface Logger {
  error(message: string, fields?: Readonly<Record<string, unknown>>): void;
  warn(message: string, fields?: Readonly<Record<string, unknown>>): void;
  info(message: string, fields?: Readonly<Record<string, unknown>>): void;
  debug(message: string, fields?: Readonly<Record<string, unknown>>): void;
}

/** `2026-01-01T00:00:00.000Z warn  engine: message key=value …` on stderr. */
export const consoleSink: LogSink = (level, message, fields) => {
  const extra = fields ? Object.entries(fields).map(([k, v]) => ` ${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join('') : '';
  process.stderr.write(`${new Date().toISOString()} ${level.padEnd(5)} ${message}${extra}\n`);
};

export function isLogLevel(text: string): text is LogLevel {
  return text in RANK;
}

export function createLogger(level: LogLevel, sink: LogSink = consoleSink, prefix = 'engine'): Logger {
  const emit = (at: LogLevel) => (message: string, fields?: Readonly<Record<string, unknown>>) => {
    if (RANK[at] > RANK[level]) return;
    try {
      sink(at, `${prefix}: ${message}`, fields);
    } catch {
      // A failing sink must not stop a scanner.
    }
  };
  return { error: emit('error'), warn: emit('warn'), info: emit('info'), debug: emit('debug') };
}
