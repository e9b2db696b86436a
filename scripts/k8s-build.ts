/**
 * `npm run k8s:build` — builds (or finds in ~/.cache/agentenv) etcd, kube-apiserver,
 * kube-controller-manager, kubectl and the helper commands from the Go module in test/controlplane,
 * and the volume provisioner from test/provisioner.
 * CI runs it before the tests so that a build failure is reported as such, not as failing tests.
 * AGENTENV_CACHE_DIR overrides the cache root (e.g. a CI cache path); the tests and k8s:up honour it too.
 */
import { controlPlaneKey, defaultCacheDir, ensureControlPlaneBinaries, ensureProvisionerBinary } from '../src/localcluster/index.ts';

const cacheDir = process.env.AGENTENV_CACHE_DIR || defaultCacheDir();
const started = performance.now();
try {
  const bin = await ensureControlPlaneBinaries({ cacheDir, log: (line) => console.log(line) });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`control plane binaries (${await controlPlaneKey()}) ready in ${bin.dir} after ${seconds}s (cache root ${cacheDir})`);
  console.log(`volume provisioner ready: ${await ensureProvisionerBinary(cacheDir, (line) => console.log(line))}`);
} catch (err) {
  console.error(`cannot build the local control plane: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
