/**
 * The two work-item calls the sidecar makes — heartbeat and stop — over its own keep-alive pool
 * (`upstream.ts`, never shared with proxied traffic), and the error taxonomy of that boundary.
 *
 * Not `src/api/client.ts`: that client brings undici and zod (several MB of resident memory), and
 * the sidecar runs in every sandbox Pod. The classification mirrors `src/api/errors.ts`:
 * connection errors, timeouts, 408, 429 and 5xx are transient; 409 and 412 are interpreted by the
 * caller; every other 4xx and a malformed reply are fatal.
 */
import { parseRetryAfter } from '../util/backoff.ts';
import type { Beat, WorkState } from './lease.ts';
import type { Upstream } from './upstream.ts';

export const ANTHROPIC_VERSION = '2023-06-01';
export const ANTHROPIC_BETA = 'managed-agents-2026-04-01';

export type WorkApiErrorCode =
  | 'connection_error'
  | 'timeout'
  | 'request_timeout'
  | 'rate_limited'
  | 'server_error'
  | 'conflict'
  | 'precondition_failed'
  | 'rejected'
  | 'malformed_response';

/** The server's view of the lease, carried by a 412 under `error.details.current_state`. */
export interface ServerLeaseState {
  readonly state?: unknown;
  readonly ttl_seconds?: unknown;
  readonly last_heartbeat?: unknown;
}

export class WorkApiError extends Error {
  readonly code: WorkApiErrorCode;
  readonly status: number | undefined;
  /** Milliseconds the server asked us to wait (`retry-after-ms` / `retry-after`). */
  readonly retryAfterMs: number | undefined;
  /** `error.details.current_state` of a 412, when present. */
  readonly currentState: ServerLeaseState | undefined;

  constructor(code: WorkApiErrorCode, message: string, extra: { status?: number; retryAfterMs?: number; currentState?: ServerLeaseState } = {}) {
    super(message);
    this.name = 'WorkApiError';
    this.code = code;
    this.status = extra.status;
    this.retryAfterMs = extra.retryAfterMs;
    this.currentState = extra.currentState;
  }
}

/** The one place deciding whether a failed call is worth retrying. */
export function isTransient(err: unknown): boolean {
  return err instanceof WorkApiError && (err.code === 'connection_error' || err.code === 'timeout' || err.code === 'request_timeout' || err.code === 'rate_limited' || err.code === 'server_error');
}

export function codeForStatus(status: number): WorkApiErrorCode {
  if (status === 408) return 'request_timeout';
  if (status === 409) return 'conflict';
  if (status === 412) return 'precondition_failed';
  if (status === 429) return 'rate_limited';
  if (status >= 500) return 'server_error';
  return 'rejected';
}


export interface WorkItem {
  readonly environmentId: string;
  readonly workId: string;
}

/**
 * The most of a reply the sidecar reads (256 KiB): a heartbeat reply is under 200 bytes and a stop
 * reply one work item (at most 16 metadata values of 512 characters). A longer body is a broken
 * server or proxy, and the sidecar's memory is the Pod's.
 */
export const MAX_REPLY_BYTES = 256 * 1024;

const WORK_STATES: ReadonlySet<string> = new Set(['queued', 'starting', 'active', 'stopping', 'stopped']);

export class WorkApi {
  readonly #upstream: Upstream;
  /** Path of the work item (after the base URL's own path, if any). */
  readonly #workPath: string;
  readonly #headers: Record<string, string>;

