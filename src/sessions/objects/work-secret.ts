/**
 * The per-item Secret (pure): written by the hand-off before the ack, only when the poll carried a
 * per-item secret, and owned by the AgentSession. `token` is the sidecar's credential (the item's
 * sessions token); `work-secret` is the raw per-item secret for the main container's
 * `ANTHROPIC_WORK_SECRET`. Immutable: a work item's credential never changes. Its name is
 * deterministic, so a retried write converges on it.
 */
import { AGENT_SESSION, API_VERSION } from '../../crd/meta.ts';
import type { AgentSession } from '../../crd/resources.ts';
import type { KubeObject, OwnerReference } from '../../k8s/rest.ts';
import { secretName, SECRET_TOKEN_KEY, SECRET_WORK_SECRET_KEY, workLabels } from '../record/names.ts';

export interface SessionSecret extends KubeObject {
  type: 'Opaque';
  immutable: boolean;
  data: Record<string, string>;
}

/** The controller reference every child of a session carries (garbage-collected with it). */
export function ownedBySession(session: AgentSession): OwnerReference {
  return { apiVersion: API_VERSION, kind: AGENT_SESSION.kind, name: session.metadata?.name ?? '', uid: session.metadata?.uid ?? '', controller: true, blockOwnerDeletion: true };
}

/** The per-item Secret of the session's current work item. */
export function desiredWorkSecret(session: AgentSession, material: { token: string; workSecret: string }): SessionSecret {
  const namespace = session.metadata?.namespace ?? '';
  const owner = session.metadata?.name ?? '';
  return {
    metadata: {
      name: secretName(owner, session.spec.workId),
      namespace,
      labels: workLabels(session.spec.environmentRef.name, owner, session.spec.workId),
      ownerReferences: [ownedBySession(session)],
    },
    type: 'Opaque',
    immutable: true,
    data: { [SECRET_TOKEN_KEY]: b64(material.token), [SECRET_WORK_SECRET_KEY]: b64(material.workSecret) },
  };
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
