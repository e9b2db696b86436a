/**
 * The virtual lease: how the sidecar answers the main container's own heartbeat and stop calls for
 * its work item. Pure: no I/O, no timers (the clock is passed in).
 *
 * Why it exists: the sidecar claims the real lease before the main container starts (so a Pod
 * that never starts still keeps or releases its item correctly). An official runner
 * (`EnvironmentWorker.handleItem`) then claims "its" lease with `NO_HEARTBEAT`; against the real
 * API that gets 412 and the runner silently drops the session. So the sidecar answers those calls
 * itself, from the real lease it keeps:
 *
 * - a heartbeat echoing `NO_HEARTBEAT`, or the last `last_heartbeat` handed out, succeeds and
 *   carries the real lease's `state`, `lease_extended` and `ttl_seconds`, with a fresh virtual
 *   `last_heartbeat` each time (the runner echoes it next);
 * - any other echo is stale: 412 with `error.details.current_state`, as the API answers;
 * - `stopping`/`stopped` pass through, so the runner ends itself (cooperative stop);
 * - a lost real lease answers 412, so the runner releases the item without stopping it;
 * - never 401/403/404: the official runner treats those as "force-stop the item now".
 */
import { NO_HEARTBEAT, type Lease, type WorkState } from './lease.ts';

/** An answer the proxy writes: a JSON body for 200, or an Anthropic error. */
export type Answer =
  | { readonly status: 200; readonly body: unknown }
  | { readonly status: number; readonly error: { readonly type: string; readonly message: string; readonly details?: Record<string, unknown> } };

export interface VirtualBeat {
  readonly last_heartbeat: string;
  readonly lease_extended: boolean;
  readonly state: WorkState;
  readonly ttl_seconds: number;
}

export class VirtualLease {
  /** The last `last_heartbeat` handed to the main container (persisted in `lease.json`). */
  #handedOut: string | undefined;

  constructor(handedOut?: string) {
    this.#handedOut = handedOut;
  }

  get lastHeartbeat(): string | undefined {
    return this.#handedOut;
  }

  /** Answer `POST …/work/{its id}/heartbeat?expected_last_heartbeat=…` from the real lease. */
  heartbeat(expected: string | undefined, real: Lease, nowMs: number): Answer {
    if (expected === undefined || expected === '') {
      return { status: 400, error: { type: 'invalid_request_error', message: 'expected_last_heartbeat is required' } };
    }
    if (!real.claimed) {
      // Only before the sidecar's own claim (the main container normally starts after it): retryable.
      return { status: 503, error: { type: 'overloaded_error', message: 'the lease is being claimed; retry' } };
    }
    const state = virtualState(real);
    const currentState = { state, ttl_seconds: real.ttlSeconds, last_heartbeat: this.#handedOut ?? null };
    if (real.lost || real.endReason === 'heartbeat-rejected') {
      // The item belongs to the queue or another worker (or the API refused the sidecar's beat): 412
      // makes the runner release it without a stop, where 401/403/404 would make it force-stop.
      return { status: 412, error: { type: 'invalid_request_error', message: 'the lease of this work item was lost', details: { current_state: currentState } } };
    }
    if (expected !== NO_HEARTBEAT && expected !== this.#handedOut) {
      return { status: 412, error: { type: 'invalid_request_error', message: 'expected_last_heartbeat does not match the lease', details: { current_state: currentState } } };
    }
    this.#handedOut = freshStamp(nowMs, this.#handedOut);
    const stopDue = real.stopped || real.endReason === 'session-ended' || real.endReason === 'terminated';
    const beat: VirtualBeat = { last_heartbeat: this.#handedOut, lease_extended: stopDue ? false : real.leaseExtended, state, ttl_seconds: real.ttlSeconds };
    return { status: 200, body: beat };
  }
}

/**
 * The state the main container sees: the real one, except that a stop the sidecar itself is
 * carrying out (the main container asked, or SIGTERM) reads as `stopping` until it is done.
 */
function virtualState(real: Lease): WorkState {
  if (real.stopped) return 'stopped';
  if ((real.endReason === 'session-ended' || real.endReason === 'terminated') && real.state !== 'stopping') return 'stopping';
  return real.state ?? 'active';
}

/** The main container's stop call: what to do, before the real call is made. */
export type MainStopDecision =
  | { readonly kind: 'answer'; readonly answer: Answer }
  /** Perform the real force-stop and answer with its outcome. */
  | { readonly kind: 'stop' };

/**
 * A stop from the main container (the runner's final `force: true`, or a graceful one) means
 * "the session is done". The sidecar performs the real stop, as force, unless the lease was lost:
 * then the item belongs to the queue or another worker, and the answer is the 409 the runner
 * already ignores. An item already stopped answers 409 as the API does.
 */
export function decideMainStop(real: Lease): MainStopDecision {
  if (real.lost) return { kind: 'answer', answer: { status: 409, error: { type: 'invalid_request_error', message: 'the lease of this work item was lost; it is not stopped from here' } } };
  if (real.stopped) return { kind: 'answer', answer: { status: 409, error: { type: 'invalid_request_error', message: 'the work item is already stopped' } } };
  return { kind: 'stop' };
}

/** A `last_heartbeat` in the API's form (an RFC 3339 time), never equal to the previous one. */
export function freshStamp(nowMs: number, previous: string | undefined): string {
  let ms = nowMs;
  const prev = previous === undefined ? NaN : Date.parse(previous);
  if (!Number.isNaN(prev) && ms <= prev) ms = prev + 1;
  return new Date(ms).toISOString();
}
