/**
 * Names shared by every part of the operator: API group, kinds, finalizers, labels, annotations,
 * condition types and reasons. Changing one of these is a breaking change for installed clusters.
 */
export const GROUP = 'agentenv.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export const AGENT_ENVIRONMENT = {
  kind: 'AgentEnvironment',
  plural: 'agentenvironments',
  singular: 'agentenvironment',
  shortNames: ['aenv'],
  listKind: 'AgentEnvironmentList',
} as const;

export const AGENT_SESSION = {
  kind: 'AgentSession',
  plural: 'agentsessions',
  singular: 'agentsession',
  shortNames: ['asess'],
  listKind: 'AgentSessionList',
} as const;

/** Finalizer on AgentEnvironments: the remote environment's deletion policy has not been applied yet. */
export const ENVIRONMENT_FINALIZER = `${GROUP}/environment`;
/** Finalizer on AgentSessions: the work item has not been stopped yet. */
export const SESSION_FINALIZER = `${GROUP}/session`;

/**
 * Keys the operator writes into the *remote* environment's metadata. The uid key is the create
 * fence: before creating an environment the operator looks for one carrying its resource's uid.
 * Users may not set keys with the `agentenv.io/` prefix (refused at admission).
 */
export const REMOTE_METADATA = {
  uid: `${GROUP}/uid`,
  owner: `${GROUP}/owner`,
} as const;
export const RESERVED_METADATA_PREFIX = `${GROUP}/`;
/** How many of the API's metadata keys the operator reserves for itself. */
export const RESERVED_METADATA_KEYS = Object.keys(REMOTE_METADATA).length;

export const LABELS = {
  managedBy: 'app.kubernetes.io/managed-by',
  environment: `${GROUP}/environment`,
  session: `${GROUP}/session`,
  sessionId: `${GROUP}/session-id`,
  workId: `${GROUP}/work-id`,
  component: `${GROUP}/component`,
  /**
   * On every Pod started for an environment's warm pool, bound or not, for its whole life: the
   * environment. The pool names its Pods among these (a bound Pod keeps its name).
   */
  warmPool: `${GROUP}/warm-pool`,
} as const;
export const MANAGED_BY = 'agentenv';

export const CONDITIONS = {
  /** The remote environment exists, is not archived and (self-hosted) dispatch can run. */
  ready: 'Ready',
  /** The last reconcile brought the remote environment in line with the spec (or observed it, under ObserveOnly). */
  synced: 'Synced',
  /** Self-hosted: the dispatcher is polling the work queue. */
  dispatching: 'Dispatching',
} as const;

export const DELETION_POLICIES = ['Delete', 'Archive', 'Orphan'] as const;
export type DeletionPolicy = (typeof DELETION_POLICIES)[number];
export const DEFAULT_DELETION_POLICY: DeletionPolicy = 'Archive';

export const MANAGEMENT_POLICIES = ['Full', 'ObserveOnly'] as const;
export type ManagementPolicy = (typeof MANAGEMENT_POLICIES)[number];
