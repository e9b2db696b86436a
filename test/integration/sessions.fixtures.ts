/**
 * Fixtures for the session integration tests: the emulator in-process, the session controller
 * running against the local cluster as the operator's ServiceAccount, and a `dispatch` that writes
 * exactly what the dispatcher writes (record → Secret → ack → acknowledged status), so the session
 * reconciler is exercised on its own.
 *
 * The session's main container is a `local/shell` script that behaves like a session runner: it
 * prints the *names* of its environment variables, traps SIGTERM (exit 0), and otherwise exits with
 * `EXIT_CODE` after `RUN_SECONDS`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { EnvironmentsClient } from '../../src/api/client.ts';
import type { Work } from '../../src/api/wire.ts';
import { decodeWorkSecret } from '../../src/api/work-secret.ts';
import { AGENT_ENVIRONMENTS, AGENT_SESSIONS, type AgentEnvironment, type AgentSession } from '../../src/crd/resources.ts';
import { KubeEventRecorder } from '../../src/k8s/events.ts';
import { readSecretKey } from '../../src/k8s/secrets.ts';
import { CORE, type KubeObject, type KubeRest } from '../../src/k8s/rest.ts';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { workItemCredential } from '../../src/sessions/dispatch/credentials.ts';
import { ensureWorkSecret, kubeRecordStore, recordClaim } from '../../src/sessions/record/record.ts';
import { podName } from '../../src/sessions/record/names.ts';
import { sessionController, type SessionController } from '../../src/sessions/controller/controller.ts';
import type { Pod } from '../../src/sessions/objects/pod-types.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { API_KEY, clientFor, emulator } from '../support/emulator.ts';
import { adminRest, operatorRest, waitFor } from '../support/cluster.ts';

export const SIDECAR_IMAGE = 'ghcr.io/agentenv-io/agentenv:test';
/** The default runner's image: the process kubelet runs it as `agentenv runner` from this repository. */
export const RUNNER_IMAGE = 'ghcr.io/agentenv-io/agentenv-runner:test';

/** The session runner stand-in (see the file comment). */
export const RUNNER_SCRIPT = [
  "trap 'echo runner: SIGTERM; exit 0' TERM",
  'echo "runner env: $(env | cut -d= -f1 | sort | tr \'\\n\' \' \')"',
  'i=0',
  'while [ "$i" -lt "${RUN_SECONDS:-3600}" ]; do sleep 1 & wait $!; i=$((i+1)); done',
  'exit "${EXIT_CODE:-0}"',
].join('\n');

export interface TemplateOptions {
  readonly runSeconds?: number;
  readonly exitCode?: number;
  readonly image?: string;
  readonly nodeSelector?: Record<string, string>;
}

export function sessionTemplate(o: TemplateOptions = {}): Record<string, unknown> {
  return {
    spec: {
      ...(o.nodeSelector ? { nodeSelector: o.nodeSelector } : {}),
      containers: [
        {
          name: 'session',
          image: o.image ?? 'local/shell',
          command: ['/bin/sh', '-c', RUNNER_SCRIPT],
          env: [
            { name: 'RUN_SECONDS', value: String(o.runSeconds ?? 3600) },
            { name: 'EXIT_CODE', value: String(o.exitCode ?? 0) },
          ],
        },
      ],
    },
  };
}

export interface SessionsWorld {
  readonly emu: RunningEmulator;
  readonly namespace: string;
  readonly admin: KubeRest;
  readonly operator: KubeRest;
  readonly controller: SessionController;
  readonly logLines: string[];
  /** What the session controller reported to its metrics recorder. */
  readonly metrics: { podCreated: number[]; claimed: number[]; started: Array<{ environment: string; start: string; ms: number }>; stopped: string[]; heartbeats: string[]; phases: Array<Readonly<Record<string, number>>> };
  /** Every stop the session controller asked the API for. */
  readonly stops: Array<{ environmentId: string; workId: string; force: boolean }>;
  /** The organization API key client (for remote stops and reading items). */
  readonly api: EnvironmentsClient;
  /** Stop the controller (an operator going away), run `between`, start a fresh one (a new operator life). */
  restartController(between?: () => Promise<void>): Promise<void>;
  stop(): Promise<void>;
}

