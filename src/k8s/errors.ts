/**
 * Kubernetes API failures, mapped once at the boundary from the apiserver's `Status` reply.
 * Callers branch on the class (`NotFound`, `AlreadyExists`, `Conflict`, …), never on messages.
 * Whether a failure is worth retrying is decided in exactly one place, {@link classify}.
 */
import { parseRetryAfter } from '../util/backoff.ts';

export type KubeErrorReason =
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Forbidden'
  | 'Unauthorized'
  | 'Invalid'
  | 'BadRequest'
  | 'Gone'
  | 'TooManyRequests'
  | 'ServerError'
  | 'Unavailable';

export class KubeError extends Error {
  readonly reason: KubeErrorReason;
  readonly status: number | undefined;
  /** `details.causes` of an Invalid reply: which field broke which rule. */
  readonly causes: ReadonlyArray<{ field?: string; message?: string; reason?: string }>;
  /**
   * Milliseconds the apiserver asked us to wait (429/503 `Retry-After`, or `details.retryAfterSeconds`
   * of its Status body). The same field as on API errors, so the controller runtime honours both.
   */
  readonly retryAfterMs: number | undefined;

  constructor(
    reason: KubeErrorReason,
    message: string,
    info: { status?: number; causes?: KubeError['causes']; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(message, info.cause === undefined ? undefined : { cause: info.cause });
    this.name = 'KubeError';
    this.reason = reason;
    this.status = info.status;
    this.causes = info.causes ?? [];
    this.retryAfterMs = info.retryAfterMs;
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, reason: this.reason, status: this.status, message: this.message };
  }
}

export const isNotFound = (e: unknown): boolean => e instanceof KubeError && e.reason === 'NotFound';
export const isAlreadyExists = (e: unknown): boolean => e instanceof KubeError && e.reason === 'AlreadyExists';
export const isConflict = (e: unknown): boolean => e instanceof KubeError && e.reason === 'Conflict';
export const isForbidden = (e: unknown): boolean => e instanceof KubeError && e.reason === 'Forbidden';
export const isGone = (e: unknown): boolean => e instanceof KubeError && e.reason === 'Gone';
export const isInvalid = (e: unknown): boolean => e instanceof KubeError && (e.reason === 'Invalid' || e.reason === 'BadRequest');

/** What a failure means for the caller; the same three classes at the API boundary (`api/errors.ts`). */
export type ErrorClass = 'transient' | 'conflict' | 'fatal';

/**
 * The one place that decides what a Kubernetes failure means:
 *
 * | reason                                        | class       | what the caller does |
 * |-----------------------------------------------|-------------|----------------------|
 * | TooManyRequests (429), ServerError, Unavailable (5xx, connection) | `transient` | retry the same request later, no earlier than `retryAfterMs` |
 * | Conflict (409, stale resourceVersion), AlreadyExists (409)        | `conflict`  | interpret it: re-read and decide again (a status or finalizer write), or — for a deterministic name — "already exists" is success |
 * | NotFound, Gone, Forbidden, Unauthorized, Invalid, BadRequest      | `fatal`     | retrying the same request gets the same answer |
 *
 * "Conflict" means the same at both boundaries: the request raced or contradicts the object's
 * current state, so only the caller knows what it means; it is never retried blindly.
 * A failure that is not a {@link KubeError} (a bug, an aborted request) is `transient`: it is
 * retried with backoff, never recorded as a verdict.
 */
export function classify(e: unknown): ErrorClass {
  if (!(e instanceof KubeError)) return 'transient';
  switch (e.reason) {
    case 'TooManyRequests':
    case 'ServerError':
    case 'Unavailable':
      return 'transient';
    case 'Conflict':
    case 'AlreadyExists':
      return 'conflict';
    default:
      return 'fatal';
  }
}

interface StatusBody {
  kind?: string;
  reason?: string;
  message?: string;
  code?: number;
  details?: { causes?: KubeError['causes']; retryAfterSeconds?: number };
}

/** Map an HTTP status + apiserver `Status` body to a {@link KubeError}. */
export function kubeErrorFromStatus(status: number, body: unknown, what: string, retryAfterHeader?: string): KubeError {
  const s = (body && typeof body === 'object' ? body : {}) as StatusBody;
  const message = `${what}: ${s.message ?? `HTTP ${status}`}`;
  // Retry-After is delta-seconds or an HTTP date; the Status body's figure is whole seconds.
  const fromBody = s.details?.retryAfterSeconds ? s.details.retryAfterSeconds * 1000 : undefined;
  const retryAfterMs = fromBody ?? parseRetryAfter({ get: (name) => (name === 'retry-after' ? retryAfterHeader : undefined) });
  const info = { status, causes: s.details?.causes ?? [], ...(retryAfterMs ? { retryAfterMs } : {}) };
  const byReason: Record<string, KubeErrorReason> = {
    NotFound: 'NotFound',
    AlreadyExists: 'AlreadyExists',
    Conflict: 'Conflict',
    Forbidden: 'Forbidden',
    Unauthorized: 'Unauthorized',
    Invalid: 'Invalid',
    BadRequest: 'BadRequest',
    Gone: 'Gone',
    Expired: 'Gone',
    TooManyRequests: 'TooManyRequests',
  };
  const reason = (s.reason && byReason[s.reason]) || reasonForStatus(status);
  return new KubeError(reason, message, info);
}

function reasonForStatus(status: number): KubeErrorReason {
  const byStatus: Record<number, KubeErrorReason> = {
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'NotFound',
    409: 'Conflict',
    410: 'Gone',
    422: 'Invalid',
    429: 'TooManyRequests',
  };
  return byStatus[status] ?? (status >= 500 ? 'ServerError' : 'BadRequest');
}
