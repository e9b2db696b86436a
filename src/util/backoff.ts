/**
 * How long to wait before retrying: our own exponential backoff, or what the server asked for in
 * `Retry-After`. One module for both, shared by the API client and the sidecar (each module the
 * sidecar loads costs measurable memory in every sandbox Pod: see bench/sidecar.ts).
 */

/** Exponential backoff settings. */
export interface BackoffPolicy {
  /** Delay before the first retry, in ms. */
  readonly baseMs: number;
  /** Upper bound of any single delay, in ms. */
  readonly capMs: number;
  /** Fraction of the delay that is randomised ("full jitter" when 1). Default 0.5. */
  readonly jitter?: number;
}

/**
 * Delay before retry number `attempt` (0-based): `min(cap, base·2^attempt)`, of which the fraction
 * `jitter` is drawn at random so a fleet of clients does not retry in lockstep after a shared outage.
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const exp = Math.min(policy.capMs, policy.baseMs * 2 ** Math.max(0, Math.min(attempt, 30)));
  const jitter = policy.jitter ?? 0.5;
  return Math.round(exp * (1 - jitter) + exp * jitter * random());
}

/**
 * Parse `retry-after-ms` (milliseconds) or `retry-after` (delta-seconds or an HTTP date) into a
 * delay in ms from `now`. Returns undefined when absent or unparseable; never negative.
 */
export function parseRetryAfter(
  headers: { get(name: string): string | null | undefined },
  now: number = Date.now(),
): number | undefined {
  const ms = headers.get('retry-after-ms');
  if (ms != null && ms.trim() !== '') {
    const n = Number(ms);
    if (Number.isFinite(n) && n >= 0) return Math.round(n);
  }
  const value = headers.get('retry-after');
  if (value == null || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return seconds >= 0 ? Math.round(seconds * 1000) : undefined;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
