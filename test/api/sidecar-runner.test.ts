/**
 * End to end: the official runner (`EnvironmentWorker.handleItem` of @anthropic-ai/sdk) in a child
 * process standing in for the main container, pointed at the real sidecar's proxy with nothing but
 * the placeholder work secret, against the in-process emulator. The sidecar holds the real lease
 * (claimed first) and the real credential; the runner's own claim is answered by the virtual
 * lease, its session calls are forwarded, and its final stop is the sidecar's real stop.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLACEHOLDER_WORK_SECRET } from '../../src/contract/sidecar.ts';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { bash, resultText, running, scriptAgent, terminated, waitForToolResults } from '../support/agent-script.ts';
import { emulator } from '../support/emulator.ts';
import { acknowledgedItem, LEASE_TTL_SECONDS, SidecarProcess, waitFor, type Item } from '../support/sidecar-process.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RUNNER = `import Anthropic from '@anthropic-ai/sdk';
const client = new Anthropic({ maxRetries: 2, logLevel: 'warn' });
await client.beta.environments.work.worker({ workdir: process.env.WORKDIR }).handleItem();`;
const HEARTBEAT = 'POST /v1/environments/{environment_id}/work/{work_id}/heartbeat';
const STOP = 'POST /v1/environments/{environment_id}/work/{work_id}/stop';

for (const workSecrets of [true, false]) describe(`the official runner behind the sidecar (${workSecrets ? 'per-item sessions token' : 'environment key'})`, () => {
  let emu: RunningEmulator;
  let dir: string;
  let item: Item;
  let sidecar: SidecarProcess;
  let runner: ChildProcess;
  let runnerOutput = '';
  let runnerExit: Promise<number | null>;

  beforeAll(async () => {
    emu = await emulator({ leaseTtl: { minSeconds: 1, defaultSeconds: LEASE_TTL_SECONDS }, workSecrets });
    dir = mkdtempSync(join(tmpdir(), 'agentenv-sidecar-runner-'));
    item = await acknowledgedItem(emu);
    expect(item.credentialKind).toBe(workSecrets ? 'sessions-token' : 'environment-key');
    sidecar = new SidecarProcess(item, emu, dir);
    await sidecar.logged('lease claimed');
    // The main container's whole environment: the sidecar as base URL, ids, and a placeholder secret.
    runner = spawn(process.execPath, ['--input-type=module', '-e', RUNNER], {
      cwd: ROOT,
      env: {
        PATH: process.env['PATH'] ?? '',
        HOME: dir,
        WORKDIR: mkdtempSync(join(dir, 'workspace-')),
        ANTHROPIC_BASE_URL: await sidecar.proxyUrl(),
        ANTHROPIC_ENVIRONMENT_ID: item.environmentId,
        ANTHROPIC_SESSION_ID: item.sessionId,
        ANTHROPIC_WORK_ID: item.workId,
        ANTHROPIC_WORK_SECRET: PLACEHOLDER_WORK_SECRET,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    runner.stdout!.on('data', (c: Buffer) => (runnerOutput += c.toString()));
    runner.stderr!.on('data', (c: Buffer) => (runnerOutput += c.toString()));
    runnerExit = new Promise((resolve) => runner.once('exit', (code) => resolve(code)));
    await waitFor('the runner to open its event stream through the sidecar', () => emu.state.sessions.openStreams() > 0);
  });

  afterAll(async () => {
    runner.kill('SIGKILL');
    sidecar.kill('SIGKILL');
    await emu.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves a scripted bash call with only the placeholder secret: its claim is the virtual lease's", async () => {
    const [echo] = await scriptAgent(emu.url, item.sessionId, [running(), bash('echo hi')]).then((ids) => ids.slice(1));
    const results = await waitForToolResults(emu.url, item.sessionId, [echo!]);
    expect(results.get(echo!)).toMatchObject({ type: 'user.tool_result', is_error: false });
    expect(resultText(results.get(echo!)).trim()).toBe('hi');
    // The runner's NO_HEARTBEAT claim never reached the API (it would have been 412 there).
    expect(emu.state.requestCounts()[HEARTBEAT]?.['412']).toBeUndefined();
  });

  it('an env bash call shows neither the environment key nor the per-item token', async () => {
    const [env] = await scriptAgent(emu.url, item.sessionId, [bash('env')]);
    const results = await waitForToolResults(emu.url, item.sessionId, [env!]);
    const text = resultText(results.get(env!));
    expect(text).toContain('PATH='); // env ran (the toolset itself drops ANTHROPIC_* from its shells)
    expect(text).not.toContain(item.environmentKey);
    expect(text).not.toContain(item.token);
  });

  it("the session's end ends the runner, and its final stop is the sidecar's real stop", async () => {
    await scriptAgent(emu.url, item.sessionId, [terminated()]);
    expect(await runnerExit).toBe(0);
    expect(emu.state.work.get(item.environmentId, item.workId).work.state).toBe('stopped');
    expect(emu.state.requestCounts()[STOP]).toEqual({ '200': 1 });
    expect(await sidecar.probe('/ready')).toBe(503);
    expect(runnerOutput).not.toContain(item.token);
    expect(sidecar.output).not.toContain(item.token);
  });
});
