/**
 * A safety net for a session terminated while the runner was not listening.
 *
 * The SDK's session runner learns `session.status_terminated` from its live event stream only:
 * after a reconnect it reads the history to catch up on tool calls, but a termination found there
 * does not end it (SDK 1.12 `SessionToolRunner.#reconcile`). A termination that lands while the
 * stream is down — the sidecar restarted, the connection reset — is never seen, and nothing else
 * ends the run: a terminated session is not idle, so `maxIdleMs` never starts, and the lease keeps
 * being renewed, so the Pod would serve a finished session forever (found by `npm run chaos`, seed 2:
 * a sidecar SIGKILL a second after the tool result, the termination during the reconnect).
 *
 * The rule: every `intervalMs` the runner reads the session's status (one GET through the
 * sidecar); once it is `terminated` it aborts the run, and the SDK ends it as on SIGTERM — the
 * work item is stopped unless its lease was lost. A failed read is retried at the next interval.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** Default interval between status reads: a finished session holds its Pod at most this much longer. */
export const TERMINATION_CHECK_MS = 30_000;

export interface TerminationWatch {
  /** The session's status, e.g. `idle`, `running`, `terminated`. */
  readonly status: () => Promise<string>;
  readonly intervalMs: number;
  /** Called once, when the session is seen terminated. */
  readonly onTerminated: () => void;
  /** Called when a read fails (the next interval tries again). */
  readonly onError: (err: unknown) => void;
}

/** Watch until `signal` aborts or the session is seen terminated. */
export async function watchTermination(w: TerminationWatch, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    await sleep(w.intervalMs, undefined, { signal }).catch(() => undefined);
    if (signal.aborted) return;
    try {
      if ((await w.status()) === 'terminated') {
        w.onTerminated();
        return;
      }
    } catch (err) {
      if (!signal.aborted) w.onError(err);
    }
  }
}
