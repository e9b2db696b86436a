/**
 * Sessions served end to end on the local cluster: the operator's session Pod (the real sidecar on
 * the process kubelet, in pod-ip mode) with the default runner — `agentenv runner`, the official
 * SDK's handleItem — executing a scripted agent's tool calls through the sidecar's proxy, with the
 * emulator as the API. And the enforced stop: a main container that ignores the protocol is ended by
 * deleting its Pod after the grace.
 */
import { Anthropic } from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeWorkSecret } from '../../src/api/work-secret.ts';
import { PLACEHOLDER_WORK_SECRET, SIDECAR_FALLBACK_UID, SIDECAR_UID } from '../../src/contract/sidecar.ts';
import { podName } from '../../src/sessions/record/names.ts';
import { SIDECAR_NAME } from '../../src/sessions/objects/pod.ts';
import { WORKSPACE_VOLUME } from '../../src/sessions/objects/default-template.ts';
import type { Pod } from '../../src/sessions/objects/pod-types.ts';
import { bash, resultText, scriptAgent, sessionEvents, terminated, toolUse, waitForToolResults } from '../support/agent-script.ts';
import { createNamespace, waitFor, type TestNamespace } from '../support/cluster.ts';
import { API_KEY } from '../support/emulator.ts';
import { volumeFile } from '../support/pod-files.ts';
import { createEnvironment, dispatch, eventsOf, getPod, serveSession, sessionTemplate, startSessionsWorld, waitForSession, waitForWork, type SessionsWorld } from './sessions.fixtures.ts';

let ns: TestNamespace;
let w: SessionsWorld;

beforeAll(async () => {
  ns = await createNamespace('served');
  w = await startSessionsWorld(ns.name);
});

afterAll(async () => {
  await w?.stop();
  await ns?.cleanup();
});

const finished = (name: string) => waitForSession(w, name, (s) => s.status?.phase === 'Succeeded' || s.status?.phase === 'Failed', 'finished', 90_000);
const mainOf = (pod: Pod) => pod.spec.containers.find((c) => c.name === 'session')!;

