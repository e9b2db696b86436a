/**
 * Sessions served end to end on the containerd node: the operator's session Pod with the default
 * runner image and the project image's sidecar (both built from the Dockerfile), the sidecar's proxy
 * on the Pod's loopback (the chart's default), and the emulator as the API on the node's address.
 * And the enforced stop on a real kubelet: a main container that ignores the protocol is ended by
 * deleting its Pod (SIGTERM from the kubelet, then the Pod goes).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { decodeWorkSecret } from '../../src/api/work-secret.ts';
import { podName } from '../../src/sessions/record/names.ts';
import { bash, resultText, scriptAgent, terminated, waitForToolResults } from '../support/agent-script.ts';
import { createNamespace, waitFor, type TestNamespace } from '../support/cluster.ts';
import { createEnvironment, dispatch, eventsOf, getPod, sessionTemplate, waitForSession, waitForWork, type SessionsWorld } from '../integration/sessions.fixtures.ts';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubectl, startRuntimeWorld, unavailable } from './world.ts';

describe.skipIf(unavailable())('sessions served on containerd', () => {
  let ns: TestNamespace;
  let w: SessionsWorld;
  beforeAll(async () => {
    ns = await createNamespace('served');
    w = await startRuntimeWorld(ns.name);
  });
  afterAll(async () => {
    await w?.stop();
    await ns?.cleanup();
  });
  const finished = (name: string) => waitForSession(w, name, (s) => s.status?.phase === 'Succeeded' || s.status?.phase === 'Failed', 'finished', 120_000);

  it('serves scripted bash calls through the sidecar in the default runner image, with no credential in the sandbox, and ends Succeeded when the session terminates', async () => {
    const env = await createEnvironment(w, 'served', undefined, { leaseTTLSeconds: 6 });
    const d = await dispatch(w, env);
    const name = podName(d.name, d.work.id);
    await waitForSession(w, d.name, (s) => s.status?.phase === 'Running', 'Running', 120_000);
    const pod = (await getPod(w, name))!;
    expect(pod.spec.nodeName).toBe('agentenv-containerd');
    expect(pod.spec.containers.find((c) => c.name === 'session')?.image).toBe(inject('runnerImage'));

    const [echo, who, printenv] = await scriptAgent(w.emu.url, d.work.data.id, [bash('echo served-on-containerd'), bash('id -u; hostname; cat /proc/1/cmdline | tr "\\0" " "'), bash('env')]);
    const results = await waitForToolResults(w.emu.url, d.work.data.id, [echo!, who!, printenv!], { timeoutMs: 90_000 });
    expect(resultText(results.get(echo!)).trim()).toBe('served-on-containerd');
    // In the container: the session UID, the Pod's hostname, and PID 1 is the runner (its own PID namespace).
    const [uid, host, pid1] = resultText(results.get(who!)).trim().split('\n');
    expect(uid).toBe('65532');
    expect(host).toBe(name);
    expect(pid1).toContain('agentenv');
    const envText = resultText(results.get(printenv!));
    const token = decodeWorkSecret(d.work.secret)?.sessions_token;
    expect(token).toBeTruthy();
    for (const secret of [env.envKey, token!, 'sk-ant-']) expect(envText).not.toContain(secret);

    await scriptAgent(w.emu.url, d.work.data.id, [terminated()]);
    const done = await finished(d.name);
    expect(done.status).toMatchObject({ phase: 'Succeeded', workState: 'stopped' });
    expect((await w.api.getWork(env.environmentId, d.work.id)).state).toBe('stopped');
  });

  it('ends a main container that ignores the protocol by deleting its Pod after stopGracePeriodSeconds (StopEnforced): the kubelet stops it and the session ends Succeeded Stopped', async () => {
    const env = await createEnvironment(w, 'deaf', sessionTemplate({ image: inject('runnerImage') }), { leaseTTLSeconds: 4, stopGracePeriodSeconds: 2 });
    const d = await dispatch(w, env);
    const name = podName(d.name, d.work.id);
    await waitForSession(w, d.name, (s) => s.status?.phase === 'Running', 'Running', 120_000);
    await waitFor(async () => (await getPod(w, name))?.status?.containerStatuses?.some((c) => c.name === 'session' && c.state?.running) ?? false, { what: 'the main container running', timeoutMs: 60_000 });

    await w.api.stopWork(env.environmentId, d.work.id, { force: false });
    await waitFor(async () => (await eventsOf(w, d.name)).some((e) => e.reason === 'StopEnforced' && e.type === 'Warning'), { what: 'a StopEnforced event', timeoutMs: 90_000 });
    const done = await finished(d.name);
    expect(done.status).toMatchObject({ phase: 'Succeeded', reason: 'Stopped' });
    await waitForWork(w, env, d.work.id, 'stopped');
    await waitFor(async () => !(await getPod(w, name)), { what: `Pod ${name} gone from the node`, timeoutMs: 90_000 });
  });

  it('an API eviction of a running session Pod (the Eviction subresource, as a drain does) stops its containers on the node; the session ends Failed PodDeleted and the work item is stopped', async () => {
    const env = await createEnvironment(w, 'evicted', sessionTemplate({ image: inject('runnerImage') }), { leaseTTLSeconds: 4, stopGracePeriodSeconds: 2 });
    const d = await dispatch(w, env);
    const name = podName(d.name, d.work.id);
    await waitForSession(w, d.name, (s) => s.status?.phase === 'Running', 'Running', 120_000);
    await waitFor(async () => (await getPod(w, name))?.status?.containerStatuses?.some((c) => c.name === 'session' && c.state?.running) ?? false, { what: 'the main container running', timeoutMs: 60_000 });

    const eviction = join(tmpdir(), `eviction-${name}.json`);
    await writeFile(eviction, JSON.stringify({ apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace: ns.name } }));
    await kubectl('create', '--raw', `/api/v1/namespaces/${ns.name}/pods/${name}/eviction`, '-f', eviction);
    await waitFor(async () => !(await getPod(w, name)), { what: `evicted Pod ${name} gone from the node`, timeoutMs: 90_000 });
    const done = await finished(d.name);
    expect(done.status).toMatchObject({ phase: 'Failed', reason: 'PodDeleted' });
    await waitForWork(w, env, d.work.id, 'stopped');
  });
});
