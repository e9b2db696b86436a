/**
 * What the assignment endpoint answers a warm Pod's sidecar (pure; docs/sessions.md, "Warm pool").
 *
 * Rules:
 * 1. the Pod is known only by what its TokenReview said (namespace, name, uid): a record binds it
 *    only when `spec.warmPod` names that name AND uid (a later Pod of the same name is not bound);
 * 2. no such record → `wait` (not bound yet; the pool may bind it any moment);
 * 3. a record whose item is not acknowledged yet → `wait`: the record is written before the ack,
 *    and a Pod must not claim a lease the operator has not acknowledged (the settle pass may still
 *    let the item go);
 * 4. a record whose item is finished (or moved on to another item) → `gone`: this Pod serves nothing
 *    more, ever (one Pod, one item);
 * 5. acknowledged → `assign`, with where the credential is: the per-item Secret's `token`, else the
 *    environment key's Secret; with neither → `gone` (nothing may be handed over; the start deadline
 *    ends the item with its reason).
 */
import type { AgentEnvironment, AgentSession } from '../../crd/resources.ts';
import type { CredentialKind } from '../../contract/sidecar.ts';
import { secretName, SECRET_TOKEN_KEY } from '../record/names.ts';
import { hasItemSecret, holdsCapacity, isAcknowledged } from '../record/status.ts';

export interface PodIdentity {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
}

export type AssignmentDecision =
  | { readonly kind: 'wait' }
  | { readonly kind: 'gone'; readonly why: string }
  | {
      readonly kind: 'assign';
      readonly environmentId: string;
      readonly sessionId: string;
      readonly workId: string;
      readonly credentialKind: CredentialKind;
      /** The Secret and key holding the credential (read by the caller, never logged). */
      readonly secret: { readonly name: string; readonly key: string };
    };

/** The record binding `pod` (rule 1), among the namespace's records. */
export function bindingOf(pod: PodIdentity, sessions: readonly AgentSession[]): AgentSession | undefined {
  return sessions.find((s) => s.metadata?.namespace === pod.namespace && s.spec?.warmPod?.name === pod.name && s.spec.warmPod.uid === pod.uid);
}

export function decideAssignment(session: AgentSession | undefined, env: AgentEnvironment | undefined): AssignmentDecision {
  if (!session) return { kind: 'wait' };
  if (!holdsCapacity(session) || (session.status?.workId !== undefined && session.status.workId !== session.spec.workId && isAcknowledged(session))) {
    return { kind: 'gone', why: 'the work item this Pod was bound to is finished' };
  }
  if (!isAcknowledged(session)) return { kind: 'wait' };
  const ids = { environmentId: session.spec.environmentId, sessionId: session.spec.sessionId, workId: session.spec.workId };
  if (hasItemSecret(session)) {
    return { kind: 'assign', ...ids, credentialKind: 'sessions-token', secret: { name: secretName(session.metadata?.name ?? '', session.spec.workId), key: SECRET_TOKEN_KEY } };
  }
  const ref = env?.spec.selfHosted?.environmentKeySecretRef;
  if (!ref) return { kind: 'gone', why: 'the item has no per-item token and the environment no environment key' };
  return { kind: 'assign', ...ids, credentialKind: 'environment-key', secret: { name: ref.name, key: ref.key } };
}
