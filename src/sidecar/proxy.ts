/**
 * The proxy: the session Pod's only door to the API. The main container's `ANTHROPIC_BASE_URL`
 * points here (the Pod's loopback); every call is decided by the allow-list (`routes.ts`), then
 * answered from the virtual lease, forwarded with the real credential, or refused.
 *
 * Untrusted code talks to this server, so every resource it can make the sidecar spend is bounded,
 * and a bad request gets an Anthropic-shaped error, never a crash:
 * - connections: at most {@link MAX_CONNECTIONS} (more get a raw 429 and are closed);
 * - the request head: {@link MAX_HEADER_BYTES} (431), complete within {@link HEADERS_TIMEOUT_MS};
 *   the whole request within {@link REQUEST_TIMEOUT_MS} (408) — a slow client cannot hold a socket;
 * - bodies: per route (`routes.ts`; 413), streamed to the API, never buffered whole;
 * - forwarded calls in flight: {@link MAX_INFLIGHT} plus {@link MAX_STREAMS} event streams (429);
 * - garbage bytes: 400, connection closed.
 * The sidecar's own heartbeats use a separate socket pool (`upstream.ts`) and never wait on any
 * of this; the proxy only ever does non-blocking I/O on the shared event loop.
 *
 * Forwarding removes whatever credential the main container sent (`authorization`, `x-api-key`),
 * the hop-by-hop headers and `host`, and puts the real credential in. Responses (SSE included) are
 * relayed as they arrive: headers at once, each chunk when it comes. Bodies, headers and
 * credentials are never logged — only the method, the route's name and the status.
 */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { SidecarLogger } from './log.ts';
import { MAX_SMALL_BODY_BYTES, route, type Route, type Scope } from './routes.ts';
import type { Upstream } from './upstream.ts';
import type { Answer } from './virtual-lease.ts';

const http = process.getBuiltinModule('node:http');
const net = process.getBuiltinModule('node:net');

export const MAX_CONNECTIONS = 64;
export const MAX_HEADER_BYTES = 16 * 1024;
export const HEADERS_TIMEOUT_MS = 10_000;
export const REQUEST_TIMEOUT_MS = 120_000;
export const MAX_INFLIGHT = 16;
export const MAX_STREAMS = 4;
const REFUSAL_LOG_EVERY_MS = 10_000;
/** A forwarded call whose upstream socket is idle this long is cut off (event streams ping far more often). */
const UPSTREAM_IDLE_MS = 120_000;

