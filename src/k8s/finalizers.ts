/**
 * Finalizer helpers.
 *
 * Flow: add the finalizer and return (the update triggers the next reconcile); on deletion run the
 * cleanup, which must be idempotent and correct even if nothing was ever created; remove the
 * finalizer only after the cleanup succeeded.
 * Guarantees: both patches carry the object's resourceVersion, so a concurrent change makes them
 * fail with Conflict instead of overwriting someone else's finalizer list.
 */
import type { KubeObject, KubeRest, ResourceType } from './rest.ts';

export const hasFinalizer = (o: KubeObject, f: string): boolean => (o.metadata?.finalizers ?? []).includes(f);

export async function addFinalizer<T extends KubeObject>(rest: KubeRest, t: ResourceType, o: T, f: string): Promise<T> {
  const finalizers = [...(o.metadata?.finalizers ?? []), f];
  return rest.patch<T>(t, o.metadata?.namespace, o.metadata?.name ?? '', { metadata: { finalizers, resourceVersion: o.metadata?.resourceVersion } }, 'merge');
}

export async function removeFinalizer<T extends KubeObject>(rest: KubeRest, t: ResourceType, o: T, f: string): Promise<T> {
  const finalizers = (o.metadata?.finalizers ?? []).filter((x) => x !== f);
  return rest.patch<T>(t, o.metadata?.namespace, o.metadata?.name ?? '', { metadata: { finalizers, resourceVersion: o.metadata?.resourceVersion } }, 'merge');
}
