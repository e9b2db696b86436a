/**
 * What the warm pool's pass does (pure): which warm Pods to create and delete, and the status it
 * reports, from the environment's live warm Pods and the size the sizing chose.
 *
 * Rules, each where it is enforced below:
 * 1. a Pod counts in the pool while it is unbound (`agentenv.io/component=warm-pool`), not being
 *    deleted, not finished and not being bound by a hand-off in flight; a bound Pod is the
 *    session's (relabelled) and never comes back to the pool: one Pod serves at most one item;
 * 2. a finished unbound Pod (its runner or sidecar ended before any work) is deleted and replaced;
 * 3. short of the size: create at the lowest ordinals no live Pod holds (bound and terminating
 *    ones included: a name is taken until its Pod is gone), so a retried pass converges on the same
 *    names (AlreadyExists is success);
 * 4. above the size: delete the surplus, not-ready Pods first, then the highest ordinals; a Pod
 *    being bound is never deleted;
 * 5. a taken Pod (relabelled a session Pod) that no record names, {@link ORPHAN_GRACE_MS} after it
 *    was taken, is an orphan — the operator died between the take and the record — and is deleted:
 *    the item it was taken for was never recorded, so never acknowledged, and the queue hands it out
 *    again.
 */
import { LABELS } from '../../crd/meta.ts';
import type { Pod } from '../objects/pod-types.ts';
import { WARM_POOL_COMPONENT, warmPodName } from '../record/names.ts';

/** When a warm Pod was taken for an item (rule 5). */
export const BOUND_AT_ANNOTATION = 'agentenv.io/bound-at';

export interface PoolFacts {
  readonly envName: string;
  /** The size the sizing chose (sizing.ts). */
  readonly size: number;
  /** Every live Pod labelled `agentenv.io/warm-pool=<environment>`: unbound, bound or terminating. */
  readonly pods: readonly Pod[];
  /** Names of warm Pods a hand-off is binding right now (not to be counted or deleted). */
  readonly binding: ReadonlySet<string>;
  /** The uid of the warm Pod the AgentSession `name` names, if the record exists and names one (rule 5). */
  readonly recordedPod?: (sessionName: string) => string | undefined;
  /** ms, for rule 5. */
  readonly now?: number;
}

/** How long a taken Pod may wait for its record before it is an orphan: far beyond a hand-off's record write. */
export const ORPHAN_GRACE_MS = 60_000;

export interface PoolPlan {
  /** Ordinals of the warm Pods to create. */
  readonly create: readonly number[];
  /** Warm Pods to delete (each with its uid, for a precondition). */
  readonly remove: readonly Pod[];
  /** Unbound warm Pods after the plan, and how many of them are ready. */
  readonly replicas: number;
  readonly ready: number;
}

const nameOf = (p: Pod): string => p.metadata?.name ?? '';
const finished = (p: Pod): boolean => p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed';

/** Whether a Pod's Ready condition is True: its sidecar is waiting for an assignment and its runner runs. */
export function isReady(p: Pod): boolean {
  return !!p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
}

/** Whether a Pod is an unbound warm Pod (rule 1's label). */
export function isUnbound(p: Pod): boolean {
  return p.metadata?.labels?.[LABELS.component] === WARM_POOL_COMPONENT;
}

/** Ordinal of a warm Pod from its name, or undefined for a Pod the pool did not name. */
function ordinalOf(envName: string, name: string): number | undefined {
  const prefix = warmPodName(envName, 0).slice(0, -1);
  if (!name.startsWith(prefix)) return undefined;
  const n = Number(name.slice(prefix.length));
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

export function planPool(facts: PoolFacts): PoolPlan {
  const { envName, size, binding } = facts;
  const alive = facts.pods.filter((p) => !p.metadata?.deletionTimestamp);
  const unbound = alive.filter((p) => isUnbound(p) && !binding.has(nameOf(p)));
  // Rule 2.
  const dead = unbound.filter(finished);
  const pool = unbound.filter((p) => !finished(p));
  // Rule 4: not ready first, then the highest ordinal.
  const byKeep = [...pool].sort((a, b) => Number(isReady(b)) - Number(isReady(a)) || (ordinalOf(envName, nameOf(a)) ?? 0) - (ordinalOf(envName, nameOf(b)) ?? 0));
  const kept = byKeep.slice(0, size);
  const surplus = byKeep.slice(size);
  // Rule 3: every live name is taken, the deleted ones until they are gone.
  const taken = new Set(facts.pods.map((p) => ordinalOf(envName, nameOf(p))).filter((n): n is number => n !== undefined));
  const create: number[] = [];
  for (let n = 0; create.length < size - kept.length; n++) if (!taken.has(n)) create.push(n);
  // Rule 5.
  const orphans = alive.filter((p) => {
    if (isUnbound(p) || !facts.recordedPod || facts.now === undefined) return false;
    const boundAt = Date.parse(p.metadata?.annotations?.[BOUND_AT_ANNOTATION] ?? '');
    if (Number.isNaN(boundAt) || facts.now - boundAt < ORPHAN_GRACE_MS) return false;
    return facts.recordedPod(p.metadata?.labels?.[LABELS.session] ?? '') !== p.metadata?.uid;
  });
  return { create, remove: [...dead, ...surplus, ...orphans], replicas: kept.length + create.length, ready: kept.filter(isReady).length };
}
