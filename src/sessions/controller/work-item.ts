/**
 * The work item of a session, through the Environments API: read it, stop it. The credential is
 * the environment's dispatch credential (`deps.workCredential`); without one the item is
 * `unknown` and nothing is stopped (the Pod's sidecar force-stops the item on SIGTERM).
 */
import { classify, NotFoundError } from '../../api/errors.ts';
import type { AgentEnvironment, AgentSession } from '../../crd/resources.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { SessionFacts } from './decide.ts';
import type { ReconcilerDeps, WorkApi } from './deps.ts';
import type { ApiSessionFact } from './workspace.ts';

export type WorkFact = SessionFacts['work'];

export const NOT_ACKNOWLEDGED: WorkFact = { kind: 'unknown', message: 'not acknowledged' };

/** The API client for the session's work item, or why there is none. */
async function workApi(deps: ReconcilerDeps, env: AgentEnvironment | undefined): Promise<WorkApi | string> {
  if (!env) return 'the AgentEnvironment is gone';
  const credential = await deps.workCredential(env);
  return typeof credential === 'string' ? credential : deps.apiClient(credential);
}

/** The work item: found, gone (404), or unknown (no credential, refused key). Transient API failures throw (backoff). */
export async function readWork(deps: ReconcilerDeps, env: AgentEnvironment | undefined, session: AgentSession, signal: AbortSignal): Promise<WorkFact> {
  const client = await workApi(deps, env);
  if (typeof client === 'string') return { kind: 'unknown', message: client };
  try {
    return { kind: 'found', work: await client.getWork(session.spec.environmentId, session.spec.workId, { signal }) };
  } catch (err) {
    if (err instanceof NotFoundError) return { kind: 'gone' };
    // A refused key (401, 403) or another 4xx: the item cannot be read until something changes.
    if (classify(err) === 'fatal') return { kind: 'unknown', message: `the API refused to read work item ${session.spec.workId}: ${(err as Error).message}` };
    throw err;
  }
}

/**
 * The session in the API (rule 4 of workspace.ts, and the `Idle` ending): with the organization
 * key (`deps.sessionCredential`), else the work-item credential. 404 = gone; a refused read, no
 * credential or a transient failure is `unknown` (retention then waits for the next look, and an
 * ending is not called `Idle`): this read never blocks a pass.
 */
export async function readApiSession(deps: ReconcilerDeps, scope: { env: AgentEnvironment | undefined; session: AgentSession; signal: AbortSignal; log: Logger }): Promise<ApiSessionFact> {
  if (!scope.env) return 'unknown';
  const credential = await (deps.sessionCredential ?? deps.workCredential)(scope.env);
  if (typeof credential === 'string') return 'unknown';
  try {
    const api = deps.apiClient(credential);
    if (!api.getSession) return 'unknown';
    const s = await api.getSession(scope.session.spec.sessionId, { signal: scope.signal });
    return s.status === 'terminated' ? 'terminated' : s.status === 'idle' ? 'idle' : 'live';
  } catch (err) {
    if (err instanceof NotFoundError) return 'gone';
    scope.log.debug({ err }, 'could not read the session in the API');
    return 'unknown';
  }
}

/** Stop the work item. 409 here means it is already stopped; 404 that it is gone: both done. */
export async function stopWork(deps: ReconcilerDeps, env: AgentEnvironment | undefined, session: AgentSession, stop: { force: boolean; reason: string }, log: Logger): Promise<void> {
  const client = await workApi(deps, env);
  if (typeof client === 'string') {
    log.warn({ reason: stop.reason }, `cannot stop the work item: ${client}`);
    return;
  }
  try {
    await client.stopWork(session.spec.environmentId, session.spec.workId, { force: stop.force });
    deps.metrics?.stopped(stop.reason);
    log.info({ force: stop.force, reason: stop.reason }, 'stopped the work item');
  } catch (err) {
    if (classify(err) === 'conflict' || err instanceof NotFoundError) return;
    throw err;
  }
}
