import { describe, expect, it } from 'vitest';
import { CGROUP_ROOT, cniConfig, containerdConfig, kubeletConfig, NODE_NETWORK, PAUSE_IMAGE, SERVICE_CIDR } from './containerd-config.ts';
import { mountsUnder, splitRule, withoutNodeRules } from './node-host.ts';
import { apiServerArgs } from './controlplane-components.ts';
import type { Pki } from './controlplane-pki.ts';

const paths = { root: '/s/root', state: '/s/state', socket: '/s/c.sock', runc: '/usr/sbin/runc', cniBinDir: '/cache/bin', cniConfDir: '/s/cni' };
const kubelet = kubeletConfig({ caFile: '/pki/ca.crt', socket: '/s/c.sock', podLogsDir: '/s/logs', resolvConf: '/s/resolv.conf', port: 10250, healthzPort: 10248 });

describe('the containerd node configuration', () => {
  it('the kubelet accepts cgroups v1 (kubelet >= 1.35 refuses it unless failCgroupV1 is false), with the cgroupfs driver under its own root', () => {
    expect(kubelet).toMatchObject({ failCgroupV1: false, cgroupDriver: 'cgroupfs', cgroupRoot: CGROUP_ROOT, containerRuntimeEndpoint: 'unix:///s/c.sock' });
  });

  it('the kubelet API takes no anonymous request and authorizes through the apiserver; no read-only port', () => {
    expect(kubelet).toMatchObject({ authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: '/pki/ca.crt' } }, authorization: { mode: 'Webhook' }, readOnlyPort: 0 });
  });

  it('the kubelet serves on the node address and its health on loopback only', () => {
    expect(kubelet).toMatchObject({ address: NODE_NETWORK.gateway, healthzBindAddress: '127.0.0.1' });
  });

  it('containerd runs runc from the given path, keeps oom_score_adj at or above its own (no CAP_SYS_RESOURCE here), and never pulls the sandbox image', () => {
    const toml = containerdConfig(paths);
    expect(toml).toContain('BinaryName = "/usr/sbin/runc"');
    expect(toml).toContain('restrict_oom_score_adj = true');
    expect(toml).toContain(`sandbox = "${PAUSE_IMAGE}"`);
    expect(toml).toContain('netns_mounts_under_state_dir = true');
    expect(toml).toContain('address = "/s/c.sock"');
  });

  it('the Pod network is the node bridge with host-local addresses and no masquerade (Pods never reach beyond the node)', () => {
    const conf = JSON.parse(cniConfig('/s/ipam')) as { plugins: Array<Record<string, unknown>> };
    expect(conf.plugins[0]).toMatchObject({ type: 'bridge', bridge: NODE_NETWORK.bridge, ipMasq: false, ipam: { type: 'host-local', dataDir: '/s/ipam', ranges: [[{ subnet: NODE_NETWORK.subnet, gateway: NODE_NETWORK.gateway }]] } });
    expect(conf.plugins.map((p) => p['type'])).toEqual(['bridge', 'portmap']);
  });

  it("Pods get a route to the Services' ClusterIPs through the node (kube-proxy translates them there) and no default route", () => {
    const conf = JSON.parse(cniConfig('/s/ipam')) as { plugins: Array<{ isDefaultGateway?: boolean; ipam?: { routes?: unknown[] } }> };
    expect(conf.plugins[0]?.ipam?.routes).toEqual([{ dst: SERVICE_CIDR, gw: NODE_NETWORK.gateway }]);
    expect(conf.plugins[0]?.isDefaultGateway).toBeUndefined();
  });
});

describe('mounts under a state directory', () => {
  const mountinfo = [
    '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
    '90 27 0:50 / /tmp/c/node rw - ext4 /dev/vda rw',
    '91 90 0:51 / /tmp/c/node/kubelet/pods/u/volumes/kubernetes.io~projected/token rw - tmpfs tmpfs rw',
    '92 90 0:52 / /tmp/c/node/with\\040space rw - tmpfs tmpfs rw',
    '93 27 0:53 / /tmp/c-other/x rw - tmpfs tmpfs rw',
  ].join('\n');

  it('lists mounts strictly under the directory, deepest first, unescaping mountinfo octal escapes', () => {
    expect(mountsUnder(mountinfo, '/tmp/c/node')).toEqual(['/tmp/c/node/kubelet/pods/u/volumes/kubernetes.io~projected/token', '/tmp/c/node/with space']);
  });

  it('never matches a sibling directory that shares the prefix', () => {
    expect(mountsUnder(mountinfo, '/tmp/c')).not.toContain('/tmp/c-other/x');
  });
});

