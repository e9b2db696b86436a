/**
 * The local control plane's binaries, built from the Go module in `test/controlplane` (which pins
 * k8s.io/kubernetes and etcd) into `<cacheDir>/k8s-<version>-<hash>/bin/` and reused when present (see
 * go-build-cache.ts for the key, the lock and the progress lines).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureGoBinaries, goModuleKey, type BuildOptions, type GoModuleBuild } from './go-build-cache.ts';

export { defaultCacheDir, type BuildOptions } from './go-build-cache.ts';

/** The Go module that pins the upstream control plane. */
export const CONTROL_PLANE_MODULE = fileURLToPath(new URL('../../test/controlplane/', import.meta.url));

export const KUBERNETES_VERSION = 'v1.36.3';

const CONTROL_PLANE: GoModuleBuild = {
  label: 'control plane',
  module: CONTROL_PLANE_MODULE,
  keyPrefix: `k8s-${KUBERNETES_VERSION}`,
  // The small helpers first: a broken toolchain shows in seconds, not after kube-apiserver.
  packages: {
    './cmd/reaper': 'reaper',
    './cmd/certs': 'certs',
    'go.etcd.io/etcd/server/v3': 'etcd',
    'k8s.io/kubernetes/cmd/kube-apiserver': 'kube-apiserver',
    'k8s.io/kubernetes/cmd/kube-controller-manager': 'kube-controller-manager',
    'k8s.io/kubernetes/cmd/kubectl': 'kubectl',
    // The containerd node's kubelet and scheduler: the same pinned module as the apiserver.
    'k8s.io/kubernetes/cmd/kubelet': 'kubelet',
    'k8s.io/kubernetes/cmd/kube-scheduler': 'kube-scheduler',
  },
  // Stamp the version the binaries report (`/version`, `kubectl version`, the Node's kubeletVersion);
  // Go leaves it at v0.0.0 otherwise.
  ldflags: [
    `-X k8s.io/component-base/version.gitVersion=${KUBERNETES_VERSION}`,
    '-X k8s.io/component-base/version.gitMajor=1',
    '-X k8s.io/component-base/version.gitMinor=36',
    '-X k8s.io/component-base/version.gitTreeState=clean',
    '-s -w', // no symbol tables: ~30% smaller binaries, same code
  ].join(' '),
};

export interface ControlPlaneBinaries {
  readonly dir: string;
  readonly etcd: string;
  readonly kubeApiserver: string;
  readonly kubeControllerManager: string;
  readonly kubectl: string;
  readonly kubelet: string;
  readonly kubeScheduler: string;
  readonly reaper: string;
  readonly certs: string;
}

/** The cache key of the current module: the same inputs always give the same key. */
export async function controlPlaneKey(): Promise<string> {
  return goModuleKey(CONTROL_PLANE);
}

/** Paths of the binaries in `dir` (they exist once `ensureControlPlaneBinaries` returned). */
export function binariesIn(dir: string): ControlPlaneBinaries {
  return {
    dir,
    etcd: join(dir, 'etcd'),
    kubeApiserver: join(dir, 'kube-apiserver'),
    kubeControllerManager: join(dir, 'kube-controller-manager'),
    kubectl: join(dir, 'kubectl'),
    kubelet: join(dir, 'kubelet'),
    kubeScheduler: join(dir, 'kube-scheduler'),
    reaper: join(dir, 'reaper'),
    certs: join(dir, 'certs'),
  };
}

/** Returns the control plane binaries, building them first when the cache has none for this module. */
export async function ensureControlPlaneBinaries(options: BuildOptions = {}): Promise<ControlPlaneBinaries> {
  return binariesIn(await ensureGoBinaries(CONTROL_PLANE, options));
}
