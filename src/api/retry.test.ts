import { describe, expect, it } from 'vitest';
import { errorForStatus, InvalidRequestError, RateLimitError } from './errors.ts';
import { withRetry } from './retry.ts';

const policy = { maxRetries: 3, backoff: { baseMs: 1, capMs: 4, jitter: 0 }, maxRetryAfterMs: 50 };

describe('withRetry', () => {
  it('retries transient failures until success', async () => {
    let calls = 0;
    const value = await withRetry(async () => {
      calls++;
      if (calls < 3) throw errorForStatus(503, 'overloaded', {});
      return 'ok';
    }, policy);
    expect(value).toBe('ok');
    expect(calls).toBe(3);
  });

  it('does not retry a fatal 4xx', async () => {
    let calls = 0;
    await expect(
      withRetry(async () => {
        calls++;
        throw errorForStatus(400, 'bad', {});
      }, policy),
    ).rejects.toBeInstanceOf(InvalidRequestError);
    expect(calls).toBe(1);
  });

  it('waits the server-requested Retry-After instead of its own backoff', async () => {
    const delays: number[] = [];
    let calls = 0;
    await withRetry(
      async () => {
        if (calls++ === 0) throw errorForStatus(429, 'slow down', { retryAfterMs: 30 });
        return 1;
      },
      policy,
      { onRetry: (_e, _a, d) => delays.push(d) },
    );
    expect(delays).toEqual([30]);
  });

  it('surfaces a Retry-After longer than it may hold a worker for', async () => {
    let calls = 0;
    const err = await withRetry(async () => {
      calls++;
      throw errorForStatus(429, 'slow down', { retryAfterMs: 60_000 });
    }, policy).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RateLimitError);
    expect((err as RateLimitError).retryAfterMs).toBe(60_000);
    expect(calls).toBe(1);
  });

  it('gives up after maxRetries and rethrows the last failure', async () => {
    let calls = 0;
    await expect(
      withRetry(async () => {
        calls++;
        throw errorForStatus(500, 'boom', {});
      }, policy),
    ).rejects.toThrow('boom');
    expect(calls).toBe(4);
  });

  it('stops waiting when the signal aborts', async () => {
    const ctrl = new AbortController();
    const p = withRetry(
      async () => {
        throw errorForStatus(503, 'x', { retryAfterMs: 40 });
      },
      policy,
      { signal: ctrl.signal },
    );
    ctrl.abort(new Error('shutdown'));
    await expect(p).rejects.toThrow('shutdown');
  });
});
