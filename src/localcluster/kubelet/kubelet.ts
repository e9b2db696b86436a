/**
 * The process kubelet: a test and development runtime that makes one Node of a real kube-apiserver
 * run its Pods as local processes (see docs/process-kubelet.md for what it emulates and what not).
 *
 * Flow:
 *  1. register the Node (Ready) and keep it alive (node Lease + status);
 *  2. list+watch all Pods; bind Pending unscheduled Pods that fit this node (it is their scheduler);
 *  3. re-attach to the Pods a previous kubelet process left under the root dir: adopt the container
 *     processes still running, record the exits of those that ended, and stop the processes of
 *     Pods that no longer exist;
 *  4. one PodWorker per Pod bound here, keyed by uid;
 *  5. on shutdown, stop every container (SIGTERM, then SIGKILL after a capped grace).
 */
import { mkdir } from 'node:fs/promises';
import type { Logger } from '../../telemetry/logger.ts';
import { isConflict, isNotFound } from '../../k8s/errors.ts';
import { Informer } from '../../k8s/informer.ts';
import { CORE, type KubeRest } from '../../k8s/rest.ts';
import { sleepUnlessAborted } from '../../util/sleep.ts';
import type { ImageRuntime } from './images.ts';
import { heartbeat, nodeLabels, registerNode, type NodeIdentity } from './node.ts';
import * as files from './pod-files.ts';
import type { PersistedPod } from './pod-files.ts';
import type { Node, Pod } from './pod-types.ts';
import { graceSeconds, PodWorker, type NodeContext } from './pod-worker.ts';
import { signalContainer, wrapperAlive } from './process.ts';
import { allocatePodIP } from './pod-ip.ts';
import { bindPod, fitsNode, isOurs, markUnschedulable } from './scheduling.ts';

export interface KubeletOptions {
  readonly rest: KubeRest;
  readonly nodeName: string;
  readonly rootDir: string;
  readonly images: ImageRuntime;
  readonly reaper?: string | undefined;
  readonly anchorPid?: number | undefined;
  readonly nodeLabels?: Readonly<Record<string, string>>;
  /** Bind unscheduled Pods that fit (be this node's scheduler). Default true. */
  readonly scheduling?: boolean;
  readonly logger: Logger;
}

const HOST_IP = '127.0.0.1';
const RESYNC_MS = 5_000;
/** Longest grace a kubelet shutdown waits for a Pod's processes. */
const SHUTDOWN_GRACE_CAP_SECONDS = 10;

