/**
 * Everything a chaos run stands on: the local cluster with the process kubelet, the in-process
 * emulator (per-item secrets), a self-hosted environment adopted by an AgentEnvironment with short
 * TTLs, two operator replicas (replicas.ts), and informers over the run's Pods and AgentSessions
 * that keep what the invariants need (observations.ts). `stop()` ends every process it started.
 */
import { cp, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { EnvironmentsClient } from '../../src/api/client.ts';
import { AGENT_ENVIRONMENTS, AGENT_SESSIONS, type AgentEnvironment, type AgentSession } from '../../src/crd/resources.ts';
import { startEmulator, type RunningEmulator } from '../../src/emulator/index.ts';
import { Informer } from '../../src/k8s/informer.ts';
import { CORE, KubeRest, type KubeObject } from '../../src/k8s/rest.ts';
import { startLocalCluster, type LocalCluster } from '../../src/localcluster/index.ts';
import type { Pod } from '../../src/sessions/objects/pod-types.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { Observations } from './observations.ts';
import { startReplicas, type Replicas } from './replicas.ts';
import type { Profile } from './schedule.ts';

export const API_KEY = 'sk-ant-api03-chaos';
export const NAMESPACE = 'chaos';
export const ENVIRONMENT = 'chaos';
export const LEASE_NAME = 'chaos-operator';
/** Finished sessions are cleaned up this soon, so the leak count can be taken minutes earlier than by default. */
export const SESSION_TTL_SECONDS = 5;

export interface World {
  readonly cluster: LocalCluster;
  readonly emu: RunningEmulator;
  readonly admin: KubeRest;
  /** The organization API key's client (remote stops, reads). */
  readonly api: EnvironmentsClient;
  readonly environmentId: string;
  readonly replicas: Replicas;
  readonly seen: Observations;
  /** The POD_NAME of the replica holding the leader Lease, if a live one does. */
  leader(): Promise<string | undefined>;
  /** Copy the operators' and the kubelet's logs to `dest` (the cluster's directory goes with `stop()`). */
  keepLogs(dest: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startWorld(profile: Profile, log: (line: string) => void): Promise<World> {
  const stops: Array<() => Promise<unknown>> = [];
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => log(`cleanup: ${String(err)}`));
  };
  try {
    const cluster = await startLocalCluster({ kubelet: true, log: (l) => log(`[local cluster] ${l}`) });
    stops.push(() => cluster.stop());
    // A lease lapses 30 s after an acknowledgement nobody claims (the API's default is 90 s, which would
    // outlast the small profile); heartbeats may ask for TTLs down to 2 s.
    const emu = await startEmulator({ apiKeys: [API_KEY], workSecrets: true, leaseTtl: { defaultSeconds: 30, minSeconds: 2 } });
    stops.push(() => emu.close());
    const kc = new KubeConfig();
    kc.loadFromFile(cluster.adminKubeconfig);
    const admin = new KubeRest(kc, { fieldManager: 'agentenv-chaos' });
    stops.push(() => admin.close());
    await admin.create(CORE.namespaces, undefined, { metadata: { name: NAMESPACE } } as KubeObject);

    const api = new EnvironmentsClient({ baseUrl: emu.url, credential: { kind: 'api-key', value: API_KEY }, retry: { maxRetries: 8, backoff: { baseMs: 100, capMs: 1_000, jitter: 0.5 }, maxRetryAfterMs: 5_000 } });
    const remote = await api.createEnvironment({ name: ENVIRONMENT, config: { type: 'self_hosted' } });
    await admin.create(CORE.secrets, NAMESPACE, { metadata: { name: `${ENVIRONMENT}-key` }, stringData: { key: emu.admin.mintKey(remote.id) } } as KubeObject);
    await admin.create(AGENT_ENVIRONMENTS, NAMESPACE, {
      metadata: { name: ENVIRONMENT },
      spec: {
        environmentId: remote.id,
        selfHosted: {
          environmentKeySecretRef: { name: `${ENVIRONMENT}-key`, key: 'key' },
          maxSessions: profile.maxSessions,
          sessionTTLSecondsAfterFinished: SESSION_TTL_SECONDS,
          stopGracePeriodSeconds: 5,
          leaseTTLSeconds: 10,
          startDeadlineSeconds: 90,
          idleTimeoutSeconds: 60,
        },
      },
    } as unknown as AgentEnvironment);

    const seen = new Observations();
    const watching = new AbortController();
    const sessions = new Informer<AgentSession>(admin, AGENT_SESSIONS, { namespace: NAMESPACE, logger: silentLogger, backoff: { baseMs: 200, capMs: 1_000, jitter: 0.2 } });
    const pods = new Informer<Pod & KubeObject>(admin, CORE.pods, { namespace: NAMESPACE, logger: silentLogger, backoff: { baseMs: 200, capMs: 1_000, jitter: 0.2 } });
    sessions.on((e) => seen.session(e.type, e.object));
    pods.on((e) => seen.pod(e.type, e.object));
    const informing = [sessions.run(watching.signal), pods.run(watching.signal)];
    stops.push(async () => {
      watching.abort();
      await Promise.allSettled(informing);
    });
    await Promise.all([sessions.synced(), pods.synced()]);

    const logDir = join(cluster.dir, 'chaos');
    await mkdir(logDir, { recursive: true });
    const replicas = startReplicas({ reaper: cluster.binaries.reaper, kubeconfig: cluster.operatorKubeconfig, namespace: NAMESPACE, leaseName: LEASE_NAME, baseUrl: emu.url, apiKey: API_KEY, logDir, log });
    stops.push(() => replicas.stop());

    const leader = async (): Promise<string | undefined> => {
      const lease = await admin.get<KubeObject & { spec?: { holderIdentity?: string } }>(CORE.leases, NAMESPACE, LEASE_NAME).catch(() => undefined);
      return lease?.spec?.holderIdentity ? replicas.podOf(lease.spec.holderIdentity) : undefined;
    };
    for (let waited = 0; ; waited += 250) {
      const env = await admin.get<AgentEnvironment>(AGENT_ENVIRONMENTS, NAMESPACE, ENVIRONMENT);
      if (env.status?.conditions?.some((c) => c.type === 'Dispatching' && c.status === 'True')) break;
      if (waited > 120_000) throw new Error('the environment never reported Dispatching=True');
      await sleep(250);
    }
    log(`ready: environment ${remote.id} dispatching, leader ${(await leader()) ?? '(none yet)'}; logs in ${logDir}`);
    const keepLogs = async (dest: string): Promise<void> => {
      await mkdir(dest, { recursive: true });
      await cp(logDir, dest, { recursive: true });
      await cp(join(cluster.dir, 'kubelet.log'), join(dest, 'kubelet.log'));
      await cp(join(cluster.dir, 'kubelet'), join(dest, 'kubelet'), { recursive: true, filter: (src) => !src.includes('/volumes/') });
    };
    return { cluster, emu, admin, api, environmentId: remote.id, replicas, seen, leader, keepLogs, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
