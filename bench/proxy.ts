/**
 * The sidecar's proxy, measured against the emulator in another process, in one run:
 * (a) the latency the proxy adds per events POST and per streamed event, against the same calls
 *     made straight to the emulator (interleaved, so both see the same machine). Target ≤ 2 ms p50;
 * (b) the sidecar's RSS while proxying a busy session — an event stream held open through it and
 *     100 tool calls (the agent's tool_use delivered on the stream, a 4 KiB tool result posted back)
 *     — against a bare `node -e` measured alongside. Target ≤ 1.35 ×.
 *
 * The sidecar runs as a session Pod runs it: `SIDECAR_COMMAND` on the bundled dist/sidecar.cjs
 * (rebuilt here first). Figures are measured, never asserted.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SIDECAR_COMMAND } from '../src/sessions/objects/pod.ts';
import { startEmulatorProcess } from './support.ts';

const KEY = 'sk-bench';
const VERSION = { 'anthropic-version': '2023-06-01', 'anthropic-beta': 'managed-agents-2026-04-01' };
const POSTS = 300;
const STREAMED = 200;
const TOOL_CALLS = 100;
const RESULT = 'x'.repeat(4096);

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the benchmark reads a few known fields of API replies
type Json = any;

const ms = (ns: bigint): number => Number(ns) / 1e6;
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits;

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
}

async function call(base: string, method: string, path: string, auth: Record<string, string>, body?: unknown): Promise<Json> {
  const res = await fetch(base + path, { method, headers: { ...VERSION, ...auth, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** An SSE reader that resolves waiters when an event id shows up, stamping its arrival. */
async function openStream(base: string, sessionId: string, auth: Record<string, string>): Promise<{ arrived: Map<string, bigint>; close(): Promise<void> }> {
  const res = await fetch(`${base}/v1/sessions/${sessionId}/events/stream`, { headers: { ...VERSION, ...auth, accept: 'text/event-stream' } });
  if (res.status !== 200) throw new Error(`stream: ${res.status}`);
  const reader = res.body!.getReader();
  const arrived = new Map<string, bigint>();
  const decoder = new TextDecoder();
  let buffer = '';
  void (async () => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return;
      const at = process.hrtime.bigint();
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const data = /^data: (.*)$/m.exec(buffer.slice(0, end))?.[1];
        buffer = buffer.slice(end + 2);
        if (data) arrived.set((JSON.parse(data) as { id: string }).id, at);
      }
    }
  })();
  return { arrived, close: () => reader.cancel() };
}

async function until(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(1);
  }
}

