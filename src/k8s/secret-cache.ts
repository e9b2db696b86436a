/**
 * The credential Secrets the operator reads, cached per Secret between passes.
 *
 * The operator may only `get` Secrets (it cannot watch them), and every environment's dispatcher,
 * reconciler and session reconciler needs its key: read on every pass, 1,000 environments cost
 * the apiserver tens of thousands of reads at start-up, and under its 429s each failed read was
 * retried by every caller at once (24.7 reads per environment measured, docs/scaling.md). Rules
 * ({@link nextRead}, table-tested):
 *
 * 1. A Secret read less than `maxAgeMs` (60 s) ago is served from the cache; older, it is re-read —
 *    a rotated key takes effect within a minute, as before.
 * 2. A caller whose value the API refused (401/403) asks for `refresh`: the Secret is re-read at
 *    once, but at most once per `minRefreshMs` (5 s) per Secret.
 * 3. One read at a time per Secret: callers asking while it is in flight share its answer.
 * 4. A read the apiserver could not answer (429, 5xx, no connection) is not repeated before its
 *    back-off ends (`Retry-After`, else 1 s doubling to 30 s, with jitter so a thousand Secrets do
 *    not come back at the same instant); meanwhile the last value read, if any, is served, and
 *    without one the failure is.
 * 5. A Secret found missing (or forbidden) drops the value at once — a deleted key is never served —
 *    and the answer is kept for `minRefreshMs` (callers asking meanwhile get it without a read).
 * 6. A re-read returning the same uid and resourceVersion keeps the cached object; another version
 *    replaces it.
 *
 * Values never leave this module except to the caller that asked for them: errors name the Secret
 * and key only.
 */
import { classify, type KubeError } from './errors.ts';
import type { KubeRest } from './rest.ts';
import { getSecret, secretKeyValue, SecretRefError, type Secret, type SecretKeyRef } from './secrets.ts';

export interface SecretCacheOptions {
  readonly rest: Pick<KubeRest, 'get'>;
  /** Age after which a cached Secret is re-read. Default 60 s. */
  readonly maxAgeMs?: number;
  /** Minimum spacing of re-reads asked for by a refused value, and how long a missing Secret's answer is kept. Default 5 s. */
  readonly minRefreshMs?: number;
  /** Back-off after a failed read: `baseMs` doubling per consecutive failure up to `capMs`. Default 1 s → 30 s. */
  readonly backoff?: { readonly baseMs: number; readonly capMs: number };
  readonly now?: () => number;
  /** In [0, 1): spreads the back-off (±20 %). */
  readonly random?: () => number;
}

/** What the cache knows of one Secret. */
export interface SecretEntry {
  /** The Secret as last read; absent when never read or found missing. */
  readonly secret?: Secret;
  /** When the last read was answered (the Secret, or its absence). */
  readonly readAt: number;
  /** The last read's failure, and when a read may be tried again. */
  readonly failure?: { readonly error: unknown; readonly retryAt: number; readonly attempts: number };
}

export interface ReadTimings {
  readonly maxAgeMs: number;
  readonly minRefreshMs: number;
}

/** What to do for one ask: serve the cached Secret, fail with the kept error, or read the Secret. */
export type ReadDecision = 'serve' | 'fail' | 'read';

/** The rules 1, 2, 4 and 5 above, for an ask at `now` (`refresh`: the caller's value was refused). */
export function nextRead(entry: SecretEntry | undefined, now: number, refresh: boolean, t: ReadTimings): ReadDecision {
  if (!entry) return 'read';
  if (entry.failure) return now < entry.failure.retryAt ? (entry.secret ? 'serve' : 'fail') : 'read';
  if (!entry.secret) return 'read';
  return now - entry.readAt >= (refresh ? Math.min(t.minRefreshMs, t.maxAgeMs) : t.maxAgeMs) ? 'read' : 'serve';
}

