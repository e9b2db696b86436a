/**
 * The session's workspace: the decisions (pure, table-tested in workspace.test.ts) and the claim's
 * Kubernetes calls. objects/workspace.ts builds the claim and says why it is named and owned as it is.
 *
 * Rules:
 * 1. Created before the Pod: the launch creates the claim (AlreadyExists is success), then the Pod.
 * 2. Never mounted by two Pods of one session at once: while a Pod of an earlier work item of the
 *    session still exists (running, or terminating after the tidy phase deleted it), the launch
 *    waits (`WaitingForWorkspace`). A ReadWriteOnce volume is attached to one node at a time, and
 *    the claim's binding (the PV's node affinity) makes the scheduler place the next Pod where the
 *    volume can be mounted: nothing else is needed for affinity.
 * 3. A claim that is not `Bound` when `startDeadlineSeconds` is reached fails the start with
 *    `WorkspaceUnavailable` (decide.ts, rule 3): a force-stop, as with any failed start.
 * 4. Retention of a finished session's record — and with it its claim (the record owns it): deleted
 *    when the session is terminated (or gone) in the API, or `retainSecondsAfterLastWork` after
 *    its last work item ended, whichever comes first. A session that gets new work meanwhile is
 *    not finished any more, and the record is kept (the delete is guarded by its resourceVersion).
 * 5. The record goes (finalizer): the claim is deleted, or under `reclaimPolicy: Retain` released —
 *    owner reference removed and labelled {@link RETAINED_LABEL}, so neither garbage collection nor
 *    the orphan sweep removes it. The policy is read from the claim's own label, as the
 *    environment may already be gone.
 */
import type { Workspace } from '../../crd/agent-environment.ts';
import { FINISHED_PHASES, type WorkspacePhase } from '../../crd/agent-session.ts';
import type { AgentSession } from '../../crd/resources.ts';
import { isAlreadyExists, isNotFound } from '../../k8s/errors.ts';
import { CORE } from '../../k8s/rest.ts';
import { desiredWorkspaceClaim, RETAINED_LABEL, workspaceClaimName, type PersistentVolumeClaim } from '../objects/workspace.ts';
import type { ReconcilerDeps } from './deps.ts';

/** Label carrying the environment's `reclaimPolicy` on the claim (read when the record goes). */
export const RECLAIM_POLICY_LABEL = 'agentenv.io/reclaim-policy';
/** How often a finished session's API status is read for retention, at most. */
export const RETENTION_RECHECK_MS = 5 * 60_000;

/** The claim as one pass sees it. */
export interface WorkspaceSeen {
  readonly claimName: string;
  readonly phase: WorkspacePhase;
  readonly deleting: boolean;
}

/** Rules 1–2: what the launch does about the workspace before it creates the Pod. */
export type LaunchGate = { readonly kind: 'go' } | { readonly kind: 'createClaim' } | { readonly kind: 'wait'; readonly message: string };

export function launchGate(f: { readonly seen: WorkspaceSeen | undefined; readonly earlierPods: readonly string[] }): LaunchGate {
  if (!f.seen) return { kind: 'go' };
  if (f.seen.deleting) return { kind: 'wait', message: `workspace claim ${f.seen.claimName} is being deleted` };
  if (f.earlierPods.length) return { kind: 'wait', message: `waiting for the session's earlier Pod ${f.earlierPods.join(', ')} to end before mounting workspace ${f.seen.claimName}` };
  if (f.seen.phase === 'Missing') return { kind: 'createClaim' };
  return { kind: 'go' };
}

/** What the API says of the session, for retention and for an `Idle` ending. */
export type ApiSessionFact = 'live' | 'idle' | 'terminated' | 'gone' | 'unknown';

/** Rule 4: whether a session's record (and its workspace) is deleted now, else when to look again. */
export type Retention = { readonly expire: true; readonly reason: 'SessionTerminated' | 'RetentionExpired' } | { readonly expire: false; readonly recheckMs: number | undefined };

