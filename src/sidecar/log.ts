/**
 * The sidecar's logger: one JSON line per event on stdout, the same shape as the operator's pino
 * lines (`level` as pino's number, `time` in ms, `msg`), written by hand so the sidecar loads no
 * logging library. It is never handed the credential: nothing here needs redaction rules.
 */
import type { LogLevel } from '../config/logging.ts';

/** pino's numeric levels, so one log pipeline reads operator and sidecar lines alike. */
const LEVEL_VALUES: Readonly<Record<LogLevel, number>> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

export type Fields = Readonly<Record<string, unknown>>;

export interface SidecarLogger {
  error(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  debug(msg: string, fields?: Fields): void;
}

/** A logger writing lines at `level` and above to `write` (default: stdout), with `base` on every line. */
export function createSidecarLogger(level: LogLevel, base: Fields, write: (line: string) => void = (line) => process.stdout.write(line)): SidecarLogger {
  const threshold = LEVEL_VALUES[level];
  const emit = (lvl: Exclude<LogLevel, 'silent'>, msg: string, fields?: Fields): void => {
    const value = LEVEL_VALUES[lvl];
    if (value < threshold) return;
    write(`${JSON.stringify({ level: value, time: Date.now(), ...base, ...(fields ? serializable(fields) : {}), msg })}\n`);
  };
  return {
    error: (msg, fields) => emit('error', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    debug: (msg, fields) => emit('debug', msg, fields),
  };
}

/** Errors become `{type, message, code}` (JSON.stringify would drop them to `{}`). */
function serializable(fields: Fields): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) out[k] = v instanceof Error ? describeError(v) : v;
  return out;
}

export function describeError(err: Error): Record<string, unknown> {
  const code = (err as NodeJS.ErrnoException).code;
  return { type: err.name, message: err.message, ...(code ? { code } : {}) };
}
