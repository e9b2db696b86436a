/**
 * What the local cluster holds before anyone uses it: the operator's namespace, ServiceAccount and
 * least-privilege RBAC (the Helm chart's rules file), the process kubelet's RBAC, the CRDs, and a
 * token for the operator's identity.
 *
 * Every write is a forced server-side apply, so bootstrapping an already bootstrapped cluster is a
 * no-op (`npm run k8s:up` twice, or a restarted cluster on the same state directory).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { CORE, resource, type KubeObject, type KubeRest } from '../k8s/rest.ts';
import { apiRequest, type Pki } from './controlplane-pki.ts';
import { waitUntilReady, type ManagedProcess } from './controlplane-process.ts';

export const OPERATOR_NAMESPACE = 'agentenv-system';
export const OPERATOR_SERVICE_ACCOUNT = 'agentenv-operator';
export const OPERATOR_CLUSTER_ROLE = 'agentenv-operator';
/** The user name in the process kubelet's client certificate (see test/controlplane/cmd/certs). */
export const PROCESS_KUBELET_USER = 'agentenv:process-kubelet';

const RBAC = 'rbac.authorization.k8s.io';
const CLUSTER_ROLES = resource(RBAC, 'v1', 'clusterroles', 'ClusterRole', false);
const CLUSTER_ROLE_BINDINGS = resource(RBAC, 'v1', 'clusterrolebindings', 'ClusterRoleBinding', false);
const CRDS = resource('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition', false);

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

/**
 * The process kubelet is a node agent and its node's scheduler in one, so it needs what a kubelet
 * and kube-scheduler need for Pods on one node — and nothing cluster-admin-like.
 */
const PROCESS_KUBELET_RULES: PolicyRule[] = [
  // Registers its Node, keeps its conditions, and may remove it.
  { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] },
  { apiGroups: [''], resources: ['nodes/status'], verbs: ['get', 'update', 'patch'] },
  // Watches Pending Pods, binds them to its node (the scheduler's job), writes their status, and
  // removes a deleted Pod's object once its processes are gone.
  { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'delete'] },
  { apiGroups: [''], resources: ['pods/binding'], verbs: ['create'] },
  { apiGroups: [''], resources: ['pods/status'], verbs: ['get', 'update', 'patch'] },
  // Volume sources and env valueFrom.
  { apiGroups: [''], resources: ['secrets', 'configmaps', 'services'], verbs: ['get', 'list', 'watch'] },
  // persistentVolumeClaim volumes: the claim and its bound volume's host path (kubelet/host-volumes.ts).
  { apiGroups: [''], resources: ['persistentvolumeclaims', 'persistentvolumes'], verbs: ['get'] },
  { apiGroups: [''], resources: ['serviceaccounts/token'], verbs: ['create'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create', 'update', 'patch'] },
  { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'update', 'patch'] },
  // Node heartbeat Leases in kube-node-lease.
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update', 'patch'] },
];

/** Reads the operator's ClusterRole rules (a YAML list of PolicyRules). */
export async function readPolicyRules(file: string): Promise<PolicyRule[]> {
  const rules: unknown = parse(await readFile(file, 'utf8'));
  if (!Array.isArray(rules) || rules.length === 0) throw new Error(`${file}: expected a non-empty YAML list of PolicyRules`);
  return rules as PolicyRule[];
}

async function apply(rest: KubeRest, t: Parameters<KubeRest['patch']>[0], namespace: string | undefined, obj: KubeObject & Record<string, unknown>): Promise<void> {
  const name = obj.metadata?.name;
  if (!name) throw new Error(`apply ${t.kind}: metadata.name is required`);
  await rest.patch(t, namespace, name, { apiVersion: t.group ? `${t.group}/${t.version}` : t.version, kind: t.kind, ...obj }, 'apply', { force: true });
}

const clusterRoleBinding = (name: string, role: string, subject: Record<string, string>): KubeObject & Record<string, unknown> => ({
  metadata: { name },
  roleRef: { apiGroup: RBAC, kind: 'ClusterRole', name: role },
  subjects: [subject],
});

/** Namespace, ServiceAccount, ClusterRoles and bindings for the operator and the process kubelet. */
export async function applyIdentities(rest: KubeRest, operatorRulesFile: string): Promise<void> {
  await apply(rest, CORE.namespaces, undefined, { metadata: { name: OPERATOR_NAMESPACE } });
  await apply(rest, CORE.serviceAccounts, OPERATOR_NAMESPACE, { metadata: { name: OPERATOR_SERVICE_ACCOUNT, namespace: OPERATOR_NAMESPACE } });
  await apply(rest, CLUSTER_ROLES, undefined, { metadata: { name: OPERATOR_CLUSTER_ROLE }, rules: await readPolicyRules(operatorRulesFile) });
  await apply(
    rest,
    CLUSTER_ROLE_BINDINGS,
    undefined,
    clusterRoleBinding(OPERATOR_CLUSTER_ROLE, OPERATOR_CLUSTER_ROLE, { kind: 'ServiceAccount', name: OPERATOR_SERVICE_ACCOUNT, namespace: OPERATOR_NAMESPACE }),
  );
  await apply(rest, CLUSTER_ROLES, undefined, { metadata: { name: PROCESS_KUBELET_USER }, rules: PROCESS_KUBELET_RULES });
  await apply(rest, CLUSTER_ROLE_BINDINGS, undefined, clusterRoleBinding(PROCESS_KUBELET_USER, PROCESS_KUBELET_USER, { apiGroup: RBAC, kind: 'User', name: PROCESS_KUBELET_USER }));
}

