/**
 * The heartbeat loop: keeps one work item's lease alive by the protocol.
 *
 * 1. The first beat claims the lease with `NO_HEARTBEAT` (or, after a sidecar restart, echoes the
 *    restored stamp); every later beat echoes the server's `last_heartbeat` exactly.
 * 2. Beats are `min(ttl/2, 30 s)` apart (at least 1 s), from the TTL the server reports, so two
 *    beats fit in every TTL. Each attempt is cut off after one interval: a hung request must not
 *    outlive the lease it is meant to renew.
 * 3. Transient failures (connection errors, timeouts, 408, 429, 5xx) and malformed replies are retried with backoff; a
 *    `Retry-After` is honoured (no beat is sent before it expires). Retrying a beat whose reply was
 *    lost can answer 412 (the server moved on with our own beat) — the same risk the next regular
 *    beat would run, so the retry adds none.
 * 4. 412 → the lease is lost (the server's `current_state` is logged). No successful beat for
 *    longer than the TTL → the lease is assumed lost. Either way the item now belongs to the queue
 *    or another worker: the loop ends and nobody calls stop.
 * 5. 409 → the item is stopped (or no longer acknowledged): nothing to keep, nothing to stop.
 *    Any other 4xx → the API refuses the beat for good.
 * 6. A reply whose state is `stopping`/`stopped` or whose `lease_extended` is false orders the
 *    session shut down. The loop keeps beating while the teardown drains the main container (a
 *    graceful stop keeps its lease until it is confirmed), and ends when `signal` aborts.
 */
import { backoffDelay, type BackoffPolicy } from '../util/backoff.ts';
import { sleepUnlessAborted } from '../util/sleep.ts';
import type { Beat, EndReason, Lease } from './lease.ts';
import type { SidecarLogger } from './log.ts';
import { isTransient, WorkApiError, type WorkApi } from './work-api.ts';

/** Backoff between retries of a failed beat when the server names no Retry-After. */
export const BEAT_RETRY_BACKOFF: BackoffPolicy = { baseMs: 250, capMs: 4_000, jitter: 0.5 };

export interface HeartbeatLoop {
  readonly api: Pick<WorkApi, 'heartbeat'>;
  readonly lease: Lease;
  /** `desired_ttl_seconds` sent with each beat; the server's default when undefined. */
  readonly desiredTtlSeconds: number | undefined;
  readonly log: SidecarLogger;
  /** After every successful beat, before the next one (persist the lease, open `/started`). */
  readonly onBeat: (beat: Beat) => Promise<void>;
  /** The lease ends (or a stop is ordered); `lease.end` has been called already. */
  readonly onEnd: (reason: EndReason) => void;
  /** Aborted when the lease no longer needs keeping (teardown done, or shutdown). */
  readonly signal: AbortSignal;
}

/** Run the loop until the lease is lost, the item stopped, or `signal` aborts. */
export async function keepLease(loop: HeartbeatLoop): Promise<void> {
  const { api, lease, log, signal } = loop;
  const end = (reason: EndReason): void => {
    if (lease.end(reason)) loop.onEnd(reason);
  };
  let lastSuccess = Date.now();
  let failures = 0;
  let waitMs = 0;
  while (lease.keepsBeating && !signal.aborted) {
    if (waitMs > 0 && !(await sleepUnlessAborted(waitMs, signal))) return;
    if (!lease.keepsBeating) return;
    if (failures > 0 && Date.now() - lastSuccess > lease.ttlMs) {
      log.error('lease assumed lost: no successful heartbeat within the TTL', { ttl_seconds: lease.ttlSeconds, failures });
      end('lease-expired');
      return;
    }
    const claiming = !lease.claimed;
    try {
      const beat = await api.heartbeat(lease.expectedLastHeartbeat, loop.desiredTtlSeconds, lease.intervalMs);
      lastSuccess = Date.now();
      failures = 0;
      const ordered = lease.applyBeat(beat);
      await loop.onBeat(beat);
      if (claiming) log.info('lease claimed', { ttl_seconds: beat.ttl_seconds, state: beat.state });
      else log.debug('heartbeat', { ttl_seconds: beat.ttl_seconds, state: beat.state, lease_extended: beat.lease_extended });
      if (ordered && !lease.ended) log.info('the API orders the session stopped', { state: beat.state, lease_extended: beat.lease_extended });
      if (ordered) end(ordered);
      waitMs = lease.intervalMs;
    } catch (err) {
      if (signal.aborted) return;
      if (!(err instanceof WorkApiError)) throw err;
      if (err.code === 'precondition_failed') {
        // The lease moved on: another holder echoed first, or it lapsed back to the queue.
        log.error('lease lost: heartbeat precondition failed (412)', { expected_last_heartbeat: lease.expectedLastHeartbeat, current_state: err.currentState });
        end('lease-lost');
        return;
      }
      if (err.code === 'conflict') {
        // 409: the item is stopped (or back in the queue): neither ours to keep nor to stop.
        log.info('the work item is stopped or no longer acknowledged (409)', { err });
        lease.markStopped();
        end('stop-requested');
        return;
      }
      // A malformed reply (not JSON, wrong types, cut short by a broken proxy, too long) is retried
      // like a transient failure, within the TTL: the beat may not have reached the server, and if
      // it did, the retry's stale echo gets a 412 — the lease-lost ending a give-up would have had.
      if (!isTransient(err) && err.code !== 'malformed_response') {
        log.error('heartbeat rejected', { err, status: err.status });
        end('heartbeat-rejected');
        return;
      }
      const elapsed = Date.now() - lastSuccess;
      // Honour Retry-After, but wake no later than the moment the lease would be assumed lost.
      const delay = err.retryAfterMs ?? backoffDelay(failures, BEAT_RETRY_BACKOFF);
      failures++;
      waitMs = Math.max(0, Math.min(delay, lease.ttlMs - elapsed + 1));
      log.warn('heartbeat failed; retrying', { err, status: err.status, retry_in_ms: waitMs, since_last_success_ms: elapsed });
    }
  }
}
