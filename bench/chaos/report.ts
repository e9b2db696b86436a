/**
 * The invariants of a chaos run and its table (docs/chaos.md):
 *   lost          sessions neither served to the end nor force-stopped with a recorded reason — 0
 *   served twice  tool calls answered more than once, work items whose runners ran in two Pods at
 *                 once — 0 (a holder still beating after its item moved on is shown, not counted)
 *   leaked        Pods, Secrets, AgentSessions, PVCs and unstopped work items left once the
 *                 finished sessions' TTL has passed — 0
 *   failover      leader SIGKILLed → the standby's first poll, p50 / max — max ≤ 5 s
 *   stop latency  remote stop → runner seen ending, p50 / max — measured, no target
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { AGENT_SESSIONS } from '../../src/crd/resources.ts';
import { CORE, type KubeObject } from '../../src/k8s/rest.ts';
import type { DrivenSession, SessionDriver } from './drive.ts';
import type { InjectionLog } from './inject.ts';
import { ENVIRONMENT, NAMESPACE, type World } from './world.ts';

export const FAILOVER_TARGET_MS = 5_000;

export interface Leaks {
  pods: number;
  secrets: number;
  agentSessions: number;
  pvcs: number;
  workItems: number;
}

const total = (l: Leaks): number => l.pods + l.secrets + l.agentSessions + l.pvcs + l.workItems;

/** What is left of the run in the cluster and the API; the environment's key Secret is the run's own. */
async function leftovers(w: World): Promise<Leaks> {
  const count = async (type: Parameters<World['admin']['list']>[0], keep: (o: KubeObject) => boolean = () => false): Promise<number> =>
    (await w.admin.list<KubeObject>(type, NAMESPACE)).items.filter((o) => !keep(o)).length;
  return {
    pods: await count(CORE.pods),
    secrets: await count(CORE.secrets, (o) => o.metadata?.name === `${ENVIRONMENT}-key`),
    agentSessions: await count(AGENT_SESSIONS),
    pvcs: await count(CORE.persistentvolumeclaims),
    workItems: w.emu.state.work.records(w.environmentId).filter((r) => r.work.state !== 'stopped').length,
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
  readonly lost: Array<{ index: number; id: string; why: string }>;
  readonly duplicateAnswers: number;
  readonly concurrentPods: number;
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
  const lost: Outcome['lost'] = [];
  let served = 0;
  let duplicateAnswers = 0;
  const stopLatencies: number[] = [];
  for (const s of driver.sessions) {
    const seen = w.seen.sessions.get(s.id);
    const work = driver.workOf(s.id);
    const stopped = work.length > 0 && work.every((x) => x.state === 'stopped');
    const answers = w.emu.admin.sessionEvents(s.id).filter((e) => e.type === 'user.tool_result' && e['tool_use_id'] === s.toolUseId).length;
    duplicateAnswers += Math.max(0, answers - 1);
    if (s.resultAt !== undefined && stopped && seen?.phase === 'Succeeded') served++;
    else if (stopped && seen?.phase === 'Failed' && seen.reason) forced[seen.reason] = (forced[seen.reason] ?? 0) + 1;
    else lost.push({ index: s.plan.index, id: s.id, why: why(s, work, seen) });
    if (s.stopAt !== undefined) {
      const end = w.seen.runnerEnds(s.id).find((t) => t >= s.stopAt!);
      if (end !== undefined) stopLatencies.push(end - s.stopAt);
    }
  }
  const leases = w.emu.state.work.records(w.environmentId);
  return {
    served,
    forced,
    lost,
    duplicateAnswers,
    concurrentPods: w.seen.concurrent.size,
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

export function verdict(o: Outcome, leaks: Leaks, injected: InjectionLog, meta: { seed: number; profile: string; sessions: number; seconds: number; lives: number }): Verdict {
  const failures: string[] = [];
  const servedTwice = o.duplicateAnswers + o.concurrentPods;
  const maxFailover = injected.failovers.length ? Math.max(...injected.failovers) : NaN;
  if (o.lost.length > 0) failures.push(`lost: ${o.lost.length} (${o.lost.slice(0, 5).map((l) => `#${l.index} ${l.id}: ${l.why}`).join('; ')})`);
  if (servedTwice > 0) failures.push(`served twice: ${o.duplicateAnswers} duplicate answers, ${o.concurrentPods} work items run by two Pods at once`);
  if (total(leaks) > 0) failures.push(`leaked: ${JSON.stringify(leaks)}`);
  if (!(maxFailover <= FAILOVER_TARGET_MS) && injected.failovers.length > 0) failures.push(`failover: max ${secs(maxFailover)} > ${secs(FAILOVER_TARGET_MS)}`);
  if (o.wrongResults > 0) failures.push(`wrong results: ${o.wrongResults} tool results were not the echo asked for`);
  const forced = Object.entries(o.forced).map(([r, n]) => `${n} ${r}`).join(', ') || '0';
  const rows: Array<[string, string, string]> = [
    ['seed / profile', `${meta.seed} / ${meta.profile} (${meta.sessions} sessions, ${meta.seconds} s)`, ''],
    ['served to the end', String(o.served), ''],
    ['force-stopped with a reason', forced, ''],
    ['lost', String(o.lost.length), 'target 0'],
    ['served twice', `${servedTwice} (answers ${o.duplicateAnswers}, Pods at once ${o.concurrentPods}; shown only: re-claims ${o.reclaims}, stale beats ${o.staleBeats})`, 'target 0'],
    ['leaked', `${total(leaks)} (Pods ${leaks.pods}, Secrets ${leaks.secrets}, AgentSessions ${leaks.agentSessions}, PVCs ${leaks.pvcs}, work items ${leaks.workItems})`, 'target 0'],
    ['failover p50 / max', `${secs(pct(injected.failovers, 50))} / ${secs(maxFailover)} (${injected.failovers.length} kills)`, `target max ≤ ${secs(FAILOVER_TARGET_MS)}`],
    ['stop latency p50 / max', `${secs(pct(o.stopLatencies, 50))} / ${secs(o.stopLatencies.length ? Math.max(...o.stopLatencies) : NaN)} (${o.stopLatencies.length} remote stops, ${o.stopRetries} asked again)`, 'measured'],
    ['faults applied', [...Object.entries(injected.applied), ['sidecar-kill', injected.killedSidecars] as const].map(([k, n]) => `${k} ${n}`).join(', '), ''],
    ['faults skipped', injected.skipped.length ? injected.skipped.join('; ') : '0', ''],
    ['duplicate deliveries (reclaimed pending items)', String(injected.reclaimed), ''],
    ['operator processes started', String(meta.lives), ''],
  ];
  const width = Math.max(...rows.map((r) => r[0].length));
  const table = rows.map(([k, v, t]) => `${k.padEnd(width)}  ${v}${t ? `   [${t}]` : ''}`).join('\n');
  return { table, failures };
}
