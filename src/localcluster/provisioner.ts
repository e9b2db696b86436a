/**
 * The local cluster's dynamic volume provisioner: `hostpath-provisioner`, built from the Go module in
 * `test/provisioner` (the upstream external-provisioner controller, sig-storage-lib-external-provisioner,
 * with a provisioner that makes one host directory per volume), run as a process beside the control
 * plane like the other components, and the default StorageClass `local-path` that names it.
 *
 * Flow: a claim of class `local-path` (or of no class: it is the default) → kube-controller-manager's
 * PV controller marks it for the provisioner → the provisioner makes `<dir>/volumes/<pv name>/` and
 * a `hostPath` PersistentVolume pinned to the node → the PV controller binds the claim → the process
 * kubelet links the Pod's volume directory to the host directory (kubelet/host-volumes.ts). Deleting
 * the claim deletes the PV and the directory (reclaim policy Delete).
 *
 * Binding mode `Immediate`: the process kubelet is its node's scheduler and does no volume
 * scheduling, so a `WaitForFirstConsumer` claim would never learn its node (one node: nothing is lost).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isAlreadyExists } from '../k8s/errors.ts';
import { resource, type KubeObject, type KubeRest } from '../k8s/rest.ts';
import { startProcess, type ManagedProcess } from './controlplane-process.ts';

/** The Go module of the provisioner. */
export const PROVISIONER_MODULE = fileURLToPath(new URL('../../test/provisioner/', import.meta.url));
/** The StorageClass provisioner name it serves. */
export const PROVISIONER_NAME = 'agentenv.io/local-path';
/** The default StorageClass of the local cluster. */
export const STORAGE_CLASS = 'local-path';
const BINARY = 'hostpath-provisioner';

const STORAGE_CLASSES = resource('storage.k8s.io', 'v1', 'storageclasses', 'StorageClass', false);

/** The cache key: a hash of the module's go.mod, go.sum and sources. */
async function provisionerKey(): Promise<string> {
  const hash = createHash('sha256');
  const sources = (await readdir(join(PROVISIONER_MODULE, 'cmd'), { withFileTypes: true, recursive: true }))
    .filter((e) => e.isFile() && e.name.endsWith('.go'))
    .map((e) => relative(PROVISIONER_MODULE, join(e.parentPath, e.name)))
    .sort();
  for (const file of ['go.mod', 'go.sum', ...sources]) hash.update(file).update('\0').update(await readFile(join(PROVISIONER_MODULE, file))).update('\0');
  return `provisioner-${hash.digest('hex').slice(0, 12)}`;
}

/**
 * The provisioner binary, built into `<cacheDir>/<key>/bin/` on first use (a minute or two: it links
 * client-go). The build goes to a temporary directory renamed into place, so a half-built binary is
 * never used; two processes building at once both succeed and one rename wins.
 */
export async function ensureProvisionerBinary(cacheDir: string, log: (line: string) => void): Promise<string> {
  const dir = join(cacheDir, await provisionerKey());
  const bin = join(dir, 'bin', BINARY);
  if (existsSync(bin)) return bin;
  const tmp = join(dir, `bin.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  log(`building the volume provisioner into ${dir} …`);
  await new Promise<void>((resolve, reject) => {
    const child = spawn('go', ['build', '-ldflags', '-s -w', '-o', join(tmp, BINARY), `./cmd/${BINARY}`], {
      cwd: PROVISIONER_MODULE,
      env: { ...process.env, GOFLAGS: '-buildvcs=false' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (c: Buffer) => void (err = (err + c.toString()).slice(-4000)));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`go build of the volume provisioner failed (exit ${code}):\n${err}`))));
  });
  await rename(tmp, join(dir, 'bin')).catch(async (e: NodeJS.ErrnoException) => {
    if (!existsSync(bin)) throw e;
    await rm(tmp, { recursive: true, force: true });
  });
  return bin;
}

export interface ProvisionerOptions {
  readonly binary: string;
  readonly reaper: string;
  readonly kubeconfig: string;
  /** Where volumes are made (`<dir>/volumes`) and the log written (`<dir>/provisioner.log`). */
  readonly dir: string;
  readonly nodeName: string;
}

/** Start the provisioner (it runs until stopped; its volumes live under `<dir>/volumes`). */
export function startProvisioner(o: ProvisionerOptions): ManagedProcess {
  return startProcess(
    'provisioner',
    o.binary,
    [`--kubeconfig=${o.kubeconfig}`, `--provisioner-name=${PROVISIONER_NAME}`, `--root=${join(o.dir, 'volumes')}`, `--node-name=${o.nodeName}`],
    { reaper: o.reaper, logFile: join(o.dir, 'provisioner.log') },
  );
}

/** The default StorageClass `local-path` (AlreadyExists is success). */
export async function applyStorageClass(rest: KubeRest): Promise<void> {
  const sc: KubeObject & Record<string, unknown> = {
    metadata: { name: STORAGE_CLASS, annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } },
    provisioner: PROVISIONER_NAME,
    reclaimPolicy: 'Delete',
    volumeBindingMode: 'Immediate',
  };
  try {
    await rest.create(STORAGE_CLASSES, undefined, sc);
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  }
}
