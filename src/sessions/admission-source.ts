/**
 * Backpressure's view of the cluster (dispatch/admission.ts `AdmissionSource`), wired from the
 * operator's caches: the ResourceQuotas of the watched namespaces (an informer of their own), the
 * session records and Pods (the session controller's informers), the next session Pod as the
 * session reconciler would build it, and a server-side dry-run create of it.
 */
import { parseEnvironmentSpec } from '../crd/agent-environment.ts';
import type { AgentEnvironment, AgentSession } from '../crd/resources.ts';
import { isForbidden, isInvalid, KubeError } from '../k8s/errors.ts';
import { Informer } from '../k8s/informer.ts';
import { CORE, type KubeObject, type KubeRest } from '../k8s/rest.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { AdmissionSource } from './dispatch/admission.ts';
import type { Pod } from './objects/pod-types.ts';
import { desiredPod, type PodInputs } from './objects/pod.ts';
import { classifyPodRefusal } from './objects/pod-refusal.ts';
import type { ResourceQuota } from './objects/quota.ts';
import { podName, sessionName } from './record/names.ts';
import { holdsCapacity } from './record/status.ts';

/** The session id of the placeholder the probe Pod is built for (never a real session: ids start with `sesn_`). */
const PROBE_SESSION = 'admission-probe';

/** One ResourceQuota informer per watched namespace (all namespaces when none is given). */
export function quotaInformers(rest: KubeRest, namespaces: readonly string[], logger: Logger): Informer<ResourceQuota & KubeObject>[] {
  return (namespaces.length ? namespaces : [undefined]).map(
    (namespace) => new Informer<ResourceQuota & KubeObject>(rest, CORE.resourceQuotas, { ...(namespace ? { namespace } : {}), logger: logger.child({ component: 'informer', resource: 'resourcequotas', namespace }) }),
  );
}

export interface AdmissionSourceDeps {
  readonly rest: Pick<KubeRest, 'create'>;
  readonly quotas: readonly Informer<ResourceQuota & KubeObject>[];
  readonly sessions: readonly Informer<AgentSession>[];
  readonly pods: readonly Informer<Pod>[];
  /** What every session Pod is built with (the session reconciler's settings). */
  readonly podSettings: Omit<PodInputs, 'session' | 'env'>;
}

export function admissionSource(deps: AdmissionSourceDeps): AdmissionSource {
  const podCached = (namespace: string, name: string): boolean => deps.pods.some((i) => i.get(namespace, name) !== undefined);
  return {
    quotas: (namespace) => deps.quotas.flatMap((i) => i.list((q) => q.metadata?.namespace === namespace)),
    podsPending: (namespace) =>
      deps.sessions
        .flatMap((i) => i.list((s) => s.metadata?.namespace === namespace && holdsCapacity(s)))
        // Its Pod not created yet: not seen before (a Pod seen and gone no longer counts in the
        // quota either; the cheap test first), and not in the cache.
        .filter((s) => !(s.status?.workId === s.spec.workId && s.status.podName) && !podCached(namespace, podName(s.metadata?.name ?? '', s.spec.workId))).length,
    nextPod: (env) => nextSessionPod(env, deps.podSettings),
    async dryRun(pod) {
      const namespace = pod.metadata?.namespace ?? '';
      try {
        await deps.rest.create<Pod>(CORE.pods, namespace, pod, { dryRun: true });
        return undefined;
      } catch (err) {
        // A refusal that is not about capacity (Pod Security, RBAC) is not backpressure's: the
        // hold lifts and the session reconciler reports such refusals as before.
        if ((isForbidden(err) || isInvalid(err)) && err instanceof KubeError) return classifyPodRefusal({ status: err.status, message: err.message }, namespace);
        throw err;
      }
    },
  };
}

/**
 * The environment's next session Pod, built for a placeholder session exactly as the session
 * reconciler builds a real one (same template, sidecar, policy), without an owner: nothing is
 * created from it, it is judged (quota) or dry-run only.
 */
export function nextSessionPod(env: AgentEnvironment, settings: Omit<PodInputs, 'session' | 'env'>): Pod | undefined {
  const spec = parseEnvironmentSpec(env.spec);
  if (!spec.success) return undefined;
  const envName = env.metadata?.name ?? '';
  const namespace = env.metadata?.namespace ?? '';
  const session: AgentSession = {
    apiVersion: 'agentenv.io/v1alpha1',
    kind: 'AgentSession',
    metadata: { name: sessionName(envName, PROBE_SESSION), namespace, uid: PROBE_SESSION },
    spec: { environmentRef: { name: envName }, environmentId: env.status?.environmentId ?? '', sessionId: PROBE_SESSION, workId: PROBE_SESSION, workerId: '', claimedAt: new Date(0).toISOString() },
  };
  const build = desiredPod({ ...settings, session, env: { ...env, spec: spec.data } });
  if (!build.ok) return undefined;
  const { ownerReferences: _owner, ...metadata } = build.pod.metadata ?? {};
  return { ...build.pod, metadata };
}
