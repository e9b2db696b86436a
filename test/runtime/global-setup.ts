/**
 * Global setup of the `runtime` project: the project's images built from the Dockerfile with buildah
 * (or taken from ~/.cache/agentenv/images), then ONE local cluster whose node is a real kubelet on
 * containerd and runc (`startLocalCluster({ runtime: 'containerd' })`), with those images imported.
 * Test files get the kubeconfigs, the image names and the node's address through `inject(...)`.
 *
 * The node needs root, overlayfs, runc, buildah and mmdebstrap (README "Development"). When one is
 * missing the tier does not pretend: the setup prints why, and every test of the tier is reported
 * skipped with that reason (`runtimeUnavailable`).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { TestProject } from 'vitest/node';
import { ensureProjectImages, NODE_NETWORK, startLocalCluster } from '../../src/localcluster/index.ts';
import { defaultCacheDir } from '../../src/localcluster/index.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    adminKubeconfig: string;
    operatorKubeconfig: string;
    kubeletRootDir: string;
    /** Why the tier cannot run on this machine ('' when it can). */
    runtimeUnavailable: string;
    /** The project image (operator, sidecar) under the chart's default name. */
    projectImage: string;
    /** The default runner's image under the chart's default name ('' when the Dockerfile has no runner target). */
    runnerImage: string;
    /** The node's address, which Pods reach (the emulator listens there). */
    nodeAddress: string;
    /** The cluster's kubectl binary. */
    kubectl: string;
    /** Why NetworkPolicies are not enforced on the node ('' when kube-router runs). */
    networkPolicyUnavailable: string;
  }
}

/** What the machine lacks for a containerd node, or '' when nothing. */
export function missingPrerequisite(): string {
  if (process.getuid?.() !== 0) return 'the containerd node needs root (it creates a bridge, cgroups and mounts)';
  if (!readFileSync('/proc/filesystems', 'utf8').includes('overlay')) return 'the kernel has no overlayfs (containerd\'s snapshotter)';
  for (const tool of ['runc', 'buildah', 'mmdebstrap', 'unshare', 'ip']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool} || test -x /usr/sbin/${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed (apt-get install -y runc buildah mmdebstrap ipset: README "Development")`;
    }
  }
  return '';
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const say = (line: string): boolean => process.stderr.write(`[runtime] ${line}\n`);
  const missing = missingPrerequisite();
  project.provide('runtimeUnavailable', missing);
  if (missing) {
    say(`SKIPPING the runtime tier: ${missing}`);
    for (const key of ['adminKubeconfig', 'operatorKubeconfig', 'kubeletRootDir', 'projectImage', 'runnerImage', 'nodeAddress', 'kubectl'] as const) project.provide(key, '');
    project.provide('networkPolicyUnavailable', missing);
    return undefined;
  }
  const started = performance.now();
  const cacheDir = process.env.AGENTENV_CACHE_DIR || defaultCacheDir();
  const log = (line: string): void => void say(`${((performance.now() - started) / 1000).toFixed(1)}s ${line}`);
  const images = await ensureProjectImages({ repo: new URL('../../', import.meta.url).pathname, cacheDir, log });
  // kube-router's policy controller needs Debian's ipset; without it the NetworkPolicy tests are skipped, saying so.
  const networkPolicyUnavailable = existsSync('/usr/sbin/ipset') ? '' : 'ipset is not installed (apt-get install -y ipset): kube-router cannot enforce NetworkPolicies';
  if (networkPolicyUnavailable) say(`NetworkPolicy tests will be SKIPPED: ${networkPolicyUnavailable}`);
  project.provide('networkPolicyUnavailable', networkPolicyUnavailable);
  // workloadControllers: the chart's Deployment (chart-operator.test.ts) needs its ReplicaSet made.
  const cluster = await startLocalCluster({ runtime: 'containerd', imageArchives: images.map((i) => i.archive), networkPolicy: !networkPolicyUnavailable, workloadControllers: true, cacheDir, log });
  say(`containerd node ready in ${((performance.now() - started) / 1000).toFixed(1)}s (state in ${cluster.dir})`);
  project.provide('adminKubeconfig', cluster.adminKubeconfig);
  project.provide('operatorKubeconfig', cluster.operatorKubeconfig);
  project.provide('kubeletRootDir', cluster.kubeletRootDir);
  project.provide('projectImage', images.find((i) => !i.target)?.name ?? '');
  project.provide('runnerImage', images.find((i) => i.target === 'runner')?.name ?? '');
  project.provide('nodeAddress', NODE_NETWORK.gateway);
  project.provide('kubectl', cluster.binaries.kubectl);
  return () => cluster.stop();
}
