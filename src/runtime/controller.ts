/**
 * The reconcile loop, generic over what it reconciles (no Kind-specific code here).
 *
 * One outcome type and one error policy:
 * - a reconcile returns an {@link Outcome}: `requeueAfter(ms)`, `RESYNC` (come back after the slow
 *   resync period, jittered — the safety net every success gets) or `FORGET` (the object is gone);
 * - a reconcile that throws is handed to the controller's {@link ErrorPolicy} (default
 *   {@link defaultErrorPolicy}), the one function that maps an error to a retry: per-key exponential
 *   backoff, never earlier than the `retryAfterMs` the error carries (an Environments API 429 or an
 *   apiserver 429/503 with Retry-After alike), or — for a {@link TerminalError} — no retry until a
 *   change or the resync.
 */
import type { Logger } from '../telemetry/logger.ts';
import type { BackoffPolicy } from '../util/backoff.ts';
import { WorkQueue, type QueueClock } from './queue.ts';

export type Outcome = { readonly requeueAfterMs: number } | typeof RESYNC | typeof FORGET;
export const RESYNC = 'resync' as const;
export const FORGET = 'forget' as const;
export const requeueAfter = (ms: number): Outcome => ({ requeueAfterMs: Math.max(0, Math.round(ms)) });

/** An error retrying cannot fix (bad spec, bad credential): record it, don't hot-loop. */
export class TerminalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TerminalError';
  }
}

/** What to do with a key whose reconcile threw. */
export type ErrorAction =
  /** Per-key exponential backoff, but never sooner than `notBeforeMs` (0: no floor). */
  | { readonly retry: 'backoff'; readonly notBeforeMs: number }
  /** Retrying cannot help: record it and wait for a change (an informer event) or the resync. */
  | { readonly retry: 'resync' };

/** Maps an error thrown out of a reconcile to an {@link ErrorAction}. */
export type ErrorPolicy = (err: unknown) => ErrorAction;

/**
 * The default error policy of every controller:
 * - a {@link TerminalError} waits for a change or the resync (no hot loop on a bad spec);
 * - an error carrying a positive `retryAfterMs` (both boundaries' errors do, from Retry-After) is
 *   backed off but retried no earlier than the server asked: a 429 still counts as a failure, so
 *   repeated 429s grow the delay past the floor;
 * - anything else gets plain per-key backoff. Which failures are worth retrying *within* a pass is
 *   the boundary's `classify`; a reconcile lets the rest escape to here.
 */
export function defaultErrorPolicy(err: unknown): ErrorAction {
  if (err instanceof TerminalError) return { retry: 'resync' };
  const retryAfterMs = err !== null && typeof err === 'object' ? (err as { retryAfterMs?: unknown }).retryAfterMs : undefined;
  return { retry: 'backoff', notBeforeMs: typeof retryAfterMs === 'number' && retryAfterMs > 0 ? retryAfterMs : 0 };
}

export interface ReconcileContext {
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** How many times this key has failed in a row (0 on a first attempt or after a success). */
  readonly failures: number;
}

export type Reconcile = (key: string, ctx: ReconcileContext) => Promise<Outcome>;

/** What the controller reports for metrics. */
export interface ControllerObserver {
  reconciled(controller: string, result: 'success' | 'error' | 'requeue', durationMs: number): void;
  queueDepth(controller: string, depth: number): void;
}

export interface ControllerOptions {
  readonly name: string;
  readonly reconcile: Reconcile;
  readonly logger: Logger;
  /** Parallel reconciles (of different keys). Default 4. */
  readonly concurrency?: number;
  /** Safety-net resync period. Default 10 minutes, jittered ±10%. */
  readonly resyncMs?: number;
  /** Per-key failure backoff. Default 500 ms doubling to 5 min, ±50%. */
  readonly backoff?: BackoffPolicy;
  readonly observer?: ControllerObserver;
  readonly clock?: QueueClock;
  /** Maps an error thrown out of a reconcile to a retry. Default {@link defaultErrorPolicy}. */
  readonly errorPolicy?: ErrorPolicy;
}

export class Controller {
  readonly name: string;
  readonly queue: WorkQueue;
  readonly #opts: ControllerOptions;
  readonly #resyncMs: number;

  constructor(opts: ControllerOptions) {
    this.name = opts.name;
    this.#opts = opts;
    this.#resyncMs = opts.resyncMs ?? 600_000;
    this.queue = new WorkQueue({
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
      ...(opts.clock ? { clock: opts.clock } : {}),
    });
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  /** Process keys until `signal` aborts; in-flight reconciles finish (they see the aborted signal). */
  async run(signal: AbortSignal): Promise<void> {
    const onAbort = (): void => this.queue.shutDown();
    // An already-aborted signal fires no event: shut down now, or the workers would wait forever.
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    const workers = Array.from({ length: this.#opts.concurrency ?? 4 }, () => this.#worker(signal));
    await Promise.all(workers);
    signal.removeEventListener('abort', onAbort);
  }

  async #worker(signal: AbortSignal): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        await this.#process(key, signal);
      } finally {
        this.queue.done(key);
        this.#opts.observer?.queueDepth(this.name, this.queue.depth);
      }
    }
  }

  async #process(key: string, signal: AbortSignal): Promise<void> {
    // Bound as `object`: the logger redacts any field named `key` (it may hold a credential).
    const logger = this.#opts.logger.child({ controller: this.name, object: key });
    const started = performance.now();
    const failures = this.queue.failures(key);
    let outcome: Outcome;
    try {
      outcome = await this.#opts.reconcile(key, { signal, logger, failures });
    } catch (err) {
      const ms = performance.now() - started;
      this.#opts.observer?.reconciled(this.name, 'error', ms);
      if (signal.aborted) return;
      this.#retryAfterError(key, err, logger);
      return;
    }
    this.queue.forget(key);
    const ms = performance.now() - started;
    if (outcome === FORGET) {
      this.#opts.observer?.reconciled(this.name, 'success', ms);
      return;
    }
    if (outcome === RESYNC) {
      this.#opts.observer?.reconciled(this.name, 'success', ms);
      this.queue.addAfter(key, jittered(this.#resyncMs));
      return;
    }
    this.#opts.observer?.reconciled(this.name, 'requeue', ms);
    this.queue.addAfter(key, outcome.requeueAfterMs);
  }

  #retryAfterError(key: string, err: unknown, logger: Logger): void {
    const action = (this.#opts.errorPolicy ?? defaultErrorPolicy)(err);
    if (action.retry === 'resync') {
      this.queue.forget(key);
      logger.warn({ err }, 'reconcile failed permanently; waiting for a change or the resync');
      this.queue.addAfter(key, jittered(this.#resyncMs));
      return;
    }
    const delayMs = this.queue.addRateLimited(key, action.notBeforeMs);
    if (action.notBeforeMs > 0) logger.info({ err, delayMs }, 'reconcile rate limited; retrying no earlier than the server asked');
    else logger.warn({ err, delayMs, failures: this.queue.failures(key) }, 'reconcile failed; retrying with backoff');
  }
}

/** ±10% jitter so resyncs of many objects spread out. */
function jittered(ms: number): number {
  return Math.round(ms * (0.9 + Math.random() * 0.2));
}
