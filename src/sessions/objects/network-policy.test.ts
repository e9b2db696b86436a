import { describe, expect, it } from 'vitest';
import { agentEnvironment } from '../fixtures.test-support.ts';
import { contains, desiredNetworkPolicy, PRIVATE_RANGES } from './network-policy.ts';

const policy = (networkPolicy: Record<string, unknown> | undefined) => desiredNetworkPolicy(agentEnvironment(networkPolicy ? { networkPolicy } : {}));

describe('desiredNetworkPolicy', () => {
  it('asks for no policy unless enabled', () => {
    expect(policy(undefined)).toBeUndefined();
    expect(policy({ enabled: false })).toBeUndefined();
  });

  it('selects the environment\'s session Pods, denies all ingress and is owned by the environment', () => {
    const np = policy({ enabled: true })!;
    expect(np.metadata).toMatchObject({ name: 'data-sessions', namespace: 'team-a' });
    expect(np.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'AgentEnvironment', name: 'data', uid: 'env-uid', controller: true });
    expect(np.spec.podSelector).toEqual({ matchLabels: { 'agentenv.io/component': 'session', 'agentenv.io/environment': 'data' } });
    expect(np.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(np.spec.ingress).toEqual([]);
  });

  const cases: Array<{ rule: string; np: Record<string, unknown>; egress: unknown[] }> = [
    {
      rule: 'by default: DNS, and the API on 443 anywhere but the private ranges',
      np: { enabled: true },
      egress: [
        { ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] },
        { to: [{ ipBlock: { cidr: '0.0.0.0/0', except: [...PRIVATE_RANGES] } }], ports: [{ protocol: 'TCP', port: 443 }] },
      ],
    },
    {
      rule: 'narrow API CIDRs need no exceptions; the allowlist is kept as written, ports optional',
      np: { enabled: true, apiEgressCIDRs: ['160.79.104.0/23'], allowedEgress: [{ cidr: '10.20.0.0/16', ports: [5432] }, { cidr: '203.0.113.7/32' }] },
      egress: [
        { ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] },
        { to: [{ ipBlock: { cidr: '160.79.104.0/23' } }], ports: [{ protocol: 'TCP', port: 443 }] },
        { to: [{ ipBlock: { cidr: '10.20.0.0/16' } }], ports: [{ protocol: 'TCP', port: 5432 }] },
        { to: [{ ipBlock: { cidr: '203.0.113.7/32' } }] },
      ],
    },
    {
      rule: 'a wide API CIDR excludes only the private ranges inside it',
      np: { enabled: true, apiEgressCIDRs: ['128.0.0.0/1'] },
      egress: [
        { ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] },
        { to: [{ ipBlock: { cidr: '128.0.0.0/1', except: ['172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16'] } }], ports: [{ protocol: 'TCP', port: 443 }] },
      ],
    },
    {
      rule: 'an API CIDR inside a private range is dropped, and no empty (= allow-all) rule is left',
      np: { enabled: true, apiEgressCIDRs: ['10.0.0.0/8', '169.254.169.254/32'] },
      egress: [{ ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] }],
    },
  ];
  it.each(cases)('egress $rule', ({ np, egress }) => {
    expect(policy(np)!.spec.egress).toEqual(egress);
  });
});

describe('contains', () => {
  it.each([
    ['0.0.0.0/0', '10.0.0.0/8', true],
    ['10.0.0.0/8', '10.1.2.0/24', true],
    ['10.1.2.0/24', '10.0.0.0/8', false],
    ['128.0.0.0/1', '10.0.0.0/8', false],
    ['172.16.0.0/12', '172.31.255.255/32', true],
    ['172.16.0.0/12', '172.32.0.0/16', false],
    ['::/0', '10.0.0.0/8', false],
  ])('%s contains %s: %s', (outer, inner, expected) => {
    expect(contains(outer, inner)).toBe(expected);
  });
});
