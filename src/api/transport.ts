/**
 * One HTTP exchange with the Environments API: headers, per-request timeout, cancellation, error
 * mapping and schema validation. No retries here (see `retry.ts`).
 *
 * Connections are reused through two undici keep-alive pools shared by every client of the process,
 * so many AgentEnvironments with different credentials still share one pool per origin:
 *
 * - **calls** (`sharedDispatcher()`): every short exchange, at most {@link CALL_CONNECTIONS} sockets
 *   per origin (a burst of acks and stops queues for a socket rather than opening thousands);
 * - **long polls** (`sharedPollDispatcher()`): one socket per poll in flight, no cap. A long poll
 *   holds its socket for up to `block_ms`; in a capped pool a poll waits for another poll's socket,
 *   so with more pollers than sockets each environment is polled less than once per block (measured:
 *   1,000 idle environments over 256 sockets were polled 0.256 times a second each, docs/scaling.md).
 *   The bound is the operator's own: one poller per idle environment, `maxPollers` per environment
 *   in a burst. Under HTTP/2 (undici negotiates it by ALPN over TLS) polls are streams, up to the
 *   server's concurrent-stream limit per socket, so the socket count falls by that factor.
 */
import { Agent, EnvHttpProxyAgent, request, errors as undiciErrors, type Dispatcher } from 'undici';
import type { z } from 'zod';
import {
  ConnectionError,
  MalformedResponseError,
  TimeoutError,
  errorForStatus,
  parseRetryAfter,
  type ApiError,
} from './errors.ts';
import { ANTHROPIC_BETA, ANTHROPIC_VERSION, ErrorBody, REQUEST_ID_HEADER } from './wire.ts';
import { deadline } from '../util/deadline.ts';

/** How a request authenticates. Never logged: `describeCredential` gives a safe label. */
export type Credential =
  /** Organization API key, sent as `x-api-key`. */
  | { readonly kind: 'api-key'; readonly value: string }
  /** Environment key or per-item sessions token, sent as `Authorization: Bearer`. */
  | { readonly kind: 'bearer'; readonly value: string };

export function describeCredential(c: Credential): string {
  return c.kind === 'api-key' ? 'api key' : 'bearer token';
}

/** An egress proxy, as the entrypoint read it (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`). */
export interface ProxySettings {
  readonly httpProxy?: string;
  readonly httpsProxy?: string;
  /** Comma-separated hosts, domains (`.example.com`), `host:port` or `*`, as curl reads NO_PROXY. */
  readonly noProxy?: string;
}

/** Sockets per origin for short exchanges. */
export const CALL_CONNECTIONS = 256;
const POOL = { keepAliveTimeout: 30_000, keepAliveMaxTimeout: 120_000, connections: CALL_CONNECTIONS, pipelining: 1 } as const;
/**
 * The long-poll pool: `connections: null` is undici's "no cap" (a socket per request in flight).
 * The keep-alive outlives the pause between an idle poller's polls, so each poller keeps reusing a
 * socket instead of opening one per poll.
 */
const POLL_POOL = { ...POOL, connections: null } as const;
let shared: { calls: Dispatcher; polls: Dispatcher } | undefined;
let proxy: ProxySettings = {};

/**
 * Route the process-wide pool through an egress proxy (clusters whose egress goes through one).
 * Call once at the entrypoint, before the first request; no proxy by default.
 */
export function useProxy(settings: ProxySettings): void {
  if (shared) throw new Error('useProxy must be called before the first API request');
  proxy = settings;
}

function sharedPools(): { calls: Dispatcher; polls: Dispatcher } {
  shared ??= proxiedPools(proxy);
  return shared;
}

/** The process-wide pool of short exchanges (through the proxy given to {@link useProxy}). */
export function sharedDispatcher(): Dispatcher {
  return sharedPools().calls;
}

/** The process-wide long-poll pool, uncapped (through the proxy given to {@link useProxy}). */
export function sharedPollDispatcher(): Dispatcher {
  return sharedPools().polls;
}

/** The pool of short exchanges and the long-poll pool, both through `p` (see {@link proxiedDispatcher}). */
export function proxiedPools(p: ProxySettings): { calls: Dispatcher; polls: Dispatcher } {
  return { calls: proxiedDispatcher(p), polls: proxiedDispatcher(p, 'polls') };
}

/**
 * A keep-alive pool that sends requests through `p` (honouring its no-proxy list), or directly when
 * `p` names no proxy. Through an HTTPS proxy each socket is a CONNECT tunnel: the long-poll pool
 * holds as many tunnels as polls in flight, which the proxy must allow.
 */
export function proxiedDispatcher(p: ProxySettings, use: 'calls' | 'polls' = 'calls'): Dispatcher {
  const pool = use === 'polls' ? POLL_POOL : POOL;
  if (!p.httpProxy && !p.httpsProxy) return new Agent(pool);
  // Explicit values (never undefined): the agent would otherwise read process.env on its own.
  return new EnvHttpProxyAgent({ ...pool, httpProxy: p.httpProxy ?? '', httpsProxy: p.httpsProxy ?? '', noProxy: p.noProxy ?? '' });
}

export type QueryValue = string | number | boolean | null | undefined;

export interface Exchange<T> {
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly path: string;
  readonly query?: Readonly<Record<string, QueryValue>>;
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  readonly schema: z.ZodType<T>;
  readonly credential: Credential;
  /** Whole-exchange deadline (connect + headers + body). */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
  /** A long poll: sent through the long-poll pool, so it never waits for another poll's socket. */
  readonly longPoll?: boolean;
}

export interface ExchangeResult<T> {
  readonly value: T;
  readonly status: number;
  readonly requestId: string | undefined;
}