  constructor(upstream: Upstream, item: WorkItem, token: string) {
    this.#upstream = upstream;
    this.#workPath = `${upstream.prefix}/v1/environments/${encodeURIComponent(item.environmentId)}/work/${encodeURIComponent(item.workId)}`;
    this.#headers = {
      authorization: `Bearer ${token}`,
      'anthropic-version': ANTHROPIC_VERSION,
      'anthropic-beta': ANTHROPIC_BETA,
      accept: 'application/json',
      'user-agent': 'agentenv-sidecar/0.1',
    };
  }

  /** One heartbeat: `expected` is `NO_HEARTBEAT` or the server's previous `last_heartbeat`, verbatim. */
  async heartbeat(expected: string, desiredTtlSeconds: number | undefined, timeoutMs: number): Promise<Beat> {
    const query = new URLSearchParams({ expected_last_heartbeat: expected });
    if (desiredTtlSeconds !== undefined) query.set('desired_ttl_seconds', String(desiredTtlSeconds));
    const body = await this.#call(`${this.#workPath}/heartbeat?${query.toString()}`, undefined, timeoutMs);
    const b = body as Partial<Record<keyof Beat, unknown>> | null;
    if (
      !b ||
      typeof b.last_heartbeat !== 'string' ||
      b.last_heartbeat === '' ||
      typeof b.lease_extended !== 'boolean' ||
      typeof b.state !== 'string' ||
      !WORK_STATES.has(b.state) ||
      typeof b.ttl_seconds !== 'number'
    ) {
      throw new WorkApiError('malformed_response', 'heartbeat reply lacks last_heartbeat, lease_extended, state or ttl_seconds');
    }
    return { last_heartbeat: b.last_heartbeat, lease_extended: b.lease_extended, state: b.state as WorkState, ttl_seconds: b.ttl_seconds };
  }

  /**
   * Force-stop the item (→ stopped); also confirms a graceful stop (`stopping` → stopped). Force is
   * safe to retry: a repeat after a lost success answers 409, which means "already stopped".
   * `stopped` carries the API's reply, handed on verbatim to a main container that asked.
   */
  async forceStop(timeoutMs: number): Promise<{ outcome: 'stopped'; reply: unknown } | { outcome: 'already-stopped' }> {
    try {
      return { outcome: 'stopped', reply: await this.#call(`${this.#workPath}/stop`, { force: true }, timeoutMs) };
    } catch (err) {
      if (err instanceof WorkApiError && err.code === 'conflict') return { outcome: 'already-stopped' };
      throw err;
    }
  }

  async #call(target: string, body: unknown, timeoutMs: number): Promise<unknown> {
    const what = `POST ${target.split('?')[0]}`;
    const payload = body === undefined ? '' : JSON.stringify(body);
    const headers = { ...this.#headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) };
    const res = await this.#send(what, target, headers, payload, timeoutMs);
    let json: unknown = null;
    try {
      json = res.body === '' ? null : JSON.parse(res.body);
    } catch {
      if (res.status < 400) throw new WorkApiError('malformed_response', `${what}: reply is not JSON`, { status: res.status });
    }
    if (res.status >= 400) throw errorFromReply(what, res.status, json, res.headers);
    return json;
  }

  /** One request on the lease pool, cut off (request and reply body) after `timeoutMs`. */
  #send(what: string, target: string, headers: Record<string, string>, payload: string, timeoutMs: number): Promise<{ status: number; headers: ReadonlyMap<string, string>; body: string }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        req.destroy();
        reject(new WorkApiError('timeout', `${what} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      const fail = (err: Error): void => {
        clearTimeout(timer);
        reject(new WorkApiError('connection_error', `${what}: ${err.message}`));
      };
      const req = this.#upstream.request('lease', 'POST', target, headers, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size <= MAX_REPLY_BYTES) return void chunks.push(c);
          clearTimeout(timer);
          req.destroy();
          reject(new WorkApiError('malformed_response', `${what}: reply body exceeds ${MAX_REPLY_BYTES} bytes; not read further`, { status: res.statusCode ?? 0 }));
        });
        res.on('error', fail);
        res.on('end', () => {
          clearTimeout(timer);
          const replyHeaders = new Map<string, string>();
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') replyHeaders.set(k, v);
          resolve({ status: res.statusCode ?? 0, headers: replyHeaders, body: Buffer.concat(chunks).toString('utf8') });
        });
      });
      req.on('error', fail);
      req.end(payload);
    });
  }
}

function errorFromReply(what: string, status: number, json: unknown, headers: ReadonlyMap<string, string>): WorkApiError {
  const error = isObject(json) && isObject(json['error']) ? json['error'] : undefined;
  const message = typeof error?.['message'] === 'string' ? error['message'] : `HTTP ${status}`;
  const details = isObject(error?.['details']) ? error['details'] : undefined;
  const currentState = isObject(details?.['current_state']) ? (details['current_state'] as ServerLeaseState) : undefined;
  const wait = parseRetryAfter(headers);
  return new WorkApiError(codeForStatus(status), `${what}: ${status} ${message}`, {
    status,
    ...(wait !== undefined ? { retryAfterMs: wait } : {}),
    ...(currentState ? { currentState } : {}),
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
