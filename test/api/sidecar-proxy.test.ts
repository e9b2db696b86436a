/**
 * The sidecar's proxy, the session Pod's only door to the API: the allow-list, the credential
 * swap (observed by a recording egress proxy between the sidecar and the emulator), event streams
 * relayed as they arrive, hostile input from the main container, and the egress proxy settings.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { API_KEY, emulator } from '../support/emulator.ts';
import { acknowledgedItem, LEASE_TTL_SECONDS, MAIN_HEADERS, recordingProxy, SidecarProcess, viaProxy, waitFor, type Item } from '../support/sidecar-process.ts';

let emu: RunningEmulator;
let dir: string;
const cleanup: Array<() => unknown> = [];

beforeEach(async () => {
  emu = await emulator({ leaseTtl: { minSeconds: 1, defaultSeconds: LEASE_TTL_SECONDS }, workSecrets: true });
  dir = mkdtempSync(join(tmpdir(), 'agentenv-sidecar-proxy-'));
});

afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
  await emu.close();
  rmSync(dir, { recursive: true, force: true });
});

async function running(env?: Record<string, string>, item?: Item) {
  item ??= await acknowledgedItem(emu);
  const sidecar = new SidecarProcess(item, emu, dir, env);
  cleanup.push(() => sidecar.kill('SIGKILL'));
  await sidecar.logged('lease claimed');
  return { item, sidecar, base: await sidecar.proxyUrl(), record: () => emu.state.work.get(item.environmentId, item.workId) };
}

const counts = (): Record<string, Record<string, number>> => emu.state.requestCounts();

/** Send raw bytes on a fresh connection; resolves with everything received until the server closes. */
function raw(port: number, bytes: string | Buffer): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    let got = '';
    s.on('data', (c) => (got += c.toString('latin1')));
    s.on('error', () => resolve(got));
    s.on('close', () => resolve(got));
  });
}