describe("the node's firewall rules", () => {
  const saved = [
    '*filter',
    ':INPUT ACCEPT [0:0]',
    ':KUBE-FIREWALL - [0:0]',
    ':KUBE-ROUTER-INPUT - [0:0]',
    ':OTHER-CHAIN - [0:0]',
    '-A INPUT -j KUBE-FIREWALL',
    '-A INPUT -m comment --comment "kube-router netpol - 4IA2OSFRMVNDXBVV" -j KUBE-ROUTER-INPUT',
    '-A INPUT -s 10.9.0.0/16 -j OTHER-CHAIN',
    'COMMIT',
  ].join('\n');

  it("removes the kubelet's and kube-router's chains and the rules using them, and keeps everyone else's", () => {
    expect(withoutNodeRules(saved).split('\n')).toEqual(['*filter', ':INPUT ACCEPT [0:0]', ':OTHER-CHAIN - [0:0]', '-A INPUT -s 10.9.0.0/16 -j OTHER-CHAIN', 'COMMIT']);
  });

  it("removes kube-proxy's chains and jumps, and keeps the cluster's apiserver guard (it goes with the apiserver, not the node)", () => {
    const nat = [
      '*nat',
      ':PREROUTING ACCEPT [0:0]',
      ':KUBE-SERVICES - [0:0]',
      ':KUBE-SVC-NPX46M4PTMTKRN6Y - [0:0]',
      ':KUBE-SEP-ABC - [0:0]',
      ':KUBE-POSTROUTING - [0:0]',
      '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      '-A KUBE-SERVICES -d 10.0.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" -j KUBE-SVC-NPX46M4PTMTKRN6Y',
      '-A KUBE-SEP-ABC -p tcp -j DNAT --to-destination 10.244.0.1:40000',
      'COMMIT',
    ].join('\n');
    expect(withoutNodeRules(nat).split('\n')).toEqual(['*nat', ':PREROUTING ACCEPT [0:0]', 'COMMIT']);
    const guard = '-A INPUT -p tcp -m tcp --dport 40000 -m comment --comment "agentenv apiserver guard pid=42" -j AGENTENV-API-40000';
    expect(withoutNodeRules(guard)).toBe(guard);
  });

  it('an iptables -S rule splits into argv with its quoted comment whole', () => {
    expect(splitRule('INPUT -p tcp --dport 40000 -m comment --comment "agentenv apiserver guard pid=42" -j AGENTENV-API-40000')).toEqual([
      'INPUT', '-p', 'tcp', '--dport', '40000', '-m', 'comment', '--comment', 'agentenv apiserver guard pid=42', '-j', 'AGENTENV-API-40000',
    ]);
  });
});

describe("the apiserver's addresses", () => {
  const pki = { caFile: 'ca', servingCertFile: 'crt', servingKeyFile: 'key', serviceAccountKeyFile: 'sa', serviceAccountPublicKeyFile: 'sa.pub', apiserverKubeletClientCertFile: 'kc', apiserverKubeletClientKeyFile: 'kk' } as unknown as Pki;

  it('without an advertise address it listens on loopback only and publishes no endpoint for the kubernetes Service', () => {
    const args = apiServerArgs(pki, '/d', 2379, 6443);
    expect(args).toContain('--bind-address=127.0.0.1');
    expect(args).toContain('--endpoint-reconciler-type=none');
    expect(args.some((a) => a.startsWith('--advertise-address'))).toBe(false);
  });

  it("with the node's bridge address it serves there too and that address becomes the kubernetes Service's endpoint", () => {
    const args = apiServerArgs(pki, '/d', 2379, 6443, '10.244.0.1');
    expect(args).toEqual(expect.arrayContaining(['--bind-address=0.0.0.0', '--advertise-address=10.244.0.1']));
    expect(args.some((a) => a.startsWith('--endpoint-reconciler-type'))).toBe(false);
  });
});
