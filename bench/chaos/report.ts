/**
 * The invariants of a chaos run and its table (docs/chaos.md):
 *   lost          sessions neither served to the end nor force-stopped with a recorded reason — 0
 *   served twice  tool calls answered more than once, work items whose runners ran in two Pods at
 *                 once, warm Pods bound to two work items, work items bound to a warm Pod that had a
 *                 second Pod — 0 (a holder still beating after its item moved on is shown, not counted)
 *   leaked        Pods (warm Pods included: the pool is scaled to 0 first), Secrets, AgentSessions,
 *                 PVCs and unstopped work items left once the finished sessions' TTL and the
 *                 workspaces' retention have passed — 0
 *   failover      leader SIGKILLed → the standby's first poll, p50 / max — max ≤ 5 s
 *   stop latency  remote stop → runner seen ending, p50 / max — measured, no target
 */
import { cpus } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { AGENT_SESSIONS } from '../../src/crd/resources.ts';
import { LABELS } from '../../src/crd/meta.ts';
import { CORE, type KubeObject } from '../../src/k8s/rest.ts';
import type { DrivenSession, SessionDriver } from './drive.ts';
import type { InjectionLog } from './inject.ts';
import { ENVIRONMENT_KINDS, type EnvironmentKind } from './schedule.ts';
import { NAMESPACE, type World } from './world.ts';

export const FAILOVER_TARGET_MS = 5_000;

export interface Leaks {
  /** Session Pods (cold, bound warm ones). */
  pods: number;
  /** Unbound warm Pods (the pool was scaled to 0). */
  warmPods: number;
  secrets: number;
  agentSessions: number;
  pvcs: number;
  workItems: number;
}

const total = (l: Leaks): number => l.pods + l.warmPods + l.secrets + l.agentSessions + l.pvcs + l.workItems;

/** What is left of the run in the cluster and the API; the environments' key Secrets are the run's own. */
async function leftovers(w: World): Promise<Leaks> {
  const list = async (type: Parameters<World['admin']['list']>[0]): Promise<KubeObject[]> => (await w.admin.list<KubeObject>(type, NAMESPACE)).items;
  const pods = await list(CORE.pods);
  const unboundWarm = (o: KubeObject): boolean => o.metadata?.labels?.[LABELS.warmPool] !== undefined && o.metadata.labels[LABELS.workId] === undefined;
  const keys = new Set(ENVIRONMENT_KINDS.map((k) => `${k}-key`));
  return {
    pods: pods.filter((o) => !unboundWarm(o)).length,
    warmPods: pods.filter(unboundWarm).length,
    secrets: (await list(CORE.secrets)).filter((o) => !keys.has(o.metadata?.name ?? '')).length,
    agentSessions: (await list(AGENT_SESSIONS)).length,
    pvcs: (await list(CORE.persistentvolumeclaims)).length,
    workItems: ENVIRONMENT_KINDS.flatMap((k) => w.emu.state.work.records(w.environments[k].id)).filter((r) => r.work.state !== 'stopped').length,
  };
}

/** Wait up to `timeoutMs` for everything to be cleaned up; returns what is left then. */
export async function waitForCleanup(w: World, timeoutMs: number): Promise<Leaks> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = await leftovers(w).catch(() => undefined);
    if (left && (total(left) === 0 || Date.now() > deadline)) return left;
    if (!left && Date.now() > deadline) return leftovers(w);
    await sleep(1_000);
  }
}

export interface Outcome {
  readonly served: number;
  readonly forced: Record<string, number>;
  /** One line per force-stopped session: its number, environment, id, reason and message. */
  readonly forcedDetails: string[];
  readonly lost: Array<{ index: number; id: string; why: string }>;
  readonly duplicateAnswers: number;
  readonly concurrentPods: number;
  /** Warm Pods bound to more than one work item in their life. */
  readonly warmBoundTwice: string[];
  /** Work items bound to a warm Pod that had another Pod too. */
  readonly boundItemsWithTwoPods: string[];
  /** Per environment: sessions, served, resumed (woken and answered from the workspace), warm-bound. */
  readonly byEnvironment: Record<EnvironmentKind, { sessions: number; served: number; resumed: number }>;
  /** Warm Pods started, bound, and the most unbound at once. */
  readonly warm: { started: number; bound: number; spent: number; peakUnbound: number };
  /** Each wrong result: the session and what came back. */
  readonly wrongDetails: string[];
  readonly staleBeats: number;
  readonly reclaims: number;
  readonly wrongResults: number;
  readonly stopLatencies: number[];
  /** Remote stop requests that failed after the client's own retries and were asked again. */
  readonly stopRetries: number;
}

