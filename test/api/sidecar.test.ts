/**
 * The real sidecar process (`node src/cli/main.ts sidecar`) against the in-process emulator, beside
 * a fake main container: a child Node process whose environment carries `ANTHROPIC_WORK_ID` and
 * which reports the signals it receives.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EnvironmentsClient } from '../../src/api/client.ts';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { clientFor, emulator, selfHosted } from '../support/emulator.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const LEASE_TTL_SECONDS = 4; // beats every 2 s
const STOP = 'POST /v1/environments/{environment_id}/work/{work_id}/stop';
const HEARTBEAT = 'POST /v1/environments/{environment_id}/work/{work_id}/heartbeat';

async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Item {
  readonly api: EnvironmentsClient;
  readonly environmentId: string;
  readonly sessionId: string;
  readonly workId: string;
  readonly token: string;
}

/** A work item polled and acknowledged (what the dispatcher does before the Pod exists). */
async function acknowledgedItem(emu: RunningEmulator): Promise<Item> {
  const api = clientFor(emu);
  const env = await selfHosted(api);
  const { session_id, work_id } = emu.admin.createSession(env.id);
  expect((await api.pollWork(env.id))?.id).toBe(work_id);
  await api.ackWork(env.id, work_id);
  return { api, environmentId: env.id, sessionId: session_id, workId: work_id, token: emu.admin.mintKey(env.id) };
}

class Sidecar {
  readonly child: ChildProcess;
  output = '';
  readonly exited: Promise<number | null>;

