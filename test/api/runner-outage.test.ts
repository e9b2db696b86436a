/**
 * `agentenv runner` (serveWorkItem) rides out an API outage longer than the SDK's default two
 * retries: a session read answered 429 five times in a row, and event stream connections reset,
 * still end with the agent's bash call answered. With the SDK's default the session read fails
 * and the item is force-stopped (the chaos run's `ContainerFailed` sessions, seed 4).
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
import { bash, resultText, running, scriptAgent, terminated, waitForToolResults } from '../support/agent-script.ts';
import { API_KEY, emulator } from '../support/emulator.ts';

let emu: RunningEmulator;
let workdir: string;
beforeEach(async () => {
  emu = await emulator({ workSecrets: true });
  workdir = mkdtempSync(join(tmpdir(), 'agentenv-runner-outage-'));
});
afterEach(async () => {
  await emu.close();
  rmSync(workdir, { recursive: true, force: true });
});

it('a session read refused five times (429) and stream connections reset: the runner retries and the bash call is answered', async () => {
  const org = new Anthropic({ apiKey: API_KEY, baseURL: emu.url, maxRetries: 0 });
  const env = await org.beta.environments.create({ name: 'runner-outage', config: { type: 'self_hosted' } });
  const keyed = new Anthropic({ apiKey: null, authToken: emu.admin.mintKey(env.id), baseURL: emu.url, maxRetries: 0 });
  const { session_id: sessionId, work_id: workId } = emu.admin.createSession(env.id);
  const work = (await keyed.beta.environments.work.poll(env.id, { block_ms: 500 })) as { id: string; secret?: string | null } | null;
  await keyed.beta.environments.work.ack(workId, { environment_id: env.id });
  // Retry-After in milliseconds keeps the test short; the count is what matters: more than the
  // SDK's default of two retries.
  emu.admin.setFaults([
    { method: 'GET', path: `/v1/sessions/${sessionId}`, status: 429, count: 5, headers: { 'retry-after-ms': '20' } },
    { method: 'GET', path: `/v1/sessions/${sessionId}/events/stream`, reset: true, count: 3 },
  ]);
  const [, echo] = await scriptAgent(emu.url, sessionId, [running(), bash('echo after the outage')]);
  const done = serveWorkItem(RunnerOptions.parse({ baseUrl: emu.url, workId, environmentId: env.id, sessionId, workSecret: work?.secret ?? undefined, workdir }), createLogger({ level: 'silent' }), new AbortController().signal);

  const results = await waitForToolResults(emu.url, sessionId, [echo!], { timeoutMs: 60_000 });
  expect(resultText(results.get(echo!))).toContain('after the outage');
  expect(emu.state.work.get(env.id, workId).work.state).not.toBe('stopped');

  await scriptAgent(emu.url, sessionId, [terminated()]);
  await done;
  expect(emu.state.work.get(env.id, workId).work.state).toBe('stopped');
}, 90_000);