/** Start the emulator and the session controller for one namespace. */
export async function startSessionsWorld(namespace: string, options: { workSecrets?: boolean } = {}): Promise<SessionsWorld> {
  // workSecrets: poll replies carry a per-item token (the sidecar's credential) unless turned off,
  // when the sidecar gets the environment key instead.
  const emu = await emulator({ workSecrets: options.workSecrets ?? true, leaseTtl: { defaultSeconds: 20, minSeconds: 2 } });
  const admin = adminRest();
  const operator = operatorRest();
  const logLines: string[] = [];
  const stops: SessionsWorld['stops'] = [];
  const metrics: SessionsWorld['metrics'] = { podCreated: [], claimed: [], started: [], stopped: [], heartbeats: [], phases: [] };
  const logger = createLogger({ level: 'debug', base: { process: 'operator' }, destination: { write: (l: string) => void logLines.push(l) } });
  /** One operator life: a controller with its informers, until stopped. */
  const startController = async (): Promise<{ controller: SessionController; stop(): Promise<void> }> => {
    const controller = sessionController({
      rest: operator,
      events: new KubeEventRecorder(operator, { component: 'agentenv-operator', logger }),
      apiClient: (credential) => {
        const client = new EnvironmentsClient({ baseUrl: emu.url, credential, retry: { maxRetries: 2, backoff: { baseMs: 50, capMs: 200, jitter: 0.5 }, maxRetryAfterMs: 2_000 } });
        return {
          getWork: (environmentId, workId, opts) => client.getWork(environmentId, workId, opts),
          getSession: (sessionId, opts) => client.getSession(sessionId, opts),
          stopWork: (environmentId, workId, stop = {}, opts) => {
            stops.push({ environmentId, workId, force: stop.force ?? false });
            return client.stopWork(environmentId, workId, stop, opts);
          },
        };
      },
      workCredential: (env) => workItemCredential((ns, ref) => readSecretKey(operator, ns, ref), env, () => ({ kind: 'api-key', value: API_KEY })),
      sidecar: { image: SIDECAR_IMAGE, imagePullPolicy: 'IfNotPresent' },
      runner: { image: RUNNER_IMAGE, imagePullPolicy: 'IfNotPresent' },
      // The process kubelet has no per-Pod network namespace: each sidecar's proxy listens on its
      // Pod's own loopback IP (a shared 127.0.0.1:8096 would collide between Pods).
      proxyAddress: 'pod-ip',
      baseUrl: emu.url,
      logger,
      namespaces: [namespace],
      concurrency: 8,
      resyncMs: 30_000,
      metrics: {
        podCreated: (ms) => void metrics.podCreated.push(ms),
        claimed: (ms) => void metrics.claimed.push(ms),
        sessionStarted: (env, start, ms) => void metrics.started.push({ environment: `${env.namespace}/${env.name}`, start, ms }),
        stopped: (reason) => void metrics.stopped.push(reason),
        heartbeats: (outcome) => void metrics.heartbeats.push(outcome),
        sessionsByPhase: (counts) => void metrics.phases.push(counts),
      },
    });
    const abort = new AbortController();
    const informers = controller.informers.map((i) => (i as { run(s: AbortSignal): Promise<void> }).run(abort.signal));
    await Promise.all(controller.informers.map((i) => i.synced()));
    const running = controller.controller.run(abort.signal);
    return {
      controller,
      async stop() {
        abort.abort();
        await Promise.allSettled([running, ...informers]);
      },
    };
  };
  let life = await startController();
  return {
    emu,
    namespace,
    admin,
    operator,
    get controller() {
      return life.controller;
    },
    async restartController(between) {
      await life.stop();
      await between?.();
      life = await startController();
    },
    logLines,
    metrics,
    stops,
    api: clientFor(emu),
    async stop() {
      await life.stop();
      await emu.close();
    },
  };
}

export interface TestEnvironment {
  readonly env: AgentEnvironment;
  readonly environmentId: string;
  readonly envKey: string;
  /** A client with the environment key (the dispatcher's credential). */
  readonly worker: EnvironmentsClient;
}

/**
 * A remote self-hosted environment, its key in a Secret, and an AgentEnvironment adopting it. A
 * `template` of undefined leaves `sessionTemplate` out: the sessions run the default runner.
 */
export async function createEnvironment(w: SessionsWorld, name: string, template: Record<string, unknown> | undefined, selfHosted: Record<string, unknown> = {}): Promise<TestEnvironment> {
  const remote = await w.api.createEnvironment({ name, config: { type: 'self_hosted' } });
  const envKey = w.emu.admin.mintKey(remote.id);
  await w.admin.create(CORE.secrets, w.namespace, { metadata: { name: `${name}-key` }, stringData: { key: envKey } } as KubeObject);
  const env = await w.admin.create<AgentEnvironment>(AGENT_ENVIRONMENTS, w.namespace, {
    metadata: { name },
    spec: {
      environmentId: remote.id,
      selfHosted: { environmentKeySecretRef: { name: `${name}-key`, key: 'key' }, ...(template ? { sessionTemplate: template } : {}), stopGracePeriodSeconds: 5, ...selfHosted },
    },
  } as unknown as AgentEnvironment);
  return { env, environmentId: remote.id, envKey, worker: clientFor(w.emu, { kind: 'bearer', value: envKey }) };
}

export interface Dispatched {
  readonly session: AgentSession;
  readonly work: Work;
  readonly name: string;
}

