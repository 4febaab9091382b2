/**
 * Warden's own logs as pino JSON lines (`level`, `time`, `msg`, and `requestId` / `decisionId`
 * where a line concerns a request), and the adapter that makes Nest's `Logger` write them.
 *
 * SECURITY: Warden's log messages name failures by code and class, never by credential (see the
 * SECURITY comments at each call). The redaction below is a second line of defence for objects
 * passed as log fields: anything under a key that holds a credential is censored.
 */
import type { LoggerService, LogLevel } from '@nestjs/common';
import { pino, type DestinationStream, type Level, type Logger } from 'pino';

/** Warden's logger (pino). */
export type WardenLogger = Logger;

/** Keys that hold credentials, wherever they appear in a logged object (two levels deep). */
const REDACTED_KEYS = ['token', 'apiKey', 'authorization', 'password', 'secret', 'clientSecret', 'bootstrapToken'];
const REDACT_PATHS = [...REDACTED_KEYS, ...REDACTED_KEYS.map((k) => `*.${k}`)];

/** Options of {@link createWardenLogger}. */
export interface WardenLoggerOptions {
  /** Nest's log levels; the most verbose one enabled sets pino's level (default: warnings and errors). */
  levels?: readonly LogLevel[] | undefined;
  /** Where lines go (default: stderr, where Nest wrote warnings and errors; stdout keeps the `listening` line). */
  destination?: DestinationStream | undefined;
}

const NEST_TO_PINO: Record<LogLevel, Level> = { fatal: 'fatal', error: 'error', warn: 'warn', log: 'info', debug: 'debug', verbose: 'trace' };
const ORDER: readonly Level[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

function pinoLevel(levels: readonly LogLevel[] | undefined): Level | 'silent' {
  if (levels === undefined) return 'warn';
  let best: Level | undefined;
  for (const l of levels) {
    const p = NEST_TO_PINO[l];
    if (best === undefined || ORDER.indexOf(p) < ORDER.indexOf(best)) best = p;
  }
  return best ?? 'silent';
}

/** Creates Warden's JSON logger. */
export function createWardenLogger(options: WardenLoggerOptions = {}): WardenLogger {
  return pino(
    {
      level: pinoLevel(options.levels),
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    },
    options.destination ?? pino.destination({ dest: 2, sync: false }),
  );
}

/**
 * Nest's `LoggerService` over pino: Nest's and Warden's `Logger('Context')` lines become JSON
 * with a `context` field. Nest passes the context as the last string argument, and for `error`
 * a stack before it.
 */
export class PinoLoggerService implements LoggerService {
  constructor(private readonly pino: WardenLogger) {}

  private write(level: Level, message: unknown, params: unknown[], withStack: boolean): void {
    if (!this.pino.isLevelEnabled(level)) return;
    const fields: Record<string, unknown> = {};
    const rest = [...params];
    if (rest.length > 0 && typeof rest[rest.length - 1] === 'string') fields['context'] = rest.pop();
    if (withStack && typeof rest[0] === 'string') fields['stack'] = rest.shift();
    if (message instanceof Error) {
      fields['err'] = message;
      this.pino[level](fields, message.message);
    } else if (typeof message === 'object' && message !== null) {
      this.pino[level]({ ...fields, ...(message as Record<string, unknown>) });
    } else {
      this.pino[level](fields, String(message));
    }
  }

  log(message: unknown, ...params: unknown[]): void {
    this.write('info', message, params, false);
  }
  error(message: unknown, ...params: unknown[]): void {
    this.write('error', message, params, true);
  }
  warn(message: unknown, ...params: unknown[]): void {
    this.write('warn', message, params, false);
  }
  debug(message: unknown, ...params: unknown[]): void {
    this.write('debug', message, params, false);
  }
  verbose(message: unknown, ...params: unknown[]): void {
    this.write('trace', message, params, false);
  }
  fatal(message: unknown, ...params: unknown[]): void {
    this.write('fatal', message, params, false);
  }
}
