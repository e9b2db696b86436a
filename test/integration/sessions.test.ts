/**
 * Session lifecycle on a real apiserver + the process kubelet running the real sidecar, with the
 * emulator as the API: launch, the lease claimed before the main container starts, every stop
 * flow, cleanup after the TTL, and no credential in the sandbox.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { decodeWorkSecret } from '../../src/api/work-secret.ts';
import { AGENT_ENVIRONMENTS, AGENT_SESSIONS } from '../../src/crd/resources.ts';
import { CORE } from '../../src/k8s/rest.ts';
import { podName, secretName } from '../../src/sessions/record/names.ts';
import { SIDECAR_NAME } from '../../src/sessions/objects/pod.ts';
import { API_KEY } from '../support/emulator.ts';
import { createNamespace, waitFor, type TestNamespace } from '../support/cluster.ts';
import {
  createEnvironment,
  dispatch,
  eventsOf,
  getPod,
  getSession,
  processesOfWork,
  sessionTemplate,
  startSessionsWorld,
  waitForSession,
  waitForWork,
  type SessionsWorld,
  type TestEnvironment,
} from './sessions.fixtures.ts';

let ns: TestNamespace;
let w: SessionsWorld;
/** Sessions that run until stopped. */
let longRunning: TestEnvironment;

beforeAll(async () => {
  ns = await createNamespace('sessions');
  w = await startSessionsWorld(ns.name);
  longRunning = await createEnvironment(w, 'long', sessionTemplate(), { leaseTTLSeconds: 10 });
});

afterAll(async () => {
  await w?.stop();
  await ns?.cleanup();
});

const running = (name: string) => waitForSession(w, name, (s) => s.status?.phase === 'Running', 'Running');
/** Succeeded or Failed (assert which afterwards, so a failure shows the reason). */
const finished = (name: string) => waitForSession(w, name, (s) => s.status?.phase === 'Succeeded' || s.status?.phase === 'Failed', 'finished');

