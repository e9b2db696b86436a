/**
 * Builds the local control plane's binaries from the Go module in `test/controlplane` (which pins
 * k8s.io/kubernetes and etcd) into `<cacheDir>/<key>/bin/`, and reuses them when present.
 *
 * The key is a hash of go.mod, go.sum, the module's own commands and the link flags, so a version bump
 * builds into a fresh directory and an unchanged module never rebuilds. Builds are serialised by a
 * lock directory (mkdir is atomic), because vitest's global setup and `npm run k8s:up` may race; a lock
 * whose owner process is gone is taken over. The build writes into a temporary directory that is
 * renamed into place, so a half-built `bin/` never exists.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive } from './controlplane-process.ts';

/** The Go module that pins the upstream control plane. */
export const CONTROL_PLANE_MODULE = fileURLToPath(new URL('../../test/controlplane/', import.meta.url));

const KUBERNETES_VERSION = 'v1.36.3';
/** Stamp the version the binaries report (`/version`, `kubectl version`); Go leaves it at v0.0.0 otherwise. */
const LDFLAGS = [
  `-X k8s.io/component-base/version.gitVersion=${KUBERNETES_VERSION}`,
  '-X k8s.io/component-base/version.gitMajor=1',
  '-X k8s.io/component-base/version.gitMinor=36',
  '-X k8s.io/component-base/version.gitTreeState=clean',
  '-s -w', // no symbol tables: ~30% smaller binaries, same code
].join(' ');

/** Go package → binary name in bin/. */
const PACKAGES: Record<string, string> = {
  'go.etcd.io/etcd/server/v3': 'etcd',
  'k8s.io/kubernetes/cmd/kube-apiserver': 'kube-apiserver',
  'k8s.io/kubernetes/cmd/kube-controller-manager': 'kube-controller-manager',
  'k8s.io/kubernetes/cmd/kubectl': 'kubectl',
  './cmd/reaper': 'reaper',
  './cmd/certs': 'certs',
};

export interface ControlPlaneBinaries {
  readonly dir: string;
  readonly etcd: string;
  readonly kubeApiserver: string;
  readonly kubeControllerManager: string;
  readonly kubectl: string;
  readonly reaper: string;
  readonly certs: string;
}

export interface BuildOptions {
  /** Cache root. Default `~/.cache/agentenv`. */
  readonly cacheDir?: string;
  /** Progress lines (build start/finish, waiting for another builder). Default: silent. */
  readonly log?: (line: string) => void;
  /** Give up waiting for another process's build after this long. Default 40 minutes. */
  readonly lockTimeoutMs?: number;
}

export const defaultCacheDir = (): string => join(homedir(), '.cache', 'agentenv');

/** The cache key of the current module: the same inputs always give the same key. */
export async function controlPlaneKey(): Promise<string> {
  const hash = createHash('sha256');
  for (const file of ['go.mod', 'go.sum', ...(await goSources(join(CONTROL_PLANE_MODULE, 'cmd')))]) {
    hash.update(file).update('\0').update(await readFile(join(CONTROL_PLANE_MODULE, file))).update('\0');
  }
  hash.update(LDFLAGS);
  return `k8s-${KUBERNETES_VERSION}-${hash.digest('hex').slice(0, 12)}`;
}

/** Paths of the binaries for `key` (they exist once `ensureControlPlaneBinaries` returned). */
export function binariesIn(dir: string): ControlPlaneBinaries {
  return {
    dir,
    etcd: join(dir, 'etcd'),
    kubeApiserver: join(dir, 'kube-apiserver'),
    kubeControllerManager: join(dir, 'kube-controller-manager'),
    kubectl: join(dir, 'kubectl'),
    reaper: join(dir, 'reaper'),
    certs: join(dir, 'certs'),
  };
}

/**
 * Returns the control plane binaries, building them first when the cache has none for this module.
 * A cold build (empty Go caches) downloads the modules and compiles for several minutes; a build with
 * a warm Go build cache mostly links; a cache hit costs one hash of a few files.
 */
export async function ensureControlPlaneBinaries(options: BuildOptions = {}): Promise<ControlPlaneBinaries> {
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const log = options.log ?? (() => {});
  const key = await controlPlaneKey();
  const binDir = join(cacheDir, key, 'bin');
  if (complete(binDir)) return binariesIn(binDir);

  await mkdir(cacheDir, { recursive: true });
  const lock = join(cacheDir, `${key}.lock`);
  await acquireLock(lock, options.lockTimeoutMs ?? 40 * 60_000, log);
  try {
    if (complete(binDir)) return binariesIn(binDir); // another process built it while we waited
    const tmp = join(cacheDir, key, `bin.tmp-${process.pid}`);
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    const started = performance.now();
    log(`building the control plane (${KUBERNETES_VERSION}) into ${binDir} …`);
    await goBuild(tmp, log);
    // `go build -o dir/` names a binary after its package path's last element that is not a major
    // version suffix: go.etcd.io/etcd/server/v3 → "server".
    await rename(join(tmp, 'server'), join(tmp, 'etcd'));
    await rm(binDir, { recursive: true, force: true });
    await rename(tmp, binDir);
    const seconds = Math.round((performance.now() - started) / 1000);
    await writeFile(join(cacheDir, key, 'build.json'), JSON.stringify({ key, seconds, builtAt: new Date().toISOString() }) + '\n');
    log(`control plane built in ${seconds}s`);
    return binariesIn(binDir);
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

function complete(binDir: string): boolean {
  return Object.values(PACKAGES).every((name) => existsSync(join(binDir, name)));
}

async function goBuild(outDir: string, log: (line: string) => void): Promise<void> {
  const args = ['build', '-ldflags', LDFLAGS, '-o', outDir + '/', ...Object.keys(PACKAGES)];
  const env = { ...process.env, GOFLAGS: '-buildvcs=false' };
  const child = spawn('go', args, { cwd: CONTROL_PLANE_MODULE, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const tail: string[] = [];
  const collect = (chunk: Buffer): void => {
    for (const line of chunk.toString().split('\n')) {
      if (!line) continue;
      tail.push(line);
      if (tail.length > 40) tail.shift();
      if (!line.startsWith('go: downloading')) log(line);
    }
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'ENOENT' ? new Error('the Go toolchain (`go`, 1.26 or newer) is not on PATH: the local control plane is built from Go modules') : err),
    );
    child.on('exit', (c) => resolve(c));
  });
  if (code !== 0) throw new Error(`go build of the control plane failed (exit ${code}):\n${tail.join('\n')}`);
}

/** Take the lock directory, waiting while a live process holds it; a dead holder's lock is taken over. */
async function acquireLock(lock: string, timeoutMs: number, log: (line: string) => void): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let announced = false;
  for (;;) {
    try {
      await mkdir(lock);
      await writeFile(join(lock, 'pid'), String(process.pid));
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number(await readFile(join(lock, 'pid'), 'utf8').catch(() => ''));
    if (holder && !isAlive(holder)) {
      await rm(lock, { recursive: true, force: true });
      continue;
    }
    if (!holder) {
      // The holder is between mkdir and writing its pid, or died in between: give it a moment.
      await sleep(1_000);
      const again = await readFile(join(lock, 'pid'), 'utf8').catch(() => '');
      if (!again) await rm(lock, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for the control plane build of process ${holder} (lock ${lock})`);
    if (!announced) log(`waiting for process ${holder}, which is building the control plane …`);
    announced = true;
    await sleep(2_000);
  }
}

async function goSources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.go')) out.push(relative(CONTROL_PLANE_MODULE, join(entry.parentPath, entry.name)));
  }
  return out.sort();
}
