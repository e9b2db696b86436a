/**
 * The sessions of a chaos run: each is enqueued at its planned time through the emulator's admin
 * API and scripted at once (status running, one bash `echo`); once its result is in the history
 * the agent either terminates the session or the run stops its work item through the API (a
 * remote stop, timed until its runner is seen ending). A session is settled when its last work
 * item is stopped in the API and its AgentSession finished (or was already deleted by its TTL).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ConflictError } from '../../src/api/errors.ts';
import type { SessionEvent } from '../../src/api/sessions-wire.ts';
import type { SessionPlan } from './schedule.ts';
import type { World } from './world.ts';

const TICK_MS = 200;
const STOP_ATTEMPTS = 30;

export interface DrivenSession {
  readonly plan: SessionPlan;
  readonly id: string;
  readonly toolUseId: string;
  readonly enqueuedAt: number;
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

const answered = (toolUseId: string) => (e: SessionEvent): boolean => e.type === 'user.tool_result' && e['tool_use_id'] === toolUseId;

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
  workOf(sessionId: string): Array<{ id: string; state: string }> {
    const session = this.#world.emu.state.work.sessions().find((s) => s.id === sessionId);
    return (session?.workIds ?? []).map((id) => ({ id, state: this.#world.emu.state.work.get(this.#world.environmentId, id).work.state }));
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
    const { session_id: id } = admin.createSession(this.#world.environmentId, { chaos: String(plan.index) });
    const [, toolUseId] = admin.appendAgentEvents(id, [{ type: 'session.status_running' }, { type: 'agent.tool_use', name: 'bash', input: { command: `echo chaos-${plan.index}` } }]);
    this.sessions.push({ plan, id, toolUseId: toolUseId!, enqueuedAt: Date.now(), stopFailures: 0 });
  }

  async #tick(s: DrivenSession): Promise<void> {
    if (s.settledAt !== undefined) return;
    const { emu, seen } = this.#world;
    if (s.resultAt === undefined) {
      const result = emu.admin.sessionEvents(s.id).find(answered(s.toolUseId));
      if (result) {
        s.resultAt = Date.now();
        if (text(result).trim() !== `chaos-${s.plan.index}`) s.wrongResult = text(result).slice(0, 200);
      }
    }
    if (s.resultAt !== undefined && s.endedAt === undefined && Date.now() >= s.resultAt + s.plan.endDelayMs) {
      s.endedAt = Date.now();
      this.#end(s);
    }
    const work = this.workOf(s.id);
    const phase = seen.sessions.get(s.id);
    const finished = phase?.deleted || phase?.phase === 'Succeeded' || phase?.phase === 'Failed';
    // A session that ended without an answer (given up, force-stopped) settles the same way; the report tells them apart.
    if (work.length > 0 && work.every((w) => w.state === 'stopped') && finished) s.settledAt = Date.now();
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
    const current = this.workOf(s.id).at(-1);
    if (!current) return;
    s.stopAt = s.endedAt;
    // The stop goes through the public API, faults included; its client retries (5xx, 429, resets),
    // and a stop that still failed is asked again, as a user would, until it lands (409: already stopped).
    void this.#stop(s, current.id);
  }

  async #stop(s: DrivenSession, workId: string): Promise<void> {
    const { api, environmentId } = this.#world;
    for (let attempt = 0; attempt < STOP_ATTEMPTS; attempt++) {
      try {
        await api.stopWork(environmentId, workId, {});
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
