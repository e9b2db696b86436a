/**
 * `agentenv sidecar`: keeps the lease of one work item for a session Pod, and is the Pod's only
 * door to the API: the main container talks to the sidecar's proxy, never to the API, and never
 * holds a real credential.
 *
 * Flow:
 * 1. The configuration was parsed once at the entrypoint (`src/cli/sidecar.ts`).
 * 2. The probe server starts: `/healthz` 200 at once, `/started` 503 until the claim (or held until
 *    it: the startup probe's long poll), `/ready` 503 until the claim and again from the moment a
 *    stop is due.
 * 3. The lease is restored from `lease.json` when a previous life of this sidecar left one for the
 *    same work item (the first beat echoes its `last_heartbeat`; the virtual lease keeps the stamp
 *    it last handed out); otherwise the first beat claims it with `NO_HEARTBEAT`. A restored lease
 *    that had already ended is not beaten again (a lost lease must never be re-claimed), unless a
 *    graceful stop was being drained: that lease is kept until the stop is confirmed. The first
 *    successful beat opens `/started` and answers the startup probe waiting on it, so the kubelet
 *    starts the main container then and not before.
 * 4. The heartbeat loop (`heartbeat.ts`) keeps the lease on its own socket pool, writing
 *    `lease.json` after every beat.
 * 5. The proxy (`proxy.ts`) serves the main container: its own heartbeats from the virtual lease
 *    (`virtual-lease.ts`), the session's calls forwarded with the real credential, the rest refused.
 * 6. Whatever ends the lease first is its reason (first wins), and `/ready` turns 503 at once:
 *    a. the API orders a stop (`stopping`/`stopped`, `lease_extended: false`): the virtual lease
 *       passes it on, the runner ends itself and sends its final stop (6c); the sidecar keeps
 *       beating meanwhile. If the main container does not end, the operator deletes the Pod after
 *       `stopGracePeriodSeconds` (6d);
 *    b. the lease is lost or expired, or the API refuses the beat: beating stops, the virtual
 *       lease answers 412 (the runner releases the item without stopping it), nothing stops it;
 *    c. the main container stops the item (the session is done): the sidecar force-stops it for
 *       real unless the lease was lost, answers as the API would, and stops beating;
 *    d. SIGTERM (the kubelet after the main container ended by itself, or the Pod's deletion):
 *       unless the lease was lost or the item is already stopped, force-stop the item
 *       (`{"force": true}`: 409 = already stopped; for a `stopping` item this is the confirmation).
 *    The end is recorded in `lease.json`.
 * 7. Afterwards the sidecar serves the probes and the proxy (the virtual lease answers with the
 *    outcome) until SIGTERM, then exits with the code that tells the operator, which reads it in
 *    the Pod status, how the lease ended (first reason wins; kept in `lease.json` across restarts):
 *    0 when the session ended it (6c, 6d), `SIDECAR_EXIT_STOPPED_BY_API` when the API ordered the
 *    stop first (6a) — so the operator records Completed or Stopped without guessing from the
 *    order it saw things in — and `SIDECAR_EXIT_LEASE_LOST` when the lease was lost (6b), so the
 *    operator does not stop the item either.
 */
import type { SidecarConfig } from './config.ts';
import { keepLease } from './heartbeat.ts';
import { Lease, DEFAULT_LEASE_TTL_SECONDS, type EndReason } from './lease.ts';
import { LeaseFile } from './lease-file.ts';
import type { SidecarLogger } from './log.ts';
import { leaseProbeState, startProbeServer, type ProbeServer, type ProbeState } from './probe.ts';
import { startProxy } from './proxy.ts';
import { createUpstream } from './upstream.ts';
import { decideMainStop, VirtualLease, type Answer } from './virtual-lease.ts';
import { isTransient, WorkApi, type WorkApiError } from './work-api.ts';
import { backoffDelay } from '../util/backoff.ts';
import { sleep } from '../util/sleep.ts';

/** Attempts of a force-stop, each bounded by {@link STOP_CALL_TIMEOUT_MS}. */
const STOP_CALL_ATTEMPTS = 5;
const STOP_CALL_TIMEOUT_MS = 5_000;

export interface RunningSidecar {
  readonly probePort: number;
  readonly proxyPort: number;
  /** SIGTERM: finish (force-stop if the lease is still held), then resolve `done`. */
  terminate(): void;
  /**
   * Resolves once the sidecar has shut down after `terminate`: whether it had lost the lease, and
   * the exit code that tells the operator how the lease ended (`Lease.exitCode`).
   */
  readonly done: Promise<{ readonly leaseLost: boolean; readonly exitCode: number }>;
}