/**
 * Enqueue a session in the emulator and do what the dispatcher's hand-off does with it: record →
 * per-item Secret (when the poll carried a per-item secret) → ack → hand the acknowledged item to
 * the session controller, which creates the Pod and records the acknowledgement.
 */
export async function dispatch(w: SessionsWorld, e: TestEnvironment): Promise<Dispatched> {
  const { work_id } = w.emu.admin.createSession(e.environmentId);
  const work = await waitFor(async () => {
    const polled = await e.worker.pollWork(e.environmentId, { blockMs: 999, workerId: 'test-dispatcher' });
    return polled?.id === work_id ? polled : undefined;
  }, { what: `work item ${work_id} to be delivered` });
  const store = kubeRecordStore(w.operator);
  const secret = decodeWorkSecret(work.secret);
  const { session } = await recordClaim(store, e.env, { sessionId: work.data.id, workId: work.id, environmentId: e.environmentId, workerId: 'test-dispatcher', claimedAt: new Date(), workSecret: Boolean(secret) });
  if (secret && work.secret) await ensureWorkSecret(store, session, { token: secret.sessions_token, workSecret: work.secret });
  const acked = await e.worker.ackWork(e.environmentId, work.id);
  const name = session.metadata?.name ?? '';
  w.controller.acknowledged(w.namespace, name, acked);
  return { session, work, name };
}

export const getSession = (w: SessionsWorld, name: string): Promise<AgentSession> => w.admin.get<AgentSession>(AGENT_SESSIONS, w.namespace, name);

/** Wait until the AgentSession satisfies `ok`; returns it. */
export function waitForSession(w: SessionsWorld, name: string, ok: (s: AgentSession) => boolean, what: string, timeoutMs = 60_000): Promise<AgentSession> {
  return waitFor(async () => {
    const s = await getSession(w, name);
    return ok(s) ? s : undefined;
  }, { what: `AgentSession ${name}: ${what}`, timeoutMs, intervalMs: 200 });
}

export function waitForWork(w: SessionsWorld, e: TestEnvironment, workId: string, state: Work['state'], timeoutMs = 60_000): Promise<Work> {
  return waitFor(async () => {
    const work = await w.api.getWork(e.environmentId, workId);
    return work.state === state ? work : undefined;
  }, { what: `work item ${workId} to be ${state}`, timeoutMs, intervalMs: 200 });
}

export async function getPod(w: SessionsWorld, name: string): Promise<Pod | undefined> {
  try {
    return await w.admin.get<Pod>(CORE.pods, w.namespace, name);
  } catch {
    return undefined;
  }
}

/** Processes whose environment says they serve `workId` (the main container's), with their environment. */
export function processesOfWork(workId: string): Array<{ pid: number; environ: string[] }> {
  const out: Array<{ pid: number; environ: string[] }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0').filter(Boolean);
      if (environ.includes(`ANTHROPIC_WORK_ID=${workId}`)) out.push({ pid: Number(entry), environ });
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

/** Warning events recorded on an object. */
export async function eventsOf(w: SessionsWorld, name: string): Promise<Array<{ type: string; reason: string; message: string }>> {
  const list = await w.admin.list<KubeObject & { type: string; reason: string; message: string; involvedObject?: { name?: string } }>(CORE.events, w.namespace);
  return list.items.filter((e) => e.involvedObject?.name === name).map((e) => ({ type: e.type, reason: e.reason, message: e.message }));
}

export interface ServedSession {
  readonly env: TestEnvironment;
  readonly d: Dispatched;
  readonly sessionId: string;
  /** The Pod with its main container running (the default runner has started). */
  readonly pod: Pod;
}

/**
 * A session of an environment without a template — the default runner, `agentenv runner` — dispatched
 * and Running, its main container started.
 */
export async function serveSession(w: SessionsWorld, name: string, selfHosted: Record<string, unknown> = {}): Promise<ServedSession> {
  const env = await createEnvironment(w, name, undefined, { leaseTTLSeconds: 6, ...selfHosted });
  const d = await dispatch(w, env);
  await waitForSession(w, d.name, (s) => s.status?.phase === 'Running', 'Running', 90_000);
  const pod = await waitFor(async () => {
    const p = await getPod(w, podName(d.name, d.work.id));
    return p?.status?.containerStatuses?.some((c) => c.name === 'session' && c.state?.running) ? p : undefined;
  }, { what: 'the runner running', timeoutMs: 60_000 });
  return { env, d, sessionId: d.work.data.id, pod };
}

/** The main container's terminated state, once it has ended. */
export async function mainExit(w: SessionsWorld, pod: Pod): Promise<{ exitCode: number }> {
  return waitFor(async () => {
    const p = await getPod(w, pod.metadata?.name ?? '');
    const t = p?.status?.containerStatuses?.find((c) => c.name === 'session')?.state?.terminated;
    return t ? { exitCode: t.exitCode } : undefined;
  }, { what: `the main container of ${pod.metadata?.name} to end`, timeoutMs: 90_000 });
}
