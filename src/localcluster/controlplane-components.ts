/**
 * The control plane's components and their flags: etcd, kube-apiserver, kube-controller-manager.
 * Everything listens on 127.0.0.1 only, except the apiserver of a containerd node's cluster, which
 * also serves on the node's bridge address (see apiServerArgs).
 */
import { join } from 'node:path';
import type { ControlPlaneBinaries } from './controlplane-build.ts';
import { SERVICE_CIDR } from './containerd-config.ts';
import { apiRequest, type Pki } from './controlplane-pki.ts';
import { startProcess, waitUntilReady, type ManagedProcess } from './controlplane-process.ts';

export interface EtcdEndpoint {
  readonly clientPort: number;
  readonly peerPort: number;
}

export async function startEtcd(bin: ControlPlaneBinaries, dir: string, ports: EtcdEndpoint): Promise<ManagedProcess> {
  const client = `http://127.0.0.1:${ports.clientPort}`;
  const peer = `http://127.0.0.1:${ports.peerPort}`;
  const etcd = startProcess(
    'etcd',
    bin.etcd,
    [
      '--name=agentenv-local',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=agentenv-local=${peer}`,
      // A throw-away test store: skipping fsync makes every write several times faster on shared disks.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ],
    { reaper: bin.reaper, logFile: join(dir, 'etcd.log') },
  );
  await waitUntilReady('etcd /health', async () => {
    const res = await fetch(`${client}/health`);
    return res.ok && ((await res.json()) as { health?: string }).health === 'true';
  }, { process: etcd });
  return etcd;
}

/**
 * The kube-apiserver's flags: a normal cluster's security posture, on loopback. With an
 * `advertiseAddress` (the containerd node's bridge address) it serves there too, as a real
 * control plane serves on its node's address: it listens on every address (one `--bind-address`
 * only; `guardApiServerPort` in node-host.ts drops what does not come from loopback or the bridge),
 * and its lease reconciler publishes that address as the endpoint of the `kubernetes` Service,
 * which kube-proxy makes reachable from Pods at its ClusterIP.
 */
export function apiServerArgs(pki: Pki, dir: string, etcdClientPort: number, securePort: number, advertiseAddress?: string): string[] {
  return [
    `--etcd-servers=http://127.0.0.1:${etcdClientPort}`,
    ...(advertiseAddress ? ['--bind-address=0.0.0.0', `--advertise-address=${advertiseAddress}`] : ['--bind-address=127.0.0.1']),
    `--secure-port=${securePort}`,
    `--cert-dir=${join(dir, 'apiserver')}`,
    `--tls-cert-file=${pki.servingCertFile}`,
    `--tls-private-key-file=${pki.servingKeyFile}`,
    `--client-ca-file=${pki.caFile}`,
    // Service-account tokens (TokenRequest, projected volumes) are signed and verified with our key pair.
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${pki.serviceAccountPublicKeyFile}`,
    `--service-account-signing-key-file=${pki.serviceAccountKeyFile}`,
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    // What real clusters run: the Node authorizer for kubelets, RBAC for everyone else.
    '--authorization-mode=Node,RBAC',
    // The default admission chain (ServiceAccount, ValidatingAdmissionPolicy, webhooks, …) plus the
    // NodeRestriction plugin every production cluster enables.
    '--enable-admission-plugins=NodeRestriction',
    '--allow-privileged=true',
    // Its identity towards kubelets (logs, exec): the containerd node's kubelet authorizes it.
    `--kubelet-client-certificate=${pki.apiserverKubeletClientCertFile}`,
    `--kubelet-client-key=${pki.apiserverKubeletClientKeyFile}`,
    // A Node's name resolves nowhere here: reach kubelets at their InternalIP.
    '--kubelet-preferred-address-types=InternalIP',
    // Without an advertise address the "kubernetes" Service's endpoint would be 127.0.0.1, which
    // Endpoints validation rejects.
    ...(advertiseAddress ? [] : ['--endpoint-reconciler-type=none']),
    // Off, as in production; AGENTENV_APISERVER_PROFILING=1 serves /debug/pprof to the
    // administrator (bench/measure.ts `apiserverProfileIf`: where the apiserver spends a burst).
    process.env['AGENTENV_APISERVER_PROFILING'] ? '--profiling=true' : '--profiling=false',
  ];
}

export async function startApiServer(bin: ControlPlaneBinaries, pki: Pki, dir: string, etcdClientPort: number, securePort: number, advertiseAddress?: string): Promise<ManagedProcess> {
  const apiserver = startProcess('kube-apiserver', bin.kubeApiserver, apiServerArgs(pki, dir, etcdClientPort, securePort, advertiseAddress), {
    reaper: bin.reaper,
    logFile: join(dir, 'kube-apiserver.log'),
  });
  await waitForApiServer(`https://127.0.0.1:${securePort}`, pki, apiserver);
  return apiserver;
}

/** /readyz includes the RBAC bootstrap-roles and CRD post-start hooks, so it means "usable". */
export async function waitForApiServer(server: string, pki: Pki, process?: ManagedProcess): Promise<void> {
  await waitUntilReady('kube-apiserver /readyz', async () => (await apiRequest(server, pki.ca, pki.admin, 'GET', '/readyz')).status === 200, {
    ...(process ? { process } : {}),
    timeoutMs: 120_000,
    intervalMs: 250,
  });
}

/**
 * Controllers the operator's behaviour depends on:
 * - garbage collector: deletes Pods and Secrets whose owner (an AgentSession) is gone;
 * - namespace: finishes namespace deletion (tests delete their namespaces);
 * - serviceaccount + root CA publisher: every namespace gets its "default" ServiceAccount and the
 *   kube-root-ca.crt ConfigMap, without which the ServiceAccount admission plugin rejects Pods;
 * - serviceaccount-token: legacy token Secrets, cheap;
 * - clusterrole aggregation: the built-in admin/edit/view roles;
 * - ValidatingAdmissionPolicy status: type-checks policies;
 * - resource quota: a quota's usage (backpressure on a full quota is tested against it).
 * Deliberately absent: node lifecycle (it would taint and evict from the process kubelet's node),
 * the scheduler (the process kubelet binds its Pods), workload controllers.
 */
const CONTROLLERS = [
  'garbage-collector-controller',
  'namespace-controller',
  'serviceaccount-controller',
  'serviceaccount-token-controller',
  'root-ca-certificate-publisher-controller',
  'clusterrole-aggregation-controller',
  'validatingadmissionpolicy-status-controller',
  // ResourceQuota: counts a new quota's usage (admission refuses Pods until it has) and gives usage
  // back when Pods end; the ResourceQuota admission plugin itself is in the default chain.
  'resourcequota-controller',
  // Volumes (the local provisioner, provisioner.ts): binding claims to the volumes it makes, and the
  // protection finalizers the admission chain puts on claims and volumes (without these controllers
  // a deleted claim would never go).
  'persistentvolume-binder-controller',
  'persistentvolumeclaim-protection-controller',
  'persistentvolume-protection-controller',
];

/** Added on request (the Helm lifecycle test runs the chart's Deployment and its pre-delete hook Job). */
export const WORKLOAD_CONTROLLERS = ['deployment-controller', 'replicaset-controller', 'job-controller'];

/**
 * With a real kubelet (the containerd node) the node lifecycle controller runs too: it lifts the
 * not-ready taint that admission puts on a new Node, and taints and evicts as on a real cluster.
 */
export const NODE_CONTROLLERS = ['node-lifecycle-controller'];

export function startControllerManager(bin: ControlPlaneBinaries, pki: Pki, dir: string, kubeconfig: string, extraControllers: readonly string[] = []): ManagedProcess {
  return startProcess(
    'kube-controller-manager',
    bin.kubeControllerManager,
    [
      `--kubeconfig=${kubeconfig}`,
      `--controllers=${[...CONTROLLERS, ...extraControllers].join(',')}`,
      '--leader-elect=false',
      '--secure-port=0', // no health endpoint needed: readiness is observed through the API
      `--service-account-private-key-file=${pki.serviceAccountKeyFile}`,
      `--root-ca-file=${pki.caFile}`,
      '--use-service-account-credentials=false',
    ],
    { reaper: bin.reaper, logFile: join(dir, 'kube-controller-manager.log') },
  );
}

/** kube-scheduler for the containerd node (the process kubelet schedules its own node's Pods). */
export function startScheduler(bin: ControlPlaneBinaries, dir: string, kubeconfig: string): ManagedProcess {
  return startProcess(
    'kube-scheduler',
    bin.kubeScheduler,
    [`--kubeconfig=${kubeconfig}`, `--authentication-kubeconfig=${kubeconfig}`, `--authorization-kubeconfig=${kubeconfig}`, '--leader-elect=false', '--bind-address=127.0.0.1', '--secure-port=0'],
    { reaper: bin.reaper, logFile: join(dir, 'kube-scheduler.log') },
  );
}
