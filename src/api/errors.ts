/**
 * The API client's error taxonomy: one class per failure kind, each with a stable `code`.
 *
 * Callers branch on the class or on `code`, never on message text. Whether a failure is worth
 * retrying is decided in exactly one place, {@link classify}:
 *
 * | failure                              | class                    | code                   | classify  |
 * |--------------------------------------|--------------------------|------------------------|-----------|
 * | connection refused / reset / DNS     | ConnectionError          | `connection_error`     | transient |
 * | our per-request timeout elapsed      | TimeoutError             | `timeout`              | transient |
 * | 408                                  | RequestTimeoutError      | `request_timeout`      | transient |
 * | 429                                  | RateLimitError           | `rate_limited`         | transient |
 * | 5xx (incl. 529 overloaded)           | ServerError              | `server_error`         | transient |
 * | 409                                  | ConflictError            | `conflict`             | conflict — the caller interprets it (on stop: "already stopped") |
 * | 412                                  | PreconditionFailedError  | `precondition_failed`  | fatal — on heartbeat: the lease is lost |
 * | 400 / 422                            | InvalidRequestError      | `invalid_request`      | fatal     |
 * | 401                                  | AuthenticationError      | `authentication_failed`| fatal     |
 * | 403                                  | PermissionDeniedError    | `permission_denied`    | fatal     |
 * | 404                                  | NotFoundError            | `not_found`            | fatal     |
 * | other 4xx                            | ClientError              | `client_error`         | fatal     |
 * | 2xx whose body breaks the schema     | MalformedResponseError   | `malformed_response`   | fatal     |
 *
 * Cancellation by the caller's AbortSignal is not an API failure: the signal's reason is rethrown
 * unchanged.
 */
import { LeaseState } from './wire.ts';

export interface ApiErrorDetails {
  /** HTTP status, when the server answered. */
  readonly status?: number;
  /** The API's error `type` (e.g. `rate_limit_error`), when the body carried one. */
  readonly errorType?: string;
  /** The `request-id` response header, for support tickets and log correlation. */
  readonly requestId?: string;
  /** `error.details` from the body, if any. */
  readonly details?: Record<string, unknown>;
  /** Milliseconds the server asked us to wait (`retry-after-ms` / `retry-after`). */
  readonly retryAfterMs?: number;
  readonly cause?: unknown;
}

export abstract class ApiError extends Error {
  abstract readonly code: string;
  readonly status: number | undefined;
  readonly errorType: string | undefined;
  readonly requestId: string | undefined;
  readonly details: Record<string, unknown> | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(message: string, info: ApiErrorDetails = {}) {
    super(message, info.cause === undefined ? undefined : { cause: info.cause });
    this.name = new.target.name;
    this.status = info.status;
    this.errorType = info.errorType;
    this.requestId = info.requestId;
    this.details = info.details;
    this.retryAfterMs = info.retryAfterMs;
  }

  /** A log-safe summary (no bodies, no headers, hence no credentials). */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      status: this.status,
      errorType: this.errorType,
      requestId: this.requestId,
    };
  }
}

export class ConnectionError extends ApiError {
  readonly code = 'connection_error';
}
export class TimeoutError extends ApiError {
  readonly code = 'timeout';
}
export class RequestTimeoutError extends ApiError {
  readonly code = 'request_timeout';
}
export class RateLimitError extends ApiError {
  readonly code = 'rate_limited';
}
export class ServerError extends ApiError {
  readonly code = 'server_error';
}
export class ConflictError extends ApiError {
  readonly code = 'conflict';
}
export class InvalidRequestError extends ApiError {
  readonly code = 'invalid_request';
}
export class AuthenticationError extends ApiError {
  readonly code = 'authentication_failed';
}
export class PermissionDeniedError extends ApiError {
  readonly code = 'permission_denied';
}
export class NotFoundError extends ApiError {
  readonly code = 'not_found';
}
export class ClientError extends ApiError {
  readonly code = 'client_error';
}

/** 412. On a heartbeat it means another holder (or the queue) owns the lease now. */
export class PreconditionFailedError extends ApiError {
  readonly code = 'precondition_failed';

  /** The server's lease from `error.details.current_state`, when present and well-formed. */
  get leaseState(): LeaseState | undefined {
    const parsed = LeaseState.safeParse(this.details?.['current_state']);
    return parsed.success ? parsed.data : undefined;
  }
}

/** A 2xx reply whose body does not match the wire schema. `field` names the first bad field. */
export class MalformedResponseError extends ApiError {
  readonly code = 'malformed_response';
  readonly field: string;

  constructor(message: string, field: string, info: ApiErrorDetails = {}) {
    super(message, info);
    this.field = field;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), field: this.field };
  }
}

export type ApiErrorCode = ApiError['code'];

/** Map an HTTP error status to its class. */
export function errorForStatus(status: number, message: string, info: ApiErrorDetails): ApiError {
  const withStatus = { ...info, status };
  if (status === 400 || status === 422) return new InvalidRequestError(message, withStatus);
  if (status === 401) return new AuthenticationError(message, withStatus);
  if (status === 403) return new PermissionDeniedError(message, withStatus);
  if (status === 404) return new NotFoundError(message, withStatus);
  if (status === 408) return new RequestTimeoutError(message, withStatus);
  if (status === 409) return new ConflictError(message, withStatus);
  if (status === 412) return new PreconditionFailedError(message, withStatus);
  if (status === 429) return new RateLimitError(message, withStatus);
  if (status >= 500) return new ServerError(message, withStatus);
  return new ClientError(message, withStatus);
}

/** What a failure means for the caller; the same three classes at the Kubernetes boundary (`k8s/errors.ts`). */
export type ErrorClass = 'transient' | 'conflict' | 'fatal';

/**
 * The one place that decides what an API failure means (the table above):
 * - `transient`: connection errors, timeouts, 408, 429 and 5xx — worth the same request again,
 *   no earlier than `retryAfterMs`. Only these are retried by `retry.ts`.
 * - `conflict`: 409 — the request contradicts the resource's current state, so only the caller
 *   knows what it means, and it is never retried blindly: on a stop it means "already stopped"
 *   (success); on an update of an archived environment, "read-only". The same meaning as a
 *   Kubernetes Conflict: the request raced the object's state.
 * - `fatal`: every other 4xx and a malformed reply — retrying gets the same answer until something
 *   (config, credential, spec) changes.
 * A failure that is not an {@link ApiError} (a bug; cancellation is rethrown as the signal's reason)
 * is `transient`: retried with backoff by whoever owns the loop, never recorded as a verdict.
 */
export function classify(err: unknown): ErrorClass {
  if (!(err instanceof ApiError)) return 'transient';
  if (err instanceof ConflictError) return 'conflict';
  const transient =
    err instanceof ConnectionError ||
    err instanceof TimeoutError ||
    err instanceof RequestTimeoutError ||
    err instanceof RateLimitError ||
    err instanceof ServerError;
  return transient ? 'transient' : 'fatal';
}

/** An {@link ApiError} that {@link classify} calls transient (what `retry.ts` retries). */
export const isTransient = (err: unknown): boolean => err instanceof ApiError && classify(err) === 'transient';

/** An {@link ApiError} that {@link classify} calls fatal: retrying cannot help until something changes. */
export const isFatal = (err: unknown): boolean => err instanceof ApiError && classify(err) === 'fatal';

/** True when `err` is an {@link ApiError} with HTTP status `status`. */
export function hasStatus(err: unknown, status: number): boolean {
  return err instanceof ApiError && err.status === status;
}

export { parseRetryAfter } from '../util/backoff.ts';