  /** `dir` holds the credential file and `state/` (the Pod's emptyDir, which outlives a sidecar restart). */
  constructor(item: Item, emu: RunningEmulator, dir: string, extraEnv: Record<string, string> = {}) {
    const credential = join(dir, 'token');
    const stateDir = join(dir, 'state');
    writeFileSync(credential, `${item.token}\n`);
    mkdirSync(stateDir, { recursive: true });
    this.child = spawn(process.execPath, [MAIN, 'sidecar'], {
      env: {
        PATH: process.env['PATH'] ?? '',
        ANTHROPIC_BASE_URL: emu.url,
        AGENTENV_ENVIRONMENT_ID: item.environmentId,
        AGENTENV_SESSION_ID: item.sessionId,
        AGENTENV_WORK_ID: item.workId,
        AGENTENV_CREDENTIAL_FILE: credential,
        AGENTENV_STATE_DIR: stateDir,
        AGENTENV_STOP_GRACE_SECONDS: '2',
        AGENTENV_LEASE_TTL_SECONDS: String(LEASE_TTL_SECONDS),
        AGENTENV_PROBE_ADDRESS: '127.0.0.1',
        AGENTENV_PROBE_PORT: '0',
        AGENTENV_LOG_LEVEL: 'debug',
        ...extraEnv,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (c: Buffer) => (this.output += c.toString()));
    this.child.stderr!.on('data', (c: Buffer) => (this.output += c.toString()));
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  logs(): Array<Record<string, unknown>> {
    return this.output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  async logged(msg: string): Promise<Record<string, unknown>> {
    return waitFor(`log "${msg}"`, () => this.logs().find((l) => l['msg'] === msg));
  }

  async probe(path: '/started' | '/healthz'): Promise<number> {
    const started = await this.logged('sidecar started');
    return (await fetch(`http://127.0.0.1:${String(started['probe_port'])}${path}`)).status;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }
}

/** The fake main container: reports SIGTERM on stdout; exits on it unless told to ignore it. */
class MainContainer {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output = '';

  constructor(workId: string, opts: { ignoreSigterm?: boolean; exitAfterMs?: number } = {}) {
    const script = [
      `process.on('SIGTERM', () => { process.stdout.write('SIGTERM\\n'); ${opts.ignoreSigterm ? '' : 'process.exit(0);'} });`,
      opts.exitAfterMs !== undefined ? `setTimeout(() => process.exit(0), ${opts.exitAfterMs});` : '',
      `setInterval(() => {}, 1000); process.stdout.write('ready\\n');`,
    ].join('\n');
    this.child = spawn(process.execPath, ['-e', script], { env: { PATH: process.env['PATH'] ?? '', ANTHROPIC_WORK_ID: workId }, stdio: ['ignore', 'pipe', 'inherit'] });
    this.child.stdout!.on('data', (c: Buffer) => (this.output += c.toString()));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  ready(): Promise<true> {
    return waitFor('main container ready', () => this.output.includes('ready'));
  }

  get gotSigterm(): boolean {
    return this.output.includes('SIGTERM');
  }
}

let emu: RunningEmulator;
let dir: string;
const started: Array<Sidecar | MainContainer> = [];

beforeEach(async () => {
  emu = await emulator({ leaseTtl: { minSeconds: 1, defaultSeconds: LEASE_TTL_SECONDS } });
  dir = mkdtempSync(join(tmpdir(), 'agentenv-sidecar-'));
});

afterEach(async () => {
  for (const p of started.splice(0)) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await emu.close();
  rmSync(dir, { recursive: true, force: true });
});

async function running(opts: { main?: ConstructorParameters<typeof MainContainer>[1]; env?: Record<string, string> } = {}) {
  const item = await acknowledgedItem(emu);
  const sidecar = new Sidecar(item, emu, dir, opts.env);
  started.push(sidecar);
  await sidecar.logged('lease claimed');
  const main = new MainContainer(item.workId, opts.main);
  started.push(main);
  await main.ready();
  return { item, sidecar, main, record: () => emu.state.work.get(item.environmentId, item.workId) };
}

const requests = (template: string): Record<string, number> => emu.state.requestCounts()[template] ?? {};

describe('agentenv sidecar: the lease', () => {
  it('answers /started 503 until the first heartbeat claims the lease, then 200 with the item active', async () => {
    const item = await acknowledgedItem(emu);
    emu.admin.setFaults([{ method: 'POST', path: '/v1/environments/*/work/*/heartbeat', latency_ms: 1_500, count: 1 }]);
    const sidecar = new Sidecar(item, emu, dir);
    started.push(sidecar);
    expect(await sidecar.probe('/started')).toBe(503);
    expect(await sidecar.probe('/healthz')).toBe(200);
    await sidecar.logged('lease claimed');
    expect(await sidecar.probe('/started')).toBe(200);
    expect(emu.state.work.get(item.environmentId, item.workId).work.state).toBe('active');
  });

  it('renews the lease by echoing the server\'s last_heartbeat, and keeps it in lease.json', async () => {
    const { record } = await running();
    const first = record().lastHeartbeat;
    await waitFor('a renewal', () => record().lastHeartbeat !== first);
    expect(record().work.state).toBe('active');
    expect(requests(HEARTBEAT)['412']).toBeUndefined();
    await waitFor('lease.json to follow', () => JSON.parse(readFileSync(join(dir, 'state', 'lease.json'), 'utf8')).last_heartbeat === record().lastHeartbeat);
  });

  it('a heartbeat 412 releases the work item without stopping it, and stops the main container', async () => {
    const { item, sidecar, main, record } = await running();
    // Another holder echoes the current stamp first: the sidecar's next echo is stale.
    await item.api.heartbeatWork(item.environmentId, item.workId, { expectedLastHeartbeat: record().lastHeartbeat! });
    expect((await sidecar.logged('lease ends'))['reason']).toBe('lease-lost');
    await main.exited;
    expect(main.gotSigterm).toBe(true);
    await sidecar.logged('sidecar idle until terminated');
    expect(requests(STOP)).toEqual({});
    expect(record().work.state).toBe('active');
  });

  it('no successful heartbeat within the TTL means the lease is assumed lost: the main container is stopped, the item is not', async () => {
    const { sidecar, main } = await running();
    emu.admin.setFaults([{ method: 'POST', path: '/v1/environments/*/work/*/heartbeat', status: 503 }]);
    expect((await sidecar.logged('lease ends'))['reason']).toBe('lease-expired');
    await main.exited;
    expect(main.gotSigterm).toBe(true);
    await sidecar.logged('sidecar idle until terminated');
    expect(requests(STOP)).toEqual({});
  });

  it('a restarted sidecar resumes the lease from lease.json instead of re-claiming it', async () => {
    const { item, sidecar, main, record } = await running();
    sidecar.kill('SIGKILL');
    await sidecar.exited;
    const before = record().lastHeartbeat;
    const again = new Sidecar(item, emu, dir);
    started.push(again);
    expect((await again.logged('sidecar started'))['lease']).toBe('restored');
    await waitFor('a beat of the restored lease', () => record().lastHeartbeat !== before);
    expect(await again.probe('/started')).toBe(200);
    expect(again.logs().some((l) => l['msg'] === 'lease claimed')).toBe(false);
    expect(requests(HEARTBEAT)['412']).toBeUndefined();
    expect(record().work.state).toBe('active');
    expect(main.gotSigterm).toBe(false);
  });
});

describe('agentenv sidecar: stop flows', () => {
  it('a graceful stop from the API SIGTERMs the main container, then confirms the stop', async () => {
    const { item, sidecar, main, record } = await running();
    await item.api.stopWork(item.environmentId, item.workId);
    await main.exited;
    expect(main.gotSigterm).toBe(true);
    await waitFor('the item stopped', () => record().work.state === 'stopped');
    await sidecar.logged('work item stopped');
    expect(requests(STOP)).toEqual({ '200': 2 }); // the API's graceful stop, then the sidecar's confirmation
  });

  it('a force stop from the API stops the main container with no stop call of its own', async () => {
    const { item, sidecar, main } = await running();
    await item.api.stopWork(item.environmentId, item.workId, { force: true });
    await main.exited;
    expect(main.gotSigterm).toBe(true);
    await sidecar.logged('sidecar idle until terminated');
    expect(requests(STOP)).toEqual({ '200': 1 });
  });

  it('a main container that ignores SIGTERM is SIGKILLed after the grace', async () => {
    const { item, main } = await running({ main: { ignoreSigterm: true } });
    await item.api.stopWork(item.environmentId, item.workId);
    expect(await main.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(main.gotSigterm).toBe(true);
  });

  it('a main container ending by itself force-stops the work item', async () => {
    const { sidecar, main, record } = await running({ main: { exitAfterMs: 1_500 } });
    await main.exited;
    expect((await sidecar.logged('lease ends'))['reason']).toBe('session-ended');
    await waitFor('the item stopped', () => record().work.state === 'stopped');
    expect(requests(STOP)).toEqual({ '200': 1 });
    expect(await sidecar.probe('/healthz')).toBe(200);
  });

  it('SIGTERM to the sidecar stops the main container, force-stops the item and exits 0', async () => {
    const { sidecar, main, record } = await running();
    sidecar.kill('SIGTERM');
    expect(await sidecar.exited).toBe(0);
    expect(main.gotSigterm).toBe(true);
    expect(record().work.state).toBe('stopped');
    expect((sidecar.logs().find((l) => l['msg'] === 'lease ends') ?? {})['reason']).toBe('terminated');
  });

  it('never prints the credential', async () => {
    const { item, sidecar, main } = await running();
    await item.api.stopWork(item.environmentId, item.workId);
    await main.exited;
    await sidecar.logged('sidecar idle until terminated');
    sidecar.kill('SIGTERM');
    await sidecar.exited;
    expect(sidecar.output).toContain('lease claimed');
    expect(sidecar.output).not.toContain(item.token);
  });
});

describe('agentenv sidecar: configuration', () => {
  it('fails fast, naming every missing variable', async () => {
    const child = spawn(process.execPath, [MAIN, 'sidecar'], { env: { PATH: process.env['PATH'] ?? '', AGENTENV_PROBE_PORT: 'eighty' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const code = await new Promise((r) => child.once('exit', r));
    expect(code).toBe(2);
    for (const name of ['ANTHROPIC_BASE_URL', 'AGENTENV_WORK_ID', 'AGENTENV_SESSION_ID', 'AGENTENV_ENVIRONMENT_ID', 'AGENTENV_PROBE_PORT']) expect(err).toContain(name);
  });
});