describe.concurrent('sessions served by the default runner', () => {
  it('runs a scripted agent in the Pod through the sidecar (echo, `env` without a credential, a file written and read back in /workspace, a failing command), and ends Succeeded when the session terminates', async () => {
    const env = await createEnvironment(w, 'served', undefined, { leaseTTLSeconds: 6 });
    const d = await dispatch(w, env);
    const name = podName(d.name, d.work.id);
    await waitForSession(w, d.name, (s) => s.status?.phase === 'Running', 'Running');

    // The Pod: the default runner, no shared process namespace, distinct users, the sidecar as the
    // only API, and no Secret in the main container.
    const pod = (await getPod(w, name))!;
    const main = mainOf(pod);
    const sidecar = pod.spec.initContainers!.find((c) => c.name === SIDECAR_NAME)!;
    expect(main).toMatchObject({ command: ['agentenv', 'runner', '--idle-timeout', '600s'], workingDir: '/workspace' });
    expect(pod.spec.shareProcessNamespace).toBeUndefined();
    expect([SIDECAR_UID, SIDECAR_FALLBACK_UID]).toContain(sidecar.securityContext?.runAsUser);
    expect(sidecar.securityContext?.runAsUser).not.toBe(main.securityContext?.runAsUser ?? pod.spec.securityContext?.runAsUser);
    expect(main.env!.find((e) => e.name === 'ANTHROPIC_BASE_URL')?.value).toBe('http://$(AGENTENV_POD_IP):8096');
    expect(main.env!.find((e) => e.name === 'ANTHROPIC_WORK_SECRET')?.value).toBe(PLACEHOLDER_WORK_SECRET);
    for (const e of main.env ?? []) expect(e.valueFrom?.secretKeyRef).toBeUndefined();

    // A scripted agent: `echo`, then `env` (whose output must hold no credential).
    const [echo, printenv] = await scriptAgent(w.emu.url, d.work.data.id, [bash('echo served-by-the-pod'), bash('env')]);
    const results = await waitForToolResults(w.emu.url, d.work.data.id, [echo!, printenv!], { timeoutMs: 60_000 });
    expect(resultText(results.get(echo!)).trim()).toBe('served-by-the-pod');
    const envText = resultText(results.get(printenv!));
    // `env` ran in the Pod (the SDK's bash tool scrubs the runner's ANTHROPIC_* variables anyway).
    expect(envText).toContain(`HOSTNAME=${name}`);
    const token = decodeWorkSecret(d.work.secret)?.sessions_token;
    expect(token).toBeTruthy();
    for (const secret of [env.envKey, token!, 'sk-ant-']) expect(envText).not.toContain(secret);
    expect(envText).not.toMatch(/ANTHROPIC_(API_KEY|ENVIRONMENT_KEY|AUTH_TOKEN)=/);

    // A file written then read back in the Pod's /workspace (its emptyDir; `pwd` says where bash runs),
    // and a failing command answered with is_error.
    const [write, read, pwd, failing] = await scriptAgent(w.emu.url, d.work.data.id, [
      toolUse('write', { file_path: 'notes/hello.txt', content: 'written in the pod\n' }),
      toolUse('read', { file_path: 'notes/hello.txt' }),
      bash('pwd && cat notes/hello.txt'),
      // In a subshell: `exit` in the tool's persistent bash session would end that session.
      bash("sh -c 'echo broken >&2; exit 3'"),
    ]);
    const more = await waitForToolResults(w.emu.url, d.work.data.id, [write!, read!, pwd!, failing!], { timeoutMs: 60_000 });
    expect(more.get(write!)).toMatchObject({ is_error: false });
    expect(resultText(more.get(read!))).toContain('written in the pod');
    expect(resultText(more.get(pwd!))).toMatch(/^\/workspace\n[\s\S]*written in the pod/);
    expect(more.get(failing!)).toMatchObject({ is_error: true });
    expect(resultText(more.get(failing!))).toContain('broken');

    // The session ends: the runner ends, its stop is the sidecar's real stop, the Pod finishes.
    await scriptAgent(w.emu.url, d.work.data.id, [terminated()]);
    const done = await finished(d.name);
    expect(done.status).toMatchObject({ phase: 'Succeeded', workState: 'stopped' });
    expect((await w.api.getWork(env.environmentId, d.work.id)).state).toBe('stopped');
    // Nothing the runner posted, and nothing in the record, carries a credential.
    const history = JSON.stringify(await sessionEvents(w.emu.url, d.work.data.id));
    for (const secret of [env.envKey, token!]) {
      expect(history).not.toContain(secret);
      expect(JSON.stringify(done)).not.toContain(secret);
      expect(w.logLines.join('\n')).not.toContain(secret);
    }
  });

  it('runs an always_ask call only once the user allows it through the public events route, and never runs a denied one', async () => {
    const { d, sessionId, pod } = await serveSession(w, 'ask');
    const ask = { evaluated_permission: 'ask' as const };
    const [allowed, denied] = await scriptAgent(w.emu.url, sessionId, [bash('echo yes > allowed.txt', ask), bash('echo no > denied.txt', ask)]);
    // Held: a later ungated call is answered while both wait for their verdicts, and neither ran.
    const [probe] = await scriptAgent(w.emu.url, sessionId, [bash('ls -a')]);
    const held = await waitForToolResults(w.emu.url, sessionId, [probe!], { timeoutMs: 60_000 });
    expect(resultText(held.get(probe!))).not.toMatch(/allowed\.txt|denied\.txt/);

    // The user's verdicts, sent as a client application sends them: the public route, an API key.
    const user = new Anthropic({ apiKey: API_KEY, baseURL: w.emu.url, maxRetries: 2 });
    await user.beta.sessions.events.send(sessionId, {
      events: [
        { type: 'user.tool_confirmation', tool_use_id: allowed!, result: 'allow' },
        { type: 'user.tool_confirmation', tool_use_id: denied!, result: 'deny', deny_message: 'not this one' },
      ],
    });
    const results = await waitForToolResults(w.emu.url, sessionId, [allowed!], { timeoutMs: 60_000 });
    expect(results.get(allowed!)).toMatchObject({ is_error: false });
    expect(volumeFile(pod, WORKSPACE_VOLUME, 'allowed.txt')).toBe('yes\n');

    // The runner handles the stream in order: once a later call is answered, the denial was handled too.
    const [after] = await scriptAgent(w.emu.url, sessionId, [bash('ls -a')]);
    const later = await waitForToolResults(w.emu.url, sessionId, [after!], { timeoutMs: 60_000 });
    expect(resultText(later.get(after!))).toContain('allowed.txt');
    expect(resultText(later.get(after!))).not.toContain('denied.txt');
    expect(volumeFile(pod, WORKSPACE_VOLUME, 'denied.txt')).toBeUndefined();
    const history = await sessionEvents(w.emu.url, sessionId);
    expect(history.filter((e) => e.type === 'user.tool_result' && e['tool_use_id'] === denied)).toEqual([]);

    await scriptAgent(w.emu.url, sessionId, [terminated()]);
    expect((await finished(d.name)).status).toMatchObject({ phase: 'Succeeded' });
  });

  it('ends a main container that ignores the protocol by deleting its Pod after stopGracePeriodSeconds (StopEnforced), then Succeeded Stopped', async () => {
    const env = await createEnvironment(w, 'deaf', sessionTemplate(), { leaseTTLSeconds: 4, stopGracePeriodSeconds: 2 });
    const d = await dispatch(w, env);
    const name = podName(d.name, d.work.id);
    await waitForSession(w, d.name, (s) => s.status?.phase === 'Running', 'Running');
    await waitFor(async () => (await getPod(w, name))?.status?.containerStatuses?.some((c) => c.name === 'session' && c.state?.running) ?? false, { what: 'the main container running' });

    await w.api.stopWork(env.environmentId, d.work.id, { force: false });
    // The sidecar learns `stopping` on its next beat and turns not ready; the shell loop never asks.
    await waitFor(async () => (await eventsOf(w, d.name)).some((e) => e.reason === 'StopEnforced' && e.type === 'Warning'), { what: 'a StopEnforced event', timeoutMs: 60_000 });
    const done = await finished(d.name);
    expect(done.status).toMatchObject({ phase: 'Succeeded', reason: 'Stopped' });
    await waitForWork(w, env, d.work.id, 'stopped');
  });
});