type StopOutcome = { outcome: 'stopped'; reply: unknown } | { outcome: 'already-stopped' } | { outcome: 'failed' };

export interface StartOptions {
  /**
   * A warm Pod's probe server, still answering from its waiting half (warm.ts): taken over, never
   * closed and opened again. Its presence also makes readiness "no stop is due" rather than "the
   * lease is held": a warm sidecar has no startup probe, so the kubelet calls it started from the
   * first second, and a `ready: false` while it claims the lease of its bound item would read as a
   * stop due since the Pod started (the operator then deletes the Pod). The runner still waits
   * for the claim: its assignment answer is held until then.
   */
  readonly warmProbe?: ProbeServer;
}

export async function startSidecar(config: SidecarConfig, token: string, log: SidecarLogger, options: StartOptions = {}): Promise<RunningSidecar> {
  const file = new LeaseFile(config.stateDir);
  const restored = file.load(config.workId);
  const lease = restored ? Lease.restored(restored) : Lease.unclaimed(config.workId, config.leaseTtlSeconds ?? DEFAULT_LEASE_TTL_SECONDS);
  const virtual = new VirtualLease(restored?.virtual_last_heartbeat);
  // A lease that ended in a previous life was claimed then: the startup probe may pass.
  let started = restored?.ended !== undefined;
  const claimed = new Gate(started);
  const warm = options.warmProbe !== undefined;
  const probeState = (): ProbeState => leaseProbeState({ started, claimed: lease.claimed, ended: lease.ended }, warm);
  const probe = options.warmProbe ?? (await startProbeServer(config.probeAddress, config.probePort, probeState));
  probe.use(probeState);

  const upstream = createUpstream(config.baseUrl, config.egressProxy);
  const api = new WorkApi(upstream, { environmentId: config.environmentId, workId: config.workId }, token);
  const beating = new AbortController();
  let terminated!: () => void;
  const terminatedSignal = new Promise<void>((resolve) => (terminated = resolve));

  const save = (): void => {
    if (!lease.claimed) return;
    try {
      file.save({ ...lease.record(), ...(virtual.lastHeartbeat ? { virtual_last_heartbeat: virtual.lastHeartbeat } : {}) });
    } catch (err) {
      log.warn('could not write lease.json; a sidecar restart would lose the lease', { err: err as Error, path: file.path });
    }
  };

  const stopper = new ItemStopper(api, lease, log, () => {
    beating.abort();
    save();
  });
  const stopWorkItem = (): Promise<StopOutcome> => stopper.stop();

  /** 6. The lease ends: record it; what follows depends on the reason. */
  const onEnd = (reason: EndReason): void => {
    log.info('lease ends', { reason, lost: lease.lost, ready: false });
    if (lease.lost || reason === 'heartbeat-rejected') {
      beating.abort();
      log.info('not stopping the work item: the lease belongs to the queue or another worker now');
    }
    save();
  };

  /** 6c. The main container's stop: the session is done. */
  const mainStop = async (): Promise<Answer> => {
    if (lease.end('session-ended')) onEnd('session-ended');
    const decision = decideMainStop(lease);
    return decision.kind === 'answer' ? decision.answer : stopAnswer(await stopWorkItem());
  };

  const proxy = await startProxy({
    address: config.proxyAddress,
    port: config.proxyPort,
    scope: { environmentId: config.environmentId, workId: config.workId, sessionId: config.sessionId, credentialKind: config.credentialKind },
    upstream,
    token,
    log,
    handlers: {
      heartbeat: (expected) => {
        const answer = virtual.heartbeat(expected, lease, Date.now());
        if (answer.status === 200) save();
        return answer;
      },
      stop: mainStop,
      // The runner of a warm Pod learns its item here, and only after the claim: no session work
      // before the lease, as the startup probe guarantees in a cold Pod.
      assignment: async () => {
        if (!started) await claimed.wait(ASSIGNMENT_HOLD_MS);
        if (!started) return { status: 503, error: { type: 'overloaded_error', message: 'the lease is not claimed yet; ask again' } };
        return { status: 200, body: { environment_id: config.environmentId, session_id: config.sessionId, work_id: config.workId } };
      },
    },
  });
  log.info('sidecar started', {
    probe_address: config.probeAddress,
    probe_port: probe.port,
    proxy_address: config.proxyAddress,
    proxy_port: proxy.port,
    credential_kind: config.credentialKind,
    egress_proxy: Object.keys(config.egressProxy).length > 0,
    lease: restored ? (restored.ended ? `ended (${restored.ended})` : 'restored') : 'claiming',
  });

  // 3–4. Restore or claim, then beat.
  let loop: Promise<void> = Promise.resolve();
  // A graceful stop being drained keeps its lease until it is confirmed, across restarts too.
  const draining = lease.endReason === 'stop-requested' && lease.keepsBeating;
  if (lease.ended && !draining) {
    log.info('the lease ended before this restart; not beating', { reason: lease.endReason });
    // An interrupted main-container stop (killed before the real stop) is finished now.
    if (lease.endReason === 'session-ended' && lease.needsStopCall) void stopWorkItem();
  } else {
    loop = keepLease({
      api,
      lease,
      desiredTtlSeconds: config.leaseTtlSeconds,
      log,
      signal: beating.signal,
      onBeat: async () => {
        if (!started) {
          started = true;
          probe.changed(); // the startup probe waiting on /started passes now
          claimed.open();
        }
        save();
      },
      onEnd,
    }).catch((err: unknown) => {
      log.error('heartbeat loop failed', { err: err as Error });
      if (lease.end('heartbeat-rejected')) onEnd('heartbeat-rejected');
    });
  }

  // 6d, 7. SIGTERM: force-stop unless the lease was lost or the item is stopped, then shut down.
  const done = (async () => {
    await terminatedSignal;
    if (lease.end('terminated')) log.info('terminated while holding the lease', { ready: false });
    await stopper.settled();
    if (lease.claimed && lease.needsStopCall) await stopWorkItem();
    else if (lease.lost) log.info('not stopping the work item: the lease was lost');
    beating.abort();
    await loop;
    save();
    await proxy.close();
    upstream.close();
    await probe.close();
    log.info('sidecar exiting', { reason: lease.endReason, stopped: lease.stopped, lost: lease.lost, exit_code: lease.exitCode });
    return { leaseLost: lease.lost, exitCode: lease.exitCode };
  })();

  return { probePort: probe.port, proxyPort: proxy.port, terminate: () => terminated(), done };
}

