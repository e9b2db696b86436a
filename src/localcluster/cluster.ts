/**
 * A real Kubernetes control plane on loopback for tests and development: etcd, kube-apiserver (TLS,
 * Node+RBAC authorization, the default admission chain with ValidatingAdmissionPolicy, service-account
 * tokens), kube-controller-manager (garbage collection, namespace deletion, service accounts), the CRDs,
 * the operator's least-privilege identity, and optionally the process kubelet as a Node.
 *
 * Start-up flow:
 *  1. binaries from the cache (built from test/controlplane on first use);
 *  2. PKI and free ports; etcd; kube-apiserver until /readyz;
 *  3. kubeconfigs; kube-controller-manager; namespace, ServiceAccount, RBAC, CRDs; operator token;
 *  4. (either node) the volume provisioner and the default StorageClass (provisioner.ts); then
 *     (kubelet) the process kubelet until its Node is Ready; or (runtime: 'containerd') kube-scheduler
 *     and a real kubelet on containerd and runc until its Node is Ready, with kube-proxy (see
 *     containerd-node.ts); the apiserver then also serves on the node's bridge address, the endpoint
 *     of the `kubernetes` Service, so Pods reach it in-cluster at its ClusterIP.
 * Every process is started through `reaper`, so none outlives the process that called this.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeRest } from '../k8s/rest.ts';
import { ensureControlPlaneBinaries, type ControlPlaneBinaries } from './controlplane-build.ts';
import { applyStorageClass, ensureProvisionerBinary, startProvisioner } from './provisioner.ts';
import { applyCrds, applyIdentities, kubeProxyToken, mintOperatorToken, waitForControllers, waitForNodeReady } from './controlplane-bootstrap.ts';
import { NODE_CONTROLLERS, startApiServer, startControllerManager, startEtcd, startScheduler, WORKLOAD_CONTROLLERS } from './controlplane-components.ts';
import { CONTAINERD_NODE_NAME, NODE_NETWORK } from './containerd-config.ts';
import { startContainerdNode, type ContainerdNode } from './containerd-node.ts';
import { guardApiServerPort, removeApiServerGuard, unmountUnder } from './node-host.ts';
import { ensureKubeProxyBinary, ensureNetworkPolicyBinary, ensureRuntimeBinaries } from './runtime-build.ts';
import { defaultCacheDir } from './go-build-cache.ts';
import { createPki, writeKubeconfig } from './controlplane-pki.ts';
import { freePort, isAlive, startProcess, type ManagedProcess } from './controlplane-process.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const TEMP_PREFIX = 'agentenv-cluster-';
/** Operator token lifetime: one year, longer than any test run or dev session. */
const OPERATOR_TOKEN_SECONDS = 365 * 24 * 3600;

export interface LocalClusterOptions {
  /** State directory (PKI, etcd data, logs, kubeconfigs). Default: a new temporary directory. `stop()` removes it. */
  readonly dir?: string;
  /** Run the process kubelet (`agentenv kubelet`) and wait for its Node to be Ready. Default false. */
  readonly kubelet?: boolean;
  /**
   * `containerd`: run a real kubelet on containerd and runc (Node `agentenv-containerd`) with
   * kube-scheduler, in place of the process kubelet (`kubelet` is then ignored). Needs root, runc
   * and overlayfs; see docs/runtime.md. Default `process` (the `kubelet` option decides).
   */
  readonly runtime?: 'process' | 'containerd';
  /** With `runtime: 'containerd'`: OCI image archives imported into the node (scripts/images.ts builds them). */
  readonly imageArchives?: readonly string[];
  /** With `runtime: 'containerd'`: enforce NetworkPolicies with kube-router's policy controller (needs ipset). */
  readonly networkPolicy?: boolean;
  /** The process kubelet's Node name. Default `agentenv-local`. */
  readonly nodeName?: string;
  /** CRDs applied at start. Default `<repo>/crds`. */
  readonly crdsDir?: string;
  /** The operator ClusterRole's rules. Default `<repo>/deploy/helm/agentenv/files/operator-rbac-rules.yaml`. */
  readonly operatorRulesFile?: string;
  /** Binary cache root. Default `~/.cache/agentenv`. */
  readonly cacheDir?: string;
  /** Progress lines. Default: silent. */
  readonly log?: (line: string) => void;
  /** Also run the Deployment, ReplicaSet and Job controllers (a Helm release's workloads). Default false. */
  readonly workloadControllers?: boolean;
}

