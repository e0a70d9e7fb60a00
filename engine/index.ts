// The background engine (engine.md): scanners, completion listener, retention and boot.
export { Engine, SCANNER_NAMES, DEFAULT_INTERVALS_MS, DEFAULT_BATCH_SIZES, type EngineOptions, type EngineStats, type ScannerName } from './engine.js';
export { PartitionMismatchError, type BootOptions } from './boot.js';
export { COMPLETIONS_CHANNEL, type ListenerStats, type Subscriber } from './completions.js';
export { createLogger, consoleSink, isLogLevel, type LogLevel, type LogSink, type Logger } from './log.js';
export type { ScannerStats } from './runner.js';
export { DEFAULT_RETENTION_MS, type RetentionOptions } from './scanners/retention.js';
