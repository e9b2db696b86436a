/**
 * The AgentSession record and the per-item Secret (built by objects/work-secret.ts): what the dispatcher writes *before* it
 * acknowledges a claimed work item, and the status writes that follow.
 *
 * Rules shared with the session reconciler (`controller/`) — the predicates and status patches are in `status.ts`:
 * - A record **acknowledges** its current work item only when `status.workId === spec.workId` and
 *   `status.acknowledgedAt` is set (`isAcknowledged`). Until then the item is merely *claimed*
 *   (phase Claimed, or no phase yet): no Pod is created for it, and deleting the record must not stop
 *   the item — it was never started here, and the queue hands it out again.
 * - Between the ack and that status write, only the process that acknowledged knows: the session
 *   reconciler creates the Pod and then writes the acknowledgement with it (`controller/acknowledgements.ts`).
 *   A process that dies in between leaves a record the settle pass adopts (`dispatch/settle.ts`).
 * - The dispatcher alone moves `spec.workId` forward (a session returning with a new work item);
 *   every status write is guarded by the resourceVersion it read, so a
 *   late write about an earlier work item can never overwrite the acknowledgement of a newer one.
 */
import { LABELS, SESSION_FINALIZER } from '../../crd/meta.ts';
import { AGENT_ENVIRONMENTS, AGENT_SESSIONS, type AgentEnvironment, type AgentSession } from '../../crd/resources.ts';
import { isAlreadyExists, isConflict, isNotFound, KubeError } from '../../k8s/errors.ts';
import { controllerRef } from '../../k8s/events.ts';
import { CORE, type KubeObject, type KubeRest, type ResourceType } from '../../k8s/rest.ts';
import { writeStatus } from '../../k8s/status.ts';
import { applyStatusPatch, type StatusPatch } from './status.ts';
import { desiredWorkSecret, type SessionSecret } from '../objects/work-secret.ts';
import { labelValue, sessionLabels, sessionName } from './names.ts';

/** The Kubernetes operations the dispatcher needs; {@link kubeRecordStore} is the real one. */
export interface RecordStore {
  getSession(namespace: string, name: string): Promise<AgentSession | undefined>;
  /** Throws a KubeError AlreadyExists when the name is taken. */
  createSession(namespace: string, session: AgentSession): Promise<AgentSession>;
  /** Guarded by `metadata.resourceVersion`: throws Conflict when stale. */
  replaceSession(namespace: string, session: AgentSession): Promise<AgentSession>;
  /** Replace the status subresource, guarded by `metadata.resourceVersion`: throws Conflict when stale, NotFound when gone. */
  replaceSessionStatus(namespace: string, session: AgentSession): Promise<AgentSession>;
  /** Remove the session finalizer (guarded by resourceVersion) and delete the record (guarded by uid). NotFound is success. */
  dropSession(namespace: string, session: AgentSession): Promise<void>;
  /** Create a Secret; AlreadyExists is success. */
  createSecret(namespace: string, secret: SessionSecret): Promise<void>;
  secretExists(namespace: string, name: string): Promise<boolean>;
  /** The uid of the Pod of that name; undefined when there is none. */
  podUid(namespace: string, name: string): Promise<string | undefined>;
}


