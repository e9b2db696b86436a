/**
 * The environment's session NetworkPolicy, applied to match its spec (objects/network-policy.ts
 * builds it). Level-triggered: the AgentEnvironment's keyed pass asks for it every time
 * (SessionsHook.reconcileChildren), so a policy deleted or edited by hand comes back on the next pass.
 */
import { LABELS } from '../../crd/meta.ts';
import type { AgentEnvironment } from '../../crd/resources.ts';
import { jsonEqual } from '../../k8s/conditions.ts';
import { isNotFound } from '../../k8s/errors.ts';
import { CORE, type KubeRest } from '../../k8s/rest.ts';
import { desiredNetworkPolicy, networkPolicyName, type NetworkPolicy } from '../objects/network-policy.ts';
import { labelValue } from '../record/names.ts';

/** Create, update or delete the environment's NetworkPolicy to match its spec (no write when it matches; one we did not label is left alone). */
export async function applyNetworkPolicy(rest: KubeRest, env: AgentEnvironment): Promise<void> {
  const namespace = env.metadata?.namespace ?? '';
  const name = networkPolicyName(env.metadata?.name ?? '');
  const desired = desiredNetworkPolicy(env);
  let current: NetworkPolicy | undefined;
  try {
    current = await rest.get<NetworkPolicy>(CORE.networkPolicies, namespace, name);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  if (!desired) {
    const ours = current?.metadata?.labels?.[LABELS.environment] === labelValue(env.metadata?.name ?? '');
    if (current && ours) await rest.delete(CORE.networkPolicies, namespace, name).catch((err: unknown) => { if (!isNotFound(err)) throw err; });
    return;
  }
  if (!current) {
    await rest.create(CORE.networkPolicies, namespace, desired);
    return;
  }
  // The apiserver drops an empty `ingress` list: compare with it restored.
  if (jsonEqual({ ...current.spec, ingress: current.spec.ingress ?? [] }, desired.spec) && jsonEqual(current.metadata?.labels ?? {}, desired.metadata?.labels ?? {})) return;
  await rest.replace(CORE.networkPolicies, namespace, { ...desired, metadata: { ...desired.metadata, resourceVersion: current.metadata?.resourceVersion ?? '' } });
}
