/**
 * The optional per-environment NetworkPolicy for session Pods (pure).
 *
 * Rules, when `spec.selfHosted.networkPolicy.enabled`:
 * - selects the environment's session Pods (component + environment labels);
 * - denies all ingress (nothing needs to reach a sandbox: the kubelet's probes are not subject to
 *   NetworkPolicy);
 * - allows egress to DNS (53/UDP and 53/TCP, anywhere: the resolver's address is cluster-specific),
 *   to `apiEgressCIDRs` on TCP 443 with the private, link-local (cloud metadata) and CGNAT ranges
 *   carved out (a CIDR inside one of them is dropped) — so "the API" can never be stretched to
 *   cover the cluster's own network — and to
 *   the user's `allowedEgress` entries as written (which may name private ranges on purpose).
 */
import type { AgentEnvironment } from '../../crd/resources.ts';
import type { KubeObject } from '../../k8s/rest.ts';
import { LABELS, MANAGED_BY } from '../../crd/meta.ts';
import { labelValue, SESSION_COMPONENT } from '../record/names.ts';

/** Ranges the API egress rule never reaches (RFC 1918, link-local incl. 169.254.169.254, RFC 6598). */
export const PRIVATE_RANGES = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '100.64.0.0/10'] as const;

interface PolicyPeer {
  ipBlock: { cidr: string; except?: string[] };
}
interface PolicyPort {
  protocol: 'TCP' | 'UDP';
  port: number;
}
export interface EgressRule {
  to?: PolicyPeer[];
  ports?: PolicyPort[];
}
export interface NetworkPolicy extends KubeObject {
  spec: {
    podSelector: { matchLabels: Record<string, string> };
    policyTypes: Array<'Ingress' | 'Egress'>;
    ingress: [];
    egress: EgressRule[];
  };
}

/** Name of an environment's NetworkPolicy. */
export const networkPolicyName = (envName: string): string => `${envName}-sessions`.slice(0, 253);

/** The NetworkPolicy the environment asks for, or undefined when it asks for none (delete any that exists). */
export function desiredNetworkPolicy(env: AgentEnvironment): NetworkPolicy | undefined {
  const np = env.spec.selfHosted?.networkPolicy;
  if (!np?.enabled) return undefined;
  const envName = env.metadata?.name ?? '';
  // An empty `to` would mean "every destination": a rule whose CIDRs all fall inside private
  // ranges is left out instead (private destinations belong in allowedEgress).
  const apiPeers = np.apiEgressCIDRs.flatMap((cidr) => {
    const ipBlock = apiBlock(cidr);
    return ipBlock ? [{ ipBlock }] : [];
  });
  const egress: EgressRule[] = [
    { ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] },
    ...(apiPeers.length ? [{ to: apiPeers, ports: [{ protocol: 'TCP' as const, port: 443 }] }] : []),
    ...(np.allowedEgress ?? []).map((e) => ({
      to: [{ ipBlock: { cidr: e.cidr } }],
      ...(e.ports?.length ? { ports: e.ports.map((port) => ({ protocol: 'TCP' as const, port })) } : {}),
    })),
  ];
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: {
      name: networkPolicyName(envName),
      namespace: env.metadata?.namespace ?? '',
      labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.environment]: labelValue(envName) },
      ownerReferences: [
        { apiVersion: env.apiVersion ?? 'agentenv.io/v1alpha1', kind: env.kind ?? 'AgentEnvironment', name: envName, uid: env.metadata?.uid ?? '', controller: true, blockOwnerDeletion: true },
      ],
    },
    spec: {
      podSelector: { matchLabels: { [LABELS.component]: SESSION_COMPONENT, [LABELS.environment]: labelValue(envName) } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [],
      egress,
    },
  };
}

/**
 * An API CIDR with every private range inside it excluded (NetworkPolicy requires each `except`
 * entry to lie strictly within `cidr`), or undefined when the CIDR lies inside a private range.
 */
function apiBlock(cidr: string): PolicyPeer['ipBlock'] | undefined {
  if (PRIVATE_RANGES.some((r) => contains(r, cidr))) return undefined;
  const except = PRIVATE_RANGES.filter((r) => contains(cidr, r));
  return except.length ? { cidr, except: [...except] } : { cidr };
}

/** Whether IPv4 CIDR `outer` contains `inner` (IPv6 and malformed CIDRs contain nothing). */
export function contains(outer: string, inner: string): boolean {
  const a = parse(outer);
  const b = parse(inner);
  if (!a || !b || b.bits < a.bits) return false;
  const mask = a.bits === 0 ? 0 : (~0 << (32 - a.bits)) >>> 0;
  return ((a.ip & mask) >>> 0) === ((b.ip & mask) >>> 0);
}

function parse(cidr: string): { ip: number; bits: number } | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr.trim());
  if (!m) return undefined;
  const octets = m.slice(1, 5).map(Number);
  const bits = Number(m[5]);
  if (octets.some((o) => o > 255) || bits > 32) return undefined;
  return { ip: octets.reduce((acc, o) => ((acc << 8) | o) >>> 0, 0), bits };
}