/** The entry after a read at `now` answered `outcome` (rules 4–6). */
export function afterRead(
  entry: SecretEntry | undefined,
  outcome: { readonly secret: Secret } | { readonly error: unknown },
  now: number,
  o: { readonly minRefreshMs: number; readonly backoff: { readonly baseMs: number; readonly capMs: number }; readonly random: () => number },
): SecretEntry {
  if ('secret' in outcome) {
    const same = entry?.secret && sameVersion(entry.secret, outcome.secret);
    return { secret: same ? entry.secret : outcome.secret, readAt: now };
  }
  const { error } = outcome;
  // The Secret's own answer (missing, forbidden): the value goes, the answer is kept a short while.
  if (error instanceof SecretRefError || classify(error) !== 'transient') return { readAt: now, failure: { error, retryAt: now + o.minRefreshMs, attempts: 1 } };
  const attempts = (entry?.failure?.attempts ?? 0) + 1;
  const asked = (error as Partial<KubeError>).retryAfterMs;
  const backoff = Math.min(o.backoff.capMs, o.backoff.baseMs * 2 ** (attempts - 1)) * (0.8 + 0.4 * o.random());
  const wait = Math.max(asked ?? 0, backoff);
  return { ...(entry?.secret ? { secret: entry.secret } : {}), readAt: entry?.readAt ?? now, failure: { error, retryAt: now + wait, attempts } };
}

const sameVersion = (a: Secret, b: Secret): boolean =>
  a.metadata?.uid === b.metadata?.uid && a.metadata?.resourceVersion !== undefined && a.metadata.resourceVersion === b.metadata?.resourceVersion;

/** The process's cache of credential Secrets (see the rules above). */
export class SecretCache {
  readonly #o: Required<Omit<SecretCacheOptions, 'rest'>> & Pick<SecretCacheOptions, 'rest'>;
  readonly #entries = new Map<string, SecretEntry>();
  readonly #reading = new Map<string, Promise<void>>();

  constructor(options: SecretCacheOptions) {
    this.#o = {
      rest: options.rest,
      maxAgeMs: options.maxAgeMs ?? 60_000,
      minRefreshMs: options.minRefreshMs ?? 5_000,
      backoff: options.backoff ?? { baseMs: 1_000, capMs: 30_000 },
      now: options.now ?? Date.now,
      random: options.random ?? Math.random,
    };
  }

  /**
   * One key of a Secret (a {@link SecretReader}): from the cache, or read under the rules above.
   * `maxAgeMs` overrides the cache's for this ask (0: read unless a read is in flight or backing off).
   */
  readonly readKey = async (namespace: string, ref: SecretKeyRef, options: { readonly refresh?: boolean; readonly maxAgeMs?: number } = {}): Promise<string> => {
    const key = `${namespace}/${ref.name}`;
    const timings = { maxAgeMs: options.maxAgeMs ?? this.#o.maxAgeMs, minRefreshMs: this.#o.minRefreshMs };
    let decision = nextRead(this.#entries.get(key), this.#o.now(), options.refresh ?? false, timings);
    if (decision === 'read') {
      await this.#read(key, namespace, ref.name);
      decision = this.#entries.get(key)?.secret ? 'serve' : 'fail';
    }
    const entry = this.#entries.get(key);
    if (decision === 'serve' && entry?.secret) return secretKeyValue(entry.secret, namespace, ref);
    throw entry?.failure?.error ?? new SecretRefError('SecretNotFound', `Secret ${namespace}/${ref.name} not found`);
  };

  /** Drop a Secret (its environment went): nothing of it stays in memory. */
  forget(namespace: string, name: string): void {
    this.#entries.delete(`${namespace}/${name}`);
  }

  /** Rule 3: one read in flight per Secret; every asker waits for it. */
  #read(key: string, namespace: string, name: string): Promise<void> {
    let reading = this.#reading.get(key);
    if (!reading) {
      reading = getSecret(this.#o.rest, namespace, name).then(
        (secret) => this.#settle(key, { secret }),
        (error: unknown) => this.#settle(key, { error }),
      ).finally(() => this.#reading.delete(key));
      this.#reading.set(key, reading);
    }
    return reading;
  }

  #settle(key: string, outcome: { secret: Secret } | { error: unknown }): void {
    this.#entries.set(key, afterRead(this.#entries.get(key), outcome, this.#o.now(), this.#o));
  }
}
