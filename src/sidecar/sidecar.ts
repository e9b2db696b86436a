/**
 * `agentenv sidecar`: keeps the lease of one work item while the session Pod's main container
 * runs, and stops one when the other ends.
 *
 * Flow:
 * 1. The configuration was parsed once at the entrypoint (`src/cli/sidecar.ts`).
 * 2. The probe server starts: `/healthz` 200 at once, `/started` 503 until the claim.
 * 3. The lease is restored from `lease.json` when a previous life of this sidecar left one for the
 *    same work item (the first beat echoes its `last_heartbeat`); otherwise the first beat claims
 *    it with `NO_HEARTBEAT`. A restored lease that had already ended is not beaten again: a lost
 *    lease must never be re-claimed. The first successful beat opens `/started`.
 * 4. The heartbeat loop (`heartbeat.ts`) keeps the lease, writing `lease.json` after every beat.
 * 5. The main container is watched (its processes found through /proc): once seen and then gone,
 *    the session has ended by itself.
 * 6. Whatever ends the lease first — a stop ordered by the API, a lost or expired lease, a rejected
 *    beat, the main container ending, SIGTERM — is its reason (first wins), and starts the teardown:
 *    a. stop the main container (SIGTERM to its root, the grace, SIGKILL), still beating meanwhile;
 *    b. unless the lease was lost or expired, or the item is already stopped: force-stop the item
 *       (`{"force": true}`: 409 = already stopped; for a `stopping` item this is the confirmation);
 *    c. record the end in `lease.json` and stop beating.
 * 7. Afterwards the sidecar only serves `/healthz` until SIGTERM, then exits 0. A SIGTERM that
 *    arrives first runs the teardown (6) before exiting.
 */
import type { SidecarConfig } from './config.ts';
import { keepLease } from './heartbeat.ts';
import { Lease, DEFAULT_LEASE_TTL_SECONDS, type EndReason } from './lease.ts';
import { LeaseFile } from './lease-file.ts';
import type { SidecarLogger } from './log.ts';
import { MainContainer } from './main-container.ts';
import { startProbeServer } from './probe.ts';
import { isTransient, WorkApi } from './work-api.ts';
import { backoffDelay } from '../util/backoff.ts';
import { sleep } from '../util/sleep.ts';

/** How often the main container is looked for. */
export const WATCH_INTERVAL_MS = 1_000;
/** Attempts of the final force-stop, each bounded by {@link STOP_CALL_TIMEOUT_MS}. */
const STOP_CALL_ATTEMPTS = 5;
const STOP_CALL_TIMEOUT_MS = 5_000;

export interface RunningSidecar {
  readonly probePort: number;
  /** SIGTERM: finish (teardown if the lease is still held), then resolve `done`. */
  terminate(): void;
  /** Resolves once the sidecar has shut down after `terminate`. */
  readonly done: Promise<void>;
}

export async function startSidecar(config: SidecarConfig, token: string, log: SidecarLogger): Promise<RunningSidecar> {
  const file = new LeaseFile(config.stateDir);
  const restored = file.load(config.workId);
  const lease = restored ? Lease.restored(restored) : Lease.unclaimed(config.workId, config.leaseTtlSeconds ?? DEFAULT_LEASE_TTL_SECONDS);
  // A lease that ended in a previous life was claimed then: the startup probe may pass.
  let started = restored?.ended !== undefined;
  const probe = await startProbeServer(config.probeAddress, config.probePort, () => started);
  log.info('sidecar started', {
    probe_address: config.probeAddress,
    probe_port: probe.port,
    lease: restored ? (restored.ended ? `ended (${restored.ended})` : 'restored') : 'claiming',
  });

  const api = new WorkApi({ baseUrl: config.baseUrl, environmentId: config.environmentId, workId: config.workId }, token);
  const main = new MainContainer({ workId: config.workId, log });
  const beating = new AbortController();
  let teardown: Promise<void> | undefined;
  let watchTimer: NodeJS.Timeout | undefined;
  let terminated!: () => void;
  const terminatedSignal = new Promise<void>((resolve) => (terminated = resolve));

  const save = (): void => {
    try {
      file.save(lease.record());
    } catch (err) {
      log.warn('could not write lease.json; a sidecar restart would lose the lease', { err: err as Error, path: file.path });
    }
  };

  /** 6. Stop the main container, then the work item unless it is not ours to stop. */
  const tearDown = (reason: EndReason): Promise<void> => {
    teardown ??= (async () => {
      clearTimeout(watchTimer);
      log.info('lease ends', { reason, lost: lease.lost });
      if (lease.lost) beating.abort();
      const result = await main.stop(config.stopGraceSeconds * 1000);
      if (result.terminated.length > 0) log.info('the main container stopped', { killed: result.killed.length });
      if (lease.needsStopCall) await stopWorkItem();
      else if (lease.lost) log.info('not stopping the work item: the lease belongs to the queue or another worker now');
      beating.abort();
      if (lease.claimed) save();
      log.info('sidecar idle until terminated', { reason: lease.endReason, stopped: lease.stopped });
    })();
    return teardown;
  };

  const stopWorkItem = async (): Promise<void> => {
    for (let attempt = 0; attempt < STOP_CALL_ATTEMPTS; attempt++) {
      try {
        const outcome = await api.forceStop(STOP_CALL_TIMEOUT_MS);
        lease.markStopped();
        log.info(outcome === 'stopped' ? 'work item stopped' : 'work item was already stopped', { reason: lease.endReason });
        return;
      } catch (err) {
        if (!isTransient(err) || attempt === STOP_CALL_ATTEMPTS - 1) {
          log.error('could not stop the work item', { err: err as Error });
          return;
        }
        const wait = (err as { retryAfterMs?: number }).retryAfterMs ?? backoffDelay(attempt, { baseMs: 250, capMs: 2_000 });
        await sleep(Math.min(wait, 10_000));
      }
    }
  };

  /** 5. Watch for the main container ending by itself. */
  const watch = async (): Promise<void> => {
    if (lease.ended) return;
    const running = main.running();
    if (!running && main.seen && lease.end('session-ended')) {
      log.info('the main container ended by itself');
      void tearDown('session-ended');
      return;
    }
    if (!lease.ended) watchTimer = setTimeout(() => void watch(), WATCH_INTERVAL_MS);
  };

  // 3–4. Restore or claim, then beat.
  let loop: Promise<void> = Promise.resolve();
  if (lease.ended) {
    log.info('the lease ended before this restart; not beating', { reason: lease.endReason });
    // An interrupted teardown (killed between its steps) is finished now.
    void tearDown(lease.endReason!);
  } else {
    loop = keepLease({
      api,
      lease,
      desiredTtlSeconds: config.leaseTtlSeconds,
      log,
      signal: beating.signal,
      onBeat: async () => {
        started = true;
        save();
      },
      onEnd: (reason) => void tearDown(reason),
    }).catch((err: unknown) => {
      log.error('heartbeat loop failed', { err: err as Error });
      if (lease.end('heartbeat-rejected')) void tearDown('heartbeat-rejected');
    });
    void watch();
  }

  // 7. SIGTERM: run the teardown if nothing else has, then shut down.
  const done = (async () => {
    await terminatedSignal;
    if (lease.end('terminated')) log.info('terminated while holding the lease');
    await tearDown(lease.endReason ?? 'terminated');
    beating.abort();
    await loop;
    api.close();
    await probe.close();
    log.info('sidecar exiting');
  })();

  return { probePort: probe.port, terminate: () => terminated(), done };
}
