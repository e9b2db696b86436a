/**
 * The containerd node: a real kubelet (built from the pinned Kubernetes module) on containerd 2.x with
 * runc and the CNI bridge, registered with the local apiserver as Node `agentenv-containerd`.
 *
 * Flow of `startContainerdNode`:
 *  1. take the machine-wide node lock (the bridge and the cgroup root are global), clean up what a
 *     killed run left (mounts, bridge, cgroups);
 *  2. bridge, cgroup root, config files; containerd in a PID namespace of its own, until it answers;
 *  3. import the pause image and the given image archives (no registry is ever contacted);
 *  4. the kubelet, until its Node is Ready; kube-proxy (Services from Pods); optionally kube-router's
 *     NetworkPolicy controller.
 *
 * Nothing outlives the run: containerd is PID 1 of its own PID namespace and is started as
 * `reaper -- unshare --pid --fork --kill-child --mount-proc -- containerd`, so the death of the
 * process that started the cluster (even by SIGKILL) kills unshare (parent-death signal), which kills
 * containerd (--kill-child), and the kernel then kills every process of the namespace: the runc
 * shims, which otherwise outlive containerd by design, and every container. The namespace gets its
 * own /proc (containerd and runc resolve `/proc/<pid>/ns/*` with pids of their namespace), hence its
 * own mount namespace, which shares the node directory's mounts with the machine (`shareMounts`).
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { CONTAINERD_NODE_NAME, KUBERNETES_SERVICE_IP, NODE_NETWORK, PAUSE_IMAGE, cniConfig, containerdConfig, kubeletConfig } from './containerd-config.ts';
import type { ControlPlaneBinaries } from './controlplane-build.ts';
import type { Pki } from './controlplane-pki.ts';
import { writeKubeconfig } from './controlplane-pki.ts';
import { freePort, isAlive, startProcess, waitUntilReady, type ManagedProcess } from './controlplane-process.ts';
import { elapsed } from './go-build-cache.ts';
import { cleanUpNode, ensureBridge, ensureCgroupRoot, shareMounts } from './node-host.ts';
import { writeSingleBinaryImage } from './oci-image.ts';
import type { RuntimeBinaries } from './runtime-build.ts';

const run = promisify(execFile);

export interface ContainerdNodeOptions {
  /** The cluster's state directory; the node uses `<dir>/node/`. */
  readonly dir: string;
  readonly cacheDir: string;
  readonly server: string;
  readonly pki: Pki;
  readonly binaries: ControlPlaneBinaries;
  readonly runtime: RuntimeBinaries;
  /** OCI archives to import into the node's image store (e.g. the project's images, see scripts/images.ts). */
  readonly imageArchives?: readonly string[];
  /**
   * kube-router's NetworkPolicy controller (binary from `ensureNetworkPolicyBinary`), run with this
   * kubeconfig: NetworkPolicies are enforced on the node's Pods. Absent: not enforced, as before.
   */
  readonly networkPolicy?: { readonly kubeRouter: string; readonly kubeconfig: string };
  /**
   * kube-proxy (binary from `ensureKubeProxyBinary`), run with this kubeconfig (its ServiceAccount):
   * Services' ClusterIPs work from Pods — the `kubernetes` Service above all, which is how a Pod's
   * in-cluster client reaches the apiserver. Absent: no Service is reachable from Pods.
   */
  readonly kubeProxy?: { readonly binary: string; readonly kubeconfig: string };
  readonly log: (line: string) => void;
}

export interface ContainerdNode {
  readonly nodeName: string;
  /** containerd's socket (`ctr --address`, `crictl --runtime-endpoint unix://…`). */
  readonly socket: string;
  /** Directory of container logs (`<namespace>_<pod>_<uid>/<container>/<n>.log`). */
  readonly podLogsDir: string;
  readonly processes: ReadonlyMap<string, ManagedProcess>;
  /** Stops the kubelet, then containerd (and with it every container), and puts the machine back. Idempotent. */
  stop(): Promise<void>;
}

