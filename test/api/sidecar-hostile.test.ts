/**
 * The main container attacks its sidecar (the real sidecar process, the in-process emulator as the
 * API): headers trickled a byte at a time (slowloris), requests pipelined with garbage, and
 * thousands of connections at once. The sidecar answers with errors or closes, stays up, its
 * memory stays bounded (its RSS, read from /proc, loosely), and — what the session's life depends
 * on — the emulator sees its heartbeats continue throughout. The simpler cases (an oversized body,
 * huge headers, garbage, 200 slow connections, a request flood) are in sidecar-proxy.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { HEADERS_TIMEOUT_MS, MAX_CONNECTIONS } from '../../src/sidecar/proxy.ts';
import { emulator } from '../support/emulator.ts';
import { acknowledgedItem, LEASE_TTL_SECONDS, SidecarProcess, viaProxy, waitFor } from '../support/sidecar-process.ts';

let emu: RunningEmulator;
let dir: string;
const cleanup: Array<() => unknown> = [];

beforeEach(async () => {
  emu = await emulator({ leaseTtl: { minSeconds: 1, defaultSeconds: LEASE_TTL_SECONDS }, workSecrets: true });
  dir = mkdtempSync(join(tmpdir(), 'agentenv-sidecar-hostile-'));
});

afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
  await emu.close();
  rmSync(dir, { recursive: true, force: true });
});

async function running() {
  const item = await acknowledgedItem(emu);
  const sidecar = new SidecarProcess(item, emu, dir);
  cleanup.push(() => sidecar.kill('SIGKILL'));
  await sidecar.logged('lease claimed');
  const base = await sidecar.proxyUrl();
  return { item, sidecar, base, port: Number(new URL(base).port) };
}

/** Heartbeats the emulator accepted so far (the sidecar's own: the main container's never reach it). */
const beats = (): number => emu.state.requestCounts()['POST /v1/environments/{environment_id}/work/{work_id}/heartbeat']?.['200'] ?? 0;

/** Resident memory of a process, from /proc (Linux). */
const rssBytes = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

interface Conn {
  readonly socket: net.Socket;
  received: string;
  closed: boolean;
}

function connect(port: number, onConnect: (s: net.Socket) => void = () => undefined): Conn {
  const socket = net.connect(port, '127.0.0.1', () => onConnect(socket));
  const c: Conn = { socket, received: '', closed: false };
  socket.on('data', (b) => (c.received += b.toString('latin1')));
  socket.on('error', () => undefined);
  socket.on('close', () => (c.closed = true));
  cleanup.push(() => socket.destroy());
  return c;
}

