/**
 * The Kubernetes objects a session owns, created and deleted: its Pod (one per work item, built by
 * objects/pod.ts) and the per-item Secret. Names are deterministic, so AlreadyExists is success and
 * a retried step converges on the same object.
 */
import type { AgentEnvironment, AgentSession } from '../../crd/resources.ts';
import { isAlreadyExists, isConflict, isForbidden, isInvalid, isNotFound, KubeError } from '../../k8s/errors.ts';
import { classifyPodRefusal } from '../objects/pod-refusal.ts';
import { CORE } from '../../k8s/rest.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { Pod } from '../objects/pod-types.ts';
import { desiredPod } from '../objects/pod.ts';
import { secretName } from '../record/names.ts';
import type { SessionFacts } from './decide.ts';
import type { ReconcilerDeps } from './deps.ts';

/** What a launch did: created the Pod, found it existing (no field), was refused, or waits (for the workspace). */
export interface Launch {
  readonly pod?: Pod;
  readonly refused?: SessionFacts['launchRefused'];
  readonly waiting?: string;
}

/**
 * Create the Pod of the current work item: the Pod created, or why it was refused. AlreadyExists
 * is success (neither: the Pod is read next). A per-item Secret that is missing is not looked for
 * here: the hand-off wrote it before the ack, and a Pod whose Secret was deleted since never
 * starts, which `startDeadlineSeconds` ends with a force-stop.
 */
export async function createPod(deps: ReconcilerDeps, env: AgentEnvironment, session: AgentSession, log: Logger): Promise<Launch> {
  const build = desiredPod({
    session,
    env,
    sidecar: deps.sidecar,
    baseUrl: deps.baseUrl,
    ...(deps.runner ? { runner: deps.runner } : {}),
    ...(deps.proxyAddress ? { proxyAddress: deps.proxyAddress } : {}),
    ...(deps.podPolicy ? { podPolicy: deps.podPolicy } : {}),
  });
  if (!build.ok) return { refused: { reason: build.reason, message: build.message } };
  let pod: Pod;
  const namespace = session.metadata?.namespace ?? '';
  // This pass goes on with the created Pod: its add event brings nothing new (k8s/own-writes.ts).
  deps.ownWrites?.writing(CORE.pods, namespace, build.pod.metadata?.name ?? '');
  try {
    pod = await deps.rest.create<Pod>(CORE.pods, namespace, build.pod);
    deps.ownWrites?.wrote(CORE.pods, namespace, build.pod.metadata?.name ?? '', pod);
  } catch (err) {
    deps.ownWrites?.wrote(CORE.pods, namespace, build.pod.metadata?.name ?? '', undefined);
    if (isAlreadyExists(err)) return {};
    // Admission (Pod Security, quota, webhooks) or validation refused it: retrying cannot help.
    // The claimed item is force-stopped as before; a refusal for capacity (a full quota, a
    // LimitRange, a webhook's denial) also holds the environment's dispatch, so no more work is
    // claimed for Pods the namespace would refuse (dispatch/admission.ts).
    if (isForbidden(err) || isInvalid(err)) {
      const capacity = err instanceof KubeError ? classifyPodRefusal({ status: err.status, message: err.message }, namespace) : undefined;
      if (capacity) deps.onCapacityRefused?.(namespace, session.spec.environmentRef.name, capacity);
      return { refused: { reason: 'PodCreateRefused', message: capacity?.message ?? (err instanceof Error ? err.message : String(err)) } };
    }
    throw err;
  }
  const claimedAt = Date.parse(session.spec.claimedAt);
  if (!Number.isNaN(claimedAt)) deps.metrics?.podCreated(Math.max(0, deps.now().getTime() - claimedAt));
  deps.events.record(session, 'Normal', 'PodCreated', `created session Pod ${build.pod.metadata?.name}`);
  log.info({ pod: build.pod.metadata?.name }, 'created the session Pod');
  return { pod };
}

export async function readPod(deps: ReconcilerDeps, namespace: string, name: string): Promise<Pod | undefined> {
  try {
    return await deps.rest.get<Pod>(CORE.pods, namespace, name);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export async function deletePod(deps: ReconcilerDeps, pod: Pod): Promise<void> {
  try {
    await deps.rest.delete(CORE.pods, pod.metadata?.namespace, pod.metadata?.name ?? '', { preconditions: { uid: pod.metadata?.uid ?? '' } });
  } catch (err) {
    // Conflict: the uid precondition failed, i.e. this Pod is already gone and another took its name.
    if (!isNotFound(err) && !isConflict(err)) throw err;
  }
}

/**
 * Delete Pods and their per-item Secrets explicitly (not relying on garbage-collection timing).
 * With no Pods given, deletes the current work item's Secret. A Secret the operator may not
 * delete is left to garbage collection (it is owned by the AgentSession).
 */
export async function deleteSessionObjects(deps: ReconcilerDeps, session: AgentSession, secretsOf: readonly Pod[], podsToDelete: readonly Pod[]): Promise<void> {
  for (const p of podsToDelete) await deletePod(deps, p);
  const names = secretsOf.length ? secretsOf.map((p) => p.metadata?.name ?? '') : [secretName(session.metadata?.name ?? '', session.spec.workId)];
  for (const n of names) {
    try {
      await deps.rest.delete(CORE.secrets, session.metadata?.namespace, n);
    } catch (err) {
      if (!isNotFound(err) && !isForbidden(err)) throw err;
    }
  }
}
