/**
 * What the chaos run sees of Kubernetes while it runs, from watches of the run's AgentSessions and
 * Pods (the objects are deleted by their TTL before the end, so the invariants cannot be read from
 * a final list):
 *  - each session's last phase and reason (by session id), and whether its record was deleted;
 *  - when each session's runner (the main container `session`) was seen ending;
 *  - Pods of one work item whose runners ran at the same time (two holders of one work item);
 *  - warm Pods (labelled `agentenv.io/warm-pool` for their whole life): the work items each was bound
 *    to (more than one: a Pod bound twice), when each was first seen bound, and the most unbound
 *    warm Pods seen at once;
 *  - the warm Pod each work item's record named (`spec.warmPod`): an item whose record named one
 *    and that had any other Pod is two Pods for one bound item (the controller never creates a Pod
 *    for a record naming a warm Pod). A Pod taken (relabelled) that no record ever named was spent
 *    unserved — the hand-off's crash point between the take and the record — and is no second Pod.
 */
import { LABELS } from '../../src/crd/meta.ts';
import type { AgentSession } from '../../src/crd/resources.ts';
import type { Pod } from '../../src/sessions/objects/pod-types.ts';
import { labelValue, WARM_POOL_COMPONENT } from '../../src/sessions/record/names.ts';

const MAIN = 'session';

export interface SessionSeen {
  phase: string | undefined;
  reason: string | undefined;
  message: string | undefined;
  deleted: boolean;
}

type Change = 'add' | 'update' | 'delete';

export class Observations {
  /** By session id. */
  readonly sessions = new Map<string, SessionSeen>();
  /** By AgentSession name: each time one of its runners was seen ending (terminated, or its Pod deleted while it ran). */
  readonly #runnerEnds = new Map<string, number[]>();
  readonly #names = new Map<string, string>(); // session id → AgentSession name
  /** Work items (label value) for which two Pods ran their runner at once, with the Pod names. */
  readonly concurrent = new Map<string, string[]>();
  /** Pods ever seen (uid → name). */
  readonly pods = new Map<string, string>();
  readonly #running = new Map<string, Map<string, string>>(); // work label → uid → pod name
  readonly #ended = new Set<string>(); // uid/restartCount of a runner end already counted
  /** Warm Pods ever seen, by uid: their name, the work items they were bound to, when first seen bound. */
  readonly warm = new Map<string, { name: string; works: Set<string>; boundAt: number | undefined }>();
  /** Every Pod uid ever labelled with a work item, by work item. */
  readonly #podsOfWork = new Map<string, Set<string>>();
  /** Unbound warm Pods alive now (uid), and the most seen at once. */
  readonly #unbound = new Set<string>();
  peakUnboundWarm = 0;
  /** The warm Pod (uid) each work item's record named, by work item (label value). */
  readonly #recordedWarm = new Map<string, string>();

  session(type: Change, s: AgentSession): void {
    const id = s.spec?.sessionId;
    if (!id) return;
    const seen = this.sessions.get(id) ?? { phase: undefined, reason: undefined, message: undefined, deleted: false };
    if (s.metadata?.name) this.#names.set(id, s.metadata.name);
    if (s.spec?.warmPod?.uid && s.spec.workId) this.#recordedWarm.set(labelValue(s.spec.workId), s.spec.warmPod.uid);
    if (type === 'delete') seen.deleted = true;
    seen.phase = s.status?.phase ?? seen.phase;
    seen.reason = s.status?.reason ?? seen.reason;
    seen.message = s.status?.message ?? seen.message;
    this.sessions.set(id, seen);
  }

  pod(type: Change, p: Pod): void {
    const uid = p.metadata?.uid ?? '';
    const name = p.metadata?.name ?? '';
    const work = p.metadata?.labels?.[LABELS.workId];
    const session = p.metadata?.labels?.[LABELS.session];
    this.pods.set(uid, name);
    this.#warmPod(type, p);
    if (work) this.#podsOfWork.set(work, (this.#podsOfWork.get(work) ?? new Set()).add(uid));
    const main = p.status?.containerStatuses?.find((c) => c.name === MAIN);
    const runs = type !== 'delete' && main?.state?.running !== undefined;
    if (work) {
      const holders = this.#running.get(work) ?? new Map<string, string>();
      if (runs) holders.set(uid, name);
      else holders.delete(uid);
      this.#running.set(work, holders);
      if (holders.size > 1) this.concurrent.set(work, [...new Set([...(this.concurrent.get(work) ?? []), ...holders.values()])]);
    }
    const ended = main?.state?.terminated !== undefined || (type === 'delete' && main?.state?.running !== undefined);
    const key = `${uid}/${main?.restartCount ?? 0}`;
    if (session && ended && !this.#ended.has(key)) {
      this.#ended.add(key);
      this.#runnerEnds.set(session, [...(this.#runnerEnds.get(session) ?? []), Date.now()]);
    }
  }

  #warmPod(type: Change, p: Pod): void {
    const uid = p.metadata?.uid ?? '';
    const labels = p.metadata?.labels ?? {};
    if (!labels[LABELS.warmPool]) return;
    const seen = this.warm.get(uid) ?? { name: p.metadata?.name ?? '', works: new Set<string>(), boundAt: undefined };
    const work = labels[LABELS.workId];
    if (work) {
      seen.works.add(work);
      seen.boundAt ??= Date.now();
    }
    this.warm.set(uid, seen);
    if (type !== 'delete' && labels[LABELS.component] === WARM_POOL_COMPONENT && !p.metadata?.deletionTimestamp) this.#unbound.add(uid);
    else this.#unbound.delete(uid);
    this.peakUnboundWarm = Math.max(this.peakUnboundWarm, this.#unbound.size);
  }

  /** Names of the warm Pods not bound (nor being deleted) as last seen. */
  unboundWarmPods(): Set<string> {
    return new Set([...this.#unbound].map((uid) => this.warm.get(uid)?.name ?? ''));
  }

  /** Warm Pods bound to more than one work item in their life (name → items). */
  warmBoundTwice(): Array<{ pod: string; works: string[] }> {
    return [...this.warm.values()].filter((w) => w.works.size > 1).map((w) => ({ pod: w.name, works: [...w.works] }));
  }

  /** Work items whose record named a warm Pod and that had another Pod too (item → Pod names). */
  boundItemsWithTwoPods(): Array<{ work: string; pods: string[] }> {
    return [...this.#recordedWarm].flatMap(([work, named]) => {
      const uids = [...(this.#podsOfWork.get(work) ?? new Set<string>())];
      return uids.some((u) => u !== named) ? [{ work, pods: uids.map((u) => this.pods.get(u) ?? u) }] : [];
    });
  }

  /** Warm Pods taken for an item (relabelled) that no record ever named: spent unserved. */
  spentWarmPods(): number {
    const named = new Set(this.#recordedWarm.values());
    return [...this.warm.entries()].filter(([uid, w]) => w.works.size > 0 && !named.has(uid)).length;
  }

  /** When the runners of a session (by session id) were seen ending. */
  runnerEnds(sessionId: string): readonly number[] {
    const name = this.#names.get(sessionId);
    return name ? (this.#runnerEnds.get(name) ?? []) : [];
  }
}
