/**
 * The sessions of a chaos run: each is enqueued at its planned time in its planned environment
 * through the emulator's admin API and scripted at once (status running, one bash `echo`; in the
 * workspace environment the echo is also written to `chaos.txt` in the workspace); once its result
 * is in the history the agent either terminates the session or the run stops its work item through
 * the API (a remote stop, timed until its runner is seen ending). A resumed session (workspace
 * only) first ends its turn instead: once its runner ended idle (its work item stopped, its
 * AgentSession finished) it is woken — a new work item — and asked to `cat chaos.txt`, which must
 * answer its echo from the workspace, before it is ended as above. A session is settled when its
 * last work item is stopped in the API and its AgentSession finished (or was already deleted).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ConflictError } from '../../src/api/errors.ts';
import type { SessionEvent } from '../../src/api/sessions-wire.ts';
import type { AgentEventInput } from '../../src/emulator/index.ts';
import type { SessionPlan } from './schedule.ts';
import type { World } from './world.ts';

const TICK_MS = 200;
const STOP_ATTEMPTS = 30;

export interface DrivenSession {
  readonly plan: SessionPlan;
  readonly id: string;
  /** The remote environment's id. */
  readonly environmentId: string;
  /** The bash calls asked of the session, in order (a resumed session's second is its `cat`). */
  readonly toolUseIds: string[];
  readonly enqueuedAt: number;
  /** A resumed session: when its first result came (and its turn was ended), and when it was woken. */
  idleAt?: number;
  wokenAt?: number;
  /** When the result of its last bash call came. */
  resultAt?: number;
  /** The runner's answer was not the echo it was asked for. */
  wrongResult?: string;
  /** When the run ended it (terminated, or asked for the remote stop). */
  endedAt?: number;
  /** When the remote stop was requested. */
  stopAt?: number;
  /** Remote stop requests that failed after the client's retries (each asked again a second later). */
  stopFailures: number;
  lastStopError?: string;
  /** When the remote stop was accepted by the API. */
  stoppedAt?: number;
  settledAt?: number;
}

const FILE = 'chaos.txt';
const answered = (toolUseId: string) => (e: SessionEvent): boolean => e.type === 'user.tool_result' && e['tool_use_id'] === toolUseId;

const bash = (command: string): AgentEventInput => ({ type: 'agent.tool_use', name: 'bash', input: { command } });

function text(e: SessionEvent): string {
  const content = (e['content'] ?? []) as Array<{ type: string; text?: string }>;
  return content.map((b) => b.text ?? '').join('');
}

export class SessionDriver {
  readonly sessions: DrivenSession[] = [];
  readonly #world: World;
  readonly #print: (line: string) => void;

  constructor(world: World, print: (line: string) => void) {
    this.#world = world;
    this.#print = print;
  }