export interface LocalCluster {
  readonly dir: string;
  /** `https://127.0.0.1:<port>` */
  readonly server: string;
  /** cluster-admin kubeconfig file. */
  readonly adminKubeconfig: string;
  /** kubeconfig file of ServiceAccount agentenv-system/agentenv-operator (the Helm chart's RBAC). */
  readonly operatorKubeconfig: string;
  /** The process kubelet's kubeconfig file (always written; used when `kubelet` is on). */
  readonly kubeletKubeconfig: string;
  /** The process kubelet's `--root-dir` (container logs under `pods/<namespace>_<name>_<uid>/logs/`). */
  readonly kubeletRootDir: string;
  readonly nodeName: string;
  readonly binaries: ControlPlaneBinaries;
  /** The containerd node, when `runtime: 'containerd'`. */
  readonly containerdNode?: ContainerdNode;
  /** Pids of the running components by name, e.g. for a state file. */
  pids(): Record<string, number>;
  /** Stops kube-apiserver and starts it again on the same port and etcd (watches must survive this). */
  restartApiServer(): Promise<void>;
  /**
   * SIGKILLs the process kubelet (a crash: its containers keep running, anchored to this process)
   * and starts it again on the same root dir, where it re-adopts them; resolves once the new
   * process runs (not waiting for Node Ready). Only with `kubelet: true`.
   */
  restartKubelet(): Promise<void>;
  /** Stops every process (kubelet first, so it can stop its Pods) and removes the state directory. Idempotent. */
  stop(): Promise<void>;
}

export const DEFAULT_NODE_NAME = 'agentenv-local';

