/**
 * The default runner in a warm Pod (`AGENTENV_WAIT_FOR_ASSIGNMENT=1`): started before any work, it
 * waits for the sidecar to name its work item, then serves it exactly as a cold Pod's runner does.
 *
 * It asks the sidecar (`GET <ANTHROPIC_BASE_URL>/agentenv/v1/assignment`), which holds the ask and
 * answers only once its Pod is bound and the lease claimed; a refused connection (the sidecar is
 * between its waiting and serving halves) or a 503 is asked again shortly. Only ids come back:
 * the credential stays in the sidecar.
 */
import { RUNNER_ASSIGNMENT_PATH } from '../contract/sidecar.ts';

export interface RunnerAssignment {
  readonly environmentId: string;
  readonly sessionId: string;
  readonly workId: string;
}

/** Pause between asks after a refusal (the ask itself is held by the sidecar while it waits). */
const RETRY_MS = 50;

/** Parse the sidecar's answer; undefined when incomplete. */
export function parseRunnerAssignment(body: unknown): RunnerAssignment | undefined {
  if (body === null || typeof body !== 'object') return undefined;
  const b = body as Record<string, unknown>;
  const ok = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
  return ok(b['environment_id']) && ok(b['session_id']) && ok(b['work_id']) ? { environmentId: b['environment_id'], sessionId: b['session_id'], workId: b['work_id'] } : undefined;
}

/** Ask until the sidecar names the work item, or `signal` aborts (then undefined). */
export async function waitForRunnerAssignment(baseUrl: string, signal: AbortSignal): Promise<RunnerAssignment | undefined> {
  const url = `${baseUrl.replace(/\/+$/, '')}${RUNNER_ASSIGNMENT_PATH}`;
  while (!signal.aborted) {
    try {
      const res = await fetch(url, { signal });
      if (res.status === 200) {
        const a = parseRunnerAssignment(await res.json());
        if (a) return a;
      } else {
        await res.body?.cancel();
      }
    } catch {
      // Refused or reset: the sidecar is starting or switching to serving.
    }
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
  return undefined;
}
