/**
 * Script a session's agent through the emulator's admin API and wait for what the runner answers.
 * Works against any emulator reachable over HTTP (in-process, `agentenv emulator`, the cluster's),
 * so the direct-runner, sidecar and cluster tests share it.
 *
 *   const [echo] = await scriptAgent(emu.url, sessionId, [bash('echo hi')]);
 *   const results = await waitForToolResults(emu.url, sessionId, [echo]);
 *   expect(resultText(results.get(echo))).toBe('hi');
 *   await scriptAgent(emu.url, sessionId, [terminated()]);
 */
import type { SessionEvent } from '../../src/api/sessions-wire.ts';
import type { AgentEventInput } from '../../src/emulator/index.ts';

export type { AgentEventInput } from '../../src/emulator/index.ts';

/** An `agent.tool_use` of the agent toolset's bash tool. */
export const bash = (command: string, extra: Partial<Extract<AgentEventInput, { type: 'agent.tool_use' }>> = {}): AgentEventInput => ({ type: 'agent.tool_use', name: 'bash', input: { command }, ...extra });

/** An `agent.tool_use` of any agent-toolset tool (read, write, edit, glob, grep). */
export const toolUse = (name: string, input: Record<string, unknown>, extra: Partial<Extract<AgentEventInput, { type: 'agent.tool_use' }>> = {}): AgentEventInput => ({ type: 'agent.tool_use', name, input, ...extra });

export const running = (): AgentEventInput => ({ type: 'session.status_running' });
/** The turn is over; the runner stops after its `maxIdleMs`. */
export const endTurn = (): AgentEventInput => ({ type: 'session.status_idle', stop_reason: { type: 'end_turn' } });
/** The agent waits on these events (tool confirmations, custom tool results). */
export const requiresAction = (eventIds: string[]): AgentEventInput => ({ type: 'session.status_idle', stop_reason: { type: 'requires_action', event_ids: eventIds } });
/** The session is over; the runner ends at once. */
export const terminated = (): AgentEventInput => ({ type: 'session.status_terminated' });

async function admin<T>(url: string, init?: RequestInit): Promise<T> {
  const res = await fetch(url, init);
  const body = (await res.json()) as T & { error?: { message?: string } };
  if (!res.ok) throw new Error(`${init?.method ?? 'GET'} ${url}: ${res.status} ${body.error?.message ?? JSON.stringify(body)}`);
  return body;
}

/** Append agent-side events to a session (delivered to open streams at once); returns their ids. */
export async function scriptAgent(emulatorUrl: string, sessionId: string, events: AgentEventInput[]): Promise<string[]> {
  const body = await admin<{ ids: string[] }>(`${emulatorUrl}/emulator/v1/sessions/${encodeURIComponent(sessionId)}/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ events }),
  });
  return body.ids;
}

/** The whole history of a session, including what the runner posted. */
export async function sessionEvents(emulatorUrl: string, sessionId: string): Promise<SessionEvent[]> {
  return (await admin<{ data: SessionEvent[] }>(`${emulatorUrl}/emulator/v1/sessions/${encodeURIComponent(sessionId)}/events`)).data;
}

export interface WaitOptions {
  /** Give up after this long. Default 20 s. */
  readonly timeoutMs?: number;
  /** Pause between reads of the history. Default 25 ms. */
  readonly intervalMs?: number;
}

/** Wait until the history satisfies `done`, re-reading it; throws with the last history on timeout. */
export async function waitForEvents(emulatorUrl: string, sessionId: string, done: (events: SessionEvent[]) => boolean, what: string, options: WaitOptions = {}): Promise<SessionEvent[]> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  for (;;) {
    const events = await sessionEvents(emulatorUrl, sessionId);
    if (done(events)) return events;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} in session ${sessionId}; history: ${events.map((e) => e.type).join(', ')}`);
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 25));
  }
}

const answers = (e: SessionEvent): string | undefined =>
  e.type === 'user.tool_result' ? String(e['tool_use_id']) : e.type === 'user.custom_tool_result' ? String(e['custom_tool_use_id']) : undefined;

/** Wait until every tool use in `toolUseIds` has its result event; returns them by tool use id. */
export async function waitForToolResults(emulatorUrl: string, sessionId: string, toolUseIds: readonly string[], options: WaitOptions = {}): Promise<Map<string, SessionEvent>> {
  const events = await waitForEvents(emulatorUrl, sessionId, (evs) => toolUseIds.every((id) => evs.some((e) => answers(e) === id)), `results of ${toolUseIds.join(', ')}`, options);
  return new Map(events.filter((e) => toolUseIds.includes(answers(e) ?? '')).map((e) => [answers(e)!, e]));
}

/** The text of a result event's content blocks, joined. */
export function resultText(event: SessionEvent | undefined): string {
  const content = (event?.['content'] ?? []) as Array<{ type: string; text?: string }>;
  return content
    .filter((b) => b.type === 'text')
    .map((b) => b.text ?? '')
    .join('');
}