export function retention(f: { readonly session: AgentSession; readonly workspace: Workspace; readonly apiSession: ApiSessionFact; readonly now: Date }): Retention {
  const st = f.session.status;
  if (!st?.phase || !FINISHED_PHASES.includes(st.phase)) return { expire: false, recheckMs: undefined };
  if (f.apiSession === 'terminated' || f.apiSession === 'gone') return { expire: true, reason: 'SessionTerminated' };
  const ended = Date.parse(st.finishedAt ?? '');
  if (Number.isNaN(ended)) return { expire: false, recheckMs: RETENTION_RECHECK_MS };
  const left = ended + f.workspace.retainSecondsAfterLastWork * 1000 - f.now.getTime();
  if (left <= 0) return { expire: true, reason: 'RetentionExpired' };
  return { expire: false, recheckMs: Math.min(left + 100, RETENTION_RECHECK_MS) };
}

/** The claim's phase as shown on the AgentSession. */
export function claimPhase(claim: PersistentVolumeClaim | undefined): WorkspacePhase {
  const p = claim?.status?.phase;
  return p === 'Bound' || p === 'Lost' ? p : claim ? 'Pending' : 'Missing';
}

/** Read the session's claim (undefined: the environment has no workspace). */
export async function observeWorkspace(deps: ReconcilerDeps, session: AgentSession, workspace: Workspace | undefined): Promise<WorkspaceSeen | undefined> {
  if (!workspace) return undefined;
  const claimName = workspaceClaimName(session.metadata?.name ?? '');
  const claim = await readClaim(deps, session.metadata?.namespace ?? '', claimName);
  return { claimName, phase: claimPhase(claim), deleting: Boolean(claim?.metadata?.deletionTimestamp) };
}

/** Rule 1: create the claim; AlreadyExists is success (a retried launch, a restarted operator). */
export async function createClaim(deps: ReconcilerDeps, session: AgentSession, workspace: Workspace): Promise<void> {
  const claim = desiredWorkspaceClaim(session, workspace);
  claim.metadata!.labels = { ...claim.metadata!.labels, [RECLAIM_POLICY_LABEL]: workspace.reclaimPolicy };
  try {
    await deps.rest.create(CORE.persistentvolumeclaims, claim.metadata?.namespace, claim);
    deps.events.record(session, 'Normal', 'WorkspaceCreated', `created workspace claim ${claim.metadata?.name}`);
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  }
}

/** Rule 5: the record goes — delete its claim, or release it under `Retain`. */
export async function releaseWorkspace(deps: ReconcilerDeps, session: AgentSession): Promise<void> {
  const namespace = session.metadata?.namespace ?? '';
  const name = workspaceClaimName(session.metadata?.name ?? '');
  const claim = await readClaim(deps, namespace, name);
  if (!claim || claim.metadata?.deletionTimestamp) return;
  try {
    if (claim.metadata?.labels?.[RECLAIM_POLICY_LABEL] === 'Retain') {
      if (claim.metadata.labels[RETAINED_LABEL] === 'true') return;
      // Merge patch: ownerReferences null drops the owner, so garbage collection keeps the claim.
      await deps.rest.patch(CORE.persistentvolumeclaims, namespace, name, { metadata: { ownerReferences: null, labels: { [RETAINED_LABEL]: 'true' } } }, 'merge');
      deps.events.record(session, 'Normal', 'WorkspaceRetained', `workspace claim ${name} retained (reclaimPolicy: Retain)`);
    } else {
      await deps.rest.delete(CORE.persistentvolumeclaims, namespace, name, { preconditions: { uid: claim.metadata?.uid ?? '' } });
    }
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

async function readClaim(deps: ReconcilerDeps, namespace: string, name: string): Promise<PersistentVolumeClaim | undefined> {
  try {
    return await deps.rest.get<PersistentVolumeClaim>(CORE.persistentvolumeclaims, namespace, name);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}
