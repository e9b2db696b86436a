/**
 * Automatic retry of one API call, for endpoints where a retry is safe (see `endpoints.ts`).
 *
 * Rule: only transient failures are retried (`isTransient`: connection errors, timeouts, 408, 429,
 * 5xx). The server's `Retry-After` wins over our own backoff, and no request is sent before it
 * expires; when the server asks for longer than `maxRetryAfterMs`, the error is surfaced instead
 * (it carries `retryAfterMs`) so a controller can requeue the whole reconcile rather than hold a
 * worker. Otherwise exponential backoff with jitter, capped.
 *
 * Written here rather than with p-retry/cockatiel because neither lets each failure dictate its own
 * delay (Retry-After) without double-counting their own backoff.
 */
import { backoffDelay, type BackoffPolicy } from '../util/backoff.ts';
import { sleep } from '../util/sleep.ts';
import { ApiError, isTransient } from './errors.ts';

export interface RetryPolicy {
  /** Retries after the first attempt. Default 3. */
  readonly maxRetries: number;
  /** Our own backoff when the server gives no Retry-After. Default 500 ms doubling to 8 s, ±50%. */
  readonly backoff: BackoffPolicy;
  /** Longest server-requested wait honoured in place. Default 30 s. */
  readonly maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxRetries: 3,
  backoff: { baseMs: 500, capMs: 8_000, jitter: 0.5 },
  maxRetryAfterMs: 30_000,
};

export const NO_RETRY: RetryPolicy = { ...DEFAULT_RETRY_POLICY, maxRetries: 0 };

export interface RetryHooks {
  readonly signal?: AbortSignal;
  /** Called before each wait, with the failure and the delay chosen. */
  readonly onRetry?: (err: ApiError, attempt: number, delayMs: number) => void;
}

/** Run `call` (given the 0-based attempt number) until it succeeds or fails for good. */
export async function withRetry<T>(
  call: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  hooks: RetryHooks = {},
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call(attempt);
    } catch (err) {
      if (!(err instanceof ApiError) || !isTransient(err) || attempt >= policy.maxRetries) throw err;
      if (err.retryAfterMs !== undefined && err.retryAfterMs > policy.maxRetryAfterMs) throw err;
      const delay = err.retryAfterMs ?? backoffDelay(attempt, policy.backoff);
      hooks.onRetry?.(err, attempt, delay);
      await sleep(delay, hooks.signal);
    }
  }
}
