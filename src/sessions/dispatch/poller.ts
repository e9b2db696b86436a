/**
 * The poll loop of one self-hosted environment ({@link Poller}): long-polls its work queue while it has free
 * capacity and passes every claimed item to the hand-off (record → ack → hand over) behind the loop.
 *
 * 1. Compute how many polls may run ({@link pollsToStart}): parallel polls ≤ the poller target ≤
 *    `maxPollers`, and every poll in flight holds one reserved slot of `maxSessions`, so the
 *    dispatcher never claims more than its free capacity and work it cannot run stays queued for
 *    other workers.
 * 2. Start them. Each poll uses `block_ms=999` and its own `Anthropic-Worker-ID`
 *    (`<prefix>/<slot>`; slot 0 is the idle poller).
 * 3. A poll returns:
 *    - **work** → its slot becomes a reservation of that session and the hand-off starts without
 *      blocking the loop; the target grows by one (a burst is waiting);
 *    - **empty** → re-poll at once (the long poll paced us; no idle sleep), target shrinks by one;
 *    - **transient error** → every poller backs off (jittered exponential, Retry-After honoured),
 *      target back to one;
 *    - **fatal error** (401, 403, 404, other 4xx, or a condition such as a missing credential) →
 *      polling stops, `Dispatching=False` with the reason is reported, and polling is retried after
 *      {@link FATAL_RETRY_MS} or as soon as the credential or spec changes — never a hot loop.
 *    Before 1, backpressure (admission.ts): while the namespace would refuse the next session Pod
 *    (its quota full, or a capacity refusal held until a dry-run admits a Pod), no poll starts and
 *    `Dispatching=False` says why; polls otherwise start only within the quota's room.
 * 4. Wait for something to change (a poll or hand-off ending, a session finishing, an update), then 1.
 *
 * Shutdown (the signal aborts, e.g. leadership lost): polls are cancelled, no new work is claimed,
 * and hand-offs in flight are allowed to finish (an item claimed is recorded and acknowledged or
 * left for the settle pass, never half-done by choice).
 */
import type { Work } from '../../api/wire.ts';
export { DispatchPausedError } from './plan.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { sleep } from '../../util/sleep.ts';
import type { AdmissionVerdict } from './admission.ts';
import type { Capacity } from './capacity.ts';
import type { HandOffResult } from './hand-off.ts';
import { classifyPollFailure, DispatchPausedError, FATAL_RETRY_MS, nextTarget, pauseAfterEmpty, pollBackoffMs, pollsToStart, type PollFailure } from './plan.ts';

/** Time for the loop; injectable so tests drive it with a fake clock. */
export interface DispatchClock {
  now(): number;
  /** Resolve after `ms`, or reject when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export const realClock: DispatchClock = {
  now: () => Date.now(),
  sleep,
};

/** What the dispatcher reports for the AgentEnvironment's `Dispatching` condition (on change only). */
export type DispatchState = { readonly dispatching: true } | { readonly dispatching: false; readonly reason: string; readonly message: string };

export interface DispatchLimits {
  readonly maxSessions: number;
  readonly maxPollers: number;
}

export interface PollerOptions {
  readonly limits: DispatchLimits;
  /** `Anthropic-Worker-ID` prefix, e.g. `<operator identity>/<environment uid>`. */
  readonly workerIdPrefix: string;
  readonly capacity: Capacity;
  /** One long poll (`block_ms` 999) as worker `workerId`; null when nothing arrived. */
  readonly poll: (workerId: string, signal: AbortSignal) => Promise<Work | null>;
  /** The session key (`namespace/name` of its AgentSession) of a claimed item. */
  readonly sessionKey: (work: Work) => string;
  /** Record → ack → hand over; never throws. */
  readonly handOff: (work: Work, workerId: string, seenAt: number) => Promise<HandOffResult>;
  readonly report: (state: DispatchState) => void;
  /** Whether the namespace admits more session Pods (dispatch/admission.ts). Default: always, without limit. */
  readonly admission?: () => AdmissionVerdict;
  readonly metrics: { polled(outcome: 'work' | 'empty' | 'error' | 'fatal', code?: string): void };
  readonly logger: Logger;
  /** Hand-offs in flight before polling waits. Default `MAX_HANDOFFS` (32). */
  readonly maxHandOffs?: number;
  readonly clock?: DispatchClock;
  /** Monotonic ms for latency (`performance.now`). */
  readonly monotonic?: () => number;
  readonly random?: () => number;
}

const UNLIMITED: AdmissionVerdict = { open: true, room: Infinity };
/** While the namespace admits no session Pod, the verdict is looked at again at least this often (events wake it sooner). */
const ADMISSION_RECHECK_MS = 5_000;

/**
 * The reason the loop's own wait is ended with: one shared value, because `abort()` without a
 * reason builds a DOMException (and its stack) on every wake — a measurable share of a burst.
 */
const WAIT_OVER = Symbol('wait over');

export class Poller {
  readonly #o: PollerOptions;
  readonly #clock: DispatchClock;
  #limits: DispatchLimits;
  #target = 1;
  #polling = 0;
  readonly #slots = new Set<number>();
  #failures = 0;
  #pausedUntil = 0;
  /** Bumped on every credential change: tells a refusal of the previous credential apart. */
  #credentialEpoch = 0;
  #fatal: PollFailure | undefined;
  #reported: string | undefined;
  #wake: (() => void) | undefined;
  #woken = false;
  readonly #polls = new Set<Promise<void>>();
  readonly #handOffs = new Set<Promise<void>>();
  /** Aborted to call off the polls in flight (backpressure closed the gate); replaced after each use. */
  #pollsCalledOff = new AbortController();

