/**
 * The API client's error taxonomy: one class per failure kind, each with a stable `code`.
 *
 * Callers branch on the class or on `code`, never on message text. Whether a failure is worth
 * retrying is decided in exactly one place, {@link isTransient}:
 *
 * | failure                              | class                    | code                   | transient |
 * |--------------------------------------|--------------------------|------------------------|-----------|
 * | connection refused / reset / DNS     | ConnectionError          | `connection_error`     | yes       |
 * | our per-request timeout elapsed      | TimeoutError             | `timeout`              | yes       |
 * | 408                                  | RequestTimeoutError      | `request_timeout`      | yes       |
 * | 429                                  | RateLimitError           | `rate_limited`         | yes       |
 * | 5xx (incl. 529 overloaded)           | ServerError              | `server_error`         | yes       |
 * | 409                                  | ConflictError            | `conflict`             | no — the caller interprets it (on stop: "already stopped") |
 * | 412                                  | PreconditionFailedError  | `precondition_failed`  | no — on heartbeat: the lease is lost |
 * | 400 / 422                            | InvalidRequestError      | `invalid_request`      | no        |
 * | 401                                  | AuthenticationError      | `authentication_failed`| no        |
 * | 403                                  | PermissionDeniedError    | `permission_denied`    | no        |
 * | 404                                  | NotFoundError            | `not_found`            | no        |
 * | other 4xx                            | ClientError              | `client_error`         | no        |
 * | 2xx whose body breaks the schema     | MalformedResponseError   | `malformed_response`   | no        |
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

/**
 * The one place that decides whether a failure is transient: connection errors, timeouts, 408,
 * 429 and 5xx are; a 409 is a conflict its caller interprets; every other 4xx and a malformed
 * reply are fatal (retrying would get the same answer).
 */
export function isTransient(err: unknown): boolean {
  return (
    err instanceof ConnectionError ||
    err instanceof TimeoutError ||
    err instanceof RequestTimeoutError ||
    err instanceof RateLimitError ||
    err instanceof ServerError
  );
}

/** A fatal API failure: retrying cannot help until something (config, credential, spec) changes. */
export function isFatal(err: unknown): boolean {
  return err instanceof ApiError && !isTransient(err) && !(err instanceof ConflictError);
}

/** True when `err` is an {@link ApiError} with HTTP status `status`. */
export function hasStatus(err: unknown, status: number): boolean {
  return err instanceof ApiError && err.status === status;
}

export { parseRetryAfter } from '../util/backoff.ts';