describe('the sidecar under attack from its main container', () => {
  it(`slowloris: ${MAX_CONNECTIONS + 16} clients trickling their headers are cut off with 408 at the header deadline (the excess refused 429), while the heartbeats go on`, async () => {
    const { item, port, base, sidecar } = await running();
    const line = `GET /v1/sessions/${item.sessionId} HTTP/1.1\r\nhost: x\r\nx-slow: ${'a'.repeat(200)}`;
    const conns = Array.from({ length: MAX_CONNECTIONS + 16 }, () => connect(port));
    let i = 0;
    const trickle = setInterval(() => {
      for (const c of conns) if (!c.closed && i < line.length) c.socket.write(line[i]!);
      i++;
    }, 250);
    cleanup.push(() => clearInterval(trickle));
    const beatsBefore = beats();

    await waitFor('every trickling client to be answered and closed', () => conns.every((c) => c.closed), HEADERS_TIMEOUT_MS + 10_000);
    clearInterval(trickle);
    const timedOut = conns.filter((c) => c.received.startsWith('HTTP/1.1 408 '));
    const refused = conns.filter((c) => c.received.startsWith('HTTP/1.1 429 '));
    expect(timedOut.length + refused.length).toBe(conns.length);
    expect(refused.length).toBeGreaterThanOrEqual(16);
    expect(timedOut[0]?.received).toContain('"type":"invalid_request_error"');
    // The header deadline is 10 s and a beat goes out every 2 s: the lease was renewed meanwhile.
    expect(beats() - beatsBefore).toBeGreaterThanOrEqual(3);
    expect(await sidecar.probe('/ready')).toBe(200);
    expect(await viaProxy(base, 'GET', `/v1/sessions/${item.sessionId}`)).toMatchObject({ status: 200 });
  });

  it('pipelined requests are answered in order; garbage after them gets 400 or a close, and the sidecar serves the next connection', async () => {
    const { item, port, base } = await running();
    const hb = `/v1/environments/${item.environmentId}/work/${item.workId}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`;
    const two = connect(port, (s) => s.write(`POST ${hb} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\nGET /v1/environments HTTP/1.1\r\nhost: x\r\n\r\n`));
    await waitFor('two pipelined replies', () => (two.received.match(/HTTP\/1\.1 \d{3} /g) ?? []).length >= 2);
    expect((two.received.match(/HTTP\/1\.1 (\d{3}) /g) ?? []).map((s) => s.slice(9, 12))).toEqual(['200', '403']);

    const garbage = connect(port, (s) => s.write(`POST ${hb} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n\u0000\u00ff\u0013 GARBAGE \r\n\r\n${'\u0001'.repeat(4096)}`));
    await waitFor('the garbage connection to close', () => garbage.closed);
    expect(garbage.received === '' || garbage.received.startsWith('HTTP/1.1 ')).toBe(true);
    if (garbage.received.includes(' 400 ')) expect(garbage.received).toContain('"type":"invalid_request_error"');

    const smuggled = connect(port, (s) => s.write(`POST ${hb} HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/environments HTTP/1.1\r\n\r\n`));
    await waitFor('the smuggling attempt to be answered or closed', () => smuggled.closed || smuggled.received.length > 0);
    expect(smuggled.received === '' || /^HTTP\/1\.1 (400|403) /.test(smuggled.received)).toBe(true);
    expect(await viaProxy(base, 'GET', `/v1/sessions/${item.sessionId}`)).toMatchObject({ status: 200 });
  });

  it('3,000 connections at once: the excess is refused with 429, memory stays bounded, and the heartbeats go on', async () => {
    const { item, port, base, sidecar } = await running();
    const pid = sidecar.child.pid!;
    const rssBefore = rssBytes(pid);
    const beatsBefore = beats();
    let peak = rssBefore;
    const sample = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 100);
    cleanup.push(() => clearInterval(sample));

    // Three waves of 1,000, each held open (a request begun and never finished) until the sidecar acts.
    const conns: Conn[] = [];
    for (let wave = 0; wave < 3; wave++) {
      for (let i = 0; i < 1_000; i++) conns.push(connect(port, (s) => s.write(`GET /v1/sessions/${item.sessionId} HTTP/1.1\r\nhost: x\r\n`)));
      await waitFor(`wave ${wave + 1} refused`, () => conns.filter((c) => c.received.startsWith('HTTP/1.1 429 ')).length >= conns.length - MAX_CONNECTIONS, 30_000);
    }
    const refused = conns.filter((c) => c.received.startsWith('HTTP/1.1 429 '));
    expect(refused.length).toBeGreaterThanOrEqual(3_000 - MAX_CONNECTIONS);
    expect(refused[0]!.received).toContain(`at most ${MAX_CONNECTIONS} connections`);
    // Two beats while every slot is held and thousands knock.
    await waitFor('two heartbeats during the attack', () => beats() - beatsBefore >= 2);
    expect(await sidecar.probe('/ready')).toBe(200);
    clearInterval(sample);
    // Loose: a sidecar that kept a buffer or a parser per refused connection would grow by far more.
    expect(peak - rssBefore).toBeLessThan(48 * 1024 * 1024);

    for (const c of conns) c.socket.destroy();
    await waitFor('a slot to free up', async () => (await viaProxy(base, 'GET', `/v1/sessions/${item.sessionId}`).catch(() => ({ status: 0 }))).status === 200);
    expect(sidecar.child.exitCode).toBeNull();
  });
});