/** Classify each session and count the served-twice signals. */
export function outcome(w: World, driver: SessionDriver): Outcome {
  const forced: Record<string, number> = {};
  const forcedDetails: string[] = [];
  const lost: Outcome['lost'] = [];
  let served = 0;
  let duplicateAnswers = 0;
  const stopLatencies: number[] = [];
  const byEnvironment = Object.fromEntries(ENVIRONMENT_KINDS.map((k) => [k, { sessions: 0, served: 0, resumed: 0 }])) as Outcome['byEnvironment'];
  for (const s of driver.sessions) {
    const seen = w.seen.sessions.get(s.id);
    const work = driver.workOf(s);
    const stopped = work.length > 0 && work.every((x) => x.state === 'stopped');
    const events = w.emu.admin.sessionEvents(s.id);
    for (const toolUseId of s.toolUseIds) duplicateAnswers += Math.max(0, events.filter((e) => e.type === 'user.tool_result' && e['tool_use_id'] === toolUseId).length - 1);
    const env = byEnvironment[s.plan.environment];
    env.sessions++;
    if (s.wokenAt !== undefined && s.resultAt !== undefined && s.wrongResult === undefined) env.resumed++;
    if (s.resultAt !== undefined && stopped && seen?.phase === 'Succeeded') {
      served++;
      env.served++;
    }
    else if (stopped && seen?.phase === 'Failed' && seen.reason) {
      forced[seen.reason] = (forced[seen.reason] ?? 0) + 1;
      forcedDetails.push(`#${s.plan.index} ${s.plan.environment} ${s.id} ${seen.reason}: ${seen.message ?? ''}`);
    }
    else lost.push({ index: s.plan.index, id: s.id, why: why(s, work, seen) });
    if (s.stopAt !== undefined) {
      const end = w.seen.runnerEnds(s.id).find((t) => t >= s.stopAt!);
      if (end !== undefined) stopLatencies.push(end - s.stopAt);
    }
  }
  const leases = ENVIRONMENT_KINDS.flatMap((k) => w.emu.state.work.records(w.environments[k].id));
  const warm = [...w.seen.warm.values()];
  return {
    served,
    forced,
    forcedDetails,
    lost,
    duplicateAnswers,
    concurrentPods: w.seen.concurrent.size,
    warmBoundTwice: w.seen.warmBoundTwice().map((x) => `${x.pod} bound to ${x.works.join(' and ')}`),
    boundItemsWithTwoPods: w.seen.boundItemsWithTwoPods().map((x) => `${x.work}: ${x.pods.join(', ')}`),
    byEnvironment,
    warm: { started: warm.length, bound: warm.filter((x) => x.works.size > 0).length, spent: w.seen.spentWarmPods(), peakUnbound: w.seen.peakUnboundWarm },
    wrongDetails: driver.sessions.filter((s) => s.wrongResult !== undefined).map((s) => `#${s.plan.index} ${s.plan.environment} ${s.id}: ${JSON.stringify(s.wrongResult)}`),
    staleBeats: leases.reduce((n, r) => n + r.history.stale_heartbeats, 0),
    reclaims: leases.reduce((n, r) => n + Math.max(0, r.history.leases.length - 1), 0),
    wrongResults: driver.sessions.filter((s) => s.wrongResult !== undefined).length,
    stopLatencies,
    stopRetries: driver.sessions.reduce((n, s) => n + s.stopFailures, 0),
  };
}

function why(s: DrivenSession, work: Array<{ id: string; state: string }>, seen: { phase?: string | undefined; reason?: string | undefined } | undefined): string {
  const stop = s.plan.ending === 'remote-stop' ? [`remote stop ${s.stopAt === undefined ? 'never sent' : s.stoppedAt !== undefined ? `accepted after ${s.stoppedAt - s.stopAt} ms` : `not accepted (${s.stopFailures} failures${s.lastStopError ? `, last: ${s.lastStopError}` : ''})`}`] : [s.endedAt === undefined ? 'never terminated' : 'terminated'];
  const parts = [s.resultAt === undefined ? 'no tool result' : 'answered', ...stop, `work ${work.map((x) => x.state).join('→') || 'none'}`, `AgentSession ${seen?.phase ?? 'never seen'}${seen?.reason ? ` (${seen.reason})` : ''}`];
  return parts.join(', ');
}

const pct = (xs: readonly number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]! : NaN;
};
const secs = (ms: number): string => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : ms === Infinity ? 'never' : '—');

export interface Verdict {
  readonly table: string;
  readonly failures: string[];
}

