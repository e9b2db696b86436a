/**
 * Client for the Environments API (environments and their self-hosted work queues).
 *
 * Every reply is validated against `wire.ts`; failures are the typed errors of `errors.ts`;
 * automatic retries follow the per-endpoint safety table in `endpoints.ts`.
 */
import type { Dispatcher } from 'undici';
import { z } from 'zod';
import { ApiError } from './errors.ts';
import { ENDPOINTS, type EndpointName } from './endpoints.ts';
import { DEFAULT_RETRY_POLICY, NO_RETRY, withRetry, type RetryPolicy } from './retry.ts';
import { Transport, type Credential, type QueryValue } from './transport.ts';
import {
  Environment,
  EnvironmentDeleted,
  EnvironmentPage,
  HeartbeatReply,
  PollReply,
  QueueStats,
  WORKER_ID_HEADER,
  Work,
  WorkPage,
  type EnvironmentCreateParams,
  type EnvironmentListParams,
  type EnvironmentUpdateParams,
  type MetadataPatch,
} from './wire.ts';

/** What the client reports about every HTTP attempt (for metrics); never carries credentials. */
export interface ApiCallRecord {
  readonly endpoint: EndpointName;
  /** HTTP status, or the error code when there was no HTTP reply (e.g. `connection_error`). */
  readonly outcome: number | string;
  readonly durationMs: number;
  readonly attempt: number;
}

export interface EnvironmentsClientOptions {
  /** API origin, e.g. `https://api.anthropic.com`. */
  readonly baseUrl: string;
  /**
   * The credential, or a function returning the current one (read on every call, so a rotated
   * Secret takes effect without rebuilding the client).
   */
  readonly credential: Credential | (() => Credential);
  /** Keep-alive pool; defaults to the process-wide one. Long polls use it too unless `pollDispatcher` is given. */
  readonly dispatcher?: Dispatcher;
  /** Keep-alive pool of long polls; defaults to `dispatcher`, else the process-wide uncapped one (transport.ts). */
  readonly pollDispatcher?: Dispatcher;
  /** Per-request deadline in ms. Default 30 000. Long polls add their `block_ms`. */
  readonly timeoutMs?: number;
  /** Retry policy for retry-safe endpoints. Default {@link DEFAULT_RETRY_POLICY}. */
  readonly retry?: RetryPolicy;
  readonly onCall?: (record: ApiCallRecord) => void;
  readonly userAgent?: string;
  /** Reply bodies longer than this are not read (a MalformedResponseError). Default 16 MiB (`MAX_REPLY_BYTES`). */
  readonly maxReplyBytes?: number;
}

export interface CallOptions {
  readonly signal?: AbortSignal;
  /** Overrides the client's deadline for this call. */
  readonly timeoutMs?: number;
  /** Overrides the retry policy (still only applied to retry-safe endpoints). */
  readonly retry?: RetryPolicy;
}

export interface PollOptions {
  /** 1–999 ms to wait for work; omitted returns at once. */
  readonly blockMs?: number;
  /** Re-deliver items delivered but unacknowledged for longer than this (server default 5000). */
  readonly reclaimOlderThanMs?: number;
  /** `Anthropic-Worker-ID`: unique per poller; feeds the queue's `workers_polling`. */
  readonly workerId?: string;
}

export interface HeartbeatOptions {
  /** `NO_HEARTBEAT` to claim the lease, then the server's previous `last_heartbeat`, echoed exactly. */
  readonly expectedLastHeartbeat: string;
  readonly desiredTtlSeconds?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/** The part of a session the operator reads; anything else in the reply is kept as is. */
export const SessionSummary = z.looseObject({ id: z.string(), status: z.string() });
export type SessionSummary = z.infer<typeof SessionSummary>;

export class EnvironmentsClient {
  readonly #transport: Transport;
  readonly #credential: () => Credential;
  readonly #timeoutMs: number;
  readonly #retry: RetryPolicy;
  readonly #onCall: ((r: ApiCallRecord) => void) | undefined;

