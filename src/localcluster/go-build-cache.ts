/**
 * Builds the commands of a pinned Go module into `<cacheDir>/<key>/bin/` and reuses them when present:
 * the local control plane (test/controlplane) and the containerd node's runtime
 * (test/controlplane/runtime) are both built this way.
 *
 * The key is a hash of go.mod, go.sum, the module's own commands (`cmd/**.go`) and the build flags,
 * so a version bump builds into a fresh directory and an unchanged module never rebuilds. Builds are
 * serialised by a lock directory (mkdir is atomic), because vitest's global setup and `npm run k8s:up`
 * may race; a lock whose owner process is gone is taken over. The build writes into a temporary
 * directory that is renamed into place, so a half-built `bin/` never exists.
 *
 * Progress: one line per binary when it starts and when it is done (with its time), and a line every
 * 30 s while one builds, so a cold build never sits silent for minutes.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive } from './controlplane-process.ts';

export interface GoModuleBuild {
  /** What the progress lines call it: "control plane", "container runtime". */
  readonly label: string;
  /** The module's directory (holds go.mod, go.sum, cmd/). */
  readonly module: string;
  /** Cache key prefix, e.g. `k8s-v1.36.3`. */
  readonly keyPrefix: string;
  /** Go package → binary name in bin/, built in this order. */
  readonly packages: Readonly<Record<string, string>>;
  readonly ldflags: string;
  /** `-tags` value, if any. */
  readonly tags?: string;
  /** Extra environment, e.g. CGO_ENABLED=0 for static binaries. */
  readonly env?: Readonly<Record<string, string>>;
  /** Other inputs of the build, hashed into the key. */
  readonly extraKey?: string;
}

export interface BuildOptions {
  /** Cache root. Default `~/.cache/agentenv`. */
  readonly cacheDir?: string;
  /** Progress lines (per binary, with elapsed time; waiting for another builder). Default: silent. */
  readonly log?: (line: string) => void;
  /** Give up waiting for another process's build after this long. Default 40 minutes. */
  readonly lockTimeoutMs?: number;
}

export const defaultCacheDir = (): string => join(homedir(), '.cache', 'agentenv');

/** `12s`, `3m05s`. */
export function elapsed(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** The cache key of the module as it is now: the same inputs always give the same key. */
export async function goModuleKey(build: GoModuleBuild): Promise<string> {
  const hash = createHash('sha256');
  for (const file of ['go.mod', 'go.sum', ...(await goSources(build.module, join(build.module, 'cmd')))]) {
    hash.update(file).update('\0').update(await readFile(join(build.module, file))).update('\0');
  }
  hash.update(build.ldflags);
  // Kept out of the hash when absent, so the control plane's key is what it was before tags existed.
  if (build.tags) hash.update(`tags=${build.tags}`);
  if (build.env) hash.update(JSON.stringify(build.env));
  if (build.extraKey) hash.update(build.extraKey);
  return `${build.keyPrefix}-${hash.digest('hex').slice(0, 12)}`;
}

/**
 * Returns the directory holding every binary of `build`, building them first when the cache has none
 * for this key. A cold build (empty Go caches) downloads the modules and compiles for minutes; a build
 * with a warm Go build cache mostly links; a cache hit costs one hash of a few files.
 */
export async function ensureGoBinaries(build: GoModuleBuild, options: BuildOptions = {}): Promise<string> {
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const log = options.log ?? (() => {});
  const key = await goModuleKey(build);
  const binDir = join(cacheDir, key, 'bin');
  if (complete(build, binDir)) return binDir;

  await mkdir(cacheDir, { recursive: true });
  const lock = join(cacheDir, `${key}.lock`);
  await acquireLock(lock, build.label, options.lockTimeoutMs ?? 40 * 60_000, log);
  try {
    if (complete(build, binDir)) return binDir; // another process built it while we waited
    const tmp = join(cacheDir, key, `bin.tmp-${process.pid}`);
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    const started = performance.now();
    const names = Object.values(build.packages);
    log(`${build.label}: building ${names.length} binaries (${names.join(', ')}) into ${binDir}; the first build downloads Go modules and compiles for minutes, later ones reuse it`);
    for (const [pkg, name] of Object.entries(build.packages)) {
      const one = performance.now();
      log(`${build.label}: building ${name} …`);
      await goBuild(build, pkg, join(tmp, name), (line) => log(`${build.label}: ${name}: ${line}`));
      log(`${build.label}: ${name} built in ${elapsed(performance.now() - one)} (total ${elapsed(performance.now() - started)})`);
    }
    await rm(binDir, { recursive: true, force: true });
    await rename(tmp, binDir);
    const seconds = Math.round((performance.now() - started) / 1000);
    await writeFile(join(cacheDir, key, 'build.json'), JSON.stringify({ key, seconds, builtAt: new Date().toISOString() }) + '\n');
    log(`${build.label}: built in ${elapsed(seconds * 1000)}`);
    return binDir;
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

function complete(build: GoModuleBuild, binDir: string): boolean {
  return Object.values(build.packages).every((name) => existsSync(join(binDir, name)));
}

async function goBuild(build: GoModuleBuild, pkg: string, output: string, log: (line: string) => void): Promise<void> {
  const args = ['build', '-ldflags', build.ldflags, ...(build.tags ? ['-tags', build.tags] : []), '-o', output, pkg];
  const env = { ...process.env, GOFLAGS: '-buildvcs=false', ...build.env };
  const child = spawn('go', args, { cwd: build.module, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const started = performance.now();
  const heartbeat = setInterval(() => log(`still building (${elapsed(performance.now() - started)})`), 30_000);
  const tail: string[] = [];
  let downloads = 0;
  const collect = (chunk: Buffer): void => {
    for (const line of chunk.toString().split('\n')) {
      if (!line) continue;
      tail.push(line);
      if (tail.length > 40) tail.shift();
      // Module downloads are counted, not echoed: a cold build downloads hundreds.
      if (line.startsWith('go: downloading')) {
        if (++downloads % 100 === 1) log(`downloading Go modules (${downloads} so far) …`);
      } else log(line);
    }
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', (err: NodeJS.ErrnoException) =>
        reject(err.code === 'ENOENT' ? new Error(`the Go toolchain (\`go\`, 1.26 or newer) is not on PATH: the ${build.label} is built from Go modules`) : err),
      );
      child.on('exit', (c) => resolve(c));
    });
    if (code !== 0) throw new Error(`go build of ${pkg} (${build.label}) failed (exit ${code}):\n${tail.join('\n')}`);
  } finally {
    clearInterval(heartbeat);
  }
}

/** Take the lock directory, waiting while a live process holds it; a dead holder's lock is taken over. */
async function acquireLock(lock: string, label: string, timeoutMs: number, log: (line: string) => void): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const started = Date.now();
  let announced = 0;
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
    if (Date.now() > deadline) throw new Error(`timed out waiting for the ${label} build of process ${holder} (lock ${lock})`);
    if (Date.now() - announced > 30_000) {
      log(`${label}: waiting for process ${holder}, which is building it (${elapsed(Date.now() - started)}) …`);
      announced = Date.now();
    }
    await sleep(2_000);
  }
}

async function goSources(module: string, dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (entry.isFile() && entry.name.endsWith('.go')) out.push(relative(module, join(entry.parentPath, entry.name)));
  }
  return out.sort();
}
