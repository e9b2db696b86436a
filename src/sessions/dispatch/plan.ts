/**
 * The dispatcher's decisions as pure functions of its state and an injected clock reading, so they
 * are tested with tables: how many polls may run, how the poller count scales, how long to back
 * off, and when a poll failure stops polling.
 */
import { ApiError, AuthenticationError, classify, MalformedResponseError, NotFoundError, PermissionDeniedError } from '../../api/errors.ts';
import { backoffDelay, type BackoffPolicy } from '../../util/backoff.ts';

/** The API's cap for `block_ms`: a long poll waits at most this long for work. */
export const POLL_BLOCK_MS = 999;
/** Backoff after transient poll failures: 1 s doubling to 60 s, ±50 % (as the official worker). */
export const POLL_BACKOFF: BackoffPolicy = { baseMs: 1_000, capMs: 60_000, jitter: 0.5 };
/** After a fatal 4xx, polling pauses this long (or until the credential or spec changes). */
export const FATAL_RETRY_MS = 60_000;

export interface PollCapacity {
  /** `spec.selfHosted.maxSessions`. */
  readonly maxSessions: number;
  /** `spec.selfHosted.maxPollers`. */
  readonly maxPollers: number;
  /** Sessions recorded and not finished (including claimed, not yet acknowledged), plus hand-offs in flight. */
  readonly active: number;
  /** Polls in flight; each holds one reserved slot, so a poll never claims more than free capacity. */
  readonly polling: number;
  /** The current poller target (1 when idle; grows while polls return work). */
  readonly target: number;
  /** Hand-offs (record → ack) in flight, and the most allowed: see {@link MAX_HANDOFFS}. */
  readonly handOffs?: number;
  readonly maxHandOffs?: number;
  /** Claims the namespace's admission has room for (dispatch/admission.ts); Infinity when unlimited. */
  readonly admitted?: number;
}

/**
 * Hand-offs in flight per environment before polling waits. A claimed item must be acknowledged
 * within the queue's reclaim window (`reclaim_older_than_ms`, 5 s by default) or it is delivered
 * again — to another worker, or to one of our own pollers as a duplicate. When the apiserver is
 * slower than the queue, claiming more than we can record only turns a backlog into duplicates;
 * so the claim rate follows the record rate.
 */
export const MAX_HANDOFFS = 32;

/**
 * How many new polls to start now: parallel polls are bounded by the target, by `maxPollers`, by
 * the free capacity, where every poll in flight already holds a slot, by the hand-off backlog
 * (a poll in flight may add one more), and by the session Pods the namespace's quota still admits. 0 when full or paused (`maxSessions: 0`).
 */
export function pollsToStart(c: PollCapacity): number {
  const free = c.maxSessions - c.active;
  const backlog = (c.maxHandOffs ?? MAX_HANDOFFS) - (c.handOffs ?? 0);
  const allowed = Math.min(Math.max(1, c.target), c.maxPollers, free, backlog, c.admitted ?? Infinity);
  return Math.max(0, allowed - c.polling);
}

export type PollOutcome = 'work' | 'empty' | 'error';

/**
 * The next poller target: one more for every poll that returned work (a burst is waiting, so the
 * target grows 1 → 2 → 4 … as parallel polls keep returning work), one fewer for every empty
 * poll, back to one after an error. Always within [1, maxPollers].
 */
export function nextTarget(target: number, outcome: PollOutcome, maxPollers: number): number {
  const next = outcome === 'work' ? target + 1 : outcome === 'empty' ? target - 1 : 1;
  return Math.min(Math.max(1, maxPollers), Math.max(1, next));
}

/**
 * Wait before the next poll after `failures` consecutive transient failures (0-based): the
 * server's Retry-After when it gave one (never less), else jittered exponential backoff.
 */
export function pollBackoffMs(failures: number, retryAfterMs: number | undefined, random: () => number = Math.random): number {
  const own = backoffDelay(failures, POLL_BACKOFF, random);
  return retryAfterMs === undefined ? own : Math.max(retryAfterMs, Math.min(own, retryAfterMs + POLL_BACKOFF.baseMs));
}

/**
 * Pause after an empty poll that came back after `elapsedMs`. A long poll that waited (most of)
 * `block_ms` already paced the loop: re-poll at once. One that came back early (a server that does
 * not hold polls) must not turn the loop into a hot one: wait out the rest of `block_ms`.
 */
export function pauseAfterEmpty(elapsedMs: number, blockMs: number = POLL_BLOCK_MS): number {
  return elapsedMs >= blockMs / 2 ? 0 : Math.max(0, Math.round(blockMs - elapsedMs));
}

/** How a poll failure is handled: `transient` backs off and retries; `fatal` stops polling and reports. */
export type PollFailure =
  | { readonly kind: 'transient'; readonly code: string; readonly retryAfterMs: number | undefined }
  | { readonly kind: 'fatal'; readonly code: string; readonly reason: string; readonly message: string };

/** A reason to stop polling that is not an API reply (a missing credential, no environment key…). */
export class DispatchPausedError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.name = 'DispatchPausedError';
    this.reason = reason;
  }
}

/**
 * Classify a poll failure: the API boundary's one `classify` decides (transient and conflict back
 * off and poll again; fatal stops polling and reports), this adds the reason to report.
 */
export function classifyPollFailure(err: unknown): PollFailure {
  if (err instanceof DispatchPausedError) return { kind: 'fatal', code: 'paused', reason: err.reason, message: err.message };
  if (!(err instanceof ApiError)) return { kind: 'transient', code: 'internal', retryAfterMs: undefined };
  if (classify(err) !== 'fatal') return { kind: 'transient', code: err.code, retryAfterMs: err.retryAfterMs };
  const reqId = err.requestId ? ` (request-id ${err.requestId})` : '';
  if (err instanceof AuthenticationError) return { kind: 'fatal', code: err.code, reason: 'CredentialsInvalid', message: `the API refused the polling credential: ${err.message}${reqId}` };
  if (err instanceof PermissionDeniedError) return { kind: 'fatal', code: err.code, reason: 'PermissionDenied', message: `the polling credential may not poll this environment: ${err.message}${reqId}` };
  if (err instanceof NotFoundError) return { kind: 'fatal', code: err.code, reason: 'EnvironmentNotFound', message: `the environment's work queue does not exist: ${err.message}${reqId}` };
  // A 2xx the client cannot read (not JSON, wrong types, over the read cap) was not a refusal: say
  // what broke, as the environment reconciler does; polling retries after the slow pause.
  if (err instanceof MalformedResponseError) return { kind: 'fatal', code: err.code, reason: 'MalformedApiReply', message: `the API returned an unexpected poll reply (field ${err.field}): ${err.message}${reqId}` };
  return { kind: 'fatal', code: err.code, reason: 'PollRejected', message: `the API rejected the poll: ${err.message}${reqId}` };
}