export async function runKubelet(options: KubeletOptions, signal: AbortSignal): Promise<void> {
  const { rest, nodeName, logger } = options;
  await mkdir(files.podsDir(options.rootDir), { recursive: true });
  const identity: NodeIdentity = { name: nodeName, labels: nodeLabels(nodeName, options.nodeLabels ?? {}), hostIP: HOST_IP };
  let node: Node = await registerNode(rest, identity);
  logger.info({ node: nodeName }, 'node registered');
  const ctx: NodeContext = { rest, nodeName, hostIP: HOST_IP, images: options.images, reaper: options.reaper, anchorPid: options.anchorPid, logger };

  const workers = new Map<string, PodWorker>();
  const binding = new Set<string>();
  const persisted = new Map<string, { dir: string; state: PersistedPod }>();
  for (const { dir, state } of await files.loadPods(options.rootDir)) if (state) persisted.set(state.uid, { dir, state });

  const schedule = (pod: Pod): void => {
    const uid = pod.metadata?.uid ?? '';
    if (options.scheduling === false || binding.has(uid) || pod.metadata?.deletionTimestamp || !isOurs(pod) || (pod.status?.phase ?? 'Pending') !== 'Pending') return;
    binding.add(uid);
    const fit = fitsNode(pod, node);
    const done = fit.fits ? bindPod(rest, pod, nodeName) : markUnschedulable(rest, pod, fit.message);
    done
      .catch((err: unknown) => {
        if (!isNotFound(err) && !isConflict(err)) logger.warn({ err, pod: `${pod.metadata?.namespace}/${pod.metadata?.name}` }, 'scheduling failed');
      })
      .finally(() => binding.delete(uid));
  };

  const workerFor = async (pod: Pod): Promise<PodWorker | undefined> => {
    const uid = pod.metadata?.uid ?? '';
    const existing = workers.get(uid);
    if (existing) return existing;
    const saved = persisted.get(uid);
    persisted.delete(uid);
    if (!saved && (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed')) return undefined;
    const dir = saved?.dir ?? files.podDir(options.rootDir, pod);
    const used = new Set([...[...workers.values()].map((w) => w.record.podIP), ...[...persisted.values()].map((p) => p.state.record.podIP)]);
    const record = saved?.state.record ?? { initialized: false, startTime: new Date().toISOString(), podIP: allocatePodIP(uid, used), containers: {} };
    await files.createPodDirs(dir, []);
    const worker = new PodWorker(ctx, pod, dir, record);
    workers.set(uid, worker);
    if (saved) await worker.adopt(saved.state.runs);
    return worker;
  };

  const route = async (pod: Pod): Promise<void> => {
    if (!pod.spec.nodeName) return schedule(pod);
    if (pod.spec.nodeName !== nodeName) return;
    const worker = await workerFor(pod);
    if (worker) return worker.update(pod);
    // A finished Pod this kubelet has no record of: nothing runs, so a deletion completes at once.
    if (pod.metadata?.deletionTimestamp) {
      await rest.delete(CORE.pods, pod.metadata.namespace, pod.metadata.name ?? '', { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata.uid ?? '' } }).catch(() => {});
    }
  };

  const forget = (pod: Pod): void => {
    const worker = workers.get(pod.metadata?.uid ?? '');
    if (worker) void worker.terminate(graceSeconds(worker.pod), false);
  };

  // One route per Pod at a time, in event order.
  let queue: Promise<void> = Promise.resolve();
  const enqueue = (work: () => Promise<void> | void): void => {
    queue = queue.then(work).catch((err: unknown) => logger.error({ err }, 'pod event handling failed'));
  };

  const pods = new Informer<Pod>(rest, CORE.pods, { logger: logger.child({ informer: 'pods' }) });
  pods.on((e) => enqueue(() => (e.type === 'delete' ? forget(e.object) : route(e.object))));
  const informerDone = pods.run(signal);
  const beating = heartbeat(rest, identity, signal, logger);
  await pods.synced();

  // Pods a previous kubelet ran that are gone now: stop what is left of them.
  enqueue(async () => {
    for (const [uid, { dir, state }] of persisted) {
      if (pods.list((p) => p.metadata?.uid === uid).length) continue;
      persisted.delete(uid);
      logger.info({ pod: `${state.namespace}/${state.name}` }, 'cleaning up a pod that no longer exists');
      // Only while its wrapper (same pid, same start time) lives is a run's process group still ours.
      for (const run of Object.values(state.runs)) if (await wrapperAlive(run)) await signalContainer(run, 'SIGKILL');
      await files.removePodFiles(dir);
    }
  });

  while (await sleepUnlessAborted(RESYNC_MS, signal)) {
    node = (await rest.get<Node>(CORE.nodes, undefined, nodeName).catch(() => node)) ?? node;
    for (const [uid, worker] of workers) {
      if (worker.closed) workers.delete(uid);
      else worker.requestSync();
    }
    for (const pod of pods.list((p) => !p.spec.nodeName)) enqueue(() => schedule(pod));
  }

  logger.info({ pods: workers.size }, 'kubelet stopping: stopping every container');
  await Promise.all([...workers.values()].map((w) => w.shutdown(SHUTDOWN_GRACE_CAP_SECONDS)));
  await Promise.all([informerDone, beating]);
}