/** Request headers never forwarded: hop-by-hop, the target host, and any credential. */
const DROPPED_REQUEST_HEADERS = new Set(['host', 'connection', 'keep-alive', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect', 'authorization', 'x-api-key', 'cookie']);
const DROPPED_RESPONSE_HEADERS = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

export interface ProxyHandlers {
  /** The main container's heartbeat for its own work item (`expected_last_heartbeat` as sent). */
  heartbeat(expected: string | undefined): Answer;
  /** The main container's stop for its own work item: the session is done. */
  stop(): Promise<Answer>;
  /** A warm Pod's runner asking which item it serves: the ids once the lease is claimed (held until then, bounded). */
  assignment(): Promise<Answer>;
}

export interface ProxyOptions {
  readonly address: string;
  readonly port: number;
  readonly scope: Scope;
  readonly upstream: Upstream;
  /** The real credential, sent as `Authorization: Bearer`. */
  readonly token: string;
  readonly handlers: ProxyHandlers;
  readonly log: SidecarLogger;
}

export interface ProxyServer {
  readonly port: number;
  close(): Promise<void>;
}

const errorBody = (type: string, message: string, details?: Record<string, unknown>): string =>
  JSON.stringify({ type: 'error', error: { type, message, ...(details ? { details } : {}) } });

/** A complete response written straight to a socket (before or outside node:http's parser). */
function rawError(status: number, reason: string, type: string, message: string): string {
  const body = errorBody(type, message);
  return `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/** Write an answer (a JSON body, or an Anthropic error), unless a response is already under way. */
function send(res: ServerResponse, answer: Answer, close = false): void {
  if (res.headersSent || res.destroyed) return;
  const body = 'body' in answer ? JSON.stringify(answer.body) : errorBody(answer.error.type, answer.error.message, answer.error.details);
  const headers: OutgoingHttpHeaders = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
  if (answer.status === 429) headers['retry-after'] = '1';
  if (close) headers['connection'] = 'close';
  res.writeHead(answer.status, headers).end(body);
}

/** An error answer; the connection closes after it (the request body may not have been read). */
const fail = (res: ServerResponse, status: number, type: string, message: string): void => send(res, { status, error: { type, message } }, true);

/** Read a small body (the work calls), bounded; resolves false once it has answered 413. */
function drain(req: IncomingMessage, res: ServerResponse, max: number): Promise<boolean> {
  return new Promise((resolve) => {
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= max) return;
      fail(res, 413, 'request_too_large', `request body exceeds ${max} bytes`);
      req.destroy();
      resolve(false);
    });
    req.on('end', () => resolve(true));
    req.on('error', () => resolve(false));
  });
}

/** The forwarded calls in flight, bounded: calls and event streams counted apart. */
class Budget {
  #calls = 0;
  #streams = 0;

  /** Take a slot; returns its release (idempotent), or undefined when none is free. */
  take(stream: boolean): (() => void) | undefined {
    if (stream ? this.#streams >= MAX_STREAMS : this.#calls >= MAX_INFLIGHT) return undefined;
    if (stream) this.#streams++;
    else this.#calls++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (stream) this.#streams--;
      else this.#calls--;
    };
  }
}

/**
 * Refusals are logged once per rule per {@link REFUSAL_LOG_EVERY_MS}, with how many were not: a
 * main container looping on a refused call must not turn into a flood of log lines.
 */
class RefusalLog {
  readonly #log: SidecarLogger;
  readonly #seen = new Map<string, { at: number; suppressed: number }>();

  constructor(log: SidecarLogger) {
    this.#log = log;
  }

  note(rule: string, method: string, status: number): void {
    const now = Date.now();
    const seen = this.#seen.get(rule);
    if (seen && now - seen.at < REFUSAL_LOG_EVERY_MS) {
      seen.suppressed++;
      return;
    }
    this.#log.info('refused a call from the main container', { method, status, rule, ...(seen?.suppressed ? { suppressed_since_last: seen.suppressed } : {}) });
    this.#seen.set(rule, { at: now, suppressed: 0 });
  }
}

/** Forward one allowed call: the real credential in, the response relayed as it arrives. */
function forward(opts: ProxyOptions, budget: Budget, req: IncomingMessage, res: ServerResponse, decision: Extract<Route, { kind: 'forward' }>): void {
  const { upstream, log } = opts;
  const release = budget.take(decision.stream);
  if (!release) {
    fail(res, 429, 'rate_limit_error', decision.stream ? `at most ${MAX_STREAMS} event streams at once` : `at most ${MAX_INFLIGHT} API calls in flight at once`);
    return;
  }
  const up = upstream.request('proxy', req.method!, upstream.prefix + req.url!, forwardedHeaders(req.headers, opts.token), (upRes) => {
    const headers: OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(upRes.headers)) if (v !== undefined && !DROPPED_RESPONSE_HEADERS.has(k)) headers[k] = v;
    res.writeHead(upRes.statusCode ?? 502, headers);
    // Headers at once for a stream: an SSE client must see it open before the first event. Other
    // replies let the head go out with the first body chunk (one packet, not two).
    if (decision.stream) res.flushHeaders();
    upRes.pipe(res);
    upRes.on('error', () => res.destroy());
    upRes.on('end', release);
    log.debug('proxied', { method: req.method, route: decision.name, status: upRes.statusCode });
  });
  up.setTimeout(UPSTREAM_IDLE_MS, () => up.destroy(new Error('upstream idle timeout')));
  up.on('error', (err) => {
    release();
    log.warn('proxied call failed', { method: req.method, route: decision.name, err });
    if (!res.headersSent) fail(res, 502, 'api_error', 'the API could not be reached through the sidecar');
    else res.destroy();
  });
  // The main container went away (or closed its stream): close the upstream call too.
  res.on('close', () => {
    release();
    if (!res.writableFinished) up.destroy();
  });
  let size = 0;
  req.on('data', (c: Buffer) => {
    size += c.length;
    if (size <= decision.maxBody) return;
    up.destroy();
    req.destroy();
    fail(res, 413, 'request_too_large', `request body exceeds ${decision.maxBody} bytes for this route`);
  });
  req.pipe(up);
}

export async function startProxy(opts: ProxyOptions): Promise<ProxyServer> {
  const budget = new Budget();
  const refusals = new RefusalLog(opts.log);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const decision = route(req.method ?? '', req.url ?? '', opts.scope);
    if (decision.kind === 'refuse') {
      refusals.note(decision.rule, req.method ?? '', decision.status);
      fail(res, decision.status, decision.status === 400 ? 'invalid_request_error' : 'permission_error', `agentenv sidecar: ${decision.rule}`);
      return;
    }
    const max = decision.kind === 'forward' ? decision.maxBody : MAX_SMALL_BODY_BYTES;
    const length = Number(req.headers['content-length'] ?? 0);
    if (!(length <= max)) {
      fail(res, 413, 'request_too_large', `request body exceeds ${max} bytes for this route`);
      return;
    }
    if (decision.kind === 'forward') return forward(opts, budget, req, res, decision);
    if (!(await drain(req, res, max))) return;
    if (decision.kind === 'heartbeat') {
      const expected = new URL(req.url!, 'http://sidecar').searchParams.get('expected_last_heartbeat') ?? undefined;
      return send(res, opts.handlers.heartbeat(expected));
    }
    if (decision.kind === 'assignment') return send(res, await opts.handlers.assignment());
    send(res, await opts.handlers.stop());
  };

  const server: Server = http.createServer({ maxHeaderSize: MAX_HEADER_BYTES, headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, keepAliveTimeout: 5_000, connectionsCheckingInterval: 1_000 }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      opts.log.error('proxy request failed', { err: err as Error });
      fail(res, 500, 'api_error', 'internal error in the agentenv sidecar');
    });
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (socket.writable && !(socket as Socket & { _httpMessage?: unknown })._httpMessage) {
      if (err.code === 'HPE_HEADER_OVERFLOW') socket.write(rawError(431, 'Request Header Fields Too Large', 'invalid_request_error', `request headers exceed ${MAX_HEADER_BYTES} bytes`));
      else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') socket.write(rawError(408, 'Request Timeout', 'invalid_request_error', 'the request did not arrive in time'));
      else socket.write(rawError(400, 'Bad Request', 'invalid_request_error', 'malformed HTTP request'));
    }
    socket.destroy();
  });
  return listenGated(server, opts.address, opts.port);
}

/**
 * Accept connections on a plain net server first, so the count is enforced before any parsing:
 * one over {@link MAX_CONNECTIONS} gets a raw 429 and is closed.
 */
async function listenGated(server: Server, address: string, port: number): Promise<ProxyServer> {
  const sockets = new Set<Socket>();
  // noDelay: node:http's own server sets it on the sockets it accepts; this one accepts for it. Without
  // it, Nagle holds a reply's second packet until the client's delayed ACK (~40 ms per call).
  const gate = net.createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    if (sockets.size >= MAX_CONNECTIONS) {
      socket.end(rawError(429, 'Too Many Requests', 'rate_limit_error', `at most ${MAX_CONNECTIONS} connections to the sidecar at once`));
      socket.setTimeout(1_000, () => socket.destroy());
      return;
    }
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    server.emit('connection', socket);
  });
  await new Promise<void>((resolve, reject) => {
    gate.once('error', reject);
    gate.listen(port, address, () => resolve());
  });
  // node:http arms its periodic connections check — what enforces headersTimeout and
  // requestTimeout — on its own 'listening' event. This server never listens (the gate accepts for
  // it), so without this a client trickling its headers (slowloris) held its slot for ever.
  server.emit('listening');
  return {
    port: (gate.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close();
        gate.close(() => resolve());
      }),
  };
}

function forwardedHeaders(incoming: IncomingHttpHeaders, token: string): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(incoming)) if (v !== undefined && !DROPPED_REQUEST_HEADERS.has(k)) out[k] = v;
  out['authorization'] = `Bearer ${token}`;
  return out;
}