describe('the proxy allow-list', () => {
  it('refuses another session, another work id, poll, ack and environment CRUD with a 403 naming the rule; none reaches the API', async () => {
    const { item, base } = await running();
    const other = emu.admin.createSession(item.environmentId);
    const env = `/v1/environments/${item.environmentId}`;
    const refused: Array<[string, string, RegExp]> = [
      ['GET', `/v1/sessions/${other.session_id}/events/stream`, /another session/],
      ['POST', `/v1/sessions/${other.session_id}/events`, /another session/],
      ['POST', `${env}/work/${other.work_id}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`, /another work item/],
      ['POST', `${env}/work/${other.work_id}/stop`, /another work item/],
      ['GET', `${env}/work/poll`, /work queue/],
      ['POST', `${env}/work/${item.workId}/ack`, /heartbeat and stop/],
      ['GET', `${env}/work/stats`, /work queue/],
      ['GET', '/v1/environments', /another environment/],
      ['POST', '/v1/environments', /another environment/],
      ['GET', env, /environment management/],
      ['POST', env, /environment management/],
      ['DELETE', env, /environment management/],
    ];
    const before = JSON.stringify(counts());
    for (const [method, path, rule] of refused) {
      const res = await viaProxy(base, method, path, method === 'POST' ? {} : undefined);
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(res.json).toMatchObject({ type: 'error', error: { type: 'permission_error' } });
      expect(res.json['error']['message'], `${method} ${path}`).toMatch(rule);
    }
    const after = counts();
    for (const template of Object.keys(after)) if (!template.includes('/heartbeat')) expect(after[template], template).toEqual(JSON.parse(before)[template]);
  });

  it("forwards its own session's calls with the real credential, the main container's credential removed", async () => {
    const recorder = await recordingProxy();
    cleanup.push(() => recorder.close());
    const { item, base } = await running({ HTTP_PROXY: recorder.url });
    const session = `/v1/sessions/${item.sessionId}`;
    const headers = { authorization: `Bearer ${API_KEY}`, 'x-api-key': API_KEY };
    expect(await viaProxy(base, 'GET', session, undefined, headers)).toMatchObject({ status: 200, json: { id: item.sessionId } });
    const sent = await viaProxy(base, 'POST', `${session}/events`, { events: [{ type: 'user.message', content: [{ type: 'text', text: 'hi' }] }] }, headers);
    expect(sent.status).toBe(200);
    const listed = await viaProxy(base, 'GET', `${session}/events?limit=5`);
    expect(listed.status).toBe(200);
    expect(listed.json['data'].some((e: { type: string }) => e.type === 'user.message')).toBe(true);

    const forwarded = recorder.seen.filter((r) => r.url.includes('/v1/sessions/'));
    expect(forwarded.map((r) => `${r.method} ${new URL(r.url).pathname}${new URL(r.url).search}`)).toEqual([`GET ${session}`, `POST ${session}/events`, `GET ${session}/events?limit=5`]);
    for (const r of forwarded) {
      expect(r.headers['authorization']).toBe(`Bearer ${item.token}`);
      expect(r.headers['x-api-key']).toBeUndefined();
      expect(r.headers['anthropic-version']).toBe('2023-06-01');
    }
  });

  it('relays the event stream as it arrives: headers at once, each event when it is appended', async () => {
    const { item, base } = await running();
    const res = await fetch(`${base}/v1/sessions/${item.sessionId}/events/stream`, { headers: { ...MAIN_HEADERS, accept: 'text/event-stream' } });
    // fetch resolves on the response head: the stream is open before any event exists.
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    const readUntil = async (needle: string): Promise<void> => {
      while (!text.includes(needle)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${needle}`);
        text += new TextDecoder().decode(value);
      }
    };
    const [first] = emu.admin.appendAgentEvents(item.sessionId, [{ type: 'agent.tool_use', name: 'bash', input: { command: 'echo 1' } }]);
    await readUntil(first!);
    expect(text).toContain('event: agent.tool_use');
    const [second] = emu.admin.appendAgentEvents(item.sessionId, [{ type: 'agent.tool_use', name: 'bash', input: { command: 'echo 2' } }]);
    expect(text).not.toContain(second!);
    await readUntil(second!);
    await reader.cancel();
    await waitFor('the upstream stream to close with the client', () => emu.state.sessions.openStreams() === 0);
  });
});

describe('the proxy under hostile input', () => {
  it('answers an oversized body 413, huge headers 431 and garbage 400 in the Anthropic error shape, and keeps serving', async () => {
    const { item, base } = await running();
    const port = Number(new URL(base).port);
    const events = `/v1/sessions/${item.sessionId}/events`;
    const declared = await raw(port, `POST ${events} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${64 * 1024 * 1024}\r\n\r\n`);
    expect(declared).toMatch(/^HTTP\/1\.1 413 /);
    expect(declared).toContain('"type":"request_too_large"');
    const work = `/v1/environments/${item.environmentId}/work/${item.workId}`;
    const chunk = 'x'.repeat(16 * 1024);
    const chunked = await raw(port, `POST ${work}/stop HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n${`4000\r\n${chunk}\r\n`.repeat(8)}0\r\n\r\n`);
    expect(chunked).toMatch(/^HTTP\/1\.1 413 /);
    expect(emu.state.work.get(item.environmentId, item.workId).work.state).toBe('active');
    const huge = await raw(port, `GET /v1/sessions/${item.sessionId} HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(32 * 1024)}\r\n\r\n`);
    expect(huge).toMatch(/^HTTP\/1\.1 431 /);
    expect(huge).toContain('"type":"invalid_request_error"');
    const garbage = await raw(port, Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a, 0x0d, 0x0a]));
    expect(garbage).toMatch(/^HTTP\/1\.1 400 /);
    expect(await viaProxy(base, 'GET', `/v1/sessions/${item.sessionId}`)).toMatchObject({ status: 200 });
  });

  it('200 slow connections get bounded resources (429 beyond the limit) and the sidecar keeps beating', async () => {
    const { item, base, sidecar, record } = await running();
    const port = Number(new URL(base).port);
    const sockets: net.Socket[] = [];
    const replies: string[] = [];
    for (let i = 0; i < 200; i++) {
      const s = net.connect(port, '127.0.0.1', () => s.write(`GET /v1/sessions/${item.sessionId} HTTP/1.1\r\nhost: x\r\n`));
      const n = replies.push('') - 1;
      s.on('data', (c) => (replies[n] += c.toString('latin1')));
      s.on('error', () => {});
      sockets.push(s);
    }
    cleanup.push(() => sockets.forEach((s) => s.destroy()));
    await waitFor('the excess connections to be refused', () => replies.filter((r) => r.startsWith('HTTP/1.1 429 ')).length >= 200 - 64);
    expect(replies.find((r) => r.startsWith('HTTP/1.1 429 '))).toContain('"type":"rate_limit_error"');
    // Two real beats while the slow clients hold every slot: the lease is kept on its own pool.
    const seen = new Set([record().lastHeartbeat]);
    await waitFor('two heartbeats during the flood', () => seen.add(record().lastHeartbeat).size >= 3);
    expect(await sidecar.probe('/ready')).toBe(200);
    sockets.forEach((s) => s.destroy());
    await waitFor('a slot to free up', async () => (await viaProxy(base, 'GET', `/v1/sessions/${item.sessionId}`).catch(() => ({ status: 0 }))).status === 200);
  });

  it('a flood of requests from the main container does not delay a heartbeat, and is logged once per rule', async () => {
    const { item, base, sidecar, record } = await running();
    const work = `/v1/environments/${item.environmentId}/work/${item.workId}`;
    let flooding = true;
    let sent = 0;
    const loop = async (path: string, method: string): Promise<void> => {
      while (flooding) {
        await viaProxy(base, method, path).catch(() => undefined);
        sent++;
      }
    };
    const loops = Array.from({ length: 32 }, (_, i) =>
      i % 2 === 0 ? loop(`/v1/environments/${item.environmentId}/work/poll`, 'GET') : loop(`${work}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`, 'POST'),
    );
    const seen = new Set([record().lastHeartbeat]);
    await waitFor('two heartbeats during the flood', () => seen.add(record().lastHeartbeat).size >= 3);
    flooding = false;
    await Promise.all(loops);
    expect(sent).toBeGreaterThan(500);
    expect(emu.state.requestCounts()['POST /v1/environments/{environment_id}/work/{work_id}/heartbeat']?.['412']).toBeUndefined();
    expect(sidecar.logs().filter((l) => l['msg'] === 'refused a call from the main container').length).toBeLessThan(5);
  });

  it('forwarded calls beyond the in-flight bound get 429 with retry-after, not a queue', async () => {
    const { item, base } = await running();
    emu.admin.setFaults([{ method: 'GET', path: '/v1/sessions/*', latency_ms: 1_000 }]);
    const results = await Promise.all(Array.from({ length: 24 }, () => fetch(`${base}/v1/sessions/${item.sessionId}`, { headers: MAIN_HEADERS })));
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 200).length).toBe(16);
    const limited = results.filter((r) => r.status === 429);
    expect(limited).toHaveLength(8);
    expect(limited[0]!.headers.get('retry-after')).toBe('1');
  });
});

describe('the egress proxy', () => {
  it('HTTP_PROXY carries every call to the API, the lease\'s own included; NO_PROXY exempts a host', async () => {
    const recorder = await recordingProxy();
    cleanup.push(() => recorder.close());
    const { item } = await running({ HTTP_PROXY: recorder.url });
    expect(recorder.seen.some((r) => r.method === 'POST' && r.url.includes(`/work/${item.workId}/heartbeat`))).toBe(true);

    const direct = await acknowledgedItem(emu);
    const seenBefore = recorder.seen.length;
    const other = new SidecarProcess(direct, emu, mkdtempSync(join(tmpdir(), 'agentenv-sidecar-np-')), { HTTP_PROXY: recorder.url, NO_PROXY: '127.0.0.1' });
    cleanup.push(() => other.kill('SIGKILL'));
    await other.logged('lease claimed');
    expect(recorder.seen.slice(seenBefore).filter((r) => r.url.includes(direct.workId))).toEqual([]);
  });

  it('HTTPS_PROXY tunnels calls to an https API through CONNECT', async () => {
    const recorder = await recordingProxy();
    cleanup.push(() => recorder.close());
    const item = await acknowledgedItem(emu);
    const sidecar = new SidecarProcess(item, emu, dir, { ANTHROPIC_BASE_URL: 'https://api.example.test', HTTPS_PROXY: recorder.url });
    cleanup.push(() => sidecar.kill('SIGKILL'));
    await sidecar.logged('heartbeat failed; retrying');
    expect(recorder.seen.map((r) => `${r.method} ${r.url}`)).toContain('CONNECT api.example.test:443');
  });
});
