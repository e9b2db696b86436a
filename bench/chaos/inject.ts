/**
 * The chaos run's fault injectors: each event of the plan (schedule.ts) applied to the world at its
 * time. Disruptions run one at a time (the plan spaces them); fault windows and duplicate
 * deliveries overlap freely, so the emulator's rules are kept here as named groups and written
 * together whenever one starts or ends.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FaultRule } from '../../src/emulator/index.ts';
import { SIDECAR_NAME } from '../../src/sessions/objects/pod.ts';
import { describeEvent, DISRUPTION_SPACING_MS, DISRUPTIVE, ENVIRONMENT_KINDS, type ApiFaults, type ChaosEvent, type WarmMoment } from './schedule.ts';
import { NAMESPACE, type World } from './world.ts';

/** The public routes (`/v1/…`); the admin API is never faulted. */
const PUBLIC = '/v1/**';
export const API_FAULT_RULES: Readonly<Record<ApiFaults, FaultRule[]>> = {
  'server-errors': [
    { path: PUBLIC, probability: 0.1, status: 500 },
    { path: PUBLIC, probability: 0.111, status: 503 }, // 0.9 × 0.111 ≈ 0.1: 20 % 5xx in all
  ],
  'rate-limited': [{ path: PUBLIC, probability: 0.2, status: 429, retry_after: 1 }],
  resets: [{ path: PUBLIC, probability: 0.1, reset: true }],
  latency: [{ path: PUBLIC, probability: 0.5, latency_ms: 400 }],
};
/** During a duplicate-delivery window acknowledgements are slow, so items stay pending long enough to be reclaimed. */
const SLOW_ACKS: FaultRule[] = [{ method: 'POST', path: '/v1/environments/*/work/*/ack', latency_ms: 1_500 }];
const RECLAIM_EVERY_MS = 250;
const SIDECAR_WAIT_MS = 10_000;
/** A kill right after binding waits this long for the next warm Pod to be bound. */
const BINDING_WAIT_MS = 30_000;
/** A leader kill waits this long at most for a ready standby. */
const STANDBY_WAIT_MS = 60_000;
/** A failover not seen within this long counts as failed. */
const FAILOVER_GIVE_UP_MS = 60_000;

export interface InjectionLog {
  /** Kill → the standby's first poll, ms; Infinity when none came within FAILOVER_GIVE_UP_MS. */
  readonly failovers: number[];
  /** Kill → the Lease held by another live replica, ms (the election's part of a failover). */
  readonly takeovers: number[];
  readonly applied: Record<string, number>;
  readonly skipped: string[];
  reclaimed: number;
  killedSidecars: number;
  /** Warm Pods' sidecars SIGKILLed while waiting for an assignment, and right after their Pod was bound. */
  killedWarmSidecars: Record<WarmMoment, number>;
}

export class Injector {
  readonly log: InjectionLog = { failovers: [], takeovers: [], applied: {}, skipped: [], reclaimed: 0, killedSidecars: 0, killedWarmSidecars: { waiting: 0, bound: 0 } };
  readonly #world: World;
  readonly #print: (line: string) => void;
  readonly #rules = new Map<number, FaultRule[]>();
  readonly #pending = new Set<Promise<unknown>>();
  /** When the last disruption (leader kill, apiserver or kubelet restart) was done. */
  #lastDisruption = 0;
  /** Warm Pods whose sidecar was killed right after binding (by uid): each at most once. */
  readonly #killedBound = new Set<string>();
  #nextGroup = 0;

  constructor(world: World, print: (line: string) => void) {
    this.#world = world;
    this.#print = print;
  }

