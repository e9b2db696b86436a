/**
 * Finalizers: one helper, {@link finalizer}, that every reconciler of an object with cleanup runs
 * its pass through (after kube-rs `runtime::finalizer`).
 *
 * Flow:
 * 1. The object is not being deleted and lacks the finalizer: add it and return `added`. Nothing
 *    else happens in this pass; the update itself brings the next one. So an object that ever got
 *    past this step carries the finalizer, and its deletion waits for the cleanup.
 * 2. The object is not being deleted and carries it: `apply` (the ordinary reconcile).
 * 3. The object is being deleted and carries it: `cleanup`. When it reports `done`, the finalizer is
 *    removed (`onReleased` runs) and `released` is returned; when it reports not done (still
 *    draining, blocked), its `retry` is returned and the finalizer stays.
 * 4. The object is being deleted and no longer carries it: `released` (nothing left to do).
 *
 * Guarantees:
 * - the finalizer is removed only after a cleanup reported `done` in this very pass; a cleanup that
 *   throws leaves it in place (the error goes to the controller's error policy);
 * - both patches carry the object's resourceVersion, so a concurrent change makes them fail with
 *   Conflict instead of overwriting someone else's finalizer list;
 * - `apply` never runs on an object that is being deleted, and `cleanup` never on a live one.
 *
 * Assumptions:
 * - `cleanup` is idempotent and correct even if `apply` never ran or ran half-way (a crash can
 *   land between any two lines, and step 1 returns before `apply`);
 * - `object` was read in this pass (level-triggered: its deletionTimestamp and finalizers are current);
 * - nothing else removes this finalizer.
 */
import type { KubeObject, KubeRest, ResourceType } from './rest.ts';
import { isNotFound } from './errors.ts';

export const hasFinalizer = (o: KubeObject, f: string): boolean => (o.metadata?.finalizers ?? []).includes(f);

export async function addFinalizer<T extends KubeObject>(rest: Pick<KubeRest, 'patch'>, t: ResourceType, o: T, f: string): Promise<T> {
  const finalizers = [...(o.metadata?.finalizers ?? []), f];
  return rest.patch<T>(t, o.metadata?.namespace, o.metadata?.name ?? '', { metadata: { finalizers, resourceVersion: o.metadata?.resourceVersion } }, 'merge');
}

export async function removeFinalizer<T extends KubeObject>(rest: Pick<KubeRest, 'patch'>, t: ResourceType, o: T, f: string): Promise<T> {
  const finalizers = (o.metadata?.finalizers ?? []).filter((x) => x !== f);
  return rest.patch<T>(t, o.metadata?.namespace, o.metadata?.name ?? '', { metadata: { finalizers, resourceVersion: o.metadata?.resourceVersion } }, 'merge');
}

/** What a cleanup reports: `done` releases the object; otherwise `retry` is the pass's result. */
export type Cleanup<R> = { readonly done: true } | { readonly done: false; readonly retry: R };

export interface FinalizerSteps<T extends KubeObject, R> {
  /** The finalizer's name, e.g. `agentenv.io/environment`. */
  readonly name: string;
  /** Returned after the finalizer was added (step 1). */
  readonly added: R;
  /** Returned once a deleted object no longer carries the finalizer (steps 3 and 4). */
  readonly released: R;
  /** The ordinary reconcile of a live object that carries the finalizer. */
  apply(object: T): Promise<R>;
  /** Idempotent cleanup of an object being deleted. */
  cleanup(object: T): Promise<Cleanup<R>>;
  /** Runs once the finalizer was removed: forget what was kept for the cleanup. */
  onReleased?(object: T): void;
}

/** Run one pass of `object` through the finalizer flow above. */
export async function finalizer<T extends KubeObject, R>(rest: Pick<KubeRest, 'patch'>, type: ResourceType, object: T, steps: FinalizerSteps<T, R>): Promise<R> {
  const carries = hasFinalizer(object, steps.name);
  if (!object.metadata?.deletionTimestamp) {
    if (!carries) {
      await addFinalizer(rest, type, object, steps.name);
      return steps.added;
    }
    return steps.apply(object);
  }
  if (!carries) return steps.released;
  const cleanup = await steps.cleanup(object);
  if (!cleanup.done) return cleanup.retry;
  try {
    await removeFinalizer(rest, type, object, steps.name);
  } catch (err) {
    // Already gone: the object was released by its last finalizer's removal (ours is gone with it).
    if (!isNotFound(err)) throw err;
  }
  steps.onReleased?.(object);
  return steps.released;
}