/** A TokenRequest for the operator's ServiceAccount (bound to nothing but the SA; valid `seconds`). */
export async function mintOperatorToken(server: string, pki: Pki, seconds: number): Promise<string> {
  return mintToken(server, pki, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, seconds);
}

/** A TokenRequest for `namespace/serviceAccount`, as cluster-admin. */
async function mintToken(server: string, pki: Pki, namespace: string, serviceAccount: string, seconds: number): Promise<string> {
  const path = `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`;
  const reply = await apiRequest(server, pki.ca, pki.admin, 'POST', path, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: { expirationSeconds: seconds },
  });
  const token = (reply.body as { status?: { token?: string } } | undefined)?.status?.token;
  if (reply.status !== 201 || !token) throw new Error(`TokenRequest for ${namespace}/${serviceAccount} failed with HTTP ${reply.status}`);
  return token;
}

export const KUBE_PROXY_NAMESPACE = 'kube-system';
export const KUBE_PROXY_SERVICE_ACCOUNT = 'kube-proxy';

/**
 * kube-proxy's identity, as kubeadm makes it: ServiceAccount kube-system/kube-proxy bound to the
 * built-in ClusterRole system:node-proxier (watch Services, EndpointSlices and Nodes; write Events).
 * Returns a token for it, valid `seconds`.
 */
export async function kubeProxyToken(rest: KubeRest, server: string, pki: Pki, seconds: number): Promise<string> {
  await apply(rest, CORE.serviceAccounts, KUBE_PROXY_NAMESPACE, { metadata: { name: KUBE_PROXY_SERVICE_ACCOUNT, namespace: KUBE_PROXY_NAMESPACE } });
  await apply(rest, CLUSTER_ROLE_BINDINGS, undefined, clusterRoleBinding('agentenv:node-proxier', 'system:node-proxier', { kind: 'ServiceAccount', name: KUBE_PROXY_SERVICE_ACCOUNT, namespace: KUBE_PROXY_NAMESPACE }));
  return mintToken(server, pki, KUBE_PROXY_NAMESPACE, KUBE_PROXY_SERVICE_ACCOUNT, seconds);
}

interface CustomResourceDefinition extends KubeObject {
  spec: { group: string; scope: string; names: { plural: string; kind: string }; versions: Array<{ name: string; served: boolean }> };
  status?: { conditions?: Array<{ type: string; status: string }> };
}

/**
 * Applies every CRD in `dir` and waits until the apiserver serves each: condition Established, and
 * then a successful list, because right after Established the resource's watch cache may still be
 * initializing (the apiserver answers 429 "storage is (re)initializing" until it is).
 */
export async function applyCrds(rest: KubeRest, dir: string): Promise<string[]> {
  const crds: CustomResourceDefinition[] = [];
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.yaml') || f.endsWith('.yml')).sort()) {
    for (const doc of parseAllDocuments(await readFile(join(dir, file), 'utf8'))) {
      const crd = doc.toJS() as (CustomResourceDefinition & Record<string, unknown>) | null;
      if (!crd?.metadata?.name) continue;
      await apply(rest, CRDS, undefined, crd);
      crds.push(crd);
    }
  }
  for (const crd of crds) {
    const name = crd.metadata?.name ?? '';
    await waitUntilReady(`CRD ${name} Established`, async () => {
      const live = await rest.get<CustomResourceDefinition>(CRDS, undefined, name);
      return live.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;
    });
    for (const version of crd.spec.versions.filter((v) => v.served)) {
      const served = resource(crd.spec.group, version.name, crd.spec.names.plural, crd.spec.names.kind, crd.spec.scope === 'Namespaced');
      await waitUntilReady(`${crd.spec.names.plural}.${crd.spec.group}/${version.name} listable`, async () => {
        await rest.list(served, undefined, { limit: 1 });
        return true;
      });
    }
  }
  return crds.map((c) => c.metadata?.name ?? '');
}

/**
 * kube-controller-manager is running its controllers once the serviceaccount controller has created
 * the "default" ServiceAccount in the operator's namespace (Pods there are admitted from then on).
 */
export async function waitForControllers(rest: KubeRest): Promise<void> {
  await waitUntilReady('kube-controller-manager (default ServiceAccount in agentenv-system)', async () => {
    await rest.get(CORE.serviceAccounts, OPERATOR_NAMESPACE, 'default');
    return true;
  }, { timeoutMs: 120_000, intervalMs: 250 });
}

/** Waits until Node `name` reports condition Ready=True. */
export async function waitForNodeReady(rest: KubeRest, name: string, kubelet: ManagedProcess, timeoutMs = 120_000): Promise<void> {
  await waitUntilReady(`Node ${name} Ready`, async () => {
    const node = await rest.get<KubeObject & { status?: { conditions?: Array<{ type: string; status: string }> } }>(CORE.nodes, undefined, name);
    return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
  }, { timeoutMs, process: kubelet });
}