  constructor(options: EnvironmentsClientOptions) {
    this.#transport = new Transport({
      baseUrl: options.baseUrl,
      ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
      ...(options.pollDispatcher ? { pollDispatcher: options.pollDispatcher } : {}),
      ...(options.userAgent ? { userAgent: options.userAgent } : {}),
      ...(options.maxReplyBytes ? { maxReplyBytes: options.maxReplyBytes } : {}),
    });
    const c = options.credential;
    this.#credential = typeof c === 'function' ? c : () => c;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#retry = options.retry ?? DEFAULT_RETRY_POLICY;
    this.#onCall = options.onCall;
  }

  get baseUrl(): string {
    return this.#transport.baseUrl;
  }

  // --- environments -------------------------------------------------------------------------

  /** Create an environment. Never retried automatically (a retry could create a second one). */
  createEnvironment(params: EnvironmentCreateParams, opts?: CallOptions): Promise<Environment> {
    return this.#call('environments.create', '/v1/environments', Environment, { body: params }, opts);
  }

  /** One page of environments. */
  listEnvironmentsPage(params: EnvironmentListParams = {}, opts?: CallOptions): Promise<EnvironmentPage> {
    const query = { limit: params.limit, include_archived: params.include_archived, page: params.page };
    return this.#call('environments.list', '/v1/environments', EnvironmentPage, { query }, opts);
  }

  /** Every environment, following `next_page` until it is null. */
  listEnvironments(params: Omit<EnvironmentListParams, 'page'> = {}, opts?: CallOptions): AsyncIterable<Environment> {
    return paginate((page) => this.listEnvironmentsPage({ ...params, page }, opts));
  }

  getEnvironment(environmentId: string, opts?: CallOptions): Promise<Environment> {
    return this.#call('environments.get', `/v1/environments/${seg(environmentId)}`, Environment, {}, opts);
  }

  /** Update: omitted fields keep their value; a metadata value of null or "" deletes the key. */
  updateEnvironment(environmentId: string, params: EnvironmentUpdateParams, opts?: CallOptions): Promise<Environment> {
    return this.#call('environments.update', `/v1/environments/${seg(environmentId)}`, Environment, { body: params }, opts);
  }

  deleteEnvironment(environmentId: string, opts?: CallOptions): Promise<EnvironmentDeleted> {
    return this.#call('environments.delete', `/v1/environments/${seg(environmentId)}`, EnvironmentDeleted, {}, opts);
  }

  /** Archive: the environment stays readable but accepts no new sessions. */
  archiveEnvironment(environmentId: string, opts?: CallOptions): Promise<Environment> {
    return this.#call('environments.archive', `/v1/environments/${seg(environmentId)}/archive`, Environment, {}, opts);
  }

  // --- work ---------------------------------------------------------------------------------

  /** Long-poll the queue. Resolves `null` when nothing arrived within `blockMs`. Never retried. */
  pollWork(environmentId: string, poll: PollOptions = {}, opts?: CallOptions): Promise<Work | null> {
    const query = { block_ms: poll.blockMs, reclaim_older_than_ms: poll.reclaimOlderThanMs };
    const headers = poll.workerId ? { [WORKER_ID_HEADER]: poll.workerId } : undefined;
    const timeoutMs = opts?.timeoutMs ?? this.#timeoutMs + (poll.blockMs ?? 0);
    return this.#call('work.poll', `${workPath(environmentId)}/poll`, PollReply, { query, headers, longPoll: true }, { ...opts, timeoutMs });
  }

  /** queued → starting. 409 when the item is no longer acknowledgeable. */
  ackWork(environmentId: string, workId: string, opts?: CallOptions): Promise<Work> {
    return this.#call('work.ack', `${workPath(environmentId, workId)}/ack`, Work, {}, opts);
  }

  /**
   * Renew (or, with `NO_HEARTBEAT`, claim) the lease. Never retried: a retry after a lost reply
   * would echo a stale `last_heartbeat` and read as a lost lease (412).
   */
  heartbeatWork(environmentId: string, workId: string, hb: HeartbeatOptions, opts?: CallOptions): Promise<HeartbeatReply> {
    const query = { expected_last_heartbeat: hb.expectedLastHeartbeat, desired_ttl_seconds: hb.desiredTtlSeconds };
    return this.#call('work.heartbeat', `${workPath(environmentId, workId)}/heartbeat`, HeartbeatReply, { query }, opts);
  }

  /**
   * Stop a work item. Graceful (default): active/starting → stopping, and the worker's own later
   * stop confirms → stopped. `force`: → stopped at once. A 409 means it is already stopped.
   */
  stopWork(environmentId: string, workId: string, stop: { force?: boolean } = {}, opts?: CallOptions): Promise<Work> {
    const endpoint = stop.force ? 'work.stop_force' : 'work.stop';
    const body = stop.force ? { force: true } : {};
    return this.#call(endpoint, `${workPath(environmentId, workId)}/stop`, Work, { body }, opts);
  }

  listWorkPage(environmentId: string, params: { limit?: number; page?: string | null } = {}, opts?: CallOptions): Promise<WorkPage> {
    return this.#call('work.list', workPath(environmentId), WorkPage, { query: { limit: params.limit, page: params.page } }, opts);
  }

  listWork(environmentId: string, params: { limit?: number } = {}, opts?: CallOptions): AsyncIterable<Work> {
    return paginate((page) => this.listWorkPage(environmentId, { ...params, page }, opts));
  }

  getWork(environmentId: string, workId: string, opts?: CallOptions): Promise<Work> {
    return this.#call('work.get', workPath(environmentId, workId), Work, {}, opts);
  }

  /** Merge `metadata` into the item's (a null value deletes the key). */
  updateWork(environmentId: string, workId: string, metadata: MetadataPatch, opts?: CallOptions): Promise<Work> {
    return this.#call('work.update', workPath(environmentId, workId), Work, { body: { metadata } }, opts);
  }

  getQueueStats(environmentId: string, opts?: CallOptions): Promise<QueueStats> {
    return this.#call('work.stats', `${workPath(environmentId)}/stats`, QueueStats, {}, opts);
  }

  // --- sessions -----------------------------------------------------------------------------

  /** A session's status (the operator needs no more of it): `running`, `idle`, `terminated`, … 404 when it is gone. */
  getSession(sessionId: string, opts?: CallOptions): Promise<SessionSummary> {
    return this.#call('sessions.get', `/v1/sessions/${seg(sessionId)}`, SessionSummary, {}, opts);
  }

  // --- plumbing -----------------------------------------------------------------------------

  async #call<T>(
    endpoint: EndpointName,
    path: string,
    schema: z.ZodType<T>,
    req: { query?: Record<string, QueryValue>; body?: unknown; headers?: Record<string, string> | undefined; longPoll?: boolean },
    opts: CallOptions = {},
  ): Promise<T> {
    const { method, retrySafe } = ENDPOINTS[endpoint];
    const policy = retrySafe ? (opts.retry ?? this.#retry) : NO_RETRY;
    return withRetry(
      async (attempt) => {
        const started = performance.now();
        try {
          const { value, status } = await this.#transport.exchange({
            method,
            path,
            schema,
            credential: this.#credential(),
            timeoutMs: opts.timeoutMs ?? this.#timeoutMs,
            ...(req.query ? { query: req.query } : {}),
            ...(req.body !== undefined ? { body: req.body } : {}),
            ...(req.headers ? { headers: req.headers } : {}),
            ...(req.longPoll ? { longPoll: true } : {}),
            ...(opts.signal ? { signal: opts.signal } : {}),
          });
          this.#record(endpoint, status, started, attempt);
          return value;
        } catch (err) {
          if (err instanceof ApiError) this.#record(endpoint, err.status ?? err.code, started, attempt);
          throw err;
        }
      },
      policy,
      opts.signal ? { signal: opts.signal } : {},
    );
  }

  #record(endpoint: EndpointName, outcome: number | string, started: number, attempt: number): void {
    this.#onCall?.({ endpoint, outcome, durationMs: performance.now() - started, attempt });
  }
}

/** Follow a cursor until `next_page` is null/absent. */
async function* paginate<T>(
  fetchPage: (page: string | undefined) => Promise<{ data: T[]; next_page?: string | null | undefined }>,
): AsyncGenerator<T> {
  let page: string | undefined;
  do {
    const res = await fetchPage(page);
    yield* res.data;
    page = res.next_page ?? undefined;
  } while (page !== undefined);
}

const seg = (s: string): string => encodeURIComponent(s);
const workPath = (environmentId: string, workId?: string): string =>
  `/v1/environments/${seg(environmentId)}/work${workId === undefined ? '' : `/${seg(workId)}`}`;
