/**
 * `npm run k8s:build` — builds (or finds in ~/.cache/agentenv) etcd, kube-apiserver,
 * kube-controller-manager, kubectl, kubelet, kube-scheduler and the helper commands from the Go module
 * in test/controlplane, and the containerd node's runtime (containerd, its shim, ctr, the CNI plugins,
 * pause) from test/controlplane/runtime, kube-proxy from test/controlplane/proxy (the same pinned
 * Kubernetes version), kube-router (the node's NetworkPolicy enforcer) from test/controlplane/netpol,
 * and the local volume provisioner from test/provisioner. Every binary is
 * printed with its build time.
 * CI runs it before the tests so that a build failure is reported as such, not as failing tests.
 * AGENTENV_CACHE_DIR overrides the cache root (e.g. a CI cache path); the tests and k8s:up honour it too.
 */
import { controlPlaneKey, defaultCacheDir, ensureControlPlaneBinaries, ensureProvisionerBinary, ensureRuntimeBinaries, runtimeKey } from '../src/localcluster/index.ts';
import { ensureKubeProxyBinary, ensureNetworkPolicyBinary } from '../src/localcluster/runtime-build.ts';

const cacheDir = process.env.AGENTENV_CACHE_DIR || defaultCacheDir();
const started = performance.now();
const seconds = (): string => ((performance.now() - started) / 1000).toFixed(1);
const log = (line: string): void => console.log(`[k8s:build ${seconds()}s] ${line}`);
try {
  const bin = await ensureControlPlaneBinaries({ cacheDir, log });
  console.log(`control plane binaries (${await controlPlaneKey()}) ready in ${bin.dir} after ${seconds()}s (cache root ${cacheDir})`);
  const runtime = await ensureRuntimeBinaries({ cacheDir, log });
  console.log(`container runtime (${await runtimeKey()}) ready in ${runtime.dir} after ${seconds()}s; runc: ${runtime.runc}`);
  console.log(`kube-proxy ready: ${await ensureKubeProxyBinary({ cacheDir, log })} after ${seconds()}s`);
  console.log(`NetworkPolicy enforcer ready: ${await ensureNetworkPolicyBinary({ cacheDir, log })} after ${seconds()}s`);
  console.log(`volume provisioner ready: ${await ensureProvisionerBinary(cacheDir, log)} after ${seconds()}s`);
} catch (err) {
  console.error(`cannot build the local cluster's binaries: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
