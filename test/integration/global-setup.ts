/**
 * Global setup of the `integration` project: ONE local cluster for the whole run (etcd, kube-apiserver,
 * kube-controller-manager, CRDs from crds/, the operator's least-privilege identity, and the process
 * kubelet as node `agentenv-local`). Test files get kubeconfig paths through `inject(...)` and each works
 * in its own namespace (see test/support/cluster.ts).
 *
 * The first run builds the control plane from Go modules (minutes); later runs reuse ~/.cache/agentenv.
 * Every cluster process is started through `reaper`, so it dies with vitest even on SIGKILL.
 */
import type { TestProject } from 'vitest/node';
import { startLocalCluster } from '../../src/localcluster/index.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** cluster-admin kubeconfig file: for test fixtures only. */
    adminKubeconfig: string;
    /** kubeconfig file of ServiceAccount agentenv-system/agentenv-operator (the Helm chart's ClusterRole). */
    operatorKubeconfig: string;
    /** The process kubelet's root directory: container logs are in `pods/<namespace>_<name>_<uid>/logs/<container>.log`. */
    kubeletRootDir: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = performance.now();
  const cluster = await startLocalCluster({
    kubelet: true,
    // Same cache root as `npm run k8s:build` (CI may point it at its cache path).
    ...(process.env.AGENTENV_CACHE_DIR ? { cacheDir: process.env.AGENTENV_CACHE_DIR } : {}),
    log: (line) => process.stderr.write(`[local cluster] ${line}\n`),
  });
  process.stderr.write(`[local cluster] ready in ${((performance.now() - started) / 1000).toFixed(1)}s (state in ${cluster.dir})\n`);
  project.provide('adminKubeconfig', cluster.adminKubeconfig);
  project.provide('operatorKubeconfig', cluster.operatorKubeconfig);
  project.provide('kubeletRootDir', cluster.kubeletRootDir);
  return () => cluster.stop();
}
