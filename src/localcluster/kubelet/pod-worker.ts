/**
 * One Pod on this node: runs its containers per the plan (`plan.ts`), probes them, restarts them,
 * writes the Pod's status, and terminates it when it is deleted.
 *
 * Level-triggered: every change (Pod update, container exit, probe result, back-off expiry) asks for
 * a sync, and a sync re-decides from the spec and the record. Syncs never overlap.
 *
 * Deletion (deletionTimestamp set), as the kubelet does it:
 *  1. SIGTERM to every process of the regular and init containers; wait for them to exit;
 *  2. then SIGTERM to the native sidecars, last started first; wait;
 *  3. SIGKILL whatever still runs when the grace period (deletionGracePeriodSeconds, else
 *     terminationGracePeriodSeconds, else 30 s) is over;
 *  4. delete the Pod object with gracePeriodSeconds=0 (uid precondition), which removes it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../telemetry/logger.ts';
import { isConflict, isNotFound } from '../../k8s/errors.ts';
import { CORE, type KubeRest } from '../../k8s/rest.ts';
import { containerEnv, ContainerConfigError, expandArgs } from './env.ts';
import { containerArgv, imageHostPaths, ImagePullError, type ImageRuntime } from './images.ts';
import { decide, emptyRecord, kindOf, restartDelayMs, willRestart, type ContainerRecord, type Plan, type PodRecord } from './plan.ts';
import { resolveHostPaths } from './host-volumes.ts';
import * as files from './pod-files.ts';
import { isSidecar, type Container, type Pod } from './pod-types.ts';
import { probeOnce, watchProbe, type ProbeKind } from './probes.ts';
import { launch, readExitCode, signalContainer, wrapperAlive, type RunRecord } from './process.ts';
import { podStatus } from './status.ts';

export interface NodeContext {
  readonly rest: KubeRest;
  readonly nodeName: string;
  readonly hostIP: string;
  readonly images: ImageRuntime;
  readonly reaper: string | undefined;
  readonly anchorPid: number | undefined;
  readonly logger: Logger;
}

interface ActiveRun {
  readonly run: RunRecord;
  readonly probes: AbortController;
  readonly exited: Promise<void>;
}

/** Volumes are re-projected this often, so Secret/ConfigMap/label changes reach the files. */
const VOLUME_REFRESH_MS = 10_000;
/** Retry delay while a Secret/ConfigMap a container needs is missing. */
const CONFIG_RETRY_MS = 2_000;

export class PodWorker {
  pod: Pod;
  readonly dir: string;
  readonly record: PodRecord;
  readonly #ctx: NodeContext;
  readonly #log: Logger;
  readonly #runs = new Map<string, ActiveRun>();
  readonly #tokens = new Map<string, string>();
  #volumesAt = 0;
  #volumeError: string | undefined;
  #dirty = false;
  #loop: Promise<void> | undefined;
  #wake: NodeJS.Timeout | undefined;
  #wakeTime = 0;
  #terminating: Promise<void> | undefined;
  #sidecarsStopping = false;
  #lastStatus = '';
  #lastPersisted = '';
  /** Resolves once the Pod's processes are gone and (when deleted) its object removed. */
  closed = false;

  constructor(ctx: NodeContext, pod: Pod, dir: string, record: PodRecord) {
    this.#ctx = ctx;
    this.pod = pod;
    this.dir = dir;
    this.record = record;
    this.#log = ctx.logger.child({ pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`, uid: pod.metadata?.uid });
  }

  get uid(): string {
    return this.pod.metadata?.uid ?? '';
  }

