/**
 * The AgentSession reconciler. Level-triggered, keyed by namespace/name: every pass re-reads the
 * record, its environment, its Pods and the work item, then runs these phases (phases.ts):
 *
 * 1. gather          — the record (gone → forget), the environment's settings, the session's Pods
 *                      (cache) and the acknowledgement this process holds (scope.ts).
 * 2. finalize        — the record is being deleted: stop the work, wait for the Pod, clean up
 *                      (finalize.ts decides), then the finalizer is removed.
 * 3. ensure finalizer — add it first if missing, then end the pass.
 * Both through the one finalizer helper (k8s/finalizer.ts: Flow, Guarantees, Assumptions).
 * 4. expire          — a finished record past `sessionTTLSecondsAfterFinished` is deleted.
 * 5. observe work    — the work item from the API; a held ack reply stands in for the read when no
 *                      Pod is seen yet (acknowledgements.ts: the acknowledgement is written with the Pod).
 * 6. launch          — the only place a Pod is created: the item is `starting` and no Pod is seen;
 *                      with a workspace, its claim first, and only once no earlier Pod of the
 *                      session is left (workspace.ts).
 * 7. observe Pod     — the current item's Pod: the cache, the one just created, else a read; the
 *                      workspace claim; the session in the API once the main container ended.
 * 8. decide          — pure, once per pass: status, actions, event (decide.ts).
 * 9. apply decision  — the actions, then the status, written only when it changed.
 * 10. tidy           — Pods of earlier work items of the session are deleted.
 */
import { FINISHED_PHASES } from '../../crd/agent-session.ts';
import { SESSION_FINALIZER } from '../../crd/meta.ts';
import { AGENT_SESSIONS } from '../../crd/resources.ts';
import { finalizer } from '../../k8s/finalizer.ts';
import { FORGET, requeueAfter, type Outcome, type ReconcileContext } from '../../runtime/controller.ts';
import { decideSession } from './decide.ts';
import { reconcilerDeps, type ReconcilerDeps, type SessionReconcilerDeps } from './deps.ts';
import { applyDecision, expire, finalize, launch, observeApiSession, observePod, observeWork, sessionFacts, tidy } from './phases.ts';
import { observeWorkspace } from './workspace.ts';
import { gather, type SessionScope } from './scope.ts';

export type { SessionReconcilerDeps, SessionRecorder } from './deps.ts';

/** One pass over one AgentSession (the phases above, in order; 2 and 3 through the finalizer helper, k8s/finalizer.ts). */
export async function reconcileSession(deps: ReconcilerDeps, key: string, ctx: ReconcileContext): Promise<Outcome> {
  const scope = await gather(deps, key, ctx);
  if (!scope) return FORGET;
  return finalizer(deps.rest, AGENT_SESSIONS, scope.session, {
    name: SESSION_FINALIZER,
    added: requeueAfter(0),
    released: FORGET,
    cleanup: () => finalize(deps, scope),
    onReleased: () => scope.log.info('session finalized'),
    apply: () => reconcileLive(deps, scope),
  });
}

/** Phases 4–10: a live record that carries the finalizer. */
async function reconcileLive(deps: ReconcilerDeps, scope: SessionScope): Promise<Outcome> {
  const expired = await expire(deps, scope);
  if (expired) return expired;
  const work = await observeWork(deps, scope);
  const launched = await launch(deps, scope, work);
  const pod = await observePod(deps, scope, work, launched);
  const workspace = await observeWorkspace(deps, scope.session, scope.settings.workspace);
  const apiSession = await observeApiSession(deps, scope, pod);
  const decision = decideSession({ ...sessionFacts(scope, work, pod, launched), workspace, apiSession });
  const outcome = await applyDecision(deps, scope, decision, work, pod, launched);
  await tidy(deps, scope);
  // A session seen terminated in the API as its item ended: its workspace's retention ends now, on
  // the next pass (workspace.ts, rule 4), not at the next periodic look.
  const ended = decision.status.phase !== undefined && FINISHED_PHASES.includes(decision.status.phase);
  if (scope.settings.workspace && ended && (apiSession === 'terminated' || apiSession === 'gone')) return requeueAfter(0);
  return outcome;
}

/** The reconcile function the session controller runs on the generic runtime. */
export function sessionReconciler(deps: SessionReconcilerDeps): (key: string, ctx: ReconcileContext) => Promise<Outcome> {
  const full = reconcilerDeps(deps);
  return (key, ctx) => reconcileSession(full, key, ctx);
}