/** How long the runner's assignment ask is held waiting for the claim before a 503 (it asks again). */
const ASSIGNMENT_HOLD_MS = 30_000;

/** A one-way gate: waiters resolve when it opens, or after their own bound. */
class Gate {
  #open: boolean;
  readonly #waiters = new Set<() => void>();

  constructor(open: boolean) {
    this.#open = open;
  }

  open(): void {
    this.#open = true;
    for (const w of this.#waiters) w();
    this.#waiters.clear();
  }

  wait(ms: number): Promise<void> {
    if (this.#open) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#waiters.add(done);
    });
  }
}

/** The main container's stop, answered with the real stop's outcome as the API would answer it. */
function stopAnswer(result: StopOutcome): Answer {
  if (result.outcome === 'stopped') return { status: 200, body: result.reply ?? {} };
  if (result.outcome === 'already-stopped') return { status: 409, error: { type: 'invalid_request_error', message: 'the work item is already stopped' } };
  return { status: 503, error: { type: 'api_error', message: 'the sidecar could not stop the work item yet; it retries when the Pod ends' } };
}

/**
 * The real force-stop: one call at a time whoever asks (the main container, SIGTERM, a restart),
 * transient failures retried; a failed attempt may be asked again (SIGTERM retries it).
 */
class ItemStopper {
  readonly #api: WorkApi;
  readonly #lease: Lease;
  readonly #log: SidecarLogger;
  readonly #onSettled: () => void;
  #running: Promise<StopOutcome> | undefined;

  constructor(api: WorkApi, lease: Lease, log: SidecarLogger, onSettled: () => void) {
    this.#api = api;
    this.#lease = lease;
    this.#log = log;
    this.#onSettled = onSettled;
  }

  stop(): Promise<StopOutcome> {
    this.#running ??= this.#attempts().finally(() => this.#onSettled());
    return this.#running;
  }

  /** Resolves once a stop under way (if any) has finished. */
  async settled(): Promise<void> {
    await this.#running;
  }

  async #attempts(): Promise<StopOutcome> {
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await this.#api.forceStop(STOP_CALL_TIMEOUT_MS);
        this.#lease.markStopped();
        this.#log.info(result.outcome === 'stopped' ? 'work item stopped' : 'work item was already stopped', { reason: this.#lease.endReason });
        return result;
      } catch (err) {
        if (!isTransient(err) || attempt === STOP_CALL_ATTEMPTS - 1) {
          this.#log.error('could not stop the work item', { err: err as Error });
          this.#running = undefined; // SIGTERM may try again
          return { outcome: 'failed' };
        }
        const wait = (err as WorkApiError).retryAfterMs ?? backoffDelay(attempt, { baseMs: 250, capMs: 2_000 });
        await sleep(Math.min(wait, 10_000));
      }
    }
  }
}
