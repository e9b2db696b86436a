/**
 * Kubernetes API failures, mapped once at the boundary from the apiserver's `Status` reply.
 * Callers branch on the class (`NotFound`, `AlreadyExists`, `Conflict`, …), never on messages.
 */
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
  /** Seconds the apiserver asked us to wait (429/503 `Retry-After` or `details.retryAfterSeconds`). */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    reason: KubeErrorReason,
    message: string,
    info: { status?: number; causes?: KubeError['causes']; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(message, info.cause === undefined ? undefined : { cause: info.cause });
    this.name = 'KubeError';
    this.reason = reason;
    this.status = info.status;
    this.causes = info.causes ?? [];
    this.retryAfterSeconds = info.retryAfterSeconds;
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

/** Transient: worth retrying the same request later. */
export function isTransientKubeError(e: unknown): boolean {
  return (
    e instanceof KubeError &&
    (e.reason === 'TooManyRequests' || e.reason === 'ServerError' || e.reason === 'Unavailable' || e.reason === 'Conflict')
  );
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
  const retryAfter = s.details?.retryAfterSeconds ?? (retryAfterHeader ? Number(retryAfterHeader) || undefined : undefined);
  const info = { status, causes: s.details?.causes ?? [], ...(retryAfter !== undefined ? { retryAfterSeconds: retryAfter } : {}) };
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
