/**
 * The `Idle` ending (pure): the default runner ended on its idle timeout (`idleTimeoutSeconds`,
 * the SDK runner's `maxIdleMs`), not because the session ended or was stopped. The session lives on
 * in the API, and its next message queues a new work item (on the same workspace, if it has one).
 *
 * How it is told (decide.ts applies it to a `Completed` ending — a forced remote stop ends
 * `Stopped` by the sidecar's exit code (ending.ts), so it never reads as idle):
 * - the environment runs the default runner: its clean exits are its idle timeout or the session's
 *   end (another runner's idle timeout cannot be told from any other clean exit of it: `Completed`);
 * - no stop was requested in the API (`stop_requested_at` unset): the runner's own end is a
 *   force-stop, which requests none, while a remote stop sets it (`Stopped`);
 * - the session is `idle` in the API (`GET /v1/sessions/{id}` once the main container ended), not
 *   `terminated`.
 * Once recorded for the current item, `Idle` stays: later passes do not read the session again.
 */
import type { Work } from '../../api/wire.ts';
import type { SessionPhase } from '../../crd/agent-session.ts';
import type { AgentSession } from '../../crd/resources.ts';
import type { ApiSessionFact, WorkspaceSeen } from './workspace.ts';

export const IDLE = 'Idle';

interface Ending {
  readonly phase: SessionPhase;
  readonly reason: string;
  readonly message: string;
}

export interface IdleFacts {
  readonly settings: { readonly defaultRunner?: boolean };
  readonly apiSession?: ApiSessionFact | undefined;
  readonly workspace?: WorkspaceSeen | undefined;
}

/** The ending made `Idle` when the rules above say so; else as it is. */
export function idleEnding<T extends Ending>(f: IdleFacts, work: Work, ending: T): T {
  if (!f.settings.defaultRunner || ending.reason !== 'Completed' || work.stop_requested_at || f.apiSession !== 'idle') return ending;
  const kept = f.workspace ? `; workspace ${f.workspace.claimName} is kept for its next message` : '';
  return { ...ending, reason: IDLE, message: `the runner ended after the session was idle${kept}` };
}

/** An `Idle` ending recorded for the current item stays `Idle`. */
export function keptIdle<T extends Ending>(session: AgentSession, ending: T): T {
  const prev = session.status;
  if (ending.phase !== 'Succeeded' || prev?.phase !== 'Succeeded' || prev.reason !== IDLE || prev.workId !== session.spec.workId) return ending;
  return { ...ending, reason: IDLE, message: prev.message ?? ending.message };
}
