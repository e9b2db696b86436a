import { randomBytes } from 'node:crypto';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** An id shaped like the API's: a prefix and 24 base62 characters, e.g. `env_011CZkZ9X2dpNyB7HsEFoRfW`. */
export function newId(prefix: string, length = 24): string {
  const bytes = randomBytes(length);
  let out = '';
  for (const b of bytes) out += BASE62[b % 62];
  return `${prefix}_${out}`;
}

/** A random secret (keys, tokens) of `bytes` bytes, base64url. */
export function newSecret(prefix: string, bytes = 32): string {
  return `${prefix}${randomBytes(bytes).toString('base64url')}`;
}

/** RFC 3339 with millisecond precision, as the API renders ordinary timestamps. */
export const rfc3339 = (ms: number): string => new Date(ms).toISOString();

/**
 * Strictly increasing RFC 3339 timestamps with microsecond precision, for `last_heartbeat`: two
 * heartbeats in the same millisecond still get different values, so a stale echo never matches.
 */
export class MonotonicStamp {
  #lastMicros = 0;
  next(nowMs: number): string {
    const micros = Math.max(Math.floor(nowMs) * 1000, this.#lastMicros + 1);
    this.#lastMicros = micros;
    const base = new Date(Math.floor(micros / 1000)).toISOString(); // ...sss Z
    return `${base.slice(0, -1)}${String(micros % 1000).padStart(3, '0')}Z`;
  }
}