export async function startLocalCluster(options: LocalClusterOptions = {}): Promise<LocalCluster> {
  const log = options.log ?? (() => {});
  const binaries = await ensureControlPlaneBinaries({ log, ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}) });
  const dir = options.dir ?? (await temporaryStateDir());
  await mkdir(dir, { recursive: true });
  const containerd = options.runtime === 'containerd';
  const nodeName = containerd ? CONTAINERD_NODE_NAME : (options.nodeName ?? DEFAULT_NODE_NAME);
  const kubeletRootDir = join(dir, 'kubelet');
  const processes = new Map<string, ManagedProcess>();
  let node: ContainerdNode | undefined;
  // With the containerd node the apiserver also serves on the bridge address, behind a guard (see apiServerArgs).
  const advertiseAddress = containerd ? NODE_NETWORK.gateway : undefined;
  let guardedPort: number | undefined;

  const stopAll = async (): Promise<void> => {
    // The real kubelet and containerd first, then the scheduler, while the API is still there.
    await node?.stop();
    await processes.get('kube-scheduler')?.stop(5_000);
    processes.delete('kube-scheduler');
    // Reverse start order: the kubelet stops its Pods while the API is still there to record it.
    const graces: Record<string, number> = { kubelet: 60_000 };
    for (const name of ['kubelet', 'provisioner', 'kube-controller-manager', 'kube-apiserver', 'etcd']) {
      await processes.get(name)?.stop(graces[name] ?? 10_000);
      processes.delete(name);
    }
    if (guardedPort) await removeApiServerGuard(guardedPort);
  };

  try {
    const pki = await createPki(binaries.certs, join(dir, 'pki'));
    const [etcdClientPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    if (advertiseAddress) {
      await guardApiServerPort(apiPort);
      guardedPort = apiPort;
    }
    log('starting etcd and kube-apiserver …');
    processes.set('etcd', await startEtcd(binaries, dir, { clientPort: etcdClientPort, peerPort: etcdPeerPort }));
    processes.set('kube-apiserver', await startApiServer(binaries, pki, dir, etcdClientPort, apiPort, advertiseAddress));
    const server = `https://127.0.0.1:${apiPort}`;

    const adminKubeconfig = join(dir, 'admin.kubeconfig');
    const controllerManagerKubeconfig = join(dir, 'controller-manager.kubeconfig');
    const kubeletKubeconfig = join(dir, 'kubelet.kubeconfig');
    const operatorKubeconfig = join(dir, 'operator.kubeconfig');
    await writeKubeconfig(adminKubeconfig, server, pki.ca, 'agentenv-admin', pki.admin);
    await writeKubeconfig(controllerManagerKubeconfig, server, pki.ca, 'kube-controller-manager', pki.controllerManager);
    await writeKubeconfig(kubeletKubeconfig, server, pki.ca, 'agentenv-process-kubelet', pki.processKubelet);
    const extraControllers = [...(options.workloadControllers ? WORKLOAD_CONTROLLERS : []), ...(containerd ? NODE_CONTROLLERS : [])];
    processes.set('kube-controller-manager', startControllerManager(binaries, pki, dir, controllerManagerKubeconfig, extraControllers));

    log('applying RBAC and CRDs …');
    const admin = new KubeConfig();
    admin.loadFromFile(adminKubeconfig);
    const rest = new KubeRest(admin, { fieldManager: 'agentenv-localcluster' });
    await applyIdentities(rest, options.operatorRulesFile ?? join(REPO, 'deploy/helm/agentenv/files/operator-rbac-rules.yaml'));
    await applyCrds(rest, options.crdsDir ?? join(REPO, 'crds'));
    const token = await mintOperatorToken(server, pki, OPERATOR_TOKEN_SECONDS);
    await writeKubeconfig(operatorKubeconfig, server, pki.ca, 'agentenv-operator', { token });
    await waitForControllers(rest);

    if (containerd || options.kubelet) {
      // Real volumes for the node's Pods: the provisioner and the default StorageClass (provisioner.ts).
      const provisioner = await ensureProvisionerBinary(options.cacheDir ?? defaultCacheDir(), log);
      processes.set('provisioner', startProvisioner({ binary: provisioner, reaper: binaries.reaper, kubeconfig: adminKubeconfig, dir, nodeName }));
      await applyStorageClass(rest);
    }
    if (containerd) {
      const cacheDir = options.cacheDir ?? defaultCacheDir();
      const runtime = await ensureRuntimeBinaries({ log, cacheDir });
      const schedulerKubeconfig = join(dir, 'scheduler.kubeconfig');
      await writeKubeconfig(schedulerKubeconfig, server, pki.ca, 'system:kube-scheduler', pki.scheduler);
      processes.set('kube-scheduler', startScheduler(binaries, dir, schedulerKubeconfig));
      const networkPolicy = options.networkPolicy ? { kubeRouter: await ensureNetworkPolicyBinary({ log, cacheDir }), kubeconfig: adminKubeconfig } : undefined;
      const kubeProxy = { binary: await ensureKubeProxyBinary({ log, cacheDir }), kubeconfig: join(dir, 'kube-proxy.kubeconfig') };
      await writeKubeconfig(kubeProxy.kubeconfig, server, pki.ca, 'kube-proxy', { token: await kubeProxyToken(rest, server, pki, OPERATOR_TOKEN_SECONDS) });
      node = await startContainerdNode({ dir, cacheDir, server, pki, binaries, runtime, imageArchives: options.imageArchives ?? [], log, kubeProxy, ...(networkPolicy ? { networkPolicy } : {}) });
      const kubelet = node.processes.get('kubelet');
      if (kubelet) await waitForNodeReady(rest, nodeName, kubelet, 180_000);
    }
    const startKubelet = (): ManagedProcess =>
      startProcess(
        'kubelet',
        process.execPath,
        // --reaper: the kubelet starts containers under reaper anchored to this process, so they die
        // with the test run even if the kubelet itself is killed or restarted.
        [join(REPO, 'src/cli/main.ts'), 'kubelet', '--kubeconfig', kubeletKubeconfig, '--node-name', nodeName, '--root-dir', kubeletRootDir, '--reaper', binaries.reaper],
        { reaper: binaries.reaper, logFile: join(dir, 'kubelet.log'), cwd: REPO },
      );
    if (!containerd && options.kubelet) {
      await bundleSidecar(log);
      log(`starting the process kubelet as node ${nodeName} …`);
      const kubelet = startKubelet();
      processes.set('kubelet', kubelet);
      await waitForNodeReady(rest, nodeName, kubelet);
    }
    log(`cluster ready at ${server}`);

    let stopped = false;
    return {
      dir,
      server,
      adminKubeconfig,
      operatorKubeconfig,
      kubeletKubeconfig,
      kubeletRootDir,
      nodeName,
      binaries,
      ...(node ? { containerdNode: node } : {}),
      pids: () => Object.fromEntries([...processes, ...(node?.processes ?? [])].map(([name, p]) => [name, p.pid])),
      async restartApiServer() {
        // kube-apiserver lingers after a graceful shutdown (it waits for long-running requests): 5 s is plenty.
        await processes.get('kube-apiserver')?.stop(5_000);
        processes.set('kube-apiserver', await startApiServer(binaries, pki, dir, etcdClientPort, apiPort, advertiseAddress));
      },
      async restartKubelet() {
        const kubelet = processes.get('kubelet');
        if (!kubelet) throw new Error('this cluster runs no process kubelet');
        await kubelet.kill('SIGKILL');
        processes.set('kubelet', startKubelet());
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await stopAll();
        await unmountUnder(dir);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await stopAll();
    throw new Error(`the local cluster did not start (state and logs kept in ${dir}): ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/**
 * A fresh directory under the OS temp dir, marked with our pid. Directories left by a process that
 * was SIGKILLed (its children died with it through reaper, but nobody removed the files) are removed.
 */
async function temporaryStateDir(): Promise<string> {
  for (const entry of await readdir(tmpdir()).catch(() => [])) {
    if (!entry.startsWith(TEMP_PREFIX)) continue;
    const stale = join(tmpdir(), entry);
    const owner = Number(await readFile(join(stale, 'owner.pid'), 'utf8').catch(() => ''));
    if (owner && !isAlive(owner)) {
      // A killed run may leave mounts (a containerd node's volumes, root filesystems): never remove through them.
      await unmountUnder(stale);
      await rm(stale, { recursive: true, force: true });
    }
  }
  const dir = await mkdtemp(join(tmpdir(), TEMP_PREFIX));
  await writeFile(join(dir, 'owner.pid'), String(process.pid));
  return dir;
}

/**
 * Session Pods run the bundled sidecar (`/app/dist/sidecar.cjs` in the image, the repository's
 * dist/sidecar.cjs here; see kubelet/images.ts): bundle it from the current sources (esbuild,
 * well under a second), so a Pod never runs what an earlier build left behind.
 */
async function bundleSidecar(log: (line: string) => void): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    execFile('npm', ['run', '-s', 'build:sidecar'], { cwd: REPO }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`npm run build:sidecar failed: ${stderr || err.message}`));
      else resolve();
    });
  });
  log('bundled the sidecar into dist/sidecar.cjs');
}
