/**
 * Sessions in the emulator: the session resource a self-hosted runner reads, its append-only
 * event history, and the listeners of open event streams. The emulator has no agent: agent-side
 * events come from the admin API (a test's script), user-side events from the public API (the
 * runner, or a client confirming a tool call). Choices where the reference is silent are listed
 * in docs/emulator.md ("Sessions").
 */
import type { Metadata } from '../api/wire.ts';
import type { Session, SessionEvent, SessionEventsPage, SessionStatus, UserEventParams } from '../api/sessions-wire.ts';
import { completeAgentEvent, statusAfter, type ScriptedAgentEvent } from './agent-events.ts';
import { EmulatorError } from './errors.ts';
import { newId, rfc3339 } from './ids.ts';

export interface SessionLimits {
  /** Events one session's history may hold. Default 10,000. */
  readonly maxEvents: number;
  /** Serialized bytes one session's history may hold. Default 64 MiB. */
  readonly maxHistoryBytes: number;
}
export const DEFAULT_SESSION_LIMITS: SessionLimits = { maxEvents: 10_000, maxHistoryBytes: 64 * 1024 * 1024 };
export const DEFAULT_EVENTS_LIMIT = 100;
export const MAX_EVENTS_LIMIT = 1000;

/** An open event stream, as the store sees it. */
export interface StreamListener {
  deliver(event: SessionEvent): void;
  /** The session is gone (its environment was deleted): end the stream. */
  close(): void;
}

export interface EventQuery {
  limit?: number;
  page?: string;
  order?: 'asc' | 'desc';
  types?: readonly string[];
  /** Bounds on `processed_at`, in epoch milliseconds. */
  after?: { ms: number; inclusive: boolean };
  before?: { ms: number; inclusive: boolean };
}

/** What a tool use needs for the rules on results and confirmations. */
interface ToolUse {
  readonly kind: 'agent.tool_use' | 'agent.custom_tool_use';
  readonly permission: string | undefined;
  answered: boolean;
  confirmed: boolean;
}

interface SessionRecord {
  session: Session;
  readonly events: SessionEvent[];
  bytes: number;
  readonly ids: Set<string>;
  readonly toolUses: Map<string, ToolUse>;
  readonly listeners: Set<StreamListener>;
}

export class SessionStore {
  readonly #byId = new Map<string, SessionRecord>();
  readonly #now: () => number;
  readonly #limits: SessionLimits;

  constructor(now: () => number, limits: SessionLimits = DEFAULT_SESSION_LIMITS) {
    this.#now = now;
    this.#limits = limits;
  }

