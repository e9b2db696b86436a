/**
 * The sidecar container's startup probe (`wait-started`, src/sidecar/wait-started.ts) against the
 * real sidecar process and the in-process emulator: it is started with the sidecar, before the
 * sidecar listens (as a kubelet runs it), and must exit 0 once the lease is claimed and not before,
 * or 1 when its wait ends without a claim.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { emulator } from '../support/emulator.ts';
import { acknowledgedItem, LEASE_TTL_SECONDS, SidecarProcess } from '../support/sidecar-process.ts';
import { freePort } from '../../src/localcluster/controlplane-process.ts';

const WAIT_STARTED = fileURLToPath(new URL('../../src/cli/wait-started-entry.ts', import.meta.url));
const HEARTBEAT = '/v1/environments/*/work/*/heartbeat';

let emu: RunningEmulator;
let dir: string;
const started: SidecarProcess[] = [];

beforeEach(async () => {
  emu = await emulator({ leaseTtl: { minSeconds: 1, defaultSeconds: LEASE_TTL_SECONDS }, workSecrets: true });
  dir = mkdtempSync(join(tmpdir(), 'agentenv-wait-started-'));
});

afterEach(async () => {
  for (const p of started.splice(0)) p.kill('SIGKILL');
  await emu.close();
  rmSync(dir, { recursive: true, force: true });
});


/** `node wait-started-entry.ts <seconds>` with the sidecar's probe variables, as the exec probe runs it. */
function waitStarted(port: number, seconds: number): Promise<{ code: number | null; stderr: string; at: number }> {
  const child = spawn(process.execPath, [WAIT_STARTED, String(seconds)], {
    env: { PATH: process.env['PATH'] ?? '', AGENTENV_PROBE_ADDRESS: '127.0.0.1', AGENTENV_PROBE_PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr, at: Date.now() })));
}

describe('the startup probe (wait-started) against the real sidecar', () => {
  it('started before the sidecar listens, it exits 0 once the (slow) claim is made, and not before', async () => {
    const item = await acknowledgedItem(emu);
    emu.admin.setFaults([{ method: 'POST', path: HEARTBEAT, latency_ms: 1_500, count: 1 }]);
    const port = await freePort();
    const probe = waitStarted(port, 60);
    const sidecar = new SidecarProcess(item, emu, dir, { AGENTENV_PROBE_PORT: String(port) });
    started.push(sidecar);
    const result = await probe;
    expect(result.code).toBe(0);
    // The claim came first: the item is active, and the sidecar logged the claim before the probe ended.
    expect(emu.state.work.get(item.environmentId, item.workId).work.state).toBe('active');
    const claimed = await sidecar.logged('lease claimed');
    expect(claimed['time'] as number).toBeLessThanOrEqual(result.at);
  }, 20_000);

  it('a sidecar that cannot claim (every heartbeat 503): exit 1 when the wait ends, saying why', async () => {
    const item = await acknowledgedItem(emu);
    emu.admin.setFaults([{ method: 'POST', path: HEARTBEAT, status: 503 }]);
    const port = await freePort();
    const sidecar = new SidecarProcess(item, emu, dir, { AGENTENV_PROBE_PORT: String(port) });
    started.push(sidecar);
    await sidecar.logged('sidecar started');
    const result = await waitStarted(port, 2);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('the sidecar has not claimed the lease (waited 2s)');
    expect(emu.state.work.get(item.environmentId, item.workId).work.state).not.toBe('active');
  }, 20_000);

  it('bad use is a clear error (exit 2), not a wait', async () => {
    const result = await waitStarted(await freePort(), 0);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('usage: wait-started <seconds>');
  });
});
