/**
 * One request's abort signal: aborted when the caller's signals abort (with their reason) or when
 * `timeoutMs` passes. `release()` clears the timer and unhooks the caller's signals; call it when
 * the request is over.
 *
 * Why not `AbortSignal.any([...])` with `AbortSignal.timeout`: Node keeps every composite signal
 * registered with its sources until both are collected, and each poll and acknowledgement made
 * two of them — a measurable share of the dispatcher's CPU in a burst, and of idle polling over
 * many environments. Here a request costs one controller, one timer and one listener per source.
 */
export interface Deadline {
  readonly signal: AbortSignal;
  /** Whether the time ran out (rather than a caller's signal aborting). */
  timedOut(): boolean;
  release(): void;
}

export function deadline(timeoutMs: number, ...sources: readonly (AbortSignal | undefined)[]): Deadline {
  const ctrl = new AbortController();
  let expired = false;
  const linked = sources.filter((s): s is AbortSignal => s !== undefined);
  const onAbort = function (this: AbortSignal): void {
    ctrl.abort(this.reason);
  };
  const timer = setTimeout(() => {
    expired = true;
    ctrl.abort(new DOMException(`timed out after ${timeoutMs} ms`, 'TimeoutError'));
  }, timeoutMs);
  for (const s of linked) {
    if (s.aborted) {
      ctrl.abort(s.reason);
      break;
    }
    s.addEventListener('abort', onAbort, { once: true });
  }
  return {
    signal: ctrl.signal,
    timedOut: () => expired,
    release: () => {
      clearTimeout(timer);
      for (const s of linked) s.removeEventListener('abort', onAbort);
    },
  };
}
