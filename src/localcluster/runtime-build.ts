/**
 * The containerd node's runtime components, built from the Go module in `test/controlplane/runtime`
 * (containerd 2.x, its runc shim, ctr, the CNI plugins bridge/host-local/loopback/portmap, and the
 * pause command of the sandbox image) into `<cacheDir>/runtime-<hash>/bin/`, plus runc, which comes
 * from Debian's package (`apt-get install -y runc`): it is built with libseccomp, which the
 * RuntimeDefault seccomp profile needs, and a Go build of it would need cgo and libseccomp-dev too.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KUBERNETES_VERSION } from './controlplane-build.ts';
import { ensureGoBinaries, goModuleKey, type BuildOptions, type GoModuleBuild } from './go-build-cache.ts';

export const RUNTIME_MODULE = fileURLToPath(new URL('../../test/controlplane/runtime/', import.meta.url));

const CONTAINERD = 'github.com/containerd/containerd/v2';
const CNI = 'github.com/containernetworking/plugins/plugins';

const RUNTIME: GoModuleBuild = {
  label: 'container runtime',
  module: RUNTIME_MODULE,
  keyPrefix: 'runtime',
  packages: {
    './cmd/pause': 'pause',
    [`${CNI}/main/loopback`]: 'loopback',
    [`${CNI}/main/bridge`]: 'bridge',
    [`${CNI}/ipam/host-local`]: 'host-local',
    [`${CNI}/meta/portmap`]: 'portmap',
    [`${CONTAINERD}/cmd/containerd-shim-runc-v2`]: 'containerd-shim-runc-v2',
    [`${CONTAINERD}/cmd/ctr`]: 'ctr',
    [`${CONTAINERD}/cmd/containerd`]: 'containerd',
  },
  // Static binaries (the shim and the CNI plugins are exec'd by containerd; pause runs in an image
  // without a libc), and none of the snapshotters that need C headers (btrfs, devmapper, zfs):
  // the node uses overlayfs.
  env: { CGO_ENABLED: '0' },
  tags: 'no_btrfs,no_devmapper,no_zfs',
  ldflags: '-s -w',
};

export interface RuntimeBinaries {
  readonly dir: string;
  readonly containerd: string;
  readonly shim: string;
  readonly ctr: string;
  readonly pause: string;
  /** Directory of the CNI plugins (bridge, host-local, loopback, portmap). */
  readonly cniBinDir: string;
  /** runc from Debian's package. */
  readonly runc: string;
}

export async function runtimeKey(): Promise<string> {
  return goModuleKey(RUNTIME);
}

/** Builds (or finds in the cache) the runtime's binaries and checks that runc is installed. */
export async function ensureRuntimeBinaries(options: BuildOptions = {}): Promise<RuntimeBinaries> {
  const runc = findRunc();
  const dir = await ensureGoBinaries(RUNTIME, options);
  return {
    dir,
    containerd: join(dir, 'containerd'),
    shim: join(dir, 'containerd-shim-runc-v2'),
    ctr: join(dir, 'ctr'),
    pause: join(dir, 'pause'),
    cniBinDir: dir,
    runc,
  };
}

/** runc on PATH or in /usr/sbin (Debian's package puts it there, and root's PATH may lack it). */
export function findRunc(): string {
  for (const candidate of ['/usr/sbin/runc', '/usr/bin/runc', '/usr/local/sbin/runc', '/usr/local/bin/runc']) {
    if (existsSync(candidate)) return candidate;
  }
  try {
    return execFileSync('sh', ['-c', 'command -v runc'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('runc is not installed: the containerd node runs containers with runc from Debian (`apt-get install -y runc`, see README "Development")');
  }
}

export const NETPOL_MODULE = fileURLToPath(new URL('../../test/controlplane/netpol/', import.meta.url));

const NETPOL: GoModuleBuild = {
  label: 'NetworkPolicy enforcer',
  module: NETPOL_MODULE,
  keyPrefix: 'netpol',
  packages: { 'github.com/cloudnativelabs/kube-router/v2/cmd/kube-router': 'kube-router' },
  env: { CGO_ENABLED: '0' },
  ldflags: '-s -w',
};

/**
 * kube-router (its NetworkPolicy controller only), built from test/controlplane/netpol; it programs
 * iptables and ipsets, so Debian's `ipset` must be installed.
 */
export async function ensureNetworkPolicyBinary(options: BuildOptions = {}): Promise<string> {
  if (!['/usr/sbin/ipset', '/sbin/ipset', '/usr/bin/ipset'].some((p) => existsSync(p))) {
    throw new Error('ipset is not installed: the NetworkPolicy enforcer (kube-router) needs it (`apt-get install -y ipset`)');
  }
  return join(await ensureGoBinaries(NETPOL, options), 'kube-router');
}

export const PROXY_MODULE = fileURLToPath(new URL('../../test/controlplane/proxy/', import.meta.url));

const KUBE_PROXY: GoModuleBuild = {
  label: 'kube-proxy',
  module: PROXY_MODULE,
  keyPrefix: `kube-proxy-${KUBERNETES_VERSION}`,
  packages: { 'k8s.io/kubernetes/cmd/kube-proxy': 'kube-proxy' },
  // The version kube-proxy reports, as the control plane's binaries do (controlplane-build.ts).
  ldflags: [`-X k8s.io/component-base/version.gitVersion=${KUBERNETES_VERSION}`, '-X k8s.io/component-base/version.gitMajor=1', '-X k8s.io/component-base/version.gitMinor=36', '-s -w'].join(' '),
};

/**
 * kube-proxy (iptables mode) for the containerd node, built from test/controlplane/proxy: the same
 * k8s.io/kubernetes version as the kubelet and the apiserver, in a module of its own (its extra
 * dependencies would otherwise change the control plane's go.sum and so its cache key).
 */
export async function ensureKubeProxyBinary(options: BuildOptions = {}): Promise<string> {
  return join(await ensureGoBinaries(KUBE_PROXY, options), 'kube-proxy');
}
