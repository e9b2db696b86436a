/**
 * An in-memory {@link RecordStore} for API-tier tests of the dispatcher: the Kubernetes semantics
 * it relies on (AlreadyExists, resourceVersion conflicts, NotFound), with the informer's
 * capacity count fed from every change. What Kubernetes adds (owner references, finalizers, the
 * informer) is covered by the integration tier.
 */
import type { AgentEnvironment, AgentSession } from '../../src/crd/resources.ts';
import { KubeError } from '../../src/k8s/errors.ts';
import { RecordedSessions } from '../../src/sessions/dispatch/capacity.ts';
import type { SessionSecret } from '../../src/sessions/objects/work-secret.ts';
import type { RecordStore } from '../../src/sessions/record/record.ts';
import type { StatusPatch } from '../../src/sessions/record/status.ts';

export class MemoryStore implements RecordStore {
  readonly sessions = new Map<string, AgentSession>();
  readonly secrets = new Map<string, SessionSecret>();
  /** Pods by `namespace/name`: their uid. */
  readonly pods = new Map<string, string>();
  readonly recorded = new RecordedSessions();
  failCreates = false;
  #rv = 0;
  #uid = 0;

  async getSession(ns: string, name: string) {
    return clone(this.sessions.get(`${ns}/${name}`));
  }
  async createSession(ns: string, s: AgentSession) {
    if (this.failCreates) throw new KubeError('Unavailable', 'apiserver down');
    const key = `${ns}/${s.metadata?.name}`;
    if (this.sessions.has(key)) throw new KubeError('AlreadyExists', `${key} exists`, { status: 409 });
    return this.#put(key, { ...s, metadata: { ...s.metadata, uid: `uid-${++this.#uid}` } }, 'add');
  }
  async replaceSession(ns: string, s: AgentSession) {
    const key = `${ns}/${s.metadata?.name}`;
    const cur = this.sessions.get(key);
    if (!cur) throw new KubeError('NotFound', key, { status: 404 });
    if (cur.metadata?.resourceVersion !== s.metadata?.resourceVersion) throw new KubeError('Conflict', key, { status: 409 });
    return this.#put(key, { ...s, status: cur.status }, 'update');
  }
  async replaceSessionStatus(ns: string, s: AgentSession) {
    const key = `${ns}/${s.metadata?.name}`;
    const cur = this.sessions.get(key);
    if (!cur) throw new KubeError('NotFound', key, { status: 404 });
    if (cur.metadata?.resourceVersion !== s.metadata?.resourceVersion) throw new KubeError('Conflict', key, { status: 409 });
    return this.#put(key, { ...cur, status: clone(s.status) }, 'update');
  }
  /** A status change by someone else (a merge patch; `rv` guards it when given). */
  async patchSessionStatus(ns: string, name: string, rv: string | undefined, patch: StatusPatch) {
    const key = `${ns}/${name}`;
    const cur = this.sessions.get(key);
    if (!cur) throw new KubeError('NotFound', key, { status: 404 });
    if (rv && cur.metadata?.resourceVersion !== rv) throw new KubeError('Conflict', key, { status: 409 });
    const status: Record<string, unknown> = { ...cur.status };
    for (const [k, v] of Object.entries(patch)) if (v === null) delete status[k];
    else status[k] = v;
    return this.#put(key, { ...cur, status }, 'update');
  }
  async dropSession(ns: string, s: AgentSession) {
    const key = `${ns}/${s.metadata?.name}`;
    const cur = this.sessions.get(key);
    if (!cur) return;
    if (s.metadata?.resourceVersion && cur.metadata?.resourceVersion !== s.metadata.resourceVersion) throw new KubeError('Conflict', key, { status: 409 });
    this.sessions.delete(key);
    for (const [k, secret] of this.secrets) if (secret.metadata?.ownerReferences?.[0]?.uid === cur.metadata?.uid) this.secrets.delete(k);
    this.recorded.apply({ type: 'delete', object: cur });
  }
  async createSecret(ns: string, secret: SessionSecret) {
    const key = `${ns}/${secret.metadata?.name}`;
    if (!this.secrets.has(key)) this.secrets.set(key, clone(secret));
  }
  async secretExists(ns: string, name: string) {
    return this.secrets.has(`${ns}/${name}`);
  }
  async podUid(ns: string, name: string) {
    return this.pods.get(`${ns}/${name}`);
  }
  list(): AgentSession[] {
    return [...this.sessions.values()].map((s) => clone(s));
  }
  #put(key: string, s: AgentSession, type: 'add' | 'update'): AgentSession {
    const old = this.sessions.get(key);
    const next = clone({ ...s, metadata: { ...s.metadata, resourceVersion: String(++this.#rv) } });
    this.sessions.set(key, next);
    this.recorded.apply(type === 'add' || !old ? { type: 'add', object: next } : { type: 'update', object: next, old });
    return clone(next);
  }
}

const clone = <T>(x: T): T => (x === undefined ? x : structuredClone(x));

/**
 * The AgentEnvironment `ns/prod` (uid `env-uid`) the API-tier dispatcher tests record claims for:
 * self-hosted with the CRD's defaults, bound to `environmentId`, with `status` added.
 */
export function prodEnvironment(environmentId: string, status: Partial<NonNullable<AgentEnvironment['status']>> = {}): AgentEnvironment {
  return {
    apiVersion: 'agentenv.io/v1alpha1',
    kind: 'AgentEnvironment',
    metadata: { name: 'prod', namespace: 'ns', uid: 'env-uid' },
    spec: { selfHosted: { sessionTemplate: {}, maxSessions: 10, maxPollers: 4, sessionTTLSecondsAfterFinished: 300, stopGracePeriodSeconds: 30, startDeadlineSeconds: 300, podSecurity: 'Restricted' }, managementPolicy: 'Full', deletionPolicy: 'Archive' },
    status: { environmentId, ...status },
  } as AgentEnvironment;
}
