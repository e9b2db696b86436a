/**
 * The one logger factory: pino JSON to stdout (or a pretty-ish single line for terminals), with
 * every credential-bearing field redacted wherever it appears in a log object.
 *
 * Components bind a child logger once (`logger.child({ component: 'dispatcher' })`) and per
 * reconcile / work item; errors go under `err`.
 */
import { pino, type Logger, type LoggerOptions, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

import type { LogFormat, LogLevel } from '../config/logging.ts';

/**
 * Field names that may carry a credential anywhere in a logged object. Redaction is by key, at the
 * top level and up to two levels deep (pino's redaction cannot express "any depth" cheaply).
 */
export const CREDENTIAL_KEYS = [
  'apiKey',
  'api_key',
  'x-api-key',
  'authorization',
  'Authorization',
  'environmentKey',
  'environment_key',
  'token',
  'authToken',
  'sessions_token',
  'sessionsToken',
  'secret',
  'workSecret',
  'password',
  'key',
] as const;

function redactPaths(): string[] {
  const paths: string[] = [];
  for (const k of CREDENTIAL_KEYS) {
    const seg = /^[A-Za-z_$][\w$]*$/.test(k) ? k : `["${k}"]`;
    const join = (prefix: string): string => (seg.startsWith('[') ? `${prefix}${seg}` : `${prefix}.${seg}`);
    paths.push(seg.startsWith('[') ? seg.slice(2, -2) : seg, join('*'), join('*.*'));
  }
  return paths;
}

export interface LoggerSettings {
  readonly level?: LogLevel;
  readonly format?: LogFormat;
  /** Fields bound on every line (e.g. `{ process: 'operator' }`). */
  readonly base?: Record<string, unknown>;
  /** Where lines go; defaults to stdout. Tests pass a capturing stream. */
  readonly destination?: DestinationStream;
}

/** Create the process's root logger. Default level `info`, format `json`. */
export function createLogger(settings: LoggerSettings = {}): Logger {
  const options: LoggerOptions = {
    level: settings.level ?? 'info',
    base: settings.base ?? {},
    redact: { paths: redactPaths(), censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    serializers: { err: pino.stdSerializers.err },
  };
  if (settings.format === 'text') {
    // A compact human line without pulling pino-pretty into production images.
    return pino(options, settings.destination ?? textStream());
  }
  return settings.destination ? pino(options, settings.destination) : pino(options);
}

function textStream(): DestinationStream {
  return {
    write(line: string): void {
      try {
        const { time, level, msg, component, err, ...rest } = JSON.parse(line) as Record<string, unknown>;
        const fields = Object.entries(rest)
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join(' ');
        const where = component ? `[${String(component)}] ` : '';
        const error = err && typeof err === 'object' ? ` err=${String((err as { message?: unknown }).message)}` : '';
        process.stdout.write(`${String(time)} ${String(level).toUpperCase().padEnd(5)} ${where}${String(msg ?? '')}${fields ? ` ${fields}` : ''}${error}\n`);
      } catch {
        process.stdout.write(line);
      }
    },
  };
}

/** A logger that discards everything (tests, libraries used without a logger). */
export const silentLogger: Logger = pino({ level: 'silent' });
