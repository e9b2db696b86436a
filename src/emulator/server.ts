/**
 * The emulator's HTTP front end (node:http, no framework): headers and authentication, routing,
 * request validation with the client's own wire schemas, long polls, faults, and the admin API.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { z } from 'zod';
import { ANTHROPIC_BETA, REQUEST_ID_HEADER } from '../api/wire.ts';
import type { Logger } from '../telemetry/logger.ts';
import { EmulatorError } from './errors.ts';
import type { FaultInjector, FaultRule } from './faults.ts';
import { EventStreamReply, type SseHub } from './sse.ts';
import type { EmulatorState } from './state.ts';

type Handler = (req: Request) => unknown | Promise<unknown>;

interface Route {
  readonly method: string;
  readonly template: string;
  readonly pattern: RegExp;
  readonly access: 'api-key' | 'environment' | 'work-item' | 'session' | 'admin';
  readonly handler: Handler;
}

export interface Request {
  readonly method: string;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  readonly headers: IncomingMessage['headers'];
  body<T>(schema: z.ZodType<T>): T;
  /** Resolves when the client goes away (long polls stop waiting). */
  readonly closed: AbortSignal;
}

/** Who a credential belongs to. */
type Principal = { kind: 'api-key' } | { kind: 'environment-key'; environmentId: string } | { kind: 'work-token'; workId: string };

export function route(method: string, template: string, access: Route['access'], handler: Handler): Route {
  const pattern = new RegExp(`^${template.replace(/\{(\w+)\}/g, '(?<$1>[^/]+)')}$`);
  return { method, template, pattern, access, handler };
}

export interface ServerDeps {
  readonly state: EmulatorState;
  readonly faults: FaultInjector;
  readonly routes: readonly Route[];
  readonly hub: SseHub;
  readonly logger: Logger;
}

/** The reason a handler's `closed` signal carries (shared: a reason-less abort builds a DOMException per request). */
const CLIENT_GONE = Symbol('client gone');

export function createEmulatorServer(deps: ServerDeps): Server {
  const server = createServer((req, res) => {
    void handle(deps, req, res);
  });
  server.keepAliveTimeout = 60_000;
  server.headersTimeout = 65_000;
  return server;
}

async function handle(deps: ServerDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const requestId = `req_${randomBytes(12).toString('hex')}`;
  res.setHeader(REQUEST_ID_HEADER, requestId);
  const url = new URL(req.url ?? '/', 'http://emulator');
  const method = req.method ?? 'GET';
  let status = 500;
  let template = 'unmatched';
  const match = matchRoute(deps.routes, method, url.pathname);
  try {
    const raw = await readBody(req);
    if (!match) throw new EmulatorError(404, `no route for ${method} ${url.pathname}`, { type: 'not_found_error' });
    template = `${method} ${match.route.template}`;
    const admin = match.route.access === 'admin';
    if (!admin) {
      const fault = deps.faults.match(method, url.pathname);
      if (fault && (await applyFault(fault, res))) {
        status = res.statusCode;
        return;
      }
      authorize(deps.state, req, match.route.access, match.params);
      checkVersionHeaders(req);
    }
    const closed = new AbortController();
    res.once('close', () => closed.abort(CLIENT_GONE));
    const result = await match.route.handler({
      method,
      params: match.params,
      query: url.searchParams,
      headers: req.headers,
      closed: closed.signal,
      body: <T>(schema: z.ZodType<T>): T => parseBody(raw, schema),
    });
    status = 200;
    if (result instanceof EventStreamReply) {
      // Subscribed in the same turn as the headers are flushed: no event falls between the two.
      res.once('close', result.attach(deps.hub.open(res)));
      return;
    }
    send(res, 200, result);
  } catch (err) {
    const e = err instanceof EmulatorError ? err : new EmulatorError(500, 'internal emulator error');
    if (!(err instanceof EmulatorError)) deps.logger.error({ err }, 'emulator handler failed');
    status = e.status;
    for (const [k, v] of Object.entries(e.headers)) res.setHeader(k, v);
    send(res, e.status, e.body());
  } finally {
    if (match && match.route.access !== 'admin') deps.state.countRequest(template, status);
    deps.logger.debug({ method, path: url.pathname, status, requestId }, 'request');
  }
}

