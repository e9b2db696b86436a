import { describe, expect, it } from 'vitest';
import { CredentialSource, type CredentialResolution } from './credentials.ts';

describe('CredentialSource', () => {
  const ok = (value: string): CredentialResolution => ({ ok: true, credentials: { poll: { kind: 'bearer', value }, sandbox: value, source: 'environment-key', fingerprint: value } });

  it('re-reads after refreshMs, or after minRefreshMs when the key was refused, and reports a rotation once', async () => {
    let t = 0;
    let value = 'key-1';
    let reads = 0;
    const changes: CredentialResolution[] = [];
    const source = new CredentialSource({ resolve: async () => (reads++, ok(value)), onChange: (r) => changes.push(r), refreshMs: 60_000, minRefreshMs: 5_000, now: () => t });
    await source.refresh();
    await source.refresh();
    expect(reads).toBe(1);
    value = 'key-2';
    t = 1_000;
    await source.refresh(true);
    expect(reads).toBe(1); // refused-key re-reads are rate-limited
    t = 6_000;
    await source.refresh(true);
    expect(reads).toBe(2);
    expect(changes).toEqual([ok('key-2')]);
    t = 70_000;
    await source.refresh();
    expect(reads).toBe(3);
    expect(changes).toHaveLength(1); // unchanged: no second report
  });

  it('a re-read asked for by a refused key bypasses the Secret cache; the periodic one may use it', async () => {
    let t = 0;
    const asks: boolean[] = [];
    const source = new CredentialSource({ resolve: async (refresh) => (asks.push(refresh), ok('key')), onChange: () => undefined, refreshMs: 60_000, minRefreshMs: 5_000, now: () => t });
    await source.refresh();
    t = 6_000;
    await source.refresh(true);
    t = 70_000;
    await source.refresh();
    expect(asks).toEqual([false, true, false]);
  });

  it('reports a Secret that appears after being missing', async () => {
    let r: CredentialResolution = { ok: false, reason: 'CredentialsMissing', message: 'Secret ns/k not found' };
    const changes: CredentialResolution[] = [];
    let t = 0;
    const source = new CredentialSource({ resolve: async () => r, onChange: (c) => changes.push(c), refreshMs: 1_000, now: () => t });
    await source.refresh();
    r = ok('key');
    t = 2_000;
    await source.refresh();
    expect(changes).toEqual([ok('key')]);
    expect(source.current).toEqual(ok('key'));
  });
});