export function verdict(o: Outcome, leaks: Leaks, injected: InjectionLog, meta: { seed: number; profile: string; sessions: number; seconds: number; lives: number; load: readonly number[] }): Verdict {
  const failures: string[] = [];
  const servedTwice = o.duplicateAnswers + o.concurrentPods + o.warmBoundTwice.length + o.boundItemsWithTwoPods.length;
  const maxFailover = injected.failovers.length ? Math.max(...injected.failovers) : NaN;
  if (o.lost.length > 0) failures.push(`lost: ${o.lost.length} (${o.lost.slice(0, 5).map((l) => `#${l.index} ${l.id}: ${l.why}`).join('; ')})`);
  if (servedTwice > 0) failures.push(`served twice: ${o.duplicateAnswers} duplicate answers, ${o.concurrentPods} work items run by two Pods at once, warm Pods bound twice [${o.warmBoundTwice.join('; ')}], bound items with two Pods [${o.boundItemsWithTwoPods.join('; ')}]`);
  if (total(leaks) > 0) failures.push(`leaked: ${JSON.stringify(leaks)}`);
  if (!(maxFailover <= FAILOVER_TARGET_MS) && injected.failovers.length > 0) failures.push(`failover: max ${secs(maxFailover)} > ${secs(FAILOVER_TARGET_MS)}`);
  if (o.wrongResults > 0) failures.push(`wrong results: ${o.wrongResults} tool results were not the echo asked for (${o.wrongDetails.join('; ')})`);
  const forced = Object.entries(o.forced).map(([r, n]) => `${n} ${r}`).join(', ') || '0';
  const rows: Array<[string, string, string]> = [
    ['seed / profile', `${meta.seed} / ${meta.profile} (${meta.sessions} sessions, ${meta.seconds} s)`, ''],
    ['served to the end', String(o.served), ''],
    ['by environment (served / sessions)', ENVIRONMENT_KINDS.map((k) => `${k} ${o.byEnvironment[k].served}/${o.byEnvironment[k].sessions}${k === 'workspace' ? ` (${o.byEnvironment[k].resumed} resumed on their workspace)` : ''}`).join(', '), ''],
    ['warm Pods', `${o.warm.started} started, ${o.warm.bound} taken (${o.warm.spent} of them spent unserved: no record named them), at most ${o.warm.peakUnbound} unbound at once`, ''],
    ['force-stopped with a reason', forced, ''],
    ['lost', String(o.lost.length), 'target 0'],
    ['served twice', `${servedTwice} (answers ${o.duplicateAnswers}, Pods at once ${o.concurrentPods}, warm Pods bound twice ${o.warmBoundTwice.length}, bound items with two Pods ${o.boundItemsWithTwoPods.length}; shown only: re-claims ${o.reclaims}, stale beats ${o.staleBeats})`, 'target 0'],
    ['leaked', `${total(leaks)} (Pods ${leaks.pods}, warm Pods ${leaks.warmPods}, Secrets ${leaks.secrets}, AgentSessions ${leaks.agentSessions}, PVCs ${leaks.pvcs}, work items ${leaks.workItems})`, 'target 0'],
    ['failover p50 / max', `${secs(pct(injected.failovers, 50))} / ${secs(maxFailover)} (${injected.failovers.length} kills)`, `target max ≤ ${secs(FAILOVER_TARGET_MS)}`],
    ['  of which the Lease taken over p50 / max', `${secs(pct(injected.takeovers, 50))} / ${secs(injected.takeovers.length ? Math.max(...injected.takeovers) : NaN)}`, 'shown'],
    ['machine load (1-min average) at start / end', `${meta.load.map((l) => l.toFixed(1)).join(' / ')} on ${cpus().length} CPUs`, ''],
    ['stop latency p50 / max', `${secs(pct(o.stopLatencies, 50))} / ${secs(o.stopLatencies.length ? Math.max(...o.stopLatencies) : NaN)} (${o.stopLatencies.length} remote stops, ${o.stopRetries} asked again)`, 'measured'],
    ['faults applied', [...Object.entries(injected.applied), ['sidecar-kill', injected.killedSidecars] as const, ['warm-sidecar-kill waiting', injected.killedWarmSidecars.waiting] as const, ['warm-sidecar-kill bound', injected.killedWarmSidecars.bound] as const].map(([k, n]) => `${k} ${n}`).join(', '), ''],
    ['faults skipped', injected.skipped.length ? injected.skipped.join('; ') : '0', ''],
    ['duplicate deliveries (reclaimed pending items)', String(injected.reclaimed), ''],
    ['operator processes started', String(meta.lives), ''],
  ];
  const width = Math.max(...rows.map((r) => r[0].length));
  const table = rows.map(([k, v, t]) => `${k.padEnd(width)}  ${v}${t ? `   [${t}]` : ''}`).join('\n');
  return { table, failures };
}
