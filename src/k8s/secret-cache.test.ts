import { describe, expect, it } from 'vitest';
import { KubeError } from './errors.ts';
import { afterRead, nextRead, SecretCache, type SecretEntry } from './secret-cache.ts';
import { SecretRefError, type Secret } from './secrets.ts';

const T = { maxAgeMs: 60_000, minRefreshMs: 5_000 };
const secret = (value: string, resourceVersion = '1', uid = 'u1'): Secret => ({ metadata: { name: 'k', namespace: 'ns', uid, resourceVersion }, data: { key: Buffer.from(value).toString('base64') } });
const fresh: SecretEntry = { secret: secret('v1'), readAt: 0 };
const throttled = new KubeError('TooManyRequests', 'slow down', { status: 429, retryAfterMs: 3_000 });
const missing = new SecretRefError('SecretNotFound', 'Secret ns/k not found');

describe('nextRead: when a credential Secret is read again', () => {
  it.each<[rule: string, entry: SecretEntry | undefined, now: number, refresh: boolean, decision: ReturnType<typeof nextRead>, maxAgeMs?: number]>([
    ['a Secret never read is read', undefined, 0, false, 'read'],
    ['a Secret read less than a minute ago is served from the cache', fresh, 59_999, false, 'serve'],
    ['a Secret read a minute ago is read again', fresh, 60_000, false, 'read'],
    ['an ask with a maximum age of 0 reads again, even a refused key within 5 s', fresh, 1, true, 'read', 0],
    ['an ask with a maximum age of 0 still waits out a back-off', { ...fresh, failure: { error: throttled, retryAt: 3_000, attempts: 1 } }, 1, false, 'serve', 0],
    ['a 401 refreshes a Secret read 5 s ago or more', fresh, 5_000, true, 'read'],
    ['a 401 within 5 s of the last read is served the cached value (re-reads rate-limited)', fresh, 4_999, true, 'serve'],
    ['a 429 backs off: before its retry time the last value is served', { ...fresh, failure: { error: throttled, retryAt: 70_000, attempts: 1 } }, 65_000, true, 'serve'],
    ['a 429 backs off: before its retry time, without a value, the failure is returned unread', { readAt: 0, failure: { error: throttled, retryAt: 3_000, attempts: 1 } }, 2_999, false, 'fail'],
    ['after the back-off the Secret is read again', { readAt: 0, failure: { error: throttled, retryAt: 3_000, attempts: 1 } }, 3_000, false, 'read'],
    ['a missing Secret is answered from the cache for 5 s', { readAt: 0, failure: { error: missing, retryAt: 5_000, attempts: 1 } }, 4_999, true, 'fail'],
    ['a missing Secret is looked for again after 5 s', { readAt: 0, failure: { error: missing, retryAt: 5_000, attempts: 1 } }, 5_000, false, 'read'],
  ])('%s', (_rule, entry, now, refresh, decision, maxAgeMs = T.maxAgeMs) => {
    expect(nextRead(entry, now, refresh, { ...T, maxAgeMs })).toBe(decision);
  });
});

describe('afterRead: what a read leaves in the cache', () => {
  const o = { minRefreshMs: 5_000, backoff: { baseMs: 1_000, capMs: 30_000 }, random: () => 0.5 };

  it('a re-read of the same uid and resourceVersion keeps the cached object', () => {
    const next = afterRead(fresh, { secret: secret('v1') }, 60_000, o);
    expect(next.secret).toBe(fresh.secret);
    expect(next.readAt).toBe(60_000);
  });

  it('a changed resourceVersion replaces the cached Secret', () => {
    expect(afterRead(fresh, { secret: secret('v2', '2') }, 60_000, o).secret).toEqual(secret('v2', '2'));
  });

  it('a re-created Secret (new uid, same resourceVersion) replaces the cached one', () => {
    expect(afterRead(fresh, { secret: secret('v2', '1', 'u2') }, 60_000, o).secret).toEqual(secret('v2', '1', 'u2'));
  });

  it('a deleted Secret clears the cached value', () => {
    const next = afterRead(fresh, { error: missing }, 60_000, o);
    expect(next.secret).toBeUndefined();
    expect(next.failure).toEqual({ error: missing, retryAt: 65_000, attempts: 1 });
  });

  it('a 429 keeps the last value and waits at least its Retry-After', () => {
    const next = afterRead(fresh, { error: throttled }, 60_000, o);
    expect(next.secret).toBe(fresh.secret);
    expect(next.failure?.retryAt).toBe(63_000);
  });

  it('consecutive failures double the back-off up to 30 s', () => {
    let entry: SecretEntry | undefined;
    const waits: number[] = [];
    for (let i = 0; i < 7; i++) {
      entry = afterRead(entry, { error: new KubeError('Unavailable', 'down') }, 0, o);
      waits.push(entry.failure!.retryAt);
    }
    expect(waits).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
  });
});

describe('SecretCache', () => {
  /** A Secret store that counts gets and answers with the scripted result. */
  const store = () => {
    const s = { gets: 0, answer: (): Promise<Secret> => Promise.resolve(secret('v1')) };
    return Object.assign(s, { rest: { get: <T>() => (s.gets++, s.answer() as Promise<T>) } });
  };

  it('many callers asking at once under a 429 cost one read, and none until the back-off ends', async () => {
    const s = store();
    let now = 0;
    s.answer = () => Promise.reject(throttled);
    const cache = new SecretCache({ rest: s.rest, now: () => now, random: () => 0.5 });
    const asks = await Promise.allSettled(Array.from({ length: 25 }, () => cache.readKey('ns', { name: 'k', key: 'key' })));
    expect(asks.every((a) => a.status === 'rejected' && a.reason === throttled)).toBe(true);
    now = 2_999;
    await expect(cache.readKey('ns', { name: 'k', key: 'key' }, { refresh: true })).rejects.toBe(throttled);
    expect(s.gets).toBe(1);
    s.answer = () => Promise.resolve(secret('v1'));
    now = 3_000;
    expect(await cache.readKey('ns', { name: 'k', key: 'key' })).toBe('v1');
    expect(s.gets).toBe(2);
  });

  it('serves the value until it ages or is refused, and forgets a Secret whose environment went', async () => {
    const s = store();
    let now = 0;
    const cache = new SecretCache({ rest: s.rest, now: () => now });
    expect(await cache.readKey('ns', { name: 'k', key: 'key' })).toBe('v1');
    s.answer = () => Promise.resolve(secret('v2', '2'));
    now = 10_000;
    expect(await cache.readKey('ns', { name: 'k', key: 'key' })).toBe('v1');
    expect(await cache.readKey('ns', { name: 'k', key: 'key' }, { refresh: true })).toBe('v2');
    cache.forget('ns', 'k');
    await cache.readKey('ns', { name: 'k', key: 'key' });
    expect(s.gets).toBe(3);
  });

  it('a key missing from the Secret is reported by name, never by value', async () => {
    const cache = new SecretCache({ rest: store().rest });
    await expect(cache.readKey('ns', { name: 'k', key: 'other' })).rejects.toThrow(/Secret ns\/k has no key "other"/);
  });
});
