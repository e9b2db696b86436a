/**
 * `agentenv runner` (serveWorkItem) ends when its session is terminated while its event stream is
 * down. The SDK's runner learns a termination only from the live stream (its reconnect reads the
 * history for tool calls, not for the end), so without the runner's status check the run — and its
 * Pod and lease — would go on forever. Found by the chaos run (docs/chaos.md, seed 2).
 */
import Anthropic from '@anthropic-ai/sdk';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { RunnerOptions } from '../../src/runner/options.ts';
import { serveWorkItem } from '../../src/runner/runner.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { bash, running, scriptAgent, terminated, waitForToolResults } from '../support/agent-script.ts';
import { API_KEY, emulator } from '../support/emulator.ts';

let emu: RunningEmulator;
let workdir: string;
beforeEach(async () => {
  emu = await emulator({ workSecrets: true });
  workdir = mkdtempSync(join(tmpdir(), 'agentenv-runner-termination-'));
});
afterEach(async () => {
  await emu.close();
  rmSync(workdir, { recursive: true, force: true });
});

it('a session terminated while the runner\'s event stream is down ends the run, and the work item is stopped', async () => {
  const org = new Anthropic({ apiKey: API_KEY, baseURL: emu.url, maxRetries: 0 });
  const env = await org.beta.environments.create({ name: 'runner-termination', config: { type: 'self_hosted' } });
  const keyed = new Anthropic({ apiKey: null, authToken: emu.admin.mintKey(env.id), baseURL: emu.url, maxRetries: 0 });
  const { session_id: sessionId, work_id: workId } = emu.admin.createSession(env.id);
  const work = (await keyed.beta.environments.work.poll(env.id, { block_ms: 500 })) as { id: string; secret?: string | null } | null;
  await keyed.beta.environments.work.ack(workId, { environment_id: env.id });
  const options = RunnerOptions.parse({ baseUrl: emu.url, workId, environmentId: env.id, sessionId, workSecret: work?.secret ?? undefined, workdir });
  const done = serveWorkItem(options, createLogger({ level: 'silent' }), new AbortController().signal, 200);

  const [echo] = await scriptAgent(emu.url, sessionId, [running(), bash('echo before')]).then((ids) => ids.slice(1));
  await waitForToolResults(emu.url, sessionId, [echo!], { timeoutMs: 20_000 });

  // The stream drops and cannot come back for a while; the termination lands in that gap.
  emu.admin.setFaults([{ method: 'GET', path: '/v1/sessions/*/events/stream', status: 503 }]);
  emu.state.sessions.closeStreams(sessionId);
  await scriptAgent(emu.url, sessionId, [terminated()]);
  await new Promise((r) => setTimeout(r, 1_000));
  // The stream comes back: the SDK re-reads the history, which does not end its run by itself.
  emu.admin.clearFaults();

  await done;
  expect(emu.state.work.get(env.id, workId).work.state).toBe('stopped');
});