  /** Re-attaches to runs a previous kubelet process started (those whose wrapper still lives), and records how the others ended. */
  async adopt(runs: Record<string, RunRecord>): Promise<void> {
    for (const [name, run] of Object.entries(runs)) {
      const r = this.#container(name);
      if (await wrapperAlive(run)) {
        this.#log.info({ container: name, pid: run.wrapperPid }, 'adopted a running container');
        const probes = new AbortController();
        const active: ActiveRun = { run, probes, exited: this.#pollExit(name, run) };
        this.#runs.set(name, active);
        this.#startProbes(name, active, r.started);
      } else if (r.running) {
        this.#recordExit(name, await readExitCode(run.exitFile));
      }
    }
  }

  update(pod: Pod): void {
    this.pod = pod;
    this.requestSync();
  }

  requestSync(): void {
    this.#dirty = true;
    if (this.#loop) return;
    this.#loop = this.#runLoop().finally(() => (this.#loop = undefined));
  }

  async #runLoop(): Promise<void> {
    while (this.#dirty && !this.closed) {
      this.#dirty = false;
      try {
        await this.#sync();
      } catch (err) {
        this.#log.warn({ err }, 'pod sync failed; retrying');
        this.#wakeAt(Date.now() + CONFIG_RETRY_MS);
      }
    }
  }

  async #sync(): Promise<void> {
    if (this.pod.metadata?.deletionTimestamp) {
      void this.terminate(graceSeconds(this.pod), true);
      return;
    }
    if (this.#terminating) return;
    const now = Date.now();
    if (!this.record.phase && (now - this.#volumesAt > VOLUME_REFRESH_MS || this.#volumeError)) await this.#refreshVolumes();
    if (this.#volumeError === undefined) {
      const plan = decide(this.pod, this.record, now);
      this.record.initialized = plan.initialized;
      for (const name of plan.start) await this.#start(name);
    }
    const plan = decide(this.pod, this.record, Date.now());
    this.record.initialized = plan.initialized;
    if (plan.stopSidecars && !this.#sidecarsStopping) {
      this.#sidecarsStopping = true;
      void this.#stopSidecars(graceSeconds(this.pod) * 1000).finally(() => this.requestSync());
    }
    if ((plan.phase === 'Succeeded' || plan.phase === 'Failed') && this.#runs.size === 0) this.record.phase = plan.phase;
    await this.#persist();
    await this.#writeStatus(plan);
    // Back-off expiries and missing volume sources; volume refreshes ride on the kubelet's periodic resync.
    if (plan.wakeAt !== undefined) this.#wakeAt(plan.wakeAt);
    if (this.#volumeError) this.#wakeAt(now + CONFIG_RETRY_MS);
  }

  /** The Pod as its containers see it: with the IPs this kubelet gave it even before status was written. */
  #podView(): Pod {
    const ip = this.record.podIP;
    return { ...this.pod, status: { ...this.pod.status, podIP: ip, podIPs: [{ ip }], hostIP: this.#ctx.hostIP, hostIPs: [{ ip: this.#ctx.hostIP }] } };
  }

  async #refreshVolumes(): Promise<void> {
    try {
      const objects = await files.fetchPodObjects(this.#ctx.rest, this.pod);
      const tokens = await files.requestTokens(this.#ctx.rest, this.pod, this.#tokens);
      const hostPaths = await resolveHostPaths(this.#ctx.rest, this.pod);
      await files.writeVolumes(this.dir, this.#podView(), objects, tokens, hostPaths);
      this.#volumesAt = Date.now();
      this.#volumeError = undefined;
    } catch (err) {
      if (!(err instanceof ContainerConfigError)) throw err;
      if (this.#volumeError !== err.message) this.#log.warn({ reason: err.message }, 'volumes not ready (FailedMount)');
      this.#volumeError = err.message;
      for (const c of allContainers(this.pod)) {
        const r = this.#container(c.name);
        if (!r.running && !r.terminated) r.waiting = { reason: 'ContainerCreating', message: `MountVolume.SetUp failed: ${err.message}` };
      }
    }
  }

  #container(name: string): ContainerRecord {
    return (this.record.containers[name] ??= emptyRecord());
  }

  async #start(name: string): Promise<void> {
    const c = allContainers(this.pod).find((x) => x.name === name)!;
    const r = this.#container(name);
    let argv: string[];
    let env: Record<string, string>;
    try {
      argv = containerArgv(c, this.#ctx.images);
      env = { ...masterServiceEnv(this.#ctx.rest), ...containerEnv(this.#podView(), c, await files.fetchPodObjects(this.#ctx.rest, this.pod)) };
    } catch (err) {
      if (err instanceof ImagePullError) {
        // The first failed pull reads ErrImagePull, the retries after it ImagePullBackOff (kubelet image manager).
        r.pullFailures = (r.pullFailures ?? 0) + 1;
        r.waiting = { reason: r.pullFailures > 1 ? 'ImagePullBackOff' : 'ErrImagePull', message: err.message };
        r.notBefore = Date.now() + restartDelayMs(r.pullFailures - 1);
        return;
      }
      if (err instanceof ContainerConfigError) {
        r.waiting = { reason: err.reason, message: err.message };
        r.notBefore = Date.now() + CONFIG_RETRY_MS;
        return;
      }
      throw err;
    }
    const mounts = await files.containerMounts(this.dir, this.pod, c);
    if (typeof mounts === 'string') {
      r.waiting = { reason: 'CreateContainerConfigError', message: mounts };
      return;
    }
    if (r.terminated) r.restartCount++;
    await files.createPodDirs(this.dir, [name]);
    const started = await launch({
      runDir: files.runDir(this.dir, name),
      run: r.restartCount,
      argv: expandArgs(argv, env),
      env,
      workingDir: c.workingDir ?? '/',
      mounts,
      hostPaths: imageHostPaths(this.#ctx.images),
      logFile: files.logFile(this.dir, name),
      reaper: this.#ctx.reaper,
      anchorPid: this.#ctx.anchorPid,
    });
    this.#log.info({ container: name, pid: started.record.wrapperPid, restartCount: r.restartCount }, 'container started');
    r.running = { startedAt: new Date().toISOString() };
    delete r.waiting;
    delete r.notBefore;
    r.pullFailures = 0;
    r.started = false;
    r.ready = false;
    const probes = new AbortController();
    const active: ActiveRun = { run: started.record, probes, exited: started.exited.then((code) => this.#onExit(name, active, code)) };
    this.#runs.set(name, active);
    this.#startProbes(name, active, false);
  }

  /** Startup probe first (or none: started at once); readiness and liveness only once started. */
  #startProbes(name: string, active: ActiveRun, alreadyStarted: boolean): void {
    const c = allContainers(this.pod).find((x) => x.name === name)!;
    const r = this.#container(name);
    const signal = active.probes.signal;
    const check = (kind: ProbeKind) => () =>
      probeOnce(c[`${kind}Probe`]!, {
        podIP: this.record.podIP,
        container: c,
        run: active.run,
        workingDir: c.workingDir ?? '/',
        // The container's image is runnable (it started), so mapping its paths cannot throw.
        execArgv: (command) => containerArgv({ ...c, command: [...command], args: [] }, this.#ctx.images),
      });
    const afterStarted = (): void => {
      r.started = true;
      r.ready = !c.readinessProbe;
      if (c.readinessProbe) void watchProbe(c.readinessProbe, check('readiness'), (ok) => this.#set(r, { ready: ok }), signal);
      if (c.livenessProbe) {
        void watchProbe(c.livenessProbe, check('liveness'), (ok) => {
          if (!ok) this.#kill(name, active, 'liveness probe failed');
        }, signal);
      }
      this.requestSync();
    };
    if (alreadyStarted || !c.startupProbe) {
      afterStarted();
      return;
    }
    const startup = new AbortController();
    const startupSignal = AbortSignal.any([signal, startup.signal]);
    void watchProbe(c.startupProbe, check('startup'), (ok) => {
      startup.abort();
      if (ok) afterStarted();
      else this.#kill(name, active, 'startup probe failed');
    }, startupSignal);
  }

  #set(r: ContainerRecord, change: Partial<ContainerRecord>): void {
    Object.assign(r, change);
    this.requestSync();
  }

  /** A failed liveness/startup probe: stop the container (it restarts per policy). */
  #kill(name: string, active: ActiveRun, why: string): void {
    this.#log.info({ container: name, why }, 'killing container');
    void this.#stop(active, graceSeconds(this.pod) * 1000);
  }

  async #onExit(name: string, active: ActiveRun, code: number): Promise<void> {
    if (this.#runs.get(name) !== active) return;
    this.#runs.delete(name);
    active.probes.abort();
    // The container ends with its main process: nothing it left in its process group survives it.
    await signalContainer(active.run, 'SIGKILL');
    this.#log.info({ container: name, exitCode: code }, 'container exited');
    this.#recordExit(name, code);
    this.requestSync();
  }

  #recordExit(name: string, exitCode: number): void {
    const r = this.#container(name);
    const now = Date.now();
    if (r.terminated) r.previous = r.terminated;
    r.terminated = { exitCode, startedAt: r.running?.startedAt ?? new Date(now).toISOString(), finishedAt: new Date(now).toISOString() };
    delete r.running;
    r.started = false;
    r.ready = false;
    const kind = kindOf(this.pod, name);
    if (kind === 'init' && exitCode === 0) r.succeeded = true;
    else if (willRestart(this.pod, kind, exitCode)) r.notBefore = now + restartDelayMs(r.restartCount);
  }

  /** A run adopted from a previous kubelet process is not our child: poll its wrapper until it ends. */
  async #pollExit(name: string, run: RunRecord): Promise<void> {
    while (await wrapperAlive(run)) await sleep(250);
    const active = this.#runs.get(name);
    if (active?.run === run) await this.#onExit(name, active, await readExitCode(run.exitFile));
  }

  /** SIGTERM, SIGKILL after `graceMs`; resolves once the container exited. */
  async #stop(active: ActiveRun, graceMs: number): Promise<void> {
    await signalContainer(active.run, 'SIGTERM');
    const timer = setTimeout(() => void signalContainer(active.run, 'SIGKILL'), graceMs);
    await active.exited;
    clearTimeout(timer);
  }

  async #stopSidecars(graceMs: number): Promise<void> {
    const sidecars = (this.pod.spec.initContainers ?? []).filter(isSidecar).map((c) => c.name).reverse();
    for (const name of sidecars) {
      const active = this.#runs.get(name);
      if (active) await this.#stop(active, graceMs);
    }
  }

  /**
   * Stops every container (regular and init first, then sidecars in reverse order) within
   * `grace` seconds, then — when `deleteObject` — removes the Pod object. Idempotent; never rejects.
   */
  terminate(grace: number, deleteObject: boolean): Promise<void> {
    this.#terminating ??= (async () => {
      clearTimeout(this.#wake);
      this.#log.info({ graceSeconds: grace }, 'terminating pod');
      await this.#stopAll(grace);
      if (deleteObject) {
        const plan: Plan = { ...decide(this.pod, this.record, Date.now()), stopSidecars: true };
        await this.#writeStatus(plan).catch((err: unknown) => this.#log.warn({ err }, 'final status write failed'));
        await this.#deleteObject();
      }
      await files.removePodFiles(this.dir).catch(() => {});
      this.closed = true;
      this.#log.info('pod terminated');
    })();
    return this.#terminating;
  }

  async #stopAll(grace: number): Promise<void> {
    const deadline = Date.now() + grace * 1000;
    const left = (): number => Math.max(0, deadline - Date.now());
    const sidecarNames = (this.pod.spec.initContainers ?? []).filter(isSidecar).map((c) => c.name);
    await Promise.all([...this.#runs].filter(([n]) => !sidecarNames.includes(n)).map(([, a]) => this.#stop(a, left())));
    for (const n of [...sidecarNames].reverse()) {
      const a = this.#runs.get(n);
      if (a) await this.#stop(a, left());
    }
  }

  /** The kubelet's last word: the containers are gone, so the object may go (no further grace). Retried until it is gone. */
  async #deleteObject(): Promise<void> {
    const m = this.pod.metadata ?? {};
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#ctx.rest.delete(CORE.pods, m.namespace, m.name ?? '', { gracePeriodSeconds: 0, preconditions: { uid: this.uid } });
        return;
      } catch (err) {
        // NotFound: already gone; Conflict: the name now belongs to another Pod (uid precondition).
        if (isNotFound(err) || isConflict(err)) return;
        this.#log.warn({ err, attempt }, 'deleting the pod object failed; retrying');
        await sleep(Math.min(10_000, 500 * 2 ** Math.min(attempt, 5)));
      }
    }
  }

  /** Kubelet shutdown: stop the Pod's processes (grace capped at `capSeconds`) without touching the API. */
  async shutdown(capSeconds: number): Promise<void> {
    clearTimeout(this.#wake);
    this.closed = true;
    await Promise.all([...this.#runs].map(([, a]) => this.#stop(a, Math.min(graceSeconds(this.pod), capSeconds) * 1000)));
  }

  /** Sync again at `at` (epoch ms); an earlier pending wake-up is kept. */
  #wakeAt(at: number): void {
    if (this.#wake && this.#wakeTime <= at) return;
    clearTimeout(this.#wake);
    this.#wakeTime = at;
    this.#wake = setTimeout(() => {
      this.#wake = undefined;
      this.requestSync();
    }, Math.max(0, at - Date.now()) + 5);
    this.#wake.unref();
  }

  async #persist(): Promise<void> {
    const m = this.pod.metadata ?? {};
    const runs = Object.fromEntries([...this.#runs].map(([n, a]) => [n, a.run]));
    const state = { namespace: m.namespace ?? '', name: m.name ?? '', uid: this.uid, record: this.record, runs };
    const text = JSON.stringify(state);
    if (text === this.#lastPersisted) return;
    await files.savePod(this.dir, state);
    this.#lastPersisted = text;
  }

  async #writeStatus(plan: Plan): Promise<void> {
    const status = podStatus({ pod: this.pod, record: this.record, plan, hostIP: this.#ctx.hostIP, now: new Date().toISOString() });
    const text = JSON.stringify(status);
    if (text === this.#lastStatus) return;
    const m = this.pod.metadata ?? {};
    // A merge patch replaces lists whole, so no stale container state survives in a merged entry;
    // conditions other writers own (e.g. DisruptionTarget on eviction) are carried over.
    const ours = new Set((status.conditions ?? []).map((c) => c.type));
    const conditions = [...(status.conditions ?? []), ...(this.pod.status?.conditions ?? []).filter((c) => !ours.has(c.type))];
    try {
      await this.#ctx.rest.patch(CORE.pods, m.namespace, m.name ?? '', { status: { ...status, conditions } }, 'merge', { subresource: 'status' });
      this.#lastStatus = text;
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }
}

export const allContainers = (pod: Pod): Container[] => [...(pod.spec.initContainers ?? []), ...pod.spec.containers];

/** deletionGracePeriodSeconds, else terminationGracePeriodSeconds, else the API default 30. */
export const graceSeconds = (pod: Pod): number => pod.metadata?.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30;

/**
 * KUBERNETES_SERVICE_HOST/PORT, which a real kubelet gives every container whatever
 * enableServiceLinks says, so in-cluster clients find the apiserver: here its own address (there is
 * no Service network). The spec's own values win.
 */
function masterServiceEnv(rest: KubeRest): Record<string, string> {
  const server = rest.kubeConfig.getCurrentCluster()?.server;
  if (!server) return {};
  const url = new URL(server);
  return { KUBERNETES_SERVICE_HOST: url.hostname, KUBERNETES_SERVICE_PORT: url.port || '443' };
}
