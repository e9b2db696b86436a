/**
 * The real sidecar process (`node src/cli/main.ts sidecar`) against the in-process emulator: the
 * real lease it keeps, the virtual lease it answers the main container from (through its proxy,
 * as a runner would call it), readiness, and the stop flows without any signal to the main
 * container.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SIDECAR_EXIT_LEASE_LOST, SIDECAR_EXIT_STOPPED_BY_API } from '../../src/contract/sidecar.ts';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { emulator } from '../support/emulator.ts';
import { acknowledgedItem, LEASE_TTL_SECONDS, SidecarProcess, viaProxy, waitFor } from '../support/sidecar-process.ts';

const STOP = 'POST /v1/environments/{environment_id}/work/{work_id}/stop';
const HEARTBEAT = 'POST /v1/environments/{environment_id}/work/{work_id}/heartbeat';

let emu: RunningEmulator;
let dir: string;
const started: SidecarProcess[] = [];

beforeEach(async () => {
  emu = await emulator({ leaseTtl: { minSeconds: 1, defaultSeconds: LEASE_TTL_SECONDS }, workSecrets: true });
  dir = mkdtempSync(join(tmpdir(), 'agentenv-sidecar-'));
});

afterEach(async () => {
  for (const p of started.splice(0)) p.kill('SIGKILL');
  await emu.close();
  rmSync(dir, { recursive: true, force: true });
});

async function running(env?: Record<string, string>) {
  const item = await acknowledgedItem(emu);
  const sidecar = new SidecarProcess(item, emu, dir, env);
  started.push(sidecar);
  await sidecar.logged('lease claimed');
  const base = await sidecar.proxyUrl();
  const work = `/v1/environments/${item.environmentId}/work/${item.workId}`;
  /** The main container's heartbeat, as the official runner sends it. */
  const beat = (expected: string) => viaProxy(base, 'POST', `${work}/heartbeat?expected_last_heartbeat=${encodeURIComponent(expected)}`);
  const stop = () => viaProxy(base, 'POST', `${work}/stop`, { force: true });
  return { item, sidecar, base, beat, stop, record: () => emu.state.work.get(item.environmentId, item.workId) };
}

const requests = (template: string): Record<string, number> => emu.state.requestCounts()[template] ?? {};

describe('agentenv sidecar: the real lease', () => {
  it('answers /started and /ready 503 until the first heartbeat claims the lease, then 200 with the item active', async () => {
    const item = await acknowledgedItem(emu);
    emu.admin.setFaults([{ method: 'POST', path: '/v1/environments/*/work/*/heartbeat', latency_ms: 1_500, count: 1 }]);
    const sidecar = new SidecarProcess(item, emu, dir);
    started.push(sidecar);
    expect(await sidecar.probe('/started')).toBe(503);
    expect(await sidecar.probe('/ready')).toBe(503);
    expect(await sidecar.probe('/healthz')).toBe(200);
    await sidecar.logged('lease claimed');
    expect(await sidecar.probe('/started')).toBe(200);
    expect(await sidecar.probe('/ready')).toBe(200);
    expect(emu.state.work.get(item.environmentId, item.workId).work.state).toBe('active');
  });

  it("renews the lease by echoing the server's last_heartbeat, and keeps it in lease.json", async () => {
    const { record } = await running();
    const first = record().lastHeartbeat;
    await waitFor('a renewal', () => record().lastHeartbeat !== first);
    expect(record().work.state).toBe('active');
    expect(requests(HEARTBEAT)['412']).toBeUndefined();
    await waitFor('lease.json to follow', () => JSON.parse(readFileSync(join(dir, 'state', 'lease.json'), 'utf8')).last_heartbeat === record().lastHeartbeat);
  });

  it('a restarted sidecar keeps the real lease and the virtual lease', async () => {
    const { item, sidecar, beat, record } = await running();
    const handed = (await beat('NO_HEARTBEAT')).json['last_heartbeat'] as string;
    sidecar.kill('SIGKILL');
    await sidecar.exited;
    const before = record().lastHeartbeat;
    const again = new SidecarProcess(item, emu, dir);
    started.push(again);
    expect((await again.logged('sidecar started'))['lease']).toBe('restored');
    await waitFor('a beat of the restored lease', () => record().lastHeartbeat !== before);
    expect(again.logs().some((l) => l['msg'] === 'lease claimed')).toBe(false);
    expect(requests(HEARTBEAT)['412']).toBeUndefined();
    expect(await again.probe('/ready')).toBe(200);
    // The runner in the main container goes on echoing the stamp the previous life handed out.
    const work = `/v1/environments/${item.environmentId}/work/${item.workId}`;
    const echoed = await viaProxy(await again.proxyUrl(), 'POST', `${work}/heartbeat?expected_last_heartbeat=${encodeURIComponent(handed)}`);
    expect(echoed).toMatchObject({ status: 200, json: { state: 'active' } });
  });
});