function matchRoute(routes: readonly Route[], method: string, path: string): { route: Route; params: Record<string, string> } | undefined {
  for (const r of routes) {
    if (r.method !== method) continue;
    const m = r.pattern.exec(path);
    if (m) return { route: r, params: Object.fromEntries(Object.entries(m.groups ?? {}).map(([k, v]) => [k, decodeURIComponent(v)])) };
  }
  return undefined;
}

/** Authentication (401) first, then authorization (403): a key only reaches what it is for. */
function authorize(state: EmulatorState, req: IncomingMessage, access: Route['access'], params: Record<string, string>): void {
  const principal = identify(state, req);
  if (!principal) throw new EmulatorError(401, 'invalid x-api-key or bearer token', { type: 'authentication_error' });
  if (principal.kind === 'api-key') return;
  if (access === 'api-key') throw new EmulatorError(403, 'this credential may only use the work endpoints of its environment', { type: 'permission_error' });
  if (access === 'session') {
    // A session belongs to one environment, and a work item serves one session: an environment key
    // reaches its environment's sessions, a per-item token only its own item's session. Anything
    // else, an unknown session included, is 403, so a key learns nothing about other sessions.
    const sessionId = params['session_id'] ?? '';
    if (principal.kind === 'environment-key' && state.sessions.environmentOf(sessionId) === principal.environmentId) return;
    if (principal.kind === 'work-token' && state.work.sessionOfWork(principal.workId) === sessionId) return;
    throw new EmulatorError(403, 'this credential is not valid for this session', { type: 'permission_error' });
  }
  if (principal.kind === 'environment-key' && principal.environmentId === params['environment_id']) return;
  if (principal.kind === 'work-token' && access === 'work-item' && principal.workId === params['work_id']) return;
  throw new EmulatorError(403, 'this credential is not valid for this resource', { type: 'permission_error' });
}

function identify(state: EmulatorState, req: IncomingMessage): Principal | undefined {
  const apiKey = header(req, 'x-api-key');
  const auth = header(req, 'authorization');
  const bearer = auth?.toLowerCase().startsWith('bearer ') ? auth.slice(7).trim() : undefined;
  const credential = apiKey ?? bearer;
  if (!credential) return undefined;
  if (state.isApiKey(credential)) return { kind: 'api-key' };
  // Environment keys and per-item tokens are bearer credentials only.
  if (!bearer) return undefined;
  const environmentId = state.environmentForKey(bearer);
  if (environmentId) return { kind: 'environment-key', environmentId };
  const workId = state.work.workForToken(bearer);
  return workId ? { kind: 'work-token', workId } : undefined;
}

function checkVersionHeaders(req: IncomingMessage): void {
  if (!header(req, 'anthropic-version')) throw new EmulatorError(400, 'anthropic-version: header is required');
  const betas = (header(req, 'anthropic-beta') ?? '').split(',').map((s) => s.trim());
  if (!betas.includes(ANTHROPIC_BETA)) throw new EmulatorError(400, `anthropic-beta: this endpoint requires the ${ANTHROPIC_BETA} beta`);
}

/** Returns true when the fault answered the request itself. */
async function applyFault(fault: FaultRule, res: ServerResponse): Promise<boolean> {
  if (fault.latency_ms) await new Promise((r) => setTimeout(r, fault.latency_ms));
  if (fault.reset) {
    res.socket?.destroy();
    res.statusCode = 0;
    return true;
  }
  if (!fault.status) return false;
  const e = new EmulatorError(fault.status, fault.message ?? `injected fault (${fault.status})`, {
    ...(fault.error_type ? { type: fault.error_type } : {}),
    headers: fault.retry_after !== undefined ? { 'retry-after': String(fault.retry_after) } : {},
  });
  for (const [k, v] of Object.entries(e.headers)) res.setHeader(k, v);
  send(res, e.status, e.body());
  return true;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.destroyed || res.writableEnded) return;
  const text = JSON.stringify(body ?? null);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return (Array.isArray(v) ? v[0] : v) || undefined;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 1_000_000) reject(new EmulatorError(413, 'request body too large'));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseBody<T>(raw: string, schema: z.ZodType<T>): T {
  let json: unknown = {};
  if (raw.trim() !== '') {
    try {
      json = JSON.parse(raw);
    } catch {
      throw new EmulatorError(400, 'request body is not valid JSON');
    }
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new EmulatorError(400, `${issue?.path.map(String).join('.') || 'body'}: ${issue?.message ?? 'invalid'}`);
}
