/**
 * Everything a chaos run stands on: the local cluster with the process kubelet and its volume
 * provisioner, the in-process emulator (per-item secrets), three self-hosted environments adopted by
 * AgentEnvironments with short TTLs — `cold`, `warm` (a warm pool) and `workspace` (a claim per
 * session, a short idle timeout) — two operator replicas (replicas.ts) behind one assignment
 * endpoint (assignment-service.ts), and informers over the run's Pods and AgentSessions that keep
 * what the invariants need (observations.ts). `stop()` ends every process it started.
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
import { writeServingCertificate } from '../../src/localcluster/serving-cert.ts';
import { freePort, startAssignmentService } from './assignment-service.ts';
import { Observations } from './observations.ts';
import { startReplicas, type Replicas } from './replicas.ts';
import { ENVIRONMENT_KINDS, type EnvironmentKind, type Profile } from './schedule.ts';

export const API_KEY = 'sk-ant-api03-chaos';
export const NAMESPACE = 'chaos';
export const LEASE_NAME = 'chaos-operator';
/** Finished sessions are cleaned up this soon, so the leak count can be taken minutes earlier than by default. */
export const SESSION_TTL_SECONDS = 5;
/**
 * The workspace environment's `retainSecondsAfterLastWork` (default 7 days): a session that was not
 * terminated in the API (a remote stop) keeps its AgentSession and claim this long. Long enough for a
 * resumed session's next item to be claimed under faults (the record is then moved forward and kept).
 */
export const WORKSPACE_RETAIN_SECONDS = 30;
/** The workspace environment's idle timeout: a resumed session's first runner ends this soon after its turn. */
const WORKSPACE_IDLE_SECONDS = 2;

export interface ChaosEnvironment {
  readonly kind: EnvironmentKind;
  /** The AgentEnvironment's name (= its kind). */
  readonly name: string;
  /** The remote environment's id. */
  readonly id: string;
}

export interface World {
  readonly cluster: LocalCluster;
  readonly emu: RunningEmulator;
  readonly admin: KubeRest;
  /** The organization API key's client (remote stops, reads). */
  readonly api: EnvironmentsClient;
  readonly environments: Readonly<Record<EnvironmentKind, ChaosEnvironment>>;
  readonly replicas: Replicas;
  readonly seen: Observations;
  /** The POD_NAME of the replica holding the leader Lease, if a live one does. */
  leader(): Promise<string | undefined>;
  /** Set the warm environment's `warmPool.size` (the run ends with 0, so every warm Pod left is a leak). */
  scaleWarmPool(size: number): Promise<void>;
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
    const environments = {} as Record<EnvironmentKind, ChaosEnvironment>;
    for (const kind of ENVIRONMENT_KINDS) {
      const remote = await api.createEnvironment({ name: `chaos-${kind}`, config: { type: 'self_hosted' } });
      await admin.create(CORE.secrets, NAMESPACE, { metadata: { name: `${kind}-key` }, stringData: { key: emu.admin.mintKey(remote.id) } } as KubeObject);
      await admin.create(AGENT_ENVIRONMENTS, NAMESPACE, { metadata: { name: kind }, spec: { environmentId: remote.id, selfHosted: selfHostedSpec(kind, profile) } } as unknown as AgentEnvironment);
      environments[kind] = { kind, name: kind, id: remote.id };
    }

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
    // The warm pools' endpoint: each replica listens on a port of its own behind one stand-in Service.
    const ports = [await freePort(), await freePort()] as const;
    const service = await startAssignmentService(ports);
    stops.push(() => service.close());
    const assignment = { url: `https://127.0.0.1:${service.port}`, tlsDir: writeServingCertificate(join(cluster.dir, 'assignment-tls')), ports };
    const replicas = startReplicas({ reaper: cluster.binaries.reaper, kubeconfig: cluster.operatorKubeconfig, namespace: NAMESPACE, leaseName: LEASE_NAME, baseUrl: emu.url, apiKey: API_KEY, logDir, log, assignment, healthPorts: [await freePort(), await freePort()] });
    stops.push(() => replicas.stop());

    const leader = async (): Promise<string | undefined> => {
      const lease = await admin.get<KubeObject & { spec?: { holderIdentity?: string } }>(CORE.leases, NAMESPACE, LEASE_NAME).catch(() => undefined);
      return lease?.spec?.holderIdentity ? replicas.podOf(lease.spec.holderIdentity) : undefined;
    };
    for (let waited = 0; ; waited += 250) {
      const envs = await Promise.all(ENVIRONMENT_KINDS.map((kind) => admin.get<AgentEnvironment>(AGENT_ENVIRONMENTS, NAMESPACE, kind)));
      const dispatching = envs.every((env) => env.status?.conditions?.some((c) => c.type === 'Dispatching' && c.status === 'True'));
      // The warm pool full before the first session, so the warm environment's first sessions find Pods.
      if (dispatching && envs.find((e) => e.metadata?.name === 'warm')?.status?.warmPool?.ready === profile.warmPoolSize) break;
      if (waited > 120_000) throw new Error(`the environments never all reported Dispatching=True with a ready warm pool of ${profile.warmPoolSize}`);
      await sleep(250);
    }
    log(`ready: environments ${ENVIRONMENT_KINDS.map((k) => `${k} ${environments[k].id}`).join(', ')} dispatching, warm pool ready; leader ${(await leader()) ?? '(none yet)'}; logs in ${logDir}`);
    const scaleWarmPool = async (size: number): Promise<void> => {
      await admin.patch(AGENT_ENVIRONMENTS, NAMESPACE, 'warm', { spec: { selfHosted: { warmPool: { size } } } }, 'merge');
    };
    const keepLogs = async (dest: string): Promise<void> => {
      await mkdir(dest, { recursive: true });
      await cp(logDir, dest, { recursive: true });
      await cp(join(cluster.dir, 'kubelet.log'), join(dest, 'kubelet.log'));
      await cp(join(cluster.dir, 'kubelet'), join(dest, 'kubelet'), { recursive: true, filter: (src) => !src.includes('/volumes/') });
    };
    return { cluster, emu, admin, api, environments, replicas, seen, leader, scaleWarmPool, keepLogs, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** Each environment's `selfHosted` spec: the run's short TTLs, plus the warm pool or the workspace. */
function selfHostedSpec(kind: EnvironmentKind, profile: Profile): Record<string, unknown> {
  const common = {
    environmentKeySecretRef: { name: `${kind}-key`, key: 'key' },
    maxSessions: profile.maxSessions,
    sessionTTLSecondsAfterFinished: SESSION_TTL_SECONDS,
    stopGracePeriodSeconds: 5,
    leaseTTLSeconds: 10,
    startDeadlineSeconds: 90,
    idleTimeoutSeconds: 60,
  };
  switch (kind) {
    case 'cold':
      return common;
    case 'warm':
      return { ...common, warmPool: { size: profile.warmPoolSize } };
    case 'workspace':
      return {
        ...common,
        idleTimeoutSeconds: WORKSPACE_IDLE_SECONDS,
        workspace: { volumeClaimTemplate: { spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } }, retainSecondsAfterLastWork: WORKSPACE_RETAIN_SECONDS },
      };
  }
}
