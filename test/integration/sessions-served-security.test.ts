/**
 * What agent-written code in a served session can get, on the local cluster with the real sidecar
 * and the default runner: no credential anywhere it or an operator's reader can look (tool
 * results, the sidecar's and the runner's logs, the Pod spec, Events, the AgentSession status), and
 * from the sidecar's proxy nothing but its own session — asked from inside the Pod, by a bash tool
 * call running curl.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeWorkSecret } from '../../src/api/work-secret.ts';
import { DEFAULT_PROXY_PORT } from '../../src/contract/sidecar.ts';
import { CORE, type KubeObject } from '../../src/k8s/rest.ts';
import { SIDECAR_NAME } from '../../src/sessions/objects/pod.ts';
import { bash, resultText, scriptAgent, sessionEvents, terminated, waitForToolResults } from '../support/agent-script.ts';
import { createNamespace, type TestNamespace } from '../support/cluster.ts';
import { addFaults, API_KEY, countOnly, faultHits, versionHeaders } from '../support/emulator.ts';
import { containerLog } from '../support/pod-files.ts';
import { getPod, getSession, mainExit, serveSession, startSessionsWorld, waitForSession, type SessionsWorld } from './sessions.fixtures.ts';

let ns: TestNamespace;
let w: SessionsWorld;

beforeAll(async () => {
  ns = await createNamespace('served-security');
  // Per-item secrets on: the sidecar's credential is the item's sessions token.
  w = await startSessionsWorld(ns.name, { workSecrets: true });
});

afterAll(async () => {
  await w?.stop();
  await ns?.cleanup();
});

const finished = (name: string) => waitForSession(w, name, (s) => s.status?.phase === 'Succeeded' || s.status?.phase === 'Failed', 'finished', 120_000);

describe.concurrent('a served session keeps its secrets', () => {
  it('the environment key and the per-item token never appear in a tool result, the sidecar\'s or the runner\'s log, the Pod spec, an Event or the AgentSession status', async () => {
    const { env, d, sessionId, pod } = await serveSession(w, 'secrets');
    const token = decodeWorkSecret(d.work.secret)?.sessions_token;
    expect(token).toBeTruthy();
    const secrets = [env.envKey, token!, d.work.secret!, API_KEY];

    // What agent-written code would look at first: its environment, and the runner's (unscrubbed by the SDK's bash tool).
    const calls = await scriptAgent(w.emu.url, sessionId, [bash('env'), bash('cat /proc/$PPID/environ | tr "\\0" "\\n"'), bash('echo "$ANTHROPIC_WORK_SECRET $ANTHROPIC_API_KEY $ANTHROPIC_AUTH_TOKEN"')]);
    const results = await waitForToolResults(w.emu.url, sessionId, calls, { timeoutMs: 60_000 });
    expect(resultText(results.get(calls[0]!))).toContain('HOSTNAME=');
    expect(resultText(results.get(calls[1]!))).toContain('ANTHROPIC_WORK_SECRET=');
    await scriptAgent(w.emu.url, sessionId, [terminated()]);
    expect((await finished(d.name)).status).toMatchObject({ phase: 'Succeeded', workState: 'stopped' });
    await mainExit(w, pod);

    const events = await w.admin.list<KubeObject>(CORE.events, w.namespace);
    const places: Record<string, string> = {
      'the tool results (the whole session history)': JSON.stringify(await sessionEvents(w.emu.url, sessionId)),
      "the sidecar's log": containerLog(pod, SIDECAR_NAME),
      "the runner's log": containerLog(pod, 'session'),
      'the Pod spec': JSON.stringify((await getPod(w, pod.metadata!.name!))?.spec ?? pod.spec),
      'the Events': JSON.stringify(events.items),
      'the AgentSession status': JSON.stringify((await getSession(w, d.name)).status),
      "the operator's log": w.logLines.join('\n'),
    };
    expect(places["the sidecar's log"]).toContain('sidecar started');
    expect(places["the runner's log"]).toMatch(/\S/);
    for (const [where, text] of Object.entries(places)) for (const secret of secrets) expect(text.includes(secret), `a secret in ${where}`).toBe(false);
  });

  it('the proxy refuses, from inside the session Pod, another session, another work id, poll, ack and environment CRUD with 403 permission_error, and none of it reaches the API', async () => {
    const { env, d, sessionId, pod } = await serveSession(w, 'proxy');
    const other = w.emu.admin.createSession(env.environmentId);
    const e = `/v1/environments/${env.environmentId}`;
    // Each refusal names its rule.
    const refused: Array<[string, string, RegExp]> = [
      ['GET', `/v1/sessions/${other.session_id}`, /another session/],
      ['POST', `/v1/sessions/${other.session_id}/events`, /another session/],
      ['GET', `/v1/sessions/${other.session_id}/events/stream`, /another session/],
      ['POST', `${e}/work/${other.work_id}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`, /another work item/],
      ['POST', `${e}/work/${other.work_id}/stop`, /another work item/],
      ['GET', `${e}/work/poll`, /work queue/],
      ['POST', `${e}/work/${d.work.id}/ack`, /heartbeat and stop/],
      ['GET', '/v1/environments', /another environment/],
      ['POST', '/v1/environments', /another environment/],
      ['GET', e, /environment management/],
      ['POST', e, /environment management/],
      ['DELETE', e, /environment management/],
    ];
    // Counters on every path of this environment and the other session that a leak would reach.
    const watched = [`/v1/sessions/${other.session_id}`, `/v1/sessions/${other.session_id}/**`, `${e}/work/${other.work_id}/**`, `${e}/work/poll`, `${e}/work/${d.work.id}/ack`, e];
    await addFaults(w.emu.url, watched.map((path) => countOnly(path)));

    // The bash tool runs in the Pod; the sidecar's proxy is the Pod's only door (its base URL).
    const base = `http://${pod.status!.podIP}:${DEFAULT_PROXY_PORT}`;
    const headers = Object.entries(versionHeaders).map(([k, v]) => `-H '${k}: ${v}'`).join(' ');
    const curl = (method: string, path: string) =>
      `printf '%s %s ' ${method} '${path}'; curl -s --max-time 10 -X ${method} ${headers} -H 'content-type: application/json' ${method === 'GET' || method === 'DELETE' ? '' : "-d '{}'"} -w ' %{http_code}\\n' '${base}${path}'`;
    const script = [curl('GET', `/v1/sessions/${sessionId}`), ...refused.map(([m, p]) => curl(m, p))].join('; ');
    const [call] = await scriptAgent(w.emu.url, sessionId, [bash(script)]);
    const out = resultText((await waitForToolResults(w.emu.url, sessionId, [call!], { timeoutMs: 60_000 })).get(call!));
    const lines = out.trim().split('\n');
    expect(lines, out).toHaveLength(refused.length + 1);
    const parsed = lines.map((line) => {
      const [method, path, ...rest] = line.split(' ');
      const status = Number(rest.pop());
      return { method, path, status, body: JSON.parse(rest.join(' ') || 'null') as { type?: string; error?: { type?: string; message?: string }; id?: string } };
    });
    // The control: its own session answers through the same door, with the credential the sidecar put in.
    expect(parsed[0]).toMatchObject({ status: 200, body: { id: sessionId } });
    for (const [i, r] of parsed.slice(1).entries()) {
      expect(r.status, `${r.method} ${r.path}`).toBe(403);
      expect(r.body, `${r.method} ${r.path}`).toMatchObject({ type: 'error', error: { type: 'permission_error' } });
      expect(r.body.error?.message, `${r.method} ${r.path}`).toMatch(refused[i]![2]);
    }
    for (const rule of (await faultHits(w.emu.url)).filter((r) => watched.includes(r.path))) expect(rule.hits, rule.path).toBe(0);

    await scriptAgent(w.emu.url, sessionId, [terminated()]);
    expect((await finished(d.name)).status).toMatchObject({ phase: 'Succeeded' });
  });
});
