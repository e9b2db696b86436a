/**
 * Fixtures of the `runtime` tier: the session controller as the operator (its ServiceAccount) against
 * the containerd node, with the emulator listening on the node's address so that Pods — each in its
 * own network namespace — reach it, the chart's default images (built from the Dockerfile), and the
 * sidecar's proxy on each Pod's loopback (the chart's default mode). The returned world has the shape
 * of the integration tier's, so its `createEnvironment`/`dispatch`/`waitForSession` are reused as they are.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { inject } from 'vitest';
import { EnvironmentsClient } from '../../src/api/client.ts';
import { KubeEventRecorder } from '../../src/k8s/events.ts';
import { readSecretKey } from '../../src/k8s/secrets.ts';
import { workItemCredential } from '../../src/sessions/dispatch/credentials.ts';
import { sessionController, type SessionController } from '../../src/sessions/controller/controller.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { adminRest, operatorRest } from '../support/cluster.ts';
import { API_KEY, clientFor, emulator } from '../support/emulator.ts';
import type { SessionsWorld } from '../integration/sessions.fixtures.ts';

const run = promisify(execFile);

/** `kubectl --kubeconfig <admin> ARGS…` with the cluster's own kubectl (logs and exec go through the apiserver to the kubelet). */
export async function kubectl(...args: string[]): Promise<string> {
  const { stdout } = await run(inject('kubectl'), ['--kubeconfig', inject('adminKubeconfig'), ...args], { maxBuffer: 8 << 20 });
  return stdout;
}

/** The tier's skip reason ('' when the node runs). */
export const unavailable = (): string => inject('runtimeUnavailable');

export async function startRuntimeWorld(namespace: string): Promise<SessionsWorld> {
  const emu = await emulator({ workSecrets: true, leaseTtl: { defaultSeconds: 20, minSeconds: 2 }, host: inject('nodeAddress') });
  const admin = adminRest();
  const operator = operatorRest();
  const logLines: string[] = [];
  const stops: SessionsWorld['stops'] = [];
  const metrics: SessionsWorld['metrics'] = { podCreated: [], claimed: [], started: [], stopped: [], heartbeats: [], phases: [] };
  const logger = createLogger({ level: 'debug', base: { process: 'operator' }, destination: { write: (l: string) => void logLines.push(l) } });
  const startController = async (): Promise<{ controller: SessionController; stop(): Promise<void> }> => {
    const controller = sessionController({
      rest: operator,
      events: new KubeEventRecorder(operator, { component: 'agentenv-operator', logger }),
      apiClient: (credential) => {
        const client = new EnvironmentsClient({ baseUrl: emu.url, credential, retry: { maxRetries: 2, backoff: { baseMs: 50, capMs: 200, jitter: 0.5 }, maxRetryAfterMs: 2_000 } });
        return {
          getWork: (environmentId, workId, opts) => client.getWork(environmentId, workId, opts),
          stopWork: (environmentId, workId, stop = {}, opts) => {
            stops.push({ environmentId, workId, force: stop.force ?? false });
            return client.stopWork(environmentId, workId, stop, opts);
          },
        };
      },
      workCredential: (env) => workItemCredential((ns, ref) => readSecretKey(operator, ns, ref), env, () => ({ kind: 'api-key', value: API_KEY })),
      // The chart's defaults: never pulled (the node has them imported and no registry is reachable).
      sidecar: { image: inject('projectImage'), imagePullPolicy: 'IfNotPresent' },
      runner: { image: inject('runnerImage'), imagePullPolicy: 'IfNotPresent' },
      proxyAddress: 'loopback',
      baseUrl: emu.url,
      logger,
      namespaces: [namespace],
      concurrency: 8,
      resyncMs: 30_000,
      metrics: {
        podCreated: (ms) => void metrics.podCreated.push(ms),
        claimed: (ms) => void metrics.claimed.push(ms),
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
