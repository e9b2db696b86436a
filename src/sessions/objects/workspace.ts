/**
 * A session's workspace (pure): one PersistentVolumeClaim per session, mounted at `/workspace` in
 * the main container of every Pod of the session, so whatever the agent built survives from one
 * work item to the next.
 *
 * Identity: the claim is named after the AgentSession (`<session>-workspace`), and the AgentSession
 * is named after the session id (record/names.ts), so every pass, a second poller and a restarted
 * operator compute the same name: "AlreadyExists is success", and an operator killed between the
 * claim's create and the Pod's create converges on one claim.
 *
 * Ownership: the AgentSession (controller reference). The AgentSession is the session's record and
 * lives as long as the workspace is retained (controller/workspace.ts), so garbage collection
 * removes the claim with it — also when the AgentEnvironment (the AgentSession's owner) is deleted,
 * and also if the operator is not running. `reclaimPolicy: Retain` is the one exception: the
 * finalizer takes the owner reference off (and labels the claim retained) before the record goes.
 */
import type { Workspace } from '../../crd/agent-environment.ts';
import { LABELS, MANAGED_BY } from '../../crd/meta.ts';
import type { AgentSession } from '../../crd/resources.ts';
import type { KubeObject } from '../../k8s/rest.ts';
import { labelValue } from '../record/names.ts';
import { WORKSPACE_DIR, WORKSPACE_VOLUME } from './default-template.ts';
import type { Container, Volume } from './pod-types.ts';
import { ownedBySession } from './work-secret.ts';

/** `agentenv.io/component` of workspace claims (the orphan sweep selects on it). */
export const WORKSPACE_COMPONENT = 'workspace';
/** Label on a claim kept by `reclaimPolicy: Retain` after its session went: the sweep leaves it alone. */
export const RETAINED_LABEL = 'agentenv.io/retained';

export interface PersistentVolumeClaim extends KubeObject {
  spec?: Record<string, unknown> & { volumeName?: string };
  status?: { phase?: string };
}

/** The workspace claim's name for the AgentSession named `session` (≤ 61 characters: session names are ≤ 51). */
export function workspaceClaimName(session: string): string {
  return `${session}-workspace`;
}

/** Labels of a session's workspace claim. */
export function workspaceLabels(envName: string, session: string): Record<string, string> {
  return {
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.component]: WORKSPACE_COMPONENT,
    [LABELS.environment]: labelValue(envName),
    [LABELS.session]: session,
  };
}

/** Selector of every workspace claim the operator made (the orphan sweep's list). */
export const WORKSPACE_SELECTOR = `${LABELS.managedBy}=${MANAGED_BY},${LABELS.component}=${WORKSPACE_COMPONENT}`;

/** The session's workspace claim, from the environment's `volumeClaimTemplate`. */
export function desiredWorkspaceClaim(session: AgentSession, workspace: Workspace): PersistentVolumeClaim {
  const name = session.metadata?.name ?? '';
  const template = workspace.volumeClaimTemplate;
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name: workspaceClaimName(name),
      namespace: session.metadata?.namespace ?? '',
      labels: { ...(template.metadata?.labels ?? {}), ...workspaceLabels(session.spec.environmentRef.name, name) },
      ...(template.metadata?.annotations ? { annotations: { ...template.metadata.annotations } } : {}),
      ownerReferences: [ownedBySession(session)],
    },
    spec: { ...(template.spec as Record<string, unknown>) },
  };
}

/**
 * The Pod's volumes and main container with the workspace mounted: the volume named
 * `workspace` (the default template's emptyDir, or a template's own) becomes the claim, and the
 * main container mounts it at `/workspace` (replacing whatever it mounted there).
 */
export function withWorkspace(volumes: readonly Volume[], main: Container, claimName: string): { volumes: Volume[]; main: Container } {
  const mounts = (main.volumeMounts ?? []).filter((m) => m.name !== WORKSPACE_VOLUME && m.mountPath !== WORKSPACE_DIR);
  return {
    volumes: [...volumes.filter((v) => v.name !== WORKSPACE_VOLUME), { name: WORKSPACE_VOLUME, persistentVolumeClaim: { claimName } }],
    main: { ...main, volumeMounts: [...mounts, { name: WORKSPACE_VOLUME, mountPath: WORKSPACE_DIR }] },
  };
}