  constructor(options: PollerOptions) {
    this.#o = options;
    this.#clock = options.clock ?? realClock;
    this.#limits = options.limits;
  }

  /** Polls in flight and the current poller target (for tests and debugging). */
  get figures(): { polling: number; target: number; handOffs: number; pausedUntil: number } {
    return { polling: this.#polling, target: this.#target, handOffs: this.#handOffs.size, pausedUntil: this.#pausedUntil };
  }

  /**
   * The environment changed. New limits apply at once; a fatal pause is lifted only when the spec
   * changed (which may have fixed it), not on every status write.
   */
  update(limits: DispatchLimits, specChanged: boolean): void {
    const changed = limits.maxSessions !== this.#limits.maxSessions || limits.maxPollers !== this.#limits.maxPollers;
    this.#limits = limits;
    if (changed || specChanged) this.#liftFatal();
  }

  /** The credential changed: lift a fatal pause and poll again. */
  credentialsChanged(): void {
    this.#credentialEpoch++;
    this.#liftFatal();
  }

  /** Something the capacity depends on changed (a session finished or was recorded). */
  nudge(): void {
    this.#woken = true;
    this.#wake?.();
  }

  /** Stop polling for a reason found outside a poll (reported like a fatal API reply). */
  pause(reason: string, message: string): void {
    this.#enterFatal(classifyPollFailure(new DispatchPausedError(reason, message)));
  }

  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const now = this.#clock.now();
      if (this.#pausedUntil > now) {
        await this.#waitForChange(signal, this.#pausedUntil - now);
        continue;
      }
      if (this.#fatal) this.#fatal = undefined; // the slow retry is due
      // Backpressure: nothing is claimed whose Pod the namespace would refuse; the cache's events,
      // a lifted hold or the recheck timer bring the loop back.
      const admission = this.#o.admission?.() ?? UNLIMITED;
      if (!admission.open) {
        // A long poll in flight would still claim: call it off. An item the server handed to a
        // poll whose reply is lost is not acknowledged, so the queue redelivers it (reclaim).
        if (this.#polling > 0) this.#callOffPolls();
        this.#setReported({ dispatching: false, reason: admission.reason, message: admission.message });
        await this.#waitForChange(signal, ADMISSION_RECHECK_MS);
        continue;
      }
      const n = pollsToStart({ ...this.#limits, active: this.#o.capacity.active(), polling: this.#polling, target: this.#target, handOffs: this.#handOffs.size, admitted: admission.room, ...(this.#o.maxHandOffs ? { maxHandOffs: this.#o.maxHandOffs } : {}) });
      for (let i = 0; i < n; i++) this.#startPoll(signal);
      await this.#waitForChange(signal);
    }
    await Promise.allSettled([...this.#polls]);
    // Let in-flight hand-offs finish: an item already claimed is recorded and acknowledged.
    await Promise.allSettled([...this.#handOffs]);
  }

  #startPoll(signal: AbortSignal): void {
    let slot = 0;
    while (this.#slots.has(slot)) slot++;
    this.#slots.add(slot);
    this.#polling++;
    const workerId = `${this.#o.workerIdPrefix}/${slot}`;
    const started = this.#clock.now();
    const p = this.#pollOnce(workerId, started, AbortSignal.any([signal, this.#pollsCalledOff.signal])).finally(() => {
      this.#slots.delete(slot);
      this.#polling--;
      this.#polls.delete(p);
      this.nudge();
    });
    this.#polls.add(p);
  }

  async #pollOnce(workerId: string, started: number, signal: AbortSignal): Promise<void> {
    let work: Work | null;
    const epoch = this.#credentialEpoch;
    try {
      work = await this.#o.poll(workerId, signal);
    } catch (err) {
      if (signal.aborted) return;
      const failure = classifyPollFailure(err);
      // A poll sent with a credential that has since been replaced says nothing about the new one:
      // poll again at once instead of pausing for a refusal of the old key (a rotation in flight).
      if (failure.kind === 'fatal' && epoch !== this.#credentialEpoch) {
        this.#o.metrics.polled('error', failure.code);
        return;
      }
      if (failure.kind === 'fatal') {
        this.#o.metrics.polled('fatal', failure.code);
        this.#enterFatal(failure);
      } else {
        this.#o.metrics.polled('error', failure.code);
        const delay = pollBackoffMs(this.#failures++, failure.retryAfterMs, this.#o.random);
        this.#target = 1;
        this.#pausedUntil = Math.max(this.#pausedUntil, this.#clock.now() + delay);
        this.#o.logger.warn({ code: failure.code, delayMs: delay, failures: this.#failures }, 'poll failed; backing off');
      }
      return;
    }
    this.#failures = 0;
    this.#setReported({ dispatching: true });
    if (!work) {
      this.#o.metrics.polled('empty');
      this.#target = nextTarget(this.#target, 'empty', this.#limits.maxPollers);
      const pause = pauseAfterEmpty(this.#clock.now() - started);
      if (pause > 0) this.#pausedUntil = Math.max(this.#pausedUntil, this.#clock.now() + pause);
      return;
    }
    this.#o.metrics.polled('work');
    this.#target = nextTarget(this.#target, 'work', this.#limits.maxPollers);
    this.#beginHandOff(work, workerId);
  }

  /** The poll's reserved slot becomes the session's reservation before the poll's slot is released. */
  #beginHandOff(work: Work, workerId: string): void {
    const key = this.#o.sessionKey(work);
    const seenAt = (this.#o.monotonic ?? (() => performance.now()))();
    this.#o.capacity.begin(key);
    const h = this.#o
      .handOff(work, workerId, seenAt)
      .then(
        (result) => {
          this.#o.capacity.end(key, result.holdsSlot);
          if (result.outcome === 'noSandboxCredential') {
            this.pause('EnvironmentKeyRequired', 'a work item carried no per-item token and no environment key is configured (spec.selfHosted.environmentKeySecretRef); the organization API key is never given to a sandbox, so the item was left in the queue');
          }
        },
        (err: unknown) => {
          this.#o.capacity.end(key, true);
          this.#o.logger.error({ err, workId: work.id }, 'hand-off failed unexpectedly');
        },
      )
      .finally(() => {
        this.#handOffs.delete(h);
        this.nudge();
      });
    this.#handOffs.add(h);
  }

  #callOffPolls(): void {
    this.#pollsCalledOff.abort();
    this.#pollsCalledOff = new AbortController();
  }

  #enterFatal(f: PollFailure): void {
    if (f.kind !== 'fatal') return;
    this.#fatal = f;
    this.#target = 1;
    this.#pausedUntil = Math.max(this.#pausedUntil, this.#clock.now() + FATAL_RETRY_MS);
    this.#setReported({ dispatching: false, reason: f.reason, message: f.message });
    this.#o.logger.warn({ reason: f.reason, retryInMs: FATAL_RETRY_MS }, 'dispatch paused');
    this.nudge();
  }

  #liftFatal(): void {
    if (this.#fatal) {
      this.#fatal = undefined;
      this.#pausedUntil = 0;
      this.#failures = 0;
    }
    this.nudge();
  }

  #setReported(state: DispatchState): void {
    const key = state.dispatching ? 'ok' : `${state.reason}\n${state.message}`;
    if (key === this.#reported) return;
    this.#reported = key;
    this.#o.report(state);
  }

  /**
   * Wait until nudged, `timeoutMs` elapses (when given), or the signal aborts. The loop waits here
   * after every change (several times per session in a burst), so a wait costs one promise and one
   * listener on the signal; a controller for the timer only when there is one.
   */
  async #waitForChange(signal: AbortSignal, timeoutMs?: number): Promise<void> {
    if (this.#woken) {
      this.#woken = false;
      if (timeoutMs === undefined) return;
    }
    if (signal.aborted) return;
    let onAbort: () => void = () => undefined;
    const woke = new Promise<void>((resolve) => {
      this.#wake = resolve;
      onAbort = resolve;
      signal.addEventListener('abort', onAbort, { once: true });
    });
    if (timeoutMs === undefined) await woke;
    else {
      const timer = new AbortController();
      await Promise.race([woke, this.#clock.sleep(timeoutMs, timer.signal).catch(() => undefined)]);
      timer.abort(WAIT_OVER);
    }
    signal.removeEventListener('abort', onAbort);
    this.#wake = undefined;
    this.#woken = false;
  }
}
