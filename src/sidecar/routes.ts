/**
 * The proxy's allow-list: which of the main container's calls the sidecar answers, forwards, or
 * refuses. Pure (a request line in, a decision out), table-tested in `routes.test.ts`.
 *
 * The main container runs agent-written code, so it gets exactly what one session's runner needs
 * and nothing the real credential could do beyond it:
 *
 * | method          | path                                                   | decision                     |
 * |-----------------|--------------------------------------------------------|------------------------------|
 * | POST            | /v1/environments/{its env}/work/{its work}/heartbeat   | virtual lease                |
 * | POST            | /v1/environments/{its env}/work/{its work}/stop        | the session is done: stop    |
 * | GET             | /v1/sessions/{its session}                             | forward                      |
 * | GET, POST       | /v1/sessions/{its session}/events                      | forward (POST body ≤ 32 MiB) |
 * | GET             | /v1/sessions/{its session}/events/stream               | forward, streamed            |
 * | GET             | /v1/skills/{skill}/versions/{version}[/content]        | forward (read-only)          |
 * | GET, POST       | /v1/memory_stores/{store}/memories                     | forward, sessions token only |
 * | GET, POST, DEL  | /v1/memory_stores/{store}/memories/{memory}            | forward, sessions token only |
 * | GET             | /agentenv/v1/assignment                                | this Pod's ids, once claimed |
 * | anything else   |                                                        | 403 naming the rule          |
 *
 * Memory stores are not narrowed to the session's own: the per-item sessions token is, and the
 * API enforces it. With the environment key (which reaches every store) they are refused.
 *
 * Paths are matched segment by segment on their raw bytes; a segment outside the unreserved set
 * (`A-Z a-z 0-9 - . _ ~`), `.` and `..` are refused (400), so no percent-encoding or dot-segment
 * can make the API see another resource than the one checked here.
 */
import { RUNNER_ASSIGNMENT_PATH, type CredentialKind } from '../contract/sidecar.ts';

export interface Scope {
  readonly environmentId: string;
  readonly workId: string;
  readonly sessionId: string;
  readonly credentialKind: CredentialKind;
}

export type Route =
  | { readonly kind: 'heartbeat' }
  | { readonly kind: 'stop' }
  /** A warm Pod's runner asks which item it serves (`RUNNER_ASSIGNMENT_PATH`); held until the lease is claimed. */
  | { readonly kind: 'assignment' }
  /** `stream`: an SSE response, relayed as it arrives. `maxBody`: the request body's limit. */
  | { readonly kind: 'forward'; readonly name: string; readonly stream: boolean; readonly maxBody: number }
  | { readonly kind: 'refuse'; readonly status: 400 | 403; readonly rule: string };

/** Event posts carry tool results (file contents, command output): 32 MiB at most. */
export const MAX_EVENTS_BODY_BYTES = 32 * 1024 * 1024;
/** Memory writes: one memory's content. */
export const MAX_MEMORY_BODY_BYTES = 8 * 1024 * 1024;
/** The work calls (heartbeat, stop) and bodiless GETs. */
export const MAX_SMALL_BODY_BYTES = 64 * 1024;

const SEGMENT = /^[A-Za-z0-9._~-]+$/;

const refuse = (rule: string): Route => ({ kind: 'refuse', status: 403, rule });
const forward = (name: string, maxBody = MAX_SMALL_BODY_BYTES, stream = false): Route => ({ kind: 'forward', name, stream, maxBody });

/** Decide what to do with `method target` (the request line's target, query included). */
export function route(method: string, target: string, scope: Scope): Route {
  const path = target.split('?', 1)[0]!;
  if (!path.startsWith('/')) return { kind: 'refuse', status: 400, rule: 'the request target must be a path' };
  const s = path.slice(1).split('/');
  if (s.some((seg) => !SEGMENT.test(seg) || seg === '.' || seg === '..')) {
    return { kind: 'refuse', status: 400, rule: 'path segments must be plain identifiers (no encoding, no dot segments, no empty segments)' };
  }
  if (method === 'GET' && path === RUNNER_ASSIGNMENT_PATH) return { kind: 'assignment' };
  if (s[0] !== 'v1') return refuse('only /v1 API routes are served');
  switch (s[1]) {
    case 'environments':
      return workRoute(method, s, scope);
    case 'sessions':
      return sessionRoute(method, s, scope);
    case 'skills':
      // GET /v1/skills/{skill}/versions/{version}[/content]: what setupSkills downloads.
      if (method === 'GET' && s.length >= 5 && s.length <= 6 && s[3] === 'versions' && (s.length === 5 || s[5] === 'content')) return forward('skill');
      return refuse('only reading a skill version and downloading its content are allowed');
    case 'memory_stores':
      return memoryRoute(method, s, scope);
    default:
      return refuse(`the ${s[1] ?? ''} API is not reachable from a session Pod`);
  }
}

function workRoute(method: string, s: readonly string[], scope: Scope): Route {
  // /v1/environments/{env}/work/{work}/{heartbeat|stop}
  if (s[2] !== scope.environmentId) return refuse('another environment is not reachable from this session Pod');
  if (s[3] !== 'work') return refuse('environment management is not allowed from a session Pod');
  if (s.length === 4 || s[4] === 'poll' || s[4] === 'stats') return refuse('the work queue (poll, list, stats) belongs to the operator');
  if (s[4] !== scope.workId) return refuse("another work item's calls are not allowed; only this Pod's own work item");
  if (method === 'POST' && s.length === 6 && s[5] === 'heartbeat') return { kind: 'heartbeat' };
  if (method === 'POST' && s.length === 6 && s[5] === 'stop') return { kind: 'stop' };
  return refuse("only this work item's heartbeat and stop are allowed (no ack, no retrieve, no update)");
}

function sessionRoute(method: string, s: readonly string[], scope: Scope): Route {
  if (s.length < 3) return refuse('listing or creating sessions is not allowed');
  if (s[2] !== scope.sessionId) return refuse("another session's calls are not allowed; only this Pod's own session");
  if (s.length === 3 && method === 'GET') return forward('session');
  if (s.length === 4 && s[3] === 'events' && method === 'GET') return forward('events');
  if (s.length === 4 && s[3] === 'events' && method === 'POST') return forward('events', MAX_EVENTS_BODY_BYTES);
  if (s.length === 5 && s[3] === 'events' && s[4] === 'stream' && method === 'GET') return forward('stream', MAX_SMALL_BODY_BYTES, true);
  return refuse('only reading this session, and reading, streaming and sending its events, are allowed');
}

function memoryRoute(method: string, s: readonly string[], scope: Scope): Route {
  if (scope.credentialKind !== 'sessions-token') return refuse('memory stores are served only with a per-item sessions token, never with the environment key');
  if (s.length === 4 && s[3] === 'memories' && (method === 'GET' || method === 'POST')) return forward('memories', MAX_MEMORY_BODY_BYTES);
  if (s.length === 5 && s[3] === 'memories' && (method === 'GET' || method === 'POST' || method === 'DELETE')) return forward('memory', MAX_MEMORY_BODY_BYTES);
  return refuse('only listing, reading, creating, updating and deleting memories are allowed');
}
