/**
 * The containerd node's configuration files, as pure functions of its paths and ports: containerd's
 * config.toml, the CNI network list and the KubeletConfiguration. Everything lives under the cluster's
 * state directory except what the kernel names globally (the bridge, the cgroup root), which
 * `NODE_NETWORK` and `CGROUP_ROOT` fix; one containerd node runs on a machine at a time.
 */

/** The node's Pod network: a bridge of its own whose address is also the Node's InternalIP. */
export const NODE_NETWORK = {
  bridge: 'agentenv0',
  subnet: '10.244.0.0/24',
  /** The bridge's address: the Pods' gateway, the Node's InternalIP and the kubelet's bind address. */
  gateway: '10.244.0.1',
  prefixLength: 24,
} as const;

/** The apiserver's --service-cluster-ip-range: Services' ClusterIPs, which kube-proxy serves on the node. */
export const SERVICE_CIDR = '10.0.0.0/24';

/** The `kubernetes` Service's ClusterIP: the first address of SERVICE_CIDR. */
export const KUBERNETES_SERVICE_IP = '10.0.0.1';

/** Pod cgroups go under this root in every v1 hierarchy (`/sys/fs/cgroup/<controller>/agentenv`). */
export const CGROUP_ROOT = '/agentenv';

/** The sandbox image, built from test/controlplane/runtime/cmd/pause (never pulled). */
export const PAUSE_IMAGE = 'localhost/agentenv/pause:local';

export const CONTAINERD_NODE_NAME = 'agentenv-containerd';

export interface ContainerdPaths {
  readonly root: string;
  readonly state: string;
  readonly socket: string;
  readonly runc: string;
  readonly cniBinDir: string;
  readonly cniConfDir: string;
}

/** containerd 2.x config (version 3): the CRI plugin with runc, CNI and overlayfs, no registry use. */
export function containerdConfig(p: ContainerdPaths): string {
  const q = (s: string): string => JSON.stringify(s);
  return `version = 3
root = ${q(p.root)}
state = ${q(p.state)}
# NRI opens a socket in /var/run/nri shared by the machine; the node does not use it.
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = ${q(p.socket)}

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = ${q(PAUSE_IMAGE)}

[plugins."io.containerd.cri.v1.runtime"]
  # Network namespaces are bind-mounted under the state directory, not /var/run/netns, so that
  # removing the node's directory finds every one of them.
  netns_mounts_under_state_dir = true
  # These machines withhold CAP_SYS_RESOURCE, so no process may lower its oom_score_adj: keep every
  # container's at or above containerd's own (the kubelet asks -998 for sandboxes).
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = ${q(p.runc)}
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [${q(p.cniBinDir)}]
    conf_dir = ${q(p.cniConfDir)}

[plugins."io.containerd.grpc.v1.cri"]
  # kubectl exec/attach/port-forward are proxied by the kubelet to this server.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`;
}

/**
 * The CNI network list: a bridge with host-local addresses, loopback, and portmap for hostPorts.
 * No masquerade and no default route: Pods talk to the node (its gateway address), to each other and
 * to Services' ClusterIPs (a route through the node, where kube-proxy translates them), never beyond.
 */
export function cniConfig(ipamDataDir: string): string {
  return JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: 'agentenv',
      plugins: [
        {
          type: 'bridge',
          bridge: NODE_NETWORK.bridge,
          isGateway: true,
          ipMasq: false,
          ipam: {
            type: 'host-local',
            dataDir: ipamDataDir,
            ranges: [[{ subnet: NODE_NETWORK.subnet, gateway: NODE_NETWORK.gateway }]],
            routes: [{ dst: SERVICE_CIDR, gw: NODE_NETWORK.gateway }],
          },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  );
}

export interface KubeletPaths {
  readonly caFile: string;
  readonly socket: string;
  readonly podLogsDir: string;
  readonly resolvConf: string;
  readonly port: number;
  readonly healthzPort: number;
}

/**
 * KubeletConfiguration: a production kubelet's security posture (x509 and webhook authentication, no
 * anonymous access, webhook authorization, no read-only port) on cgroups v1 with the cgroupfs driver.
 */
export function kubeletConfig(p: KubeletPaths): Record<string, unknown> {
  return {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: NODE_NETWORK.gateway,
    port: p.port,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: p.healthzPort,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: p.caFile } },
    authorization: { mode: 'Webhook' },
    containerRuntimeEndpoint: `unix://${p.socket}`,
    cgroupDriver: 'cgroupfs',
    cgroupRoot: CGROUP_ROOT,
    // These machines run cgroups v1 (hybrid); kubelet >= 1.35 refuses v1 unless told.
    failCgroupV1: false,
    failSwapOn: false,
    podLogsDir: p.podLogsDir,
    // Pods get a resolver that points nowhere: the node has no cluster DNS and Pods must not reach
    // the machine's own resolver.
    resolvConf: p.resolvConf,
    podCIDR: NODE_NETWORK.subnet,
    maxPods: 110,
    serializeImagePulls: false,
    // A shared development disk: evict only when it is really full, and never collect the images the
    // tests imported (they cannot be pulled again).
    evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    registerNode: true,
    rotateCertificates: false,
    serverTLSBootstrap: false,
    shutdownGracePeriod: '0s',
  };
}
