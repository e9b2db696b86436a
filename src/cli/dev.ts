/**
 * `agentenv dev` (`npm run dev`): the whole product on one machine, with a live view.
 *
 * 1. a local control plane (kube-apiserver + etcd + controller-manager built from Go modules) and the
 *    process kubelet — or, with `--runtime containerd`, a real kubelet on containerd and runc running
 *    the project's images built from the Dockerfile (docs/runtime.md) — or, with
 *    `--kubeconfig`/`--current-context`, the cluster you point it at;
 * 2. the Environments API emulator, in process;
 * 3. the operator, in process, as the chart's least-privilege ServiceAccount on the local cluster;
 * 4. the samples applied, demo sessions enqueued, a stop handled — see `src/dev/demo.ts`;
 * 5. Ctrl-C stops the operator (which releases its lease), the emulator and the cluster, and
 *    removes the cluster's state: nothing is left running.
 */
import { createWriteStream, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Command } from 'commander';
import { KubeConfig } from '@kubernetes/client-node';
import { EnvironmentsClient } from '../api/client.ts';
import { OperatorConfig } from '../config/operator.ts';
import { runDemo } from '../dev/demo.ts';
import { line, watchCluster, watchToolCalls, watchWork } from '../dev/view.ts';
import { startEmulator } from '../emulator/index.ts';
import { KubeRest, CORE } from '../k8s/rest.ts';
import { isAlreadyExists } from '../k8s/errors.ts';
import { defaultCacheDir, ensureProjectImages, isAlive, NODE_NETWORK, startLocalCluster } from '../localcluster/index.ts';
import { createLogger } from '../telemetry/logger.ts';
import { startOperator } from './operator.ts';
import { writeServingCertificate } from '../localcluster/serving-cert.ts';

interface Flags {
  kubeconfig?: string;
  currentContext?: boolean;
  namespace: string;
  sessions: string;
  emulatorPort: string;
  runtime: string;
}

/** The session images and where Pods reach the emulator and their sidecar, per kind of cluster. */
interface SessionRuntime {
  readonly sidecarImage: string;
  readonly runnerImage: string;
  /** Where the emulator listens: Pods with a network namespace of their own reach the node's address, not loopback. */
  readonly emulatorHost: string;
  /** The process kubelet's Pods share the machine's network (`pod-ip`); real Pods have their own loopback. */
  readonly sessionProxyAddress: 'loopback' | 'pod-ip';
}

const REPO = resolve(import.meta.dirname, '..', '..');

export function command(): Command {
  return new Command('dev')
    .option('--kubeconfig <path>', 'use this cluster instead of starting a local control plane (it must be able to run the session image)')
    .option('--current-context', 'use the current kubeconfig context instead of starting a local control plane')
    .option('--namespace <ns>', 'namespace for the demo resources', 'agentenv-demo')
    .option('--sessions <n>', 'demo sessions to enqueue', '3')
    .option('--emulator-port <port>', 'port of the API emulator (0 = any free port)', '18080')
    .option('--runtime <runtime>', 'local node: process (the process kubelet, fast) or containerd (a real kubelet on containerd and runc, the images built from the Dockerfile; needs root, see docs/runtime.md)', 'process')
    .action(async (flags: Flags) => run(flags));
}