export interface TransportOptions {
  /** e.g. `https://api.anthropic.com` (no trailing `/v1`). */
  readonly baseUrl: string;
  /** The pool of short exchanges, and of long polls too unless `pollDispatcher` is given. Default: the process-wide pool. */
  readonly dispatcher?: Dispatcher;
  /** The pool of long polls. Default: `dispatcher` when given, else the process-wide long-poll pool. */
  readonly pollDispatcher?: Dispatcher;
  readonly userAgent?: string;
  /** Reply bodies longer than this are not read. Default {@link MAX_REPLY_BYTES}. */
  readonly maxReplyBytes?: number;
}

/**
 * The most of a reply body the client reads (16 MiB). The largest legitimate reply, a page of 100
 * environments with full package lists and metadata, is well under 1 MiB; anything longer is a
 * broken server or proxy, and reading it whole would let it grow the operator's memory at will.
 */
export const MAX_REPLY_BYTES = 16 * 1024 * 1024;

export class Transport {
  readonly baseUrl: string;
  readonly #dispatcher: Dispatcher;
  readonly #pollDispatcher: Dispatcher;
  readonly #userAgent: string;
  readonly #maxReplyBytes: number;

  constructor(options: TransportOptions) {
    this.#maxReplyBytes = options.maxReplyBytes ?? MAX_REPLY_BYTES;
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#dispatcher = options.dispatcher ?? sharedDispatcher();
    this.#pollDispatcher = options.pollDispatcher ?? options.dispatcher ?? sharedPollDispatcher();
    this.#userAgent = options.userAgent ?? 'agentenv/0.1';
  }

  url(path: string, query?: Readonly<Record<string, QueryValue>>): string {
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v != null) url.searchParams.set(k, String(v));
    return url.toString();
  }

  /** Perform one exchange. Throws an {@link ApiError}, or the caller's abort reason. */
  async exchange<T>(x: Exchange<T>): Promise<ExchangeResult<T>> {
    const call = deadline(x.timeoutMs, x.signal);
    const headers: Record<string, string> = {
      'anthropic-version': ANTHROPIC_VERSION,
      'anthropic-beta': ANTHROPIC_BETA,
      'user-agent': this.#userAgent,
      accept: 'application/json',
      ...x.headers,
      ...(x.credential.kind === 'api-key'
        ? { 'x-api-key': x.credential.value }
        : { authorization: `Bearer ${x.credential.value}` }),
    };
    if (x.body !== undefined) headers['content-type'] = 'application/json';
    let res: Dispatcher.ResponseData;
    let text: string | undefined;
    try {
      res = await request(this.url(x.path, x.query), {
        method: x.method,
        headers,
        body: x.body === undefined ? null : JSON.stringify(x.body),
        dispatcher: x.longPoll ? this.#pollDispatcher : this.#dispatcher,
        signal: call.signal,
      });
      text = await readCapped(res.body, this.#maxReplyBytes);
    } catch (err) {
      if (x.signal?.aborted) throw x.signal.reason;
      if (call.timedOut()) {
        throw new TimeoutError(`${x.method} ${x.path} timed out after ${x.timeoutMs} ms`, { cause: err });
      }
      throw new ConnectionError(`${x.method} ${x.path}: ${connectionMessage(err)}`, { cause: err });
    } finally {
      call.release();
    }
    const header = (name: string): string | undefined => {
      const v = res.headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    const requestId = header(REQUEST_ID_HEADER);
    if (res.statusCode >= 400) throw errorFromReply(x, res.statusCode, text ?? '', requestId, header);
    if (text === undefined) {
      const message = `${x.method} ${x.path}: reply body exceeds ${this.#maxReplyBytes} bytes; not read further`;
      throw new MalformedResponseError(message, '(body)', { status: res.statusCode, requestId });
    }
    return { value: parseReply(x, text, res.statusCode, requestId), status: res.statusCode, requestId };
  }
}

/**
 * The body as text, or undefined once it passes `max` bytes: reading stops there and the
 * connection is discarded (the rest is never buffered).
 */
async function readCapped(body: Dispatcher.ResponseData['body'], max: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) {
      body.destroy();
      return undefined;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function connectionMessage(err: unknown): string {
  if (err instanceof undiciErrors.UndiciError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ?? err.message;
  return String(err);
}

function errorFromReply<T>(
  x: Exchange<T>,
  status: number,
  text: string,
  requestId: string | undefined,
  header: (name: string) => string | undefined,
): ApiError {
  let errorType: string | undefined;
  let message = `HTTP ${status}`;
  let details: Record<string, unknown> | undefined;
  try {
    const body = ErrorBody.safeParse(JSON.parse(text));
    if (body.success) {
      errorType = body.data.error.type;
      message = body.data.error.message;
      details = body.data.error.details ?? undefined;
    }
  } catch {
    // A non-JSON error body (a proxy's HTML page, say) keeps the status-only message.
  }
  const retryAfterMs = parseRetryAfter({ get: header });
  return errorForStatus(status, `${x.method} ${x.path}: ${message}`, { errorType, requestId, details, retryAfterMs });
}

function parseReply<T>(x: Exchange<T>, text: string, status: number, requestId: string | undefined): T {
  let json: unknown;
  try {
    json = text === '' ? null : JSON.parse(text);
  } catch (err) {
    throw new MalformedResponseError(`${x.method} ${x.path}: reply is not JSON`, '(body)', { status, requestId, cause: err });
  }
  const parsed = x.schema.safeParse(json);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.map(String).join('.') : '(root)';
  throw new MalformedResponseError(
    `${x.method} ${x.path}: reply field '${field}' ${issue ? issue.message.toLowerCase() : 'is invalid'}`,
    field,
    { status, requestId },
  );
}
