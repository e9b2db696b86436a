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
