/**
 * A sidecar restart in a served session, on the local cluster: the sidecar of a running session Pod
 * is SIGKILLed (found through the process kubelet's run record), the kubelet restarts it, and the
 * new life resumes both leases from `lease.json` — the real one (no second claim reaches the API)
 * and the virtual one (the runner's next echo succeeds, so it keeps serving).
 * Alone in its file: the emulator's request counts of this world belong to this one session.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SIDECAR_NAME } from '../../src/sessions/objects/pod.ts';
import { bash, resultText, scriptAgent, terminated, waitForToolResults } from '../support/agent-script.ts';
import { createNamespace, waitFor, type TestNamespace } from '../support/cluster.ts';
import { containerLog, containerPid, jsonLines } from '../support/pod-files.ts';
import { getPod, serveSession, startSessionsWorld, waitForSession, type SessionsWorld } from './sessions.fixtures.ts';

let ns: TestNamespace;
let w: SessionsWorld;

beforeAll(async () => {
  ns = await createNamespace('served-restart');
  w = await startSessionsWorld(ns.name);
});

afterAll(async () => {
  await w?.stop();
  await ns?.cleanup();
});

const heartbeatReplies = (): Record<string, number> => {
  const requests = (w.emu.admin.snapshot()['requests'] ?? {}) as Record<string, Record<string, number>>;
  return Object.entries(requests).find(([template]) => template.endsWith('/heartbeat'))?.[1] ?? {};
};

it('a sidecar killed in a running session Pod is restarted by the kubelet and keeps the real and the virtual lease: no second claim, the runner keeps serving', async () => {
  // A TTL that outlasts the restart (kubelet back-off, a node start) on a busy machine.
  const { env, d, sessionId, pod } = await serveSession(w, 'restart', { leaseTTLSeconds: 30 });
  const [before] = await scriptAgent(w.emu.url, sessionId, [bash('echo before the restart')]);
  await waitForToolResults(w.emu.url, sessionId, [before!], { timeoutMs: 60_000 });
  const claimed = await w.api.getWork(env.environmentId, d.work.id);
  expect(claimed.state).toBe('active');

  const pid = await waitFor(() => containerPid(pod, SIDECAR_NAME), { what: 'the sidecar pid in the kubelet run record' });
  process.kill(pid, 'SIGKILL');
  const sidecarStatus = async () => (await getPod(w, pod.metadata!.name!))?.status?.initContainerStatuses?.find((c) => c.name === SIDECAR_NAME);
  await waitFor(async () => {
    const s = await sidecarStatus();
    return (s?.restartCount ?? 0) >= 1 && s?.started === true && s.ready === true;
  }, { what: 'the sidecar restarted, started and ready', timeoutMs: 90_000 });
  expect(containerPid(pod, SIDECAR_NAME)).not.toBe(pid);

  // The runner keeps serving: a call scripted after the restart gets its result (its event stream
  // and its virtual heartbeats went through the restarted sidecar).
  const [after] = await scriptAgent(w.emu.url, sessionId, [bash('echo after the restart')]);
  const results = await waitForToolResults(w.emu.url, sessionId, [after!], { timeoutMs: 90_000 });
  expect(resultText(results.get(after!)).trim()).toBe('after the restart');

  // The real lease: the same claim, still beaten; a second claim (`NO_HEARTBEAT` on a claimed lease) would be a 412.
  const now = await w.api.getWork(env.environmentId, d.work.id);
  expect(now).toMatchObject({ state: 'active', started_at: claimed.started_at });
  expect(heartbeatReplies()['412'] ?? 0).toBe(0);
  const lives = jsonLines(containerLog(pod, SIDECAR_NAME));
  expect(lives.filter((l) => l['msg'] === 'sidecar started').map((l) => l['lease'])).toEqual(['claiming', 'restored']);
  expect(lives.filter((l) => l['msg'] === 'lease claimed')).toHaveLength(1);
  // The runner never heard of a lost lease.
  expect(containerLog(pod, 'session')).not.toContain('lease lost');
  expect((await waitForSession(w, d.name, (s) => s.status?.phase === 'Running', 'Running')).status?.lease?.claimedAt).toBe(claimed.started_at);

  await scriptAgent(w.emu.url, sessionId, [terminated()]);
  const done = await waitForSession(w, d.name, (s) => s.status?.phase === 'Succeeded' || s.status?.phase === 'Failed', 'finished', 120_000);
  expect(done.status).toMatchObject({ phase: 'Succeeded', workState: 'stopped' });
});