export async function startContainerdNode(options: ContainerdNodeOptions): Promise<ContainerdNode> {
  const { log, runtime } = options;
  const nodeDir = join(options.dir, 'node');
  const lock = await takeNodeLock(options.cacheDir, nodeDir);
  await cleanUpNode(nodeDir);
  await rm(nodeDir, { recursive: true, force: true });
  const paths = {
    root: join(nodeDir, 'containerd', 'root'),
    state: join(nodeDir, 'containerd', 'state'),
    socket: join(nodeDir, 'containerd.sock'),
    runc: runtime.runc,
    cniBinDir: runtime.cniBinDir,
    cniConfDir: join(nodeDir, 'cni'),
  };
  const podLogsDir = join(nodeDir, 'pod-logs');
  await Promise.all([paths.root, paths.state, paths.cniConfDir, podLogsDir].map((d) => mkdir(d, { recursive: true })));
  const processes = new Map<string, ManagedProcess>();
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await processes.get('kube-router')?.stop(5_000);
    await processes.get('kube-proxy')?.stop(5_000);
    await processes.get('kubelet')?.stop(10_000);
    // SIGTERM reaches unshare, not containerd; the SIGKILL after 2 s reaches containerd through
    // --kill-child, and the namespace goes with it. Containers get no grace here: the node is going away.
    await processes.get('containerd')?.stop(2_000);
    await cleanUpNode(nodeDir);
    await rm(lock, { force: true });
  };

  try {
    await ensureBridge();
    await ensureCgroupRoot();
    await shareMounts(nodeDir);
    await writeFile(join(nodeDir, 'containerd.toml'), containerdConfig(paths));
    await writeFile(join(paths.cniConfDir, '10-agentenv.conflist'), cniConfig(join(nodeDir, 'ipam')));
    const started = performance.now();
    log('starting containerd …');
    const containerd = startProcess('containerd', 'unshare', ['--pid', '--fork', '--kill-child', '--mount-proc', '--propagation', 'unchanged', '--', runtime.containerd, '--config', join(nodeDir, 'containerd.toml')], {
      reaper: options.binaries.reaper,
      logFile: join(nodeDir, 'containerd.log'),
      // The shim is found next to containerd; runc is named in the config.
      env: { ...process.env, PATH: `${runtime.dir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` },
    });
    processes.set('containerd', containerd);
    const ctr = (...args: string[]): Promise<{ stdout: string }> => run(runtime.ctr, ['--address', paths.socket, '--namespace', 'k8s.io', ...args], { maxBuffer: 16 << 20 });
    await waitUntilReady('containerd', async () => (await ctr('images', 'list', '--quiet'), true), { process: containerd, timeoutMs: 60_000, intervalMs: 250 });
    log(`containerd ready (${elapsed(performance.now() - started)}); importing images …`);

    const pauseArchive = join(nodeDir, 'pause.oci.tar');
    await writeSingleBinaryImage(runtime.pause, 'pause', PAUSE_IMAGE, pauseArchive);
    for (const archive of [pauseArchive, ...(options.imageArchives ?? [])]) {
      const one = performance.now();
      await ctr('images', 'import', '--platform', 'linux/amd64', archive);
      log(`imported ${archive} (${elapsed(performance.now() - one)})`);
    }

    const kubeconfig = join(nodeDir, 'kubelet.kubeconfig');
    await writeKubeconfig(kubeconfig, options.server, options.pki.ca, `system:node:${CONTAINERD_NODE_NAME}`, options.pki.containerdNode);
    const resolvConf = join(nodeDir, 'resolv.conf');
    await writeFile(resolvConf, '# the local containerd node has no cluster DNS\noptions ndots:1\n');
    const config = kubeletConfig({ caFile: options.pki.caFile, socket: paths.socket, podLogsDir, resolvConf, port: await freePort(), healthzPort: await freePort() });
    await writeFile(join(nodeDir, 'kubelet.yaml'), stringify(config));
    log(`starting the kubelet as node ${CONTAINERD_NODE_NAME} …`);
    const kubelet = startProcess(
      'kubelet',
      options.binaries.kubelet,
      [
        `--config=${join(nodeDir, 'kubelet.yaml')}`,
        `--kubeconfig=${kubeconfig}`,
        `--root-dir=${join(nodeDir, 'kubelet')}`,
        `--cert-dir=${join(nodeDir, 'kubelet-pki')}`,
        `--hostname-override=${CONTAINERD_NODE_NAME}`,
        `--node-ip=${NODE_NETWORK.gateway}`,
        '--node-labels=agentenv.io/runtime=containerd',
        '--v=1',
      ],
      { reaper: options.binaries.reaper, logFile: join(nodeDir, 'kubelet.log') },
    );
    processes.set('kubelet', kubelet);
    await waitUntilReady('kubelet /healthz', async () => (await fetch(`http://127.0.0.1:${config.healthzPort as number}/healthz`)).ok, { process: kubelet, timeoutMs: 120_000, intervalMs: 500 });
    if (options.kubeProxy) processes.set('kube-proxy', await startKubeProxy(options.kubeProxy, nodeDir, options.binaries.reaper, log));
    if (options.networkPolicy) {
      log('starting kube-router (NetworkPolicy controller only) …');
      const kubeRouter = startProcess(
        'kube-router',
        options.networkPolicy.kubeRouter,
        [
          `--kubeconfig=${options.networkPolicy.kubeconfig}`,
          `--hostname-override=${CONTAINERD_NODE_NAME}`,
          '--run-firewall=true',
          '--run-router=false',
          '--run-service-proxy=false',
          '--health-port=0',
          '--metrics-port=0',
        ],
        { reaper: options.binaries.reaper, logFile: join(nodeDir, 'kube-router.log') },
      );
      processes.set('kube-router', kubeRouter);
      // Its policy chains exist once its first full sync ran.
      await waitUntilReady('kube-router policy chains', async () => (await run('iptables', ['-S', 'KUBE-ROUTER-FORWARD'])).stdout.length > 0, { process: kubeRouter, timeoutMs: 60_000, intervalMs: 500 });
    }
    return { nodeName: CONTAINERD_NODE_NAME, socket: paths.socket, podLogsDir, processes, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * kube-proxy in iptables mode, as a process of the node (a DaemonSet on a real cluster). It touches
 * no machine-wide setting: conntrack limits and timeouts are left as they are (`0`), no
 * `route_localnet` (NodePorts on 127.0.0.1 are off), NodePorts only on the node's address. Its chains (KUBE-SERVICES, KUBE-SVC-…) are
 * removed with the node's other rules (node-host.ts). Ready once the `kubernetes` Service's ClusterIP
 * has its rule.
 */
async function startKubeProxy(kubeProxy: { binary: string; kubeconfig: string }, nodeDir: string, reaper: string, log: (line: string) => void): Promise<ManagedProcess> {
  log('starting kube-proxy (iptables mode) …');
  const proxy = startProcess(
    'kube-proxy',
    kubeProxy.binary,
    [
      `--kubeconfig=${kubeProxy.kubeconfig}`,
      `--hostname-override=${CONTAINERD_NODE_NAME}`,
      '--proxy-mode=iptables',
      `--cluster-cidr=${NODE_NETWORK.subnet}`,
      `--healthz-bind-address=127.0.0.1:${await freePort()}`,
      `--metrics-bind-address=127.0.0.1:${await freePort()}`,
      '--conntrack-max-per-core=0',
      '--conntrack-tcp-timeout-established=0',
      '--conntrack-tcp-timeout-close-wait=0',
      '--iptables-localhost-nodeports=false',
      // NodePorts on the node's address only, never on the machine's other interfaces.
      `--nodeport-addresses=${NODE_NETWORK.subnet}`,
      // Its default (-999) needs CAP_SYS_RESOURCE, which these machines withhold (see containerd-config.ts).
      '--oom-score-adj=0',
      '--v=1',
    ],
    { reaper, logFile: join(nodeDir, 'kube-proxy.log') },
  );
  await waitUntilReady('kube-proxy rules for the kubernetes Service', async () => (await run('iptables', ['-t', 'nat', '-S', 'KUBE-SERVICES'])).stdout.includes(`-d ${KUBERNETES_SERVICE_IP}/32`), {
    process: proxy,
    timeoutMs: 60_000,
    intervalMs: 500,
  });
  return proxy;
}

/**
 * One containerd node per machine: the bridge, its subnet and the cgroup root are global names. The
 * lock file holds the owner's pid and node directory; a dead owner's lock is taken over (its processes
 * died with it; `cleanUpNode` removes what they left).
 */
async function takeNodeLock(cacheDir: string, nodeDir: string): Promise<string> {
  await mkdir(cacheDir, { recursive: true });
  const lock = join(cacheDir, 'containerd-node.lock');
  const held = await readFile(lock, 'utf8').catch(() => '');
  const [pid, dir] = held.split('\n');
  if (pid && Number(pid) !== process.pid && isAlive(Number(pid))) {
    throw new Error(`another containerd node is running on this machine (process ${pid}, state ${dir}): stop it first (npm run k8s:down, or end that test run)`);
  }
  if (dir && dir !== nodeDir) {
    await cleanUpNode(dir);
    await rm(dir, { recursive: true, force: true });
  }
  await writeFile(lock, `${process.pid}\n${nodeDir}\n`);
  return lock;
}
