/**
 * `npm run k8s:up` — a local cluster for development, left running in the background.
 *
 *   npm run k8s:up                          # the process kubelet (fast, no isolation)
 *   npm run k8s:up -- --runtime containerd  # a real kubelet on containerd + runc, with the project's
 *                                           # images built from the Dockerfile (docs/runtime.md)
 *   PATH=$PWD/.k8s/bin:$PATH kubectl --kubeconfig .k8s/kubeconfig get nodes
 *   npm run k8s:down
 *
 * Flow:
 *  1. If `.k8s/state.json` names a live cluster host, print where it is and return (idempotent).
 *  2. Otherwise start this script again as a detached "host" process (`--host`, output in .k8s/cluster.log),
 *     which runs startLocalCluster() and stays alive: every cluster process dies with it (reaper), so
 *     there is one pid to stop.
 *  3. Wait until the host wrote state.json (cluster ready) or died (print its log tail and fail).
 * The host writes `.k8s/kubeconfig` (cluster-admin), `.k8s/operator.kubeconfig` (the operator's
 * least-privilege identity) and a `kubectl` shim in `.k8s/bin/`.
 */
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { defaultCacheDir, ensureProjectImages, isAlive, startLocalCluster } from '../src/localcluster/index.ts';
import { unmountUnder } from '../src/localcluster/node-host.ts';
import { HOST_LOG, K8S_DIR, REPO, STATE, readState, type ClusterState } from './k8s-state.ts';

function printUsage(state: ClusterState): void {
  console.log(`local cluster at ${state.server} (host pid ${state.hostPid})
  admin kubeconfig:    .k8s/kubeconfig
  operator kubeconfig: .k8s/operator.kubeconfig
  try:  PATH=$PWD/.k8s/bin:$PATH kubectl --kubeconfig .k8s/kubeconfig get nodes
  stop: npm run k8s:down`);
}

type Runtime = 'process' | 'containerd';

/** `--runtime containerd` or `--runtime=containerd`; default `process`. */
function runtimeArg(argv: readonly string[]): Runtime {
  const i = argv.findIndex((a) => a === '--runtime' || a.startsWith('--runtime='));
  if (i < 0) return 'process';
  const value = argv[i]?.includes('=') ? argv[i]?.split('=')[1] : argv[i + 1];
  if (value !== 'process' && value !== 'containerd') throw new Error(`--runtime must be process or containerd, not ${value ?? '(nothing)'}`);
  return value;
}

async function up(runtime: Runtime): Promise<void> {
  const running = readState();
  if (running && isAlive(running.hostPid)) {
    const current = running.runtime ?? 'process';
    console.log(current === runtime ? 'already running.' : `already running with --runtime ${current}: run npm run k8s:down first to switch to ${runtime}.`);
    printUsage(running);
    return;
  }
  // Leftovers of a host that died: its processes died with it, only files (and a containerd node's
  // mounts, which must go before the files) remain.
  await unmountUnder(K8S_DIR);
  rmSync(K8S_DIR, { recursive: true, force: true });
  mkdirSync(K8S_DIR, { recursive: true });
  const out = openSync(HOST_LOG, 'a');
  const host = spawn(process.execPath, [fileURLToPath(import.meta.url), '--host', '--runtime', runtime], { detached: true, stdio: ['ignore', out, out], cwd: REPO });
  closeSync(out);
  host.unref();
  const hostPid = host.pid;
  if (hostPid === undefined) throw new Error('could not start the cluster host process');
  console.log(`starting the local cluster (runtime ${runtime}, host pid ${hostPid}, log .k8s/cluster.log; the first run builds Kubernetes from Go modules and takes minutes) …`);
  const deadline = Date.now() + 45 * 60_000;
  // The host's progress lines (per component, with elapsed time) are echoed as they are written.
  let shown = 0;
  for (;;) {
    const lines = readFileSync(HOST_LOG, 'utf8').split('\n');
    for (const line of lines.slice(shown, -1)) console.log(`  ${line}`);
    shown = Math.max(shown, lines.length - 1);
    const state = readState();
    if (state?.hostPid === hostPid) return printUsage(state);
    if (!isAlive(hostPid) || Date.now() > deadline) {
      const log = readFileSync(HOST_LOG, 'utf8').trimEnd().split('\n').slice(-30).join('\n');
      throw new Error(`the local cluster did not come up. Last lines of .k8s/cluster.log:\n${log}`);
    }
    await sleep(300);
  }
}

/** The detached host: runs the cluster until SIGTERM/SIGINT, then stops it and removes its state. */
async function host(runtime: Runtime): Promise<void> {
  const started = performance.now();
  const log = (line: string): void => console.log(`[${((performance.now() - started) / 1000).toFixed(1)}s] ${line}`);
  const cacheDir = process.env.AGENTENV_CACHE_DIR || defaultCacheDir();
  const images = runtime === 'containerd' ? await ensureProjectImages({ repo: REPO, cacheDir, log }) : [];
  const cluster = await startLocalCluster({
    dir: join(K8S_DIR, 'cluster'),
    kubelet: true,
    runtime,
    imageArchives: images.map((i) => i.archive),
    cacheDir,
    log,
  });
  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: stopping the local cluster …`);
    await cluster.stop();
    rmSync(STATE, { force: true });
    process.exit(0);
  };
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => void shutdown(signal));

  const kubeconfig = join(K8S_DIR, 'kubeconfig');
  const operatorKubeconfig = join(K8S_DIR, 'operator.kubeconfig');
  copyFileSync(cluster.adminKubeconfig, kubeconfig);
  copyFileSync(cluster.operatorKubeconfig, operatorKubeconfig);
  chmodSync(kubeconfig, 0o600);
  chmodSync(operatorKubeconfig, 0o600);
  const bin = join(K8S_DIR, 'bin');
  mkdirSync(bin, { recursive: true });
  // The shim runs the cluster's own kubectl build; without --kubeconfig/KUBECONFIG it talks to this cluster.
  writeFileSync(join(bin, 'kubectl'), `#!/bin/sh\n: "\${KUBECONFIG:=${kubeconfig}}"\nexport KUBECONFIG\nexec '${cluster.binaries.kubectl}' "$@"\n`, { mode: 0o755 });
  const state: ClusterState = {
    hostPid: process.pid,
    server: cluster.server,
    kubeconfig,
    operatorKubeconfig,
    runtime,
    pids: cluster.pids(),
    startedAt: new Date().toISOString(),
  };
  writeFileSync(`${STATE}.tmp`, JSON.stringify(state, null, 2) + '\n');
  renameSync(`${STATE}.tmp`, STATE); // the waiting `up` sees a complete file or none
  console.log(`ready: ${cluster.server}`);
  setInterval(() => {}, 1 << 30); // stay alive until a signal
}

if (process.argv.includes('--host')) {
  host(runtimeArg(process.argv)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  });
} else {
  Promise.resolve()
    .then(() => up(runtimeArg(process.argv)))
    .catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  });
}