export async function benchProxy(): Promise<Record<string, number>> {
  if (spawnSync('npm', ['run', '-s', 'build:sidecar'], { stdio: 'inherit' }).status !== 0) throw new Error('npm run build:sidecar failed');
  const [, ...nodeArgs] = SIDECAR_COMMAND.map((a) => a.replace(/^\/app\//, ''));
  const { url, child: emulator } = await startEmulatorProcess(KEY);
  const dir = mkdtempSync(join(tmpdir(), 'agentenv-bench-proxy-'));
  const children: ChildProcess[] = [];
  try {
    const org = { 'x-api-key': KEY };
    const env = await call(url, 'POST', '/v1/environments', org, { name: 'bench-proxy', config: { type: 'self_hosted' } });
    const { key } = await call(url, 'POST', `/emulator/v1/environments/${env.id}/keys`, org);
    const s = await call(url, 'POST', `/emulator/v1/environments/${env.id}/sessions`, org, {});
    await call(url, 'GET', `/v1/environments/${env.id}/work/poll`, org);
    await call(url, 'POST', `/v1/environments/${env.id}/work/${s.work_id}/ack`, org);
    writeFileSync(join(dir, 'token'), key);
    // Below the kernel's ephemeral range (32768–60999), where outgoing connections take their ports.
    const probePort = 20_000 + Math.floor(Math.random() * 12_000);
    const proxyPort = probePort + 1;
    const sidecar = spawn(process.execPath, nodeArgs, {
      env: {
        PATH: process.env['PATH'] ?? '',
        ANTHROPIC_BASE_URL: url,
        AGENTENV_ENVIRONMENT_ID: env.id,
        AGENTENV_SESSION_ID: s.session_id,
        AGENTENV_WORK_ID: s.work_id,
        AGENTENV_CREDENTIAL_FILE: join(dir, 'token'),
        AGENTENV_STATE_DIR: dir,
        AGENTENV_PROBE_ADDRESS: '127.0.0.1',
        AGENTENV_PROBE_PORT: String(probePort),
        AGENTENV_PROXY_PORT: String(proxyPort),
        AGENTENV_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    children.push(sidecar);
    const bare = spawn(process.execPath, ['-e', 'setInterval(()=>{},1e3)'], { stdio: 'ignore' });
    children.push(bare);
    const proxy = `http://127.0.0.1:${proxyPort}`;
    for (let i = 0; ; i++) {
      const ok = await fetch(`http://127.0.0.1:${probePort}/ready`).then((r) => r.status === 200, () => false);
      if (ok) break;
      if (i > 300) throw new Error('the sidecar never became ready');
      await sleep(100);
    }
    const direct = { authorization: `Bearer ${key}` };
    const main = { authorization: 'Bearer agentenv-placeholder-not-a-credential' };
    const events = `/v1/sessions/${s.session_id}/events`;
    const message = { events: [{ type: 'user.message', content: [{ type: 'text', text: 'bench' }] }] };

    // (a) events POST, interleaved direct / through the proxy.
    const postDirect: number[] = [];
    const postProxied: number[] = [];
    for (let i = 0; i < 20; i++) await call(proxy, 'POST', events, main, message); // warm both paths
    for (let i = 0; i < POSTS; i++) {
      for (const [base, auth, into] of [[url, direct, postDirect], [proxy, main, postProxied]] as const) {
        const t0 = process.hrtime.bigint();
        await call(base, 'POST', events, auth, message);
        into.push(ms(process.hrtime.bigint() - t0));
      }
    }

    // (a) streamed events: one stream straight from the emulator, one through the proxy, same events.
    const streamDirect = await openStream(url, s.session_id, direct);
    const streamProxied = await openStream(proxy, s.session_id, main);
    const added: number[] = [];
    for (let i = 0; i < STREAMED; i++) {
      const { ids } = await call(url, 'POST', `/emulator/v1/sessions/${s.session_id}/events`, {}, { events: [{ type: 'agent.tool_use', name: 'bash', input: { command: `echo ${i}` } }] });
      const id = ids[0] as string;
      await until(`event ${id} on both streams`, () => streamDirect.arrived.has(id) && streamProxied.arrived.has(id));
      added.push(ms(streamProxied.arrived.get(id)! - streamDirect.arrived.get(id)!));
      const results = { events: [{ type: 'user.tool_result', tool_use_id: id, content: [{ type: 'text', text: String(i) }] }] };
      await call(url, 'POST', events, direct, results);
    }
    await streamDirect.close();

    // (b) a busy session through the proxy: the stream stays open, 100 tool calls with 4 KiB results.
    const rss: number[] = [];
    const bareRss: number[] = [];
    for (let i = 0; i < TOOL_CALLS; i++) {
      const { ids } = await call(url, 'POST', `/emulator/v1/sessions/${s.session_id}/events`, {}, { events: [{ type: 'agent.tool_use', name: 'bash', input: { command: `cat file-${i}` } }] });
      const id = ids[0] as string;
      await until(`tool call ${id} through the proxy`, () => streamProxied.arrived.has(id));
      await call(proxy, 'POST', events, main, { events: [{ type: 'user.tool_result', tool_use_id: id, content: [{ type: 'text', text: RESULT }] }] });
      if (i % 10 === 9) {
        rss.push(rssKiB(sidecar.pid!));
        bareRss.push(rssKiB(bare.pid!));
      }
    }
    await sleep(1_000);
    for (let i = 0; i < 5; i++) {
      rss.push(rssKiB(sidecar.pid!));
      bareRss.push(rssKiB(bare.pid!));
      await sleep(200);
    }
    await streamProxied.close();

    const p50Direct = pct(postDirect, 0.5);
    const p50Proxied = pct(postProxied, 0.5);
    const sidecarMiB = pct(rss, 0.5) / 1024;
    const bareMiB = pct(bareRss, 0.5) / 1024;
    return {
      proxy_events_post_direct_p50_ms: round(p50Direct),
      proxy_events_post_proxied_p50_ms: round(p50Proxied),
      proxy_events_post_added_p50_ms: round(p50Proxied - p50Direct),
      proxy_events_post_added_p99_ms: round(pct(postProxied, 0.99) - pct(postDirect, 0.99)),
      proxy_stream_event_added_p50_ms: round(pct(added, 0.5)),
      proxy_stream_event_added_p99_ms: round(pct(added, 0.99)),
      proxy_busy_sidecar_rss_mib: round(sidecarMiB, 1),
      proxy_busy_sidecar_peak_rss_mib: round(Math.max(...rss) / 1024, 1),
      proxy_bare_node_rss_mib: round(bareMiB, 1),
      proxy_busy_rss_ratio: round(sidecarMiB / bareMiB),
    };
  } finally {
    for (const c of children) c.kill('SIGKILL');
    emulator.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}
