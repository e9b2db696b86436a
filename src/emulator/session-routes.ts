/**
 * The Sessions endpoints a self-hosted runner uses (`EnvironmentWorker.handleItem` and
 * `SessionToolRunner` of the official SDK), and the admin routes that script the agent side.
 */
import { SendEventsParams, type SendEventsReply } from '../api/sessions-wire.ts';
import { AgentEventsBody } from './agent-events.ts';
import { EmulatorError } from './errors.ts';
import { intParam } from './query.ts';
import { route, type Request } from './server.ts';
import { MAX_EVENTS_LIMIT, type EventQuery } from './sessions.ts';
import { EventStreamReply } from './sse.ts';
import type { EmulatorState } from './state.ts';

const SESSION = '/v1/sessions/{session_id}';
const ADMIN_SESSION = '/emulator/v1/sessions/{session_id}';

/** `created_at[gt]` and friends: RFC 3339 bounds on `processed_at`. */
function timeBound(q: URLSearchParams, op: 'gt' | 'gte' | 'lt' | 'lte'): { ms: number; inclusive: boolean } | undefined {
  const raw = q.get(`created_at[${op}]`);
  if (raw === null || raw === '') return undefined;
  const ms = Date.parse(raw);
  if (Number.isNaN(ms)) throw new EmulatorError(400, `created_at[${op}] must be an RFC 3339 timestamp (got ${raw})`);
  return { ms, inclusive: op === 'gte' || op === 'lte' };
}

function eventQuery(q: URLSearchParams): EventQuery {
  const order = q.get('order');
  if (order !== null && order !== 'asc' && order !== 'desc') throw new EmulatorError(400, `order must be asc or desc (got ${order})`);
  const limit = intParam(q, 'limit', 1, MAX_EVENTS_LIMIT);
  const page = q.get('page') || undefined;
  // The SDK writes arrays as `types[]=a&types[]=b`.
  const types = [...q.getAll('types[]'), ...q.getAll('types')];
  const after = timeBound(q, 'gt') ?? timeBound(q, 'gte');
  const before = timeBound(q, 'lt') ?? timeBound(q, 'lte');
  return {
    ...(limit !== undefined ? { limit } : {}),
    ...(page !== undefined ? { page } : {}),
    ...(order ? { order } : {}),
    ...(types.length > 0 ? { types } : {}),
    ...(after ? { after } : {}),
    ...(before ? { before } : {}),
  };
}

export function sessionRoutes(state: EmulatorState) {
  const id = (r: Request): string => r.params['session_id']!;

  return [
    // --- sessions (API key, the session's environment key, or its work item's sessions token) ---
    route('GET', SESSION, 'session', (r) => state.sessions.get(id(r))),
    route('GET', `${SESSION}/events`, 'session', (r) => state.sessions.list(id(r), eventQuery(r.query))),
    route('POST', `${SESSION}/events`, 'session', (r): SendEventsReply => {
      state.sessions.get(id(r)); // 404 before 400: an unknown session is the first thing wrong
      return { data: state.sessions.appendUser(id(r), r.body(SendEventsParams).events) };
    }),
    // A stream carries only events appended after it opened (no replay): a client that reconnects
    // reads what it missed from the event list, as the SDK's SessionToolRunner does.
    // `event_deltas` is accepted and has no effect: the emulator produces no previews.
    route('GET', `${SESSION}/events/stream`, 'session', (r) => {
      const sessionId = id(r);
      state.sessions.get(sessionId);
      return new EventStreamReply((stream) => state.sessions.subscribe(sessionId, { deliver: (e) => stream.send(e), close: () => stream.end() }));
    }),

    // --- admin: the agent side of a session ---
    route('POST', `${ADMIN_SESSION}/events`, 'admin', (r) => {
      state.sessions.get(id(r));
      return { ids: state.sessions.appendAgent(id(r), r.body(AgentEventsBody).events).map((e) => e.id) };
    }),
    route('GET', `${ADMIN_SESSION}/events`, 'admin', (r) => ({ data: state.sessions.history(id(r)) })),
  ];
}