/** The real store over the Kubernetes API. */
export function kubeRecordStore(rest: KubeRest): RecordStore {
  const read = async (t: typeof CORE.pods, namespace: string, name: string): Promise<KubeObject | undefined> => {
    try {
      return await rest.get(t, namespace, name);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  };
  return {
    async getSession(namespace, name) {
      try {
        return await rest.get<AgentSession>(AGENT_SESSIONS, namespace, name);
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    createSession: (namespace, session) => rest.create(AGENT_SESSIONS, namespace, session),
    replaceSession: (namespace, session) => rest.replace(AGENT_SESSIONS, namespace, session),
    replaceSessionStatus: (namespace, session) => rest.replace(AGENT_SESSIONS, namespace, session, 'status'),
    async dropSession(namespace, session) {
      const name = session.metadata?.name ?? '';
      try {
        const finalizers = (session.metadata?.finalizers ?? []).filter((f) => f !== SESSION_FINALIZER);
        if (finalizers.length !== (session.metadata?.finalizers ?? []).length) {
          await rest.patch(AGENT_SESSIONS, namespace, name, { metadata: { finalizers, resourceVersion: session.metadata?.resourceVersion } }, 'merge');
        }
        await rest.delete(AGENT_SESSIONS, namespace, name, { propagationPolicy: 'Background', ...(session.metadata?.uid ? { preconditions: { uid: session.metadata.uid } } : {}) });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    },
    async createSecret(namespace, secret) {
      try {
        await rest.create(CORE.secrets, namespace, secret);
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
      }
    },
    secretExists: async (namespace, name) => (await read(CORE.secrets, namespace, name)) !== undefined,
    podUid: async (namespace, name) => (await read(CORE.pods, namespace, name))?.metadata?.uid,
  };
}

/** What was claimed: the work item and who claimed it when. */
export interface Claim {
  readonly sessionId: string;
  readonly workId: string;
  readonly environmentId: string;
  readonly workerId: string;
  readonly claimedAt: Date;
  /** The poll reply carried a per-item secret (so the record gets a per-item Secret). */
  readonly workSecret: boolean;
  /** The warm Pod taken for the item (late binding); only a newly created record names it. */
  readonly warmPod?: { readonly name: string; readonly uid: string };
}

/** Why a claim could not be recorded; the item is then not acknowledged and the queue reclaims it. */
export class NotRecordableError extends Error {
  readonly reason: 'Terminating' | 'NameCollision' | 'ConflictRetriesExhausted';
  constructor(reason: NotRecordableError['reason'], message: string) {
    super(message);
    this.name = 'NotRecordableError';
    this.reason = reason;
  }
}

export type RecordOutcome = 'created' | 'existing' | 'movedForward';

/** The record a claim creates: spec, finalizer, owner reference and labels. */
export function newRecord(env: AgentEnvironment, claim: Claim): AgentSession {
  const name = sessionName(env.metadata?.name ?? '', claim.sessionId);
  return {
    metadata: {
      name,
      namespace: env.metadata?.namespace ?? '',
      labels: { ...sessionLabels(env.metadata?.name ?? '', name), [LABELS.sessionId]: labelValue(claim.sessionId) },
      finalizers: [SESSION_FINALIZER],
      ownerReferences: [controllerRef(env, AGENT_ENVIRONMENTS)],
    },
    spec: {
      environmentRef: { name: env.metadata?.name ?? '' },
      environmentId: claim.environmentId,
      sessionId: claim.sessionId,
      workId: claim.workId,
      workerId: claim.workerId.slice(0, 256),
      claimedAt: claim.claimedAt.toISOString(),
      workSecret: claim.workSecret,
      ...(claim.warmPod ? { warmPod: { ...claim.warmPod } } : {}),
    },
  };
}

/**
 * Step 1 of a hand-off: create the AgentSession, or find it by its deterministic name.
 *
 * 1. Create it with the whole spec (the claim is recorded atomically). Created → done.
 * 2. AlreadyExists → read it. Being deleted → not recordable (the item is reclaimed and comes back
 *    once the old record is gone). Another session under the same name → not recordable.
 * 3. Same work id → a duplicate delivery (or a restart): converge on it.
 * 4. An earlier work item of the same session → move `spec.workId` forward (guarded by the
 *    resourceVersion read in 2; a Conflict re-reads and tries again). The API keeps at most one live
 *    item per session, so a new item means the previous one is over.
 */
export async function recordClaim(store: RecordStore, env: AgentEnvironment, claim: Claim): Promise<{ session: AgentSession; outcome: RecordOutcome }> {
  const desired = newRecord(env, claim);
  const namespace = desired.metadata?.namespace ?? '';
  const name = desired.metadata?.name ?? '';
  for (let attempt = 0; attempt < 4; attempt++) {
    try {
      return { session: await store.createSession(namespace, desired), outcome: 'created' };
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
    const existing = await store.getSession(namespace, name);
    if (!existing) continue; // deleted in between: create again
    if (existing.metadata?.deletionTimestamp) throw new NotRecordableError('Terminating', `AgentSession ${name} is being deleted`);
    if (existing.spec.sessionId !== claim.sessionId || existing.spec.environmentRef.name !== desired.spec.environmentRef.name) {
      throw new NotRecordableError('NameCollision', `AgentSession ${name} belongs to session ${existing.spec.sessionId}`);
    }
    if (existing.spec.workId === claim.workId) return { session: existing, outcome: 'existing' };
    try {
      // A moved-forward record is served cold (its session may have a workspace a warm Pod does
      // not mount): the caller spends the warm Pod it took.
      const { warmPod: _earlier, ...spec } = existing.spec;
      const moved = await store.replaceSession(namespace, { ...existing, spec: { ...spec, workId: claim.workId, workerId: desired.spec.workerId, claimedAt: desired.spec.claimedAt, workSecret: claim.workSecret } });
      return { session: moved, outcome: 'movedForward' };
    } catch (err) {
      if (!isConflict(err) && !isNotFound(err)) throw err;
    }
  }
  throw new NotRecordableError('ConflictRetriesExhausted', `AgentSession ${name} kept changing while recording work ${claim.workId}`);
}

/**
 * Step 2, only when the poll carried a per-item secret: create the per-item Secret
 * (objects/work-secret.ts). Written before the ack because the poll reply is the only copy: an
 * item acknowledged without it could not be run. AlreadyExists is success (deterministic name).
 */
export async function ensureWorkSecret(store: RecordStore, session: AgentSession, material: { token: string; workSecret: string }): Promise<string> {
  const secret = desiredWorkSecret(session, material);
  await store.createSecret(secret.metadata?.namespace ?? '', secret);
  return secret.metadata?.name ?? '';
}

/**
 * Write a status patch onto the record's status through the one status writer (k8s/status.ts
 * `writeStatus`): the status subresource is replaced, guarded by the resourceVersion of `session`;
 * on Conflict the record is read again and the patch applied to its fresh status while
 * `stillApplies` holds (so a record that moved on is left alone). Gone → undefined. `session` is
 * the record as read (its status is what the patch applies to).
 */
export function writeSessionStatus(
  store: RecordStore,
  session: AgentSession,
  patch: StatusPatch,
  stillApplies: (fresh: AgentSession) => boolean = (fresh) => fresh.spec.workId === session.spec.workId,
): Promise<AgentSession | undefined> {
  return writeStatus(statusOf(store), AGENT_SESSIONS, session, (current) => applyStatusPatch(current.status ?? {}, patch), { stillApplies: (fresh) => stillApplies(fresh) });
}

/** The record store as the status writer reads and replaces an AgentSession (a record missing from the store is NotFound). */
function statusOf(store: RecordStore): Pick<KubeRest, 'get' | 'replace'> {
  return {
    async get<T extends KubeObject>(_type: ResourceType, namespace: string | undefined, name: string): Promise<T> {
      const found = await store.getSession(namespace ?? '', name);
      if (!found) throw new KubeError('NotFound', `AgentSession ${namespace ?? ''}/${name} not found`, { status: 404 });
      return found as unknown as T;
    },
    replace: async <T extends KubeObject>(_type: ResourceType, namespace: string | undefined, object: T): Promise<T> =>
      (await store.replaceSessionStatus(namespace ?? '', object as unknown as AgentSession)) as unknown as T,
  };
}

