/**
 * The Node this kubelet registers: labels, capacity/allocatable, addresses, the Ready condition, and
 * a heartbeat — a Lease in kube-node-lease renewed every 10 s (what the node lifecycle controller
 * watches) plus the Node status every minute (what `kubectl get nodes` shows).
 */
import { arch, cpus, hostname, totalmem } from 'node:os';
import type { Logger } from '../../telemetry/logger.ts';
import { isAlreadyExists, isNotFound } from '../../k8s/errors.ts';
import { CORE, type KubeObject, type KubeRest } from '../../k8s/rest.ts';
import { sleepUnlessAborted } from '../../util/sleep.ts';
import type { Node } from './pod-types.ts';

export const LEASE_NAMESPACE = 'kube-node-lease';
const LEASE_SECONDS = 40;
const LEASE_RENEW_MS = 10_000;
const STATUS_EVERY_MS = 60_000;
/** Pods per node, the kubelet's default `maxPods`. */
const MAX_PODS = 110;

export interface NodeIdentity {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly hostIP: string;
}

const goArch = (): string => ({ x64: 'amd64', arm64: 'arm64' })[arch() as 'x64' | 'arm64'] ?? arch();

export function nodeLabels(name: string, extra: Readonly<Record<string, string>>): Record<string, string> {
  return { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': goArch(), 'beta.kubernetes.io/os': 'linux', 'beta.kubernetes.io/arch': goArch(), ...extra };
}

function nodeStatus(identity: NodeIdentity, now: string, readySince: string): Record<string, unknown> {
  const resources = { cpu: String(cpus().length), memory: `${Math.floor(totalmem() / 1024)}Ki`, pods: String(MAX_PODS), 'ephemeral-storage': '100Gi' };
  const condition = (type: string, status: string, reason: string, message: string, since: string) => ({ type, status, reason, message, lastHeartbeatTime: now, lastTransitionTime: since });
  return {
    capacity: resources,
    allocatable: resources,
    addresses: [
      { type: 'InternalIP', address: identity.hostIP },
      { type: 'Hostname', address: hostname() },
    ],
    conditions: [
      condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'process kubelet', readySince),
      condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'process kubelet', readySince),
      condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'process kubelet', readySince),
      condition('Ready', 'True', 'KubeletReady', 'process kubelet is posting ready status', readySince),
    ],
    nodeInfo: {
      machineID: '',
      systemUUID: '',
      bootID: '',
      kernelVersion: '',
      osImage: 'agentenv process kubelet',
      containerRuntimeVersion: 'process://agentenv',
      kubeletVersion: 'v1.36.3-process',
      kubeProxyVersion: '',
      operatingSystem: 'linux',
      architecture: goArch(),
    },
    daemonEndpoints: { kubeletEndpoint: { Port: 0 } },
  };
}

/** Creates the Node (or updates its labels) and marks it Ready. */
export async function registerNode(rest: KubeRest, identity: NodeIdentity): Promise<Node> {
  try {
    await rest.create<Node>(CORE.nodes, undefined, { metadata: { name: identity.name, labels: { ...identity.labels } }, spec: {} });
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
    await rest.patch(CORE.nodes, undefined, identity.name, { metadata: { labels: identity.labels } }, 'merge');
  }
  const now = new Date().toISOString();
  const node = await rest.patch<Node>(CORE.nodes, undefined, identity.name, { status: nodeStatus(identity, now, now) }, 'strategic', { subresource: 'status' });
  // The TaintNodesByCondition admission plugin taints a new Node not-ready; the node lifecycle
  // controller (not run here) lifts it once the Node is Ready. Do its job for our own Node.
  const taints = node.spec?.taints ?? [];
  const kept = taints.filter((t) => !CONDITION_TAINTS.includes(t.key));
  if (kept.length === taints.length) return node;
  return rest.patch<Node>(CORE.nodes, undefined, identity.name, { spec: { taints: kept } }, 'merge');
}

const CONDITION_TAINTS = ['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable'];

interface Lease extends KubeObject {
  spec?: { holderIdentity?: string; leaseDurationSeconds?: number; renewTime?: string };
}

/** Renews the node Lease every 10 s and the Node status every minute until `signal` aborts. */
export async function heartbeat(rest: KubeRest, identity: NodeIdentity, signal: AbortSignal, logger: Logger): Promise<void> {
  const readySince = new Date().toISOString();
  let statusAt = Date.now();
  while (!signal.aborted) {
    try {
      await renewLease(rest, identity.name);
      if (Date.now() - statusAt >= STATUS_EVERY_MS) {
        await rest.patch(CORE.nodes, undefined, identity.name, { status: nodeStatus(identity, new Date().toISOString(), readySince) }, 'strategic', { subresource: 'status' });
        statusAt = Date.now();
      }
    } catch (err) {
      if (isNotFound(err)) await registerNode(rest, identity).catch(() => {});
      logger.warn({ err }, 'node heartbeat failed');
    }
    await sleepUnlessAborted(LEASE_RENEW_MS, signal);
  }
}

async function renewLease(rest: KubeRest, name: string): Promise<void> {
  const spec = { holderIdentity: name, leaseDurationSeconds: LEASE_SECONDS, renewTime: new Date().toISOString().replace('Z', '000Z') };
  try {
    await rest.patch<Lease>(CORE.leases, LEASE_NAMESPACE, name, { spec }, 'merge');
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await rest.create<Lease>(CORE.leases, LEASE_NAMESPACE, { metadata: { name, namespace: LEASE_NAMESPACE }, spec });
  }
}