describe('agentenv sidecar: the virtual lease', () => {
  it("answers the main container's heartbeats itself, with the real lease's state and TTL and a fresh stamp each time", async () => {
    const { beat } = await running();
    const first = await beat('NO_HEARTBEAT');
    expect(first).toMatchObject({ status: 200, json: { state: 'active', lease_extended: true, ttl_seconds: LEASE_TTL_SECONDS } });
    const second = await beat(first.json['last_heartbeat']);
    expect(second.status).toBe(200);
    expect(second.json['last_heartbeat']).not.toBe(first.json['last_heartbeat']);
    // The virtual beats never reach the API: a NO_HEARTBEAT there would get 412 (the lease is claimed).
    expect(requests(HEARTBEAT)['412']).toBeUndefined();
  });

  it('a stale echo gets 412 with error.details.current_state, as the API answers', async () => {
    const { beat } = await running();
    const first = await beat('NO_HEARTBEAT');
    await beat(first.json['last_heartbeat']);
    const stale = await beat(first.json['last_heartbeat']);
    expect(stale.status).toBe(412);
    expect(stale.json['error']['details']['current_state']).toMatchObject({ state: 'active', ttl_seconds: LEASE_TTL_SECONDS });
  });

  it('a heartbeat 412 on the real lease turns the virtual lease to 412 and readiness to 503; nothing stops the item, and the sidecar exits SIDECAR_EXIT_LEASE_LOST', async () => {
    const { item, sidecar, beat, stop, record } = await running();
    // Another holder echoes the current stamp first: the sidecar's next echo is stale.
    await item.api.heartbeatWork(item.environmentId, item.workId, { expectedLastHeartbeat: record().lastHeartbeat! });
    expect((await sidecar.logged('lease ends'))['reason']).toBe('lease-lost');
    expect(await sidecar.probe('/ready')).toBe(503);
    expect((await beat('NO_HEARTBEAT')).status).toBe(412);
    // The runner would not stop after a 412; a stop anyway is answered 409 and not performed.
    expect((await stop()).status).toBe(409);
    expect(requests(STOP)).toEqual({});
    expect(record().work.state).toBe('active');
    // SIGTERM (the Pod ends): still no stop, and the exit code tells the operator why.
    sidecar.kill('SIGTERM');
    expect(await sidecar.exited).toBe(SIDECAR_EXIT_LEASE_LOST);
    expect(requests(STOP)).toEqual({});
  });

  it('no successful heartbeat within the TTL means the lease is assumed lost: unready, 412 to the runner, no stop, exit SIDECAR_EXIT_LEASE_LOST', async () => {
    const { sidecar, beat } = await running();
    emu.admin.setFaults([{ method: 'POST', path: '/v1/environments/*/work/*/heartbeat', status: 503 }]);
    expect((await sidecar.logged('lease ends'))['reason']).toBe('lease-expired');
    expect(await sidecar.probe('/ready')).toBe(503);
    expect((await beat('NO_HEARTBEAT')).status).toBe(412);
    sidecar.kill('SIGTERM');
    expect(await sidecar.exited).toBe(SIDECAR_EXIT_LEASE_LOST);
    expect(requests(STOP)).toEqual({});
  });
});