  /** The work items of a session in the emulator, oldest first. */
  workOf(s: Pick<DrivenSession, 'id' | 'environmentId'>): Array<{ id: string; state: string }> {
    const session = this.#world.emu.state.work.sessions().find((x) => x.id === s.id);
    return (session?.workIds ?? []).map((id) => ({ id, state: this.#world.emu.state.work.get(s.environmentId, id).work.state }));
  }

  /** Enqueue on plan and tick until every session is settled, `deadline` passes or `signal` aborts. */
  async run(plans: readonly SessionPlan[], start: number, deadline: number, signal: AbortSignal): Promise<void> {
    let next = 0;
    let printedAt = 0;
    while (!signal.aborted && Date.now() < deadline) {
      while (next < plans.length && start + plans[next]!.at <= Date.now()) this.#enqueue(plans[next++]!);
      for (const s of this.sessions) await this.#tick(s);
      const settled = this.sessions.filter((s) => s.settledAt !== undefined).length;
      if (Date.now() - printedAt >= 10_000) {
        printedAt = Date.now();
        this.#print(`sessions: ${this.sessions.length}/${plans.length} enqueued, ${this.sessions.filter((s) => s.resultAt).length} answered, ${settled} settled`);
      }
      if (next === plans.length && settled === plans.length) return;
      await sleep(TICK_MS, undefined, { signal }).catch(() => undefined);
    }
  }

  #enqueue(plan: SessionPlan): void {
    const { admin } = this.#world.emu;
    const environmentId = this.#world.environments[plan.environment].id;
    const { session_id: id } = admin.createSession(environmentId, { chaos: String(plan.index), environment: plan.environment });
    const command = plan.environment === 'workspace' ? `echo chaos-${plan.index} | tee ${FILE}` : `echo chaos-${plan.index}`;
    const [, toolUseId] = admin.appendAgentEvents(id, [{ type: 'session.status_running' }, bash(command)]);
    this.sessions.push({ plan, id, environmentId, toolUseIds: [toolUseId!], enqueuedAt: Date.now(), stopFailures: 0 });
  }

  async #tick(s: DrivenSession): Promise<void> {
    if (s.settledAt !== undefined) return;
    const { emu, seen } = this.#world;
    const last = s.toolUseIds.at(-1)!;
    const waking = s.idleAt !== undefined && s.wokenAt === undefined;
    if (s.resultAt === undefined && !waking) {
      const result = emu.admin.sessionEvents(s.id).find(answered(last));
      if (result && text(result).trim() !== `chaos-${s.plan.index}`) s.wrongResult ??= `${s.toolUseIds.length > 1 ? 'after the resume: ' : ''}${text(result).slice(0, 200)}`;
      if (result && s.plan.resume && s.idleAt === undefined) {
        // The agent ends its turn: the runner ends on its idle timeout, and the workspace stays.
        s.idleAt = Date.now();
        emu.admin.appendAgentEvents(s.id, [{ type: 'session.status_idle', stop_reason: { type: 'end_turn' } }]);
      } else if (result) s.resultAt = Date.now();
    }
    const work = this.workOf(s);
    const phase = seen.sessions.get(s.id);
    const finished = phase?.deleted || phase?.phase === 'Succeeded' || phase?.phase === 'Failed';
    const stopped = work.length > 0 && work.every((w) => w.state === 'stopped');
    if (s.idleAt !== undefined && s.wokenAt === undefined && stopped && finished) return this.#wake(s); // its new item is read next tick
    if (s.resultAt !== undefined && s.endedAt === undefined && Date.now() >= s.resultAt + s.plan.endDelayMs) {
      s.endedAt = Date.now();
      this.#end(s);
    }
    // A session that ended without an answer (given up, force-stopped) settles the same way; the
    // report tells them apart. A resumed session waits for its second item.
    if (stopped && finished && !(s.idleAt !== undefined && s.wokenAt === undefined)) s.settledAt = Date.now();
  }

  /** The session's next message: a new work item for the same session, whose bash call reads the workspace's file. */
  #wake(s: DrivenSession): void {
    const { admin } = this.#world.emu;
    try {
      admin.wake(s.environmentId, s.id);
    } catch (err) {
      this.#print(`session ${s.plan.index}: could not wake: ${String(err)}`);
      return;
    }
    s.wokenAt = Date.now();
    const [, toolUseId] = admin.appendAgentEvents(s.id, [{ type: 'session.status_running' }, bash(`cat ${FILE}`)]);
    s.toolUseIds.push(toolUseId!);
  }

  #end(s: DrivenSession): void {
    const { emu } = this.#world;
    if (s.plan.ending === 'terminate') {
      try {
        emu.admin.appendAgentEvents(s.id, [{ type: 'session.status_terminated' }]);
      } catch (err) {
        this.#print(`session ${s.plan.index}: could not terminate: ${String(err)}`);
      }
      return;
    }
    const current = this.workOf(s).at(-1);
    if (!current) return;
    s.stopAt = s.endedAt;
    // The stop goes through the public API, faults included; its client retries (5xx, 429, resets),
    // and a stop that still failed is asked again, as a user would, until it lands (409: already stopped).
    void this.#stop(s, current.id);
  }

  async #stop(s: DrivenSession, workId: string): Promise<void> {
    const { api } = this.#world;
    for (let attempt = 0; attempt < STOP_ATTEMPTS; attempt++) {
      try {
        await api.stopWork(s.environmentId, workId, {});
        s.stoppedAt = Date.now();
        return;
      } catch (err) {
        if (err instanceof ConflictError) return;
        s.stopFailures++;
        s.lastStopError = err instanceof Error ? err.message : String(err);
        await sleep(1_000);
      }
    }
  }
}