  /** Apply the plan's events at their times (relative to `start`) until the plan ends or `signal` aborts. */
  async run(events: readonly ChaosEvent[], start: number, signal: AbortSignal): Promise<void> {
    for (const e of events) {
      const wait = start + e.at - Date.now();
      if (wait > 0) await sleep(wait, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) break;
      // The plan spaces disruptions DISRUPTION_SPACING_MS apart, but a slow one (an apiserver
      // restart under load) delays the next events: keep the spacing in real time too, so each
      // failover is measured with a standby that had time to start.
      const held = DISRUPTIVE.has(e.kind) ? this.#lastDisruption + DISRUPTION_SPACING_MS - Date.now() : 0;
      if (held > 0) {
        this.#print(`  holding ${describeEvent(e)} back ${held} ms: the previous disruption was less than ${DISRUPTION_SPACING_MS} ms ago`);
        await sleep(held, undefined, { signal }).catch(() => undefined);
        if (signal.aborted) break;
      }
      this.#print(`inject ${describeEvent(e)}`);
      try {
        await this.#apply(e, signal);
        if (DISRUPTIVE.has(e.kind)) this.#lastDisruption = Date.now();
        if (e.kind !== 'sidecar-kill' && e.kind !== 'warm-sidecar-kill') this.log.applied[e.kind] = (this.log.applied[e.kind] ?? 0) + 1;
      } catch (err) {
        this.log.skipped.push(`${describeEvent(e)}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    await Promise.allSettled([...this.#pending]);
    this.#world.emu.admin.clearFaults();
  }

  #background(p: Promise<unknown>): void {
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  async #apply(e: ChaosEvent, signal: AbortSignal): Promise<void> {
    const w = this.#world;
    switch (e.kind) {
      case 'leader-kill':
        return this.#killLeader();
      case 'apiserver-restart':
        return w.cluster.restartApiServer();
      case 'kubelet-restart':
        return w.cluster.restartKubelet();
      case 'sidecar-kill':
        // In the background: it may wait for a sidecar to run, and must not hold up the next event.
        return this.#background(this.#killSidecar(e.pick).catch((err: unknown) => void this.log.skipped.push(`${describeEvent(e)}: ${err instanceof Error ? err.message : String(err)}`)));
      case 'warm-sidecar-kill': {
        const kill = e.moment === 'waiting' ? this.#killWaitingWarmSidecar(e.pick) : this.#killBoundWarmSidecar(Date.now());
        return this.#background(kill.catch((err: unknown) => void this.log.skipped.push(`${describeEvent(e)}: ${err instanceof Error ? err.message : String(err)}`)));
      }
      case 'api-faults':
        return this.#background(this.#window(API_FAULT_RULES[e.faults], e.durationMs, signal));
      case 'duplicate-delivery':
        return this.#background(this.#duplicates(e.durationMs, signal));
    }
  }

  async #killLeader(): Promise<void> {
    const w = this.#world;
    const leader = await w.leader();
    if (!leader) throw new Error('no live replica holds the Lease');
    // "With a second replica standing by": a standby still starting (restarted after the last
    // disruption) would put its own start-up into the failover figure.
    const since = Date.now();
    while (!(await w.replicas.standbyReady(leader))) {
      if (Date.now() - since > STANDBY_WAIT_MS) throw new Error(`no standby ready within ${STANDBY_WAIT_MS} ms`);
      await sleep(250);
    }
    if (Date.now() - since > 500) this.#print(`  waited ${Date.now() - since} ms for the standby to be ready`);
    const killedAt = Date.now();
    await w.replicas.kill(leader);
    this.#background(this.#failover(leader, killedAt));
    this.#background(this.#takeover(leader, killedAt));
  }

  /** When the Lease names another live replica after the kill (read every 100 ms). */
  async #takeover(killed: string, killedAt: number): Promise<void> {
    while (Date.now() - killedAt < FAILOVER_GIVE_UP_MS) {
      const holder = await this.#world.leader().catch(() => undefined);
      if (holder && holder !== killed) {
        this.log.takeovers.push(Date.now() - killedAt);
        return;
      }
      await sleep(100);
    }
  }

  /** The first poll after the kill by another process than the killed leader (its worker ids start with `<POD_NAME>_`). */
  async #failover(killed: string, killedAt: number): Promise<void> {
    while (Date.now() - killedAt < FAILOVER_GIVE_UP_MS) {
      const first = ENVIRONMENT_KINDS.flatMap((k) => this.#world.emu.state.work.workers(this.#world.environments[k].id))
        .filter((x) => !x.worker_id.startsWith(`${killed}_`) && Date.parse(x.last_poll_at) >= killedAt)
        .map((x) => Date.parse(x.last_poll_at))
        .sort((a, b) => a - b)[0];
      if (first !== undefined) {
        this.log.failovers.push(first - killedAt);
        this.#print(`failover after ${first - killedAt} ms`);
        return;
      }
      await sleep(50);
    }
    this.log.failovers.push(Infinity);
    this.#print(`no failover within ${FAILOVER_GIVE_UP_MS} ms`);
  }

  /**
   * SIGKILL the sidecar of one Pod whose sidecar runs (from the process kubelet's run records); the
   * kubelet restarts it. Waits up to SIDECAR_WAIT_MS for one to run.
   */
  async #killSidecar(pick: number): Promise<void> {
    for (const until = Date.now() + SIDECAR_WAIT_MS; ; await sleep(250)) {
      const running = this.#runningSidecars();
      const victim = running[Math.floor(pick * running.length)];
      if (victim) {
        process.kill(victim.pid, 'SIGKILL');
        this.#print(`  killed the sidecar of ${victim.pod} (pid ${victim.pid})`);
        this.log.killedSidecars++;
        return;
      }
      if (Date.now() > until) throw new Error('no sidecar running');
    }
  }

  /** SIGKILL the sidecar of an unbound warm Pod (one whose sidecar runs, waiting for its assignment); the kubelet restarts it and it waits again. */
  async #killWaitingWarmSidecar(pick: number): Promise<void> {
    for (const until = Date.now() + SIDECAR_WAIT_MS; ; await sleep(250)) {
      const waiting = this.#world.seen.unboundWarmPods();
      const running = this.#runningSidecars().filter((s) => waiting.has(s.name));
      const victim = running[Math.floor(pick * running.length)];
      if (victim) {
        process.kill(victim.pid, 'SIGKILL');
        this.#print(`  killed the waiting sidecar of warm Pod ${victim.pod} (pid ${victim.pid})`);
        this.log.killedWarmSidecars.waiting++;
        return;
      }
      if (Date.now() > until) throw new Error('no waiting warm sidecar running');
    }
  }

  /**
   * SIGKILL the sidecar of the next warm Pod seen bound after `since`, as soon as the Pod watch
   * shows the binding: the sidecar is then asking for (or has just got) its assignment, or claiming
   * the lease. Waits up to BINDING_WAIT_MS for a binding.
   */
  async #killBoundWarmSidecar(since: number): Promise<void> {
    for (const until = Date.now() + BINDING_WAIT_MS; ; await sleep(20)) {
      const bound = [...this.#world.seen.warm.entries()].filter(([uid, w]) => w.boundAt !== undefined && w.boundAt >= since && !this.#killedBound.has(uid));
      for (const [uid] of bound) {
        const victim = this.#runningSidecars().find((s) => s.uid === uid);
        if (!victim) continue;
        this.#killedBound.add(uid);
        process.kill(victim.pid, 'SIGKILL');
        this.#print(`  killed the sidecar of warm Pod ${victim.pod} right after its binding (pid ${victim.pid})`);
        this.log.killedWarmSidecars.bound++;
        return;
      }
      if (Date.now() > until) throw new Error('no warm Pod bound');
    }
  }

  /** Pods whose sidecar runs now, from the process kubelet's run records (`<namespace>_<name>_<uid>`), sorted by name. */
  #runningSidecars(): Array<{ pod: string; name: string; uid: string; pid: number }> {
    const dir = join(this.#world.cluster.kubeletRootDir, 'pods');
    const running: Array<{ pod: string; name: string; uid: string; pid: number }> = [];
    for (const entry of readdirSync(dir).filter((d) => d.startsWith(`${NAMESPACE}_`)).sort()) {
      try {
        const record = JSON.parse(readFileSync(join(dir, entry, 'record.json'), 'utf8')) as { name: string; uid: string; runs?: Record<string, { pidFile?: string }> };
        const pidFile = record.runs?.[SIDECAR_NAME]?.pidFile;
        const pid = pidFile ? Number.parseInt(readFileSync(pidFile, 'utf8'), 10) : NaN;
        if (pid > 0 && alive(pid)) running.push({ pod: entry, name: record.name, uid: record.uid, pid });
      } catch {
        // a Pod directory being written or removed
      }
    }
    return running;
  }

  async #window(rules: FaultRule[], durationMs: number, signal: AbortSignal): Promise<void> {
    const group = this.#nextGroup++;
    this.#rules.set(group, rules);
    this.#writeRules();
    await sleep(durationMs, undefined, { signal }).catch(() => undefined);
    this.#rules.delete(group);
    this.#writeRules();
  }

  async #duplicates(durationMs: number, signal: AbortSignal): Promise<void> {
    const group = this.#nextGroup++;
    this.#rules.set(group, SLOW_ACKS);
    this.#writeRules();
    const until = Date.now() + durationMs;
    while (Date.now() < until && !signal.aborted) {
      for (const k of ENVIRONMENT_KINDS) this.log.reclaimed += this.#world.emu.admin.reclaimPending(this.#world.environments[k].id);
      await sleep(RECLAIM_EVERY_MS);
    }
    this.#rules.delete(group);
    this.#writeRules();
  }

  /** The first matching rule wins: slow acks go first so a window's faults still hit the other routes. */
  #writeRules(): void {
    const groups = [...this.#rules.values()].sort((a, b) => Number(b === SLOW_ACKS) - Number(a === SLOW_ACKS));
    this.#world.emu.admin.setFaults(groups.flat());
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
