/**
 * A keyed work queue with the guarantees controllers rely on (after client-go's workqueue):
 *
 * - **De-duplication**: a key queued twice is processed once.
 * - **No concurrent processing of one key**: a key added while it is being processed is marked
 *   dirty and queued again only when the current run calls `done`.
 * - **Delayed adds** (`addAfter`): the earliest pending delay for a key wins.
 * - **Per-key exponential backoff with jitter** (`addRateLimited`), reset by `forget` on success.
 */
import { backoffDelay, type BackoffPolicy } from '../util/backoff.ts';

export interface QueueClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realClock: QueueClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export class WorkQueue {
  readonly #ready: string[] = [];
  readonly #queued = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #delayed = new Map<string, { at: number; handle: unknown }>();
  readonly #failures = new Map<string, number>();
  readonly #waiters: Array<(key: string | undefined) => void> = [];
  readonly #backoff: BackoffPolicy;
  readonly #clock: QueueClock;
  #shutDown = false;

  constructor(options: { backoff?: BackoffPolicy; clock?: QueueClock } = {}) {
    this.#backoff = options.backoff ?? { baseMs: 500, capMs: 300_000, jitter: 0.5 };
    this.#clock = options.clock ?? realClock;
  }

  /** Keys waiting to be processed now (excludes delayed keys). */
  get depth(): number {
    return this.#ready.length;
  }

  /** Keys waiting, processing or scheduled. */
  get size(): number {
    return new Set([...this.#queued, ...this.#processing, ...this.#delayed.keys()]).size;
  }

  add(key: string): void {
    if (this.#shutDown) return;
    this.#cancelDelay(key);
    if (this.#processing.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#queued.delete(key);
      this.#processing.add(key);
      waiter(key);
    } else {
      this.#ready.push(key);
    }
  }

  /** Add `key` after `ms`; an earlier pending schedule for the key is kept. */
  addAfter(key: string, ms: number): void {
    if (this.#shutDown) return;
    if (ms <= 0) return this.add(key);
    if (this.#queued.has(key)) return;
    const at = this.#clock.now() + ms;
    const pending = this.#delayed.get(key);
    if (pending && pending.at <= at) return;
    if (pending) this.#clock.clearTimeout(pending.handle);
    const handle = this.#clock.setTimeout(() => {
      this.#delayed.delete(key);
      this.add(key);
    }, ms);
    this.#delayed.set(key, { at, handle });
  }

  /**
   * Count a failure of `key` and add it after its next backoff delay, or after `minDelayMs` when
   * that is longer (a server-requested Retry-After). Returns the delay.
   */
  addRateLimited(key: string, minDelayMs = 0): number {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    const delay = Math.max(minDelayMs, backoffDelay(failures, this.#backoff));
    this.addAfter(key, delay);
    return delay;
  }

  /** Failures recorded for `key` since the last `forget`. */
  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** Reset the key's backoff (call after a successful reconcile). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** Next key to process; resolves `undefined` once the queue is shut down. */
  get(): Promise<string | undefined> {
    const key = this.#ready.shift();
    if (key !== undefined) {
      this.#queued.delete(key);
      this.#processing.add(key);
      return Promise.resolve(key);
    }
    if (this.#shutDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Mark `key` processed; a key added meanwhile is queued again now. */
  done(key: string): void {
    this.#processing.delete(key);
    if (this.#dirty.delete(key)) this.add(key);
  }

  /** Stop handing out keys; pending waiters receive `undefined`. */
  shutDown(): void {
    this.#shutDown = true;
    for (const { handle } of this.#delayed.values()) this.#clock.clearTimeout(handle);
    this.#delayed.clear();
    for (const w of this.#waiters.splice(0)) w(undefined);
  }

  #cancelDelay(key: string): void {
    const pending = this.#delayed.get(key);
    if (pending) {
      this.#clock.clearTimeout(pending.handle);
      this.#delayed.delete(key);
    }
  }
}
