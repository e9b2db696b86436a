/**
 * The process kubelet is also the scheduler of its one node: a Pending Pod without `nodeName` is
 * bound to it when its nodeSelector, required node affinity and tolerations allow and its cpu and
 * memory requests fit the node's allocatable (pure part: {@link fitsNode}); otherwise the Pod stays Pending with PodScheduled=False, reason Unschedulable,
 * as kube-scheduler reports it.
 */
import type { KubeRest } from '../../k8s/rest.ts';
import { resource } from '../../k8s/rest.ts';
import { isSidecar, type Container, type Node, type NodeSelectorRequirement, type Pod, type Toleration } from './pod-types.ts';

export type Fit = { readonly fits: true } | { readonly fits: false; readonly message: string };

/** Pods for kube-scheduler; a Pod naming another scheduler is left to it. */
export const isOurs = (pod: Pod): boolean => !pod.spec.schedulerName || pod.spec.schedulerName === 'default-scheduler';

function matchesRequirement(labels: Readonly<Record<string, string>>, r: NodeSelectorRequirement): boolean {
  const value = labels[r.key];
  switch (r.operator) {
    case 'In':
      return value !== undefined && (r.values ?? []).includes(value);
    case 'NotIn':
      return value === undefined || !(r.values ?? []).includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    case 'Gt':
      return value !== undefined && Number(value) > Number(r.values?.[0]);
    case 'Lt':
      return value !== undefined && Number(value) < Number(r.values?.[0]);
  }
}

function tolerates(tolerations: readonly Toleration[], taint: { key: string; value?: string; effect: string }): boolean {
  return tolerations.some(
    (t) =>
      (!t.effect || t.effect === taint.effect) &&
      (t.operator === 'Exists' ? !t.key || t.key === taint.key : t.key === taint.key && (t.value ?? '') === (taint.value ?? '')),
  );
}

export function fitsNode(pod: Pod, node: Node): Fit {
  const labels = node.metadata?.labels ?? {};
  const why = (reason: string): Fit => ({ fits: false, message: `0/1 nodes are available: 1 ${reason}. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.` });
  if (node.spec?.unschedulable) return why('node(s) were unschedulable');
  const selectorOk = Object.entries(pod.spec.nodeSelector ?? {}).every(([k, v]) => labels[k] === v);
  const terms = pod.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  const affinityOk = !terms || terms.some((t) => (t.matchExpressions ?? []).every((r) => matchesRequirement(labels, r)));
  if (!selectorOk || !affinityOk) return why("node(s) didn't match Pod's node affinity/selector");
  const blocking = (node.spec?.taints ?? []).filter((t) => t.effect === 'NoSchedule' || t.effect === 'NoExecute');
  const untolerated = blocking.find((t) => !tolerates(pod.spec.tolerations ?? [], t));
  if (untolerated) return why(`node(s) had untolerated taint {${untolerated.key}: ${untolerated.value ?? ''}}`);
  const allocatable = (node.status?.['allocatable'] ?? {}) as Record<string, string>;
  const insufficient = (['cpu', 'memory'] as const).filter((r) => allocatable[r] !== undefined && podRequest(pod, r) > quantity(allocatable[r]));
  if (insufficient.length > 0) return why(insufficient.map((r) => `Insufficient ${r}`).join(', '));
  return { fits: true };
}

/**
 * What the Pod asks of a node for `resource`, as kube-scheduler counts it: the app containers and
 * the sidecars together, or the largest ordinary init container beside the sidecars, whichever is
 * more. (Only whether the Pod could ever fit is checked: this node does not account for other Pods.)
 */
function podRequest(pod: Pod, resource: 'cpu' | 'memory'): number {
  const request = (c: Container): number => quantity(c.resources?.requests?.[resource] ?? c.resources?.limits?.[resource] ?? '0');
  const sidecars = (pod.spec.initContainers ?? []).filter(isSidecar).reduce((sum, c) => sum + request(c), 0);
  const app = pod.spec.containers.reduce((sum, c) => sum + request(c), 0);
  const init = Math.max(0, ...(pod.spec.initContainers ?? []).filter((c) => !isSidecar(c)).map(request));
  return Math.max(app, init) + sidecars;
}

const SUFFIXES: Readonly<Record<string, number>> = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };

/** A Kubernetes quantity (`500m`, `2`, `1.5Gi`, `128974848`) as a number; NaN when it is not one. */
export function quantity(q: string): number {
  const m = /^([0-9.]+)([a-zA-Z]*)$/.exec(q.trim());
  if (!m) return Number.NaN;
  const factor = m[2] === '' ? 1 : SUFFIXES[m[2]!];
  return factor === undefined ? Number.NaN : Number(m[1]) * factor;
}

/** POST pods/<name>/binding, as kube-scheduler does (the apiserver sets nodeName and PodScheduled=True). */
export async function bindPod(rest: KubeRest, pod: Pod, nodeName: string): Promise<void> {
  const m = pod.metadata ?? {};
  const bindings = resource('', 'v1', `pods/${encodeURIComponent(m.name ?? '')}/binding`, 'Binding');
  await rest.create(bindings, m.namespace, { metadata: { name: m.name, namespace: m.namespace, uid: m.uid }, target: { apiVersion: 'v1', kind: 'Node', name: nodeName } } as never);
}

/** Records PodScheduled=False/Unschedulable unless the Pod already says exactly that. */
export async function markUnschedulable(rest: KubeRest, pod: Pod, message: string): Promise<void> {
  const current = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (current?.status === 'False' && current.reason === 'Unschedulable' && current.message === message) return;
  const m = pod.metadata ?? {};
  const condition = { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message, lastProbeTime: null, lastTransitionTime: new Date().toISOString() };
  await rest.patch(resource('', 'v1', 'pods', 'Pod'), m.namespace, m.name ?? '', { status: { phase: 'Pending', conditions: [condition] } }, 'strategic', { subresource: 'status' });
}