describe('agentenv sidecar: stop flows', () => {
  it('a graceful stop from the API reaches the runner as stopping and turns readiness to 503; its final stop confirms it, and the sidecar exits SIDECAR_EXIT_STOPPED_BY_API', async () => {
    const { item, sidecar, beat, stop, record } = await running();
    await item.api.stopWork(item.environmentId, item.workId);
    await waitFor('the sidecar to see the stop', async () => (await sidecar.probe('/ready')) === 503);
    expect(await beat('NO_HEARTBEAT')).toMatchObject({ status: 200, json: { state: 'stopping' } });
    expect((await stop()).status).toBe(200);
    expect(record().work.state).toBe('stopped');
    expect(requests(STOP)).toEqual({ '200': 2 }); // the API's graceful stop, then the sidecar's confirmation
    // The API ordered the stop before the runner's final one: the first reason is the exit code.
    sidecar.kill('SIGTERM');
    expect(await sidecar.exited).toBe(SIDECAR_EXIT_STOPPED_BY_API);
  });

  it('a sidecar restarted while a graceful stop drains keeps beating the lease until the runner confirms the stop', async () => {
    const { item, sidecar, record } = await running();
    await item.api.stopWork(item.environmentId, item.workId);
    await waitFor('the sidecar to see the stop', async () => (await sidecar.probe('/ready')) === 503);
    sidecar.kill('SIGKILL');
    await sidecar.exited;
    const again = new SidecarProcess(item, emu, dir);
    started.push(again);
    const before = record().lastHeartbeat;
    await waitFor('a beat of the draining lease', () => record().lastHeartbeat !== before);
    expect(await again.probe('/ready')).toBe(503);
    const work = `/v1/environments/${item.environmentId}/work/${item.workId}`;
    const base = await again.proxyUrl();
    expect(await viaProxy(base, 'POST', `${work}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`)).toMatchObject({ status: 200, json: { state: 'stopping' } });
    expect((await viaProxy(base, 'POST', `${work}/stop`, { force: true })).status).toBe(200);
    expect(record().work.state).toBe('stopped');
  });

  it('a force stop from the API reaches the runner as stopped; its final stop gets 409 and makes no call, and the sidecar exits SIDECAR_EXIT_STOPPED_BY_API', async () => {
    const { item, sidecar, beat, stop } = await running();
    await item.api.stopWork(item.environmentId, item.workId, { force: true });
    await waitFor('the sidecar to see the stop', async () => (await sidecar.probe('/ready')) === 503);
    expect(await beat('NO_HEARTBEAT')).toMatchObject({ status: 200, json: { state: 'stopped', lease_extended: false } });
    expect((await stop()).status).toBe(409);
    expect(requests(STOP)).toEqual({ '200': 1 });
    sidecar.kill('SIGTERM');
    expect(await sidecar.exited).toBe(SIDECAR_EXIT_STOPPED_BY_API);
  });

  it('a stop from the main container means the session is done: the sidecar performs the real stop and exits 0 (the session ended the lease)', async () => {
    const { sidecar, stop, beat, record } = await running();
    const answer = await stop();
    expect(answer.status).toBe(200);
    expect(record().work.state).toBe('stopped');
    expect(requests(STOP)).toEqual({ '200': 1 });
    expect(await sidecar.probe('/ready')).toBe(503);
    expect((await sidecar.logged('lease ends'))['reason']).toBe('session-ended');
    expect(await beat('NO_HEARTBEAT')).toMatchObject({ status: 200, json: { state: 'stopped' } });
    expect((await stop()).status).toBe(409);
    // The item is stopped now, and a heartbeat would say so: the session's own stop came first.
    sidecar.kill('SIGTERM');
    expect(await sidecar.exited).toBe(0);
  });

  it.each([
    ['the session ended it (the main container\'s stop)', 'session' as const, 0],
    ['the API stopped it first (a force stop)', 'api' as const, SIDECAR_EXIT_STOPPED_BY_API],
  ])('a sidecar restarted after %s exits with the same code: lease.json keeps how the lease ended', async (_, by, code) => {
    const { item, sidecar, stop } = await running();
    if (by === 'session') expect((await stop()).status).toBe(200);
    else await item.api.stopWork(item.environmentId, item.workId, { force: true });
    await waitFor('lease.json to keep the end', () => JSON.parse(readFileSync(join(dir, 'state', 'lease.json'), 'utf8')).ended !== undefined);
    sidecar.kill('SIGKILL');
    await sidecar.exited;
    const again = new SidecarProcess(item, emu, dir);
    started.push(again);
    expect((await again.logged('sidecar started'))['lease']).toMatch(/^ended/);
    again.kill('SIGTERM');
    expect(await again.exited).toBe(code);
    expect(again.logs().find((l) => l['msg'] === 'sidecar exiting')).toMatchObject({ exit_code: code });
  });

  it('SIGTERM (the main container ended by itself, or the Pod is deleted) force-stops the item and exits 0', async () => {
    const { sidecar, record } = await running();
    sidecar.kill('SIGTERM');
    expect(await sidecar.exited).toBe(0);
    expect(record().work.state).toBe('stopped');
    expect(sidecar.logs().find((l) => l['msg'] === 'sidecar exiting')).toMatchObject({ reason: 'terminated', stopped: true });
  });

  it('never prints the credential', async () => {
    const { item, sidecar, stop } = await running();
    await stop();
    sidecar.kill('SIGTERM');
    await sidecar.exited;
    expect(sidecar.output).toContain('lease claimed');
    expect(sidecar.output).not.toContain(item.token);
  });
});

describe('agentenv sidecar: configuration', () => {
  it('fails fast, naming every missing variable', async () => {
    const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
    const child = spawn(process.execPath, [main, 'sidecar'], { env: { PATH: process.env['PATH'] ?? '', AGENTENV_PROBE_PORT: 'eighty' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const code = await new Promise((r) => child.once('exit', r));
    expect(code).toBe(2);
    for (const name of ['ANTHROPIC_BASE_URL', 'AGENTENV_WORK_ID', 'AGENTENV_SESSION_ID', 'AGENTENV_ENVIRONMENT_ID', 'AGENTENV_PROBE_PORT']) expect(err).toContain(name);
  });
});