async function run(flags: Flags): Promise<void> {
  const stopping = new AbortController();
  const print = (s: string): void => void process.stdout.write(`${s}\n`);
  const say = (what: string): void => print(line('demo', '', what));
  const cleanups: Array<{ what: string; run: () => Promise<void> }> = [];
  let interrupted = false;
  const shutdown = (): void => {
    if (interrupted) return;
    interrupted = true;
    say('shutting down…');
    stopping.abort();
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);

  const stateDir = join(REPO, '.k8s', 'dev');
  mkdirSync(stateDir, { recursive: true });
  const pidFile = join(stateDir, 'dev.pid');
  const other = Number(readFileIfExists(pidFile));
  if (other && other !== process.pid && isAlive(other)) throw new Error(`npm run dev is already running (pid ${other}) and owns ${stateDir}; stop it first (Ctrl-C there, or kill ${other})`);
  writeFileSync(pidFile, String(process.pid));
  cleanups.push({ what: 'the dev state marker', run: async () => rmSync(pidFile, { force: true }) });
  if (flags.runtime !== 'process' && flags.runtime !== 'containerd') throw new Error(`--runtime must be process or containerd, not ${flags.runtime}`);
  const logFile = join(stateDir, 'operator.log');
  const logger = createLogger({ level: 'info', format: 'json', base: { process: 'operator' }, destination: createWriteStream(logFile) });
  try {
    // 1. the cluster
    let adminKubeconfig: string;
    let operatorKubeconfig: string;
    // The process kubelet maps these :dev names to the repository's sources (kubelet/images.ts).
    let sessions: SessionRuntime = { sidecarImage: 'ghcr.io/agentenv-io/agentenv:dev', runnerImage: 'ghcr.io/agentenv-io/agentenv-runner:dev', emulatorHost: '127.0.0.1', sessionProxyAddress: 'pod-ip' };
    if (flags.kubeconfig || flags.currentContext) {
      const kc = new KubeConfig();
      if (flags.kubeconfig) kc.loadFromFile(flags.kubeconfig);
      else kc.loadFromDefault();
      adminKubeconfig = operatorKubeconfig = flags.kubeconfig ?? process.env['KUBECONFIG'] ?? join(process.env['HOME'] ?? '', '.kube', 'config');
      say(`using cluster ${kc.getCurrentCluster()?.server}; apply the CRDs first: kubectl apply -f crds/`);
      // A real cluster has real Pod networking: each Pod's sidecar proxy on the Pod's own loopback.
      sessions = { ...sessions, sessionProxyAddress: 'loopback' };
    } else if (flags.runtime === 'containerd') {
      say('starting the local control plane and a real kubelet on containerd (the first run builds Kubernetes, containerd and the images: see docs/runtime.md for the times)…');
      const images = await ensureProjectImages({ repo: REPO, cacheDir: process.env['AGENTENV_CACHE_DIR'] || defaultCacheDir(), log: (l) => say(l) });
      const cluster = await startLocalCluster({ dir: join(stateDir, 'cluster'), runtime: 'containerd', imageArchives: images.map((i) => i.archive), log: (l) => say(l) });
      cleanups.unshift({ what: 'the local cluster (the kubelet, containerd and every container)', run: () => cluster.stop() });
      adminKubeconfig = cluster.adminKubeconfig;
      operatorKubeconfig = cluster.operatorKubeconfig;
      const image = (target?: string): string => images.find((i) => i.target === target)?.name ?? '';
      sessions = { sidecarImage: image(), runnerImage: image('runner'), emulatorHost: NODE_NETWORK.gateway, sessionProxyAddress: 'loopback' };
      say(`cluster ready at ${cluster.server} (node ${cluster.nodeName}, images ${images.map((i) => i.name).join(', ')}); kubectl --kubeconfig ${adminKubeconfig} get pods -A`);
    } else {
      say('starting the local control plane and the process kubelet (the first run builds kube-apiserver from Go modules)…');
      const cluster = await startLocalCluster({ dir: join(stateDir, 'cluster'), kubelet: true, log: (l) => say(l) });
      cleanups.unshift({ what: 'the local cluster (the kubelet stops its Pods first)', run: () => cluster.stop() });
      adminKubeconfig = cluster.adminKubeconfig;
      operatorKubeconfig = cluster.operatorKubeconfig;
      say(`cluster ready at ${cluster.server}; kubectl --kubeconfig ${adminKubeconfig} get pods -A`);
    }
    if (stopping.signal.aborted) return;

    // 2. the emulator
    const apiKey = `sk-ant-api03-dev-${randomBytes(12).toString('base64url')}`;
    const emulator = await startEmulator({ apiKeys: [apiKey], port: Number(flags.emulatorPort), host: sessions.emulatorHost, workSecrets: true });
    cleanups.unshift({ what: 'the emulator', run: () => emulator.close() });
    say(`Environments API emulator at ${emulator.url} (state: curl ${emulator.url}/emulator/v1/state)`);

    // 3. the operator
    const config = OperatorConfig.parse({
      kubeconfig: operatorKubeconfig,
      baseUrl: emulator.url,
      apiKey,
      namespaces: [flags.namespace],
      resyncMs: 60_000,
      metricsPort: 0,
      healthPort: 0,
      bindAddress: '127.0.0.1',
      leaderElectionNamespace: flags.namespace,
      identity: `dev_${randomBytes(4).toString('hex')}`,
      sidecarImage: sessions.sidecarImage,
      runnerImage: sessions.runnerImage,
      // The process kubelet has no per-Pod network namespace: each Pod's sidecar proxy listens on
      // the Pod's own loopback IP (127.0.0.1:8096 would be shared by every Pod on the machine).
      // The containerd node and a cluster given with --kubeconfig/--current-context have real Pod
      // networking: loopback, the chart's default.
      sessionProxyAddress: sessions.sessionProxyAddress,
      // Warm pools (spec.selfHosted.warmPool) on the process kubelet: its Pods reach the operator's
      // assignment endpoint on the host's loopback, with a throwaway certificate.
      ...(sessions.sessionProxyAddress === 'pod-ip' ? await devAssignment(join(stateDir, 'assignment-tls')) : {}),
    });
    const adminRest = new KubeRest(kubeConfigFrom(adminKubeconfig));
    await ensureNamespace(adminRest, flags.namespace);
    const operator = await startOperator(config, { logger });
    cleanups.unshift({ what: 'the operator (releases its leader Lease)', run: () => operator.stop() });
    say(`operator running (logs: ${logFile})`);

    // 4. live view + the demo
    const views = watchCluster(adminRest, flags.namespace, print, logger.child({ component: 'dev-view' }), stopping.signal);
    // Tool calls before work states: both sample every 200 ms on timers of the same duration, which
    // Node fires in the order they were created, so a session's results print before its item's
    // `active → stopped` seen in the same round.
    const sessionIds = (): string[] => [...new Set(emulator.state.work.records().map((r) => r.work.data.id))];
    watchToolCalls(sessionIds, (id) => emulator.admin.sessionEvents(id), print, stopping.signal);
    watchWork(() => emulator.state.work.records().map((r) => r.work), print, stopping.signal);
    const api = new EnvironmentsClient({ baseUrl: emulator.url, credential: { kind: 'api-key', value: apiKey } });
    await runDemo({
      rest: adminRest,
      namespace: flags.namespace,
      samplesDir: join(REPO, 'deploy', 'samples'),
      sessions: Number(flags.sessions),
      print,
      signal: stopping.signal,
      emulator: {
        createSession: (id) => emulator.admin.createSession(id),
        mintKey: (id) => emulator.admin.mintKey(id),
        work: () => emulator.state.work.records().map((r) => r.work),
        stop: async (envId, workId) => void (await api.stopWork(envId, workId, { force: false })),
        script: (sessionId, events) => emulator.admin.appendAgentEvents(sessionId, events),
        answered: (sessionId, ids) => {
          const answeredIds = new Set(emulator.admin.sessionEvents(sessionId).filter((e) => e.type === 'user.tool_result').map((e) => String(e['tool_use_id'])));
          return ids.every((id) => answeredIds.has(id));
        },
      },
    });
    if (!stopping.signal.aborted) await new Promise<void>((r) => stopping.signal.addEventListener('abort', () => r(), { once: true }));
    await views.catch(() => undefined);
  } finally {
    for (const cleanup of cleanups) {
      const started = performance.now();
      say(`stopping ${cleanup.what}…`);
      await cleanup.run().catch((err: unknown) => say(`could not stop ${cleanup.what}: ${err instanceof Error ? err.message : String(err)}`));
      say(`stopped ${cleanup.what} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    }
    say('stopped; nothing left running');
  }
}

function readFileIfExists(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

function kubeConfigFrom(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

async function ensureNamespace(rest: KubeRest, name: string): Promise<void> {
  try {
    await rest.create(CORE.namespaces, undefined, { metadata: { name } });
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  }
}

/** The assignment endpoint's settings for `npm run dev` on the process kubelet: a free port on 127.0.0.1, a fresh certificate. */
async function devAssignment(dir: string): Promise<{ assignmentUrl: string; assignmentPort: number; assignmentTlsDir: string }> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return { assignmentUrl: `https://127.0.0.1:${port}`, assignmentPort: port, assignmentTlsDir: writeServingCertificate(dir) };
}