describe.concurrent('session lifecycle', () => {
  it('runs a session: Running with the lease claimed, then Succeeded when the main container exits 0, then cleaned up after the TTL', async () => {
    const env = await createEnvironment(w, 'happy', sessionTemplate({ runSeconds: 4 }), { leaseTTLSeconds: 10, sessionTTLSecondsAfterFinished: 3 });
    const d = await dispatch(w, env);
    const pod = podName(d.name, d.work.id);

    const runningSession = await running(d.name);
    expect(runningSession.status).toMatchObject({ podName: pod, workState: 'active', reason: 'LeaseClaimed' });
    expect(runningSession.status?.lease?.claimedAt).toBeTruthy();
    expect((await w.api.getWork(env.environmentId, d.work.id)).state).toBe('active');
    // The lease is claimed before the main container starts (the sidecar's startup probe gates it),
    // so the Pod reaches Running a probe period after the AgentSession does.
    await waitFor(async () => (await getPod(w, pod))?.status?.phase === 'Running', { what: `Pod ${pod} Running` });

    const done = await finished(d.name);
    expect(done.status).toMatchObject({ phase: 'Succeeded', reason: 'Completed', workState: 'stopped' });
    expect(done.status?.finishedAt).toBeTruthy();
    expect((await w.api.getWork(env.environmentId, d.work.id)).state).toBe('stopped');
    // Reported: Pod-created and claim latencies, a claimed lease, sessions by phase.
    expect(w.metrics.podCreated.length).toBeGreaterThan(0);
    expect(w.metrics.claimed.length).toBeGreaterThan(0);
    // Enqueue → lease active, for this environment, from a Pod created for the item (cold).
    expect(w.metrics.started.filter((s) => s.environment === `${w.namespace}/happy`)).toEqual([{ environment: `${w.namespace}/happy`, start: 'cold', ms: expect.any(Number) }]);
    expect(w.metrics.heartbeats).toContain('claimed');
    await waitFor(() => (w.metrics.phases.at(-1)?.['Succeeded'] ?? 0) > 0, { what: 'sessions by phase to count a Succeeded session' });

    // sessionTTLSecondsAfterFinished: the record, its Pod and its Secret are removed.
    await waitFor(async () => !(await exists(AGENT_SESSIONS, d.name)), { what: 'the finished AgentSession to be deleted', timeoutMs: 30_000 });
    await waitFor(async () => !(await exists(CORE.pods, pod)) || Boolean((await getPod(w, pod))?.metadata?.deletionTimestamp), { what: 'the Pod to be deleted', timeoutMs: 30_000 });
    await waitFor(async () => !(await exists(CORE.secrets, secretName(d.name, d.work.id))), { what: 'the Secret to be deleted', timeoutMs: 30_000 });
  });

  it('keeps the environment key and the API key out of the main container (Pod spec and running process)', async () => {
    const d = await dispatch(w, longRunning);
    await running(d.name);
    const pod = (await getPod(w, podName(d.name, d.work.id)))!;
    const main = pod.spec.containers.find((c) => c.name === 'session')!;
    const names = (main.env ?? []).map((e) => e.name);
    expect(names).toEqual(expect.arrayContaining(['ANTHROPIC_ENVIRONMENT_ID', 'ANTHROPIC_SESSION_ID', 'ANTHROPIC_WORK_ID', 'ANTHROPIC_BASE_URL', 'ANTHROPIC_WORK_SECRET']));
    expect(names).not.toContain('ANTHROPIC_ENVIRONMENT_KEY');
    expect(names).not.toContain('ANTHROPIC_API_KEY');
    expect(JSON.stringify(pod.spec.containers)).not.toContain('long-key');
    expect(main.volumeMounts ?? []).toEqual([]);
    expect(pod.spec.initContainers?.[0]?.name).toBe(SIDECAR_NAME);

    const procs = await waitFor(() => {
      const p = processesOfWork(d.work.id);
      return p.length ? p : undefined;
    }, { what: 'the main container process' });
    for (const p of procs) {
      const environ = p.environ.join('\n');
      expect(environ).not.toContain(longRunning.envKey);
      expect(environ).not.toContain(API_KEY);
      expect(environ).not.toMatch(/^ANTHROPIC_(ENVIRONMENT_KEY|API_KEY)=/m);
      expect(environ).not.toMatch(/^AGENTENV_CREDENTIAL_FILE=/m);
      expect(environ).toContain(`ANTHROPIC_SESSION_ID=${d.work.data.id}`);
    }
    expect(w.logLines.join('\n')).not.toContain(longRunning.envKey);
    expect(w.logLines.join('\n')).not.toContain(API_KEY);
    // The containers' own logs (the runner prints its variables' names; the sidecar holds the token).
    const token = decodeWorkSecret(d.work.secret)?.sessions_token;
    expect(token).toBeTruthy();
    const logs = join(inject('kubeletRootDir'), 'pods', `${w.namespace}_${pod.metadata?.name}_${pod.metadata?.uid}`, 'logs');
    const runnerLog = await waitFor(() => {
      const text = readFileSync(join(logs, 'session.log'), 'utf8');
      return text.includes('runner env:') ? text : undefined;
    }, { what: 'the runner to print its environment names' });
    expect(runnerLog).toContain('ANTHROPIC_WORK_SECRET');
    expect(runnerLog).not.toContain('ANTHROPIC_ENVIRONMENT_KEY');
    for (const file of ['session.log', `${SIDECAR_NAME}.log`]) {
      const text = readFileSync(join(logs, file), 'utf8');
      for (const secret of [longRunning.envKey, API_KEY, token!]) expect(text).not.toContain(secret);
    }
    await w.api.stopWork(longRunning.environmentId, d.work.id, { force: true });
  });

  it('a graceful remote stop the main container does not act on ends by the enforced stop: the Pod deleted, Succeeded Stopped', async () => {
    const d = await dispatch(w, longRunning);
    await running(d.name);
    await w.api.stopWork(longRunning.environmentId, d.work.id);
    const done = await finished(d.name);
    expect(done.status).toMatchObject({ phase: 'Succeeded', reason: 'Stopped', workState: 'stopped' });
    expect(done.status?.stopRequestedAt).toBeTruthy();
    expect((await w.api.getWork(longRunning.environmentId, d.work.id)).state).toBe('stopped');
    // The shell script learns nothing from heartbeats: no signal reaches it from the sidecar, so the
    // operator deleted its Pod once the sidecar had been not ready for stopGracePeriodSeconds.
    // Events are written behind the work (k8s/events.ts), so the event may land after the phase.
    await waitFor(async () => (await eventsOf(w, d.name)).some((e) => e.reason === 'StopEnforced'), { what: 'the StopEnforced event', timeoutMs: 15_000 });
    const pod = await getPod(w, podName(d.name, d.work.id));
    expect(!pod || Boolean(pod.metadata?.deletionTimestamp)).toBe(true);
  });

  it('a remote force stop ends the Pod and the session', async () => {
    const d = await dispatch(w, longRunning);
    await running(d.name);
    await w.api.stopWork(longRunning.environmentId, d.work.id, { force: true });
    const done = await finished(d.name);
    expect(done.status).toMatchObject({ phase: 'Succeeded', workState: 'stopped' });
    await waitFor(async () => {
      const pod = await getPod(w, podName(d.name, d.work.id));
      return !pod || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
    }, { what: 'the Pod to end' });
  });

  it('a main container exiting non-zero ends Failed ContainerFailed with the item stopped by the sidecar', async () => {
    const env = await createEnvironment(w, 'crash', sessionTemplate({ runSeconds: 2, exitCode: 3 }), { leaseTTLSeconds: 10 });
    const d = await dispatch(w, env);
    const done = await waitForSession(w, d.name, (s) => s.status?.phase === 'Failed' || s.status?.phase === 'Succeeded', 'finished');
    expect(done.status).toMatchObject({ phase: 'Failed', reason: 'ContainerFailed' });
    expect(done.status?.message).toMatch(/exit code 3/);
    await waitForWork(w, env, d.work.id, 'stopped');
  });

  it('a Pod deleted while the item is active force-stops the item: Failed PodDeleted', async () => {
    const d = await dispatch(w, longRunning);
    await running(d.name);
    await w.admin.delete(CORE.pods, w.namespace, podName(d.name, d.work.id));
    await waitForWork(w, longRunning, d.work.id, 'stopped');
    const done = await finished(d.name);
    expect(done.status).toMatchObject({ phase: 'Failed', reason: 'PodDeleted' });
  });

  it('deleting the AgentSession stops its work gracefully, waits for the Pod, then removes everything', async () => {
    const d = await dispatch(w, longRunning);
    await running(d.name);
    await w.admin.delete(AGENT_SESSIONS, w.namespace, d.name);
    const stopped = await waitForWork(w, longRunning, d.work.id, 'stopped');
    expect(stopped.stop_requested_at).toBeTruthy(); // graceful first: the item went through stopping
    await waitFor(async () => !(await exists(AGENT_SESSIONS, d.name)), { what: 'the AgentSession to be gone' });
    await waitFor(async () => !(await exists(CORE.secrets, secretName(d.name, d.work.id))), { what: 'the Secret to be gone' });
    const pod = await getPod(w, podName(d.name, d.work.id));
    expect(!pod || pod.metadata?.deletionTimestamp || pod.status?.phase === 'Succeeded').toBeTruthy();
  });

  it('stopEnvironmentSessions (environment deletion) stops every running session gracefully and reports when none is left', async () => {
    const env = await createEnvironment(w, 'draining', sessionTemplate(), { leaseTTLSeconds: 10 });
    const a = await dispatch(w, env);
    const b = await dispatch(w, env);
    await running(a.name);
    await running(b.name);
    await waitFor(() => w.controller.activeSessions(env.env) === 2, { what: 'the cache to show two active sessions' });
    expect(await w.controller.stopEnvironmentSessions(env.env)).toBe(false);
    await waitFor(() => w.controller.stopEnvironmentSessions(env.env), { what: 'the drain to finish', timeoutMs: 60_000, intervalMs: 500 });
    for (const d of [a, b]) expect((await waitForWork(w, env, d.work.id, 'stopped')).stop_requested_at).toBeTruthy();
  });

  it('ObserveOnly: a running session runs on with its own sidecar and the operator writes nothing to the API', async () => {
    const env = await createEnvironment(w, 'observed', sessionTemplate(), { leaseTTLSeconds: 10 });
    const d = await dispatch(w, env);
    await running(d.name);
    await w.admin.patch(AGENT_ENVIRONMENTS, w.namespace, 'observed', { spec: { managementPolicy: 'ObserveOnly' } }, 'merge');
    // The Pod is deleted: under Full the reconciler would force-stop the item; here its sidecar does.
    await w.admin.delete(CORE.pods, w.namespace, podName(d.name, d.work.id));
    await waitForWork(w, env, d.work.id, 'stopped');
    expect((await finished(d.name)).status).toMatchObject({ phase: 'Failed', reason: 'PodDeleted' });
    expect(w.stops.filter((s) => s.workId === d.work.id)).toEqual([]);
  });

  it('a Running session writes nothing to Kubernetes while its sidecar heartbeats', async () => {
    const env = await createEnvironment(w, 'steady', sessionTemplate(), { leaseTTLSeconds: 6 });
    const d = await dispatch(w, env);
    await running(d.name);
    const before = (await w.api.getWork(env.environmentId, d.work.id)).latest_heartbeat_at;
    const seen = await getSession(w, d.name);
    // Heartbeats (every 3 s with a 6 s lease) pass without a status write.
    await waitFor(async () => (await w.api.getWork(env.environmentId, d.work.id)).latest_heartbeat_at !== before, { what: 'a heartbeat' });
    await new Promise((r) => setTimeout(r, 3_000));
    w.controller.enqueue(w.namespace, d.name); // a reconcile pass, too, finds nothing to write
    await new Promise((r) => setTimeout(r, 1_000));
    const now = await getSession(w, d.name);
    expect(now.status).toEqual(seen.status);
    expect(now.metadata?.resourceVersion).toBe(seen.metadata?.resourceVersion);
    await w.api.stopWork(env.environmentId, d.work.id, { force: true });
  });
});

async function exists(t: Parameters<SessionsWorld['admin']['get']>[0], name: string): Promise<boolean> {
  try {
    await w.admin.get(t, w.namespace, name);
    return true;
  } catch {
    return false;
  }
}