  /** A new session in its initial status, `idle` ("sessions start in idle", SDK docs). */
  create(environmentId: string, metadata: Metadata): Session {
    const at = rfc3339(this.#now());
    const session: Session = {
      id: newId('sesn'),
      type: 'session',
      agent: defaultAgent(),
      environment_id: environmentId,
      status: 'idle',
      title: null,
      metadata: { ...metadata },
      resources: [],
      vault_ids: [],
      outcome_evaluations: [],
      budget: null,
      stats: {},
      usage: { input_tokens: 0, output_tokens: 0, cache_read_input_tokens: 0 },
      archived_at: null,
      created_at: at,
      updated_at: at,
    };
    this.#byId.set(session.id, { session, events: [], bytes: 0, ids: new Set(), toolUses: new Map(), listeners: new Set() });
    return session;
  }

  get(id: string): Session {
    const r = this.#record(id);
    return { ...r.session, stats: { duration_seconds: Math.max(0, Math.floor((this.#now() - Date.parse(r.session.created_at)) / 1000)) } };
  }

  environmentOf(id: string): string | undefined {
    return this.#byId.get(id)?.session.environment_id;
  }

  status(id: string): SessionStatus {
    return this.#record(id).session.status;
  }

  all(): Session[] {
    return [...this.#byId.keys()].map((id) => this.get(id));
  }

  /** Events a client sent (the runner's tool results, a user's confirmation or message). */
  appendUser(id: string, params: readonly UserEventParams[]): SessionEvent[] {
    const r = this.#record(id);
    // A terminated session accepts no further input (as a terminated session thread does not).
    if (r.session.status === 'terminated') throw new EmulatorError(409, `session ${id} is terminated and accepts no events`);
    checkUserEvents(r, params);
    const at = rfc3339(this.#now());
    return this.#append(r, params.map((p) => ({ ...p, id: newId('sevt'), processed_at: at })));
  }

  /** Events the scripted agent produced (admin API). Status events set the session's status. */
  appendAgent(id: string, inputs: readonly ScriptedAgentEvent[]): SessionEvent[] {
    const r = this.#record(id);
    if (r.session.status === 'terminated') throw new EmulatorError(409, `session ${id} is terminated and accepts no events`);
    const ids = inputs.map((e) => e.id ?? newId('sevt'));
    const clash = ids.find((x, i) => r.ids.has(x) || ids.indexOf(x) !== i);
    if (clash) throw new EmulatorError(409, `event id ${clash} already exists in session ${id}`);
    const at = rfc3339(this.#now());
    return this.#append(r, inputs.map((e, i) => completeAgentEvent(e, ids[i]!, at)));
  }

  /**
   * Append a checked batch, all or nothing: the bounds are checked before anything is stored, then
   * each event is indexed, applied to the status and delivered to every open stream at once.
   */
  #append(r: SessionRecord, events: SessionEvent[]): SessionEvent[] {
    const sizes = events.map((e) => Buffer.byteLength(JSON.stringify(e)));
    const bytes = sizes.reduce((a, b) => a + b, 0);
    if (r.events.length + events.length > this.#limits.maxEvents || r.bytes + bytes > this.#limits.maxHistoryBytes) {
      throw new EmulatorError(409, `session ${r.session.id} history is full (the emulator keeps at most ${this.#limits.maxEvents} events and ${this.#limits.maxHistoryBytes} bytes per session)`);
    }
    r.bytes += bytes;
    for (const e of events) {
      r.events.push(e);
      r.ids.add(e.id);
      index(r, e);
      const status = statusAfter(r.session.status, e.type);
      if (status !== r.session.status) r.session = { ...r.session, status, updated_at: e.processed_at ?? r.session.updated_at };
      for (const l of r.listeners) l.deliver(e);
    }
    return events;
  }

  /** A page of the history, oldest first unless `order: desc`; the cursor is the position of the last event. */
  list(id: string, q: EventQuery): SessionEventsPage {
    const r = this.#record(id);
    const limit = q.limit ?? DEFAULT_EVENTS_LIMIT;
    const desc = q.order === 'desc';
    const start = q.page === undefined ? (desc ? r.events.length - 1 : 0) : decodeCursor(q.page, desc) + (desc ? -1 : 1);
    const data: SessionEvent[] = [];
    let last = -1;
    for (let i = start; i >= 0 && i < r.events.length && data.length < limit; i += desc ? -1 : 1) {
      const e = r.events[i]!;
      last = i;
      if (matches(e, q)) data.push(e);
    }
    const more = last >= 0 && (desc ? last > 0 : last < r.events.length - 1) && data.length === limit;
    return { data, next_page: more ? encodeCursor(last, desc) : null };
  }

  history(id: string): SessionEvent[] {
    return [...this.#record(id).events];
  }

  /** Register an open stream; it gets every event appended from now on. Returns the unsubscribe. */
  subscribe(id: string, listener: StreamListener): () => void {
    const r = this.#record(id);
    r.listeners.add(listener);
    return () => r.listeners.delete(listener);
  }

  /** End every open stream of a session, as a dropped connection would (tests of a client's reconnect). */
  closeStreams(id: string): void {
    for (const l of this.#record(id).listeners) l.close();
  }

  openStreams(): number {
    let n = 0;
    for (const r of this.#byId.values()) n += r.listeners.size;
    return n;
  }

  dropEnvironment(environmentId: string): void {
    for (const [id, r] of this.#byId) {
      if (r.session.environment_id !== environmentId) continue;
      this.#byId.delete(id);
      for (const l of r.listeners) l.close();
    }
  }

  #record(id: string): SessionRecord {
    const r = this.#byId.get(id);
    if (!r) throw new EmulatorError(404, `session ${id} not found`);
    return r;
  }
}

/**
 * The rules a batch of user events must meet, checked before any of it is stored: a result
 * answers an existing tool use of the matching kind, once; a confirmation answers a tool use the
 * server gated (`evaluated_permission: ask`), once, and before its result.
 */
function checkUserEvents(r: SessionRecord, params: readonly UserEventParams[]): void {
  const seen = new Set<string>();
  params.forEach((p, i) => {
    if (p.type === 'user.message') return;
    const target = p.type === 'user.custom_tool_result' ? p.custom_tool_use_id : p.tool_use_id;
    const kind = p.type === 'user.custom_tool_result' ? 'agent.custom_tool_use' : 'agent.tool_use';
    const use = r.toolUses.get(target);
    const field = `events.${i}.${p.type === 'user.custom_tool_result' ? 'custom_tool_use_id' : 'tool_use_id'}`;
    if (!use || use.kind !== kind) throw new EmulatorError(400, `${field}: ${target} is not an ${kind} event of session ${r.session.id}`);
    const key = `${p.type === 'user.tool_confirmation' ? 'c' : 'r'}:${target}`;
    if (p.type === 'user.tool_confirmation') {
      if (use.permission !== 'ask') throw new EmulatorError(400, `${field}: ${target} does not await a confirmation (evaluated_permission is ${use.permission ?? 'absent'})`);
      if (use.confirmed || use.answered || seen.has(key)) throw new EmulatorError(409, `${field}: ${target} is already confirmed or answered`);
      if (p.result === 'deny') seen.add(`r:${target}`); // a denial resolves the call, in this batch too
    } else if (use.answered || seen.has(key)) {
      throw new EmulatorError(409, `${field}: ${target} already has a result`);
    }
    seen.add(key);
  });
}

/** Keep the tool-use index current for the rules above. */
function index(r: SessionRecord, e: SessionEvent): void {
  if (e.type === 'agent.tool_use' || e.type === 'agent.custom_tool_use') {
    r.toolUses.set(e.id, { kind: e.type, permission: e['evaluated_permission'] as string | undefined, answered: false, confirmed: false });
    return;
  }
  const target = r.toolUses.get(String(e['tool_use_id'] ?? e['custom_tool_use_id'] ?? ''));
  if (!target) return;
  if (e.type === 'user.tool_confirmation') {
    target.confirmed = true;
    // A denial resolves the call server-side: nothing may answer it afterwards.
    if (e['result'] === 'deny') target.answered = true;
  } else if (e.type === 'user.tool_result' || e.type === 'user.custom_tool_result') {
    target.answered = true;
  }
}

function matches(e: SessionEvent, q: EventQuery): boolean {
  if (q.types && q.types.length > 0 && !q.types.includes(e.type)) return false;
  if (!q.after && !q.before) return true;
  const at = Date.parse(String(e.processed_at ?? ''));
  if (q.after && (q.after.inclusive ? at < q.after.ms : at <= q.after.ms)) return false;
  if (q.before && (q.before.inclusive ? at > q.before.ms : at >= q.before.ms)) return false;
  return true;
}

/** Cursors are opaque to clients: `page_` + base64url of the direction and the last position. */
function encodeCursor(position: number, desc: boolean): string {
  return `page_${Buffer.from(`${desc ? 'desc' : 'asc'}:${position}`).toString('base64url')}`;
}

function decodeCursor(page: string, desc: boolean): number {
  const m = /^(asc|desc):(\d{1,9})$/.exec(Buffer.from(page.replace(/^page_/, ''), 'base64url').toString('utf8'));
  if (!m || (m[1] === 'desc') !== desc) throw new EmulatorError(400, 'page: invalid cursor (or one made for the other order)');
  return Number(m[2]);
}

/**
 * The agent every emulated session resolves to: the standard agent toolset with every tool
 * allowed, no skills, no MCP servers, single-threaded. The admin API scripts its behaviour.
 */
function defaultAgent(): Session['agent'] {
  return {
    id: newId('agent'),
    type: 'agent',
    name: 'emulated agent',
    description: null,
    version: 1,
    model: { id: 'claude-sonnet-4-6' },
    system: null,
    tools: [{ type: 'agent_toolset_20260401', configs: [], default_config: { enabled: true, permission_policy: { type: 'always_allow' } } }],
    skills: [],
    mcp_servers: [],
    multiagent: null,
    execution_identity: { type: 'service_account' },
  };
}
