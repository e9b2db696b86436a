/**
 * The official runner end to end against the emulator, with no sidecar: `handleItem` of the SDK's
 * EnvironmentWorker claims an acknowledged item with its NO_HEARTBEAT heartbeat, reads the session,
 * runs the agent toolset (bash spawns /bin/bash) for the events a test scripts through the admin
 * API, posts the results, and force-stops the item when the session ends. Both credential paths
 * run: the per-item sessions token from the poll's `secret`, and the environment key alone.
 */
import Anthropic from '@anthropic-ai/sdk';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { bash, endTurn, resultText, running, scriptAgent, sessionEvents, terminated, toolUse, waitForEvents, waitForToolResults } from '../support/agent-script.ts';
import { API_KEY, emulator, versionHeaders } from '../support/emulator.ts';

interface ClaimedItem {
  environmentId: string;
  sessionId: string;
  workId: string;
  environmentKey: string;
  secret: string | undefined;
}

/** A new session's item, polled and acknowledged with the environment key, as a dispatcher does. */
async function acknowledgedItem(emu: RunningEmulator): Promise<ClaimedItem> {
  const org = new Anthropic({ apiKey: API_KEY, baseURL: emu.url, maxRetries: 0 });
  const env = await org.beta.environments.create({ name: 'runner-direct', config: { type: 'self_hosted' } });
  const environmentKey = emu.admin.mintKey(env.id);
  const { session_id, work_id } = emu.admin.createSession(env.id);
  const keyed = new Anthropic({ apiKey: null, authToken: environmentKey, baseURL: emu.url, maxRetries: 0 });
  const work = (await keyed.beta.environments.work.poll(env.id, { block_ms: 500 })) as { id: string; secret?: string | null } | null;
  expect(work?.id).toBe(work_id);
  await keyed.beta.environments.work.ack(work_id, { environment_id: env.id });
  // Acknowledged, lease unclaimed: the runner's own NO_HEARTBEAT beat claims it.
  expect(emu.state.work.get(env.id, work_id)).toMatchObject({ lastHeartbeat: null, work: { state: 'starting' } });
  return { environmentId: env.id, sessionId: session_id, workId: work_id, environmentKey, secret: work?.secret ?? undefined };
}

interface Runner {
  workdir: string;
  done: Promise<void>;
}

/** `handleItem` on the item, with the sessions token when `withSecret`, else the environment key. */
function startRunner(emu: RunningEmulator, item: ClaimedItem, options: { withSecret: boolean; maxIdleMs?: number }): Runner {
  const workdir = mkdtempSync(join(tmpdir(), 'agentenv-runner-'));
  // The parent client's key is never sent: the worker scopes a sub-client to the item's credential.
  const client = new Anthropic({ apiKey: 'sk-ant-parent-key-unused', baseURL: emu.url, maxRetries: 2, logLevel: 'error' });
  const worker = client.beta.environments.work.worker({ workdir, ...(options.maxIdleMs !== undefined ? { maxIdleMs: options.maxIdleMs } : {}) });
  const credential = options.withSecret ? { workSecret: item.secret! } : { environmentKey: item.environmentKey };
  const done = worker.handleItem({ workId: item.workId, environmentId: item.environmentId, sessionId: item.sessionId, ...credential });
  return { workdir, done };
}

const workState = (emu: RunningEmulator, item: ClaimedItem): string => emu.state.work.get(item.environmentId, item.workId).work.state;

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const withSecret of [true, false]) {
  describe(`the official runner against the emulator (${withSecret ? 'per-item sessions token' : 'environment key'})`, () => {
    let emu: RunningEmulator;
    let item: ClaimedItem;
    let runner: Runner;

    beforeAll(async () => {
      emu = await emulator({ workSecrets: withSecret });
      item = await acknowledgedItem(emu);
      expect(item.secret !== undefined).toBe(withSecret);
      runner = startRunner(emu, item, { withSecret });
      // The runner claims the lease itself (NO_HEARTBEAT) and attaches to the event stream.
      await until(() => workState(emu, item) === 'active' && emu.state.sessions.openStreams() > 0, 'the runner to claim the lease and open its stream');
    });
    afterAll(async () => {
      await emu.close();
      rmSync(runner.workdir, { recursive: true, force: true });
    });

    it('answers a scripted bash echo with a user.tool_result carrying its output', async () => {
      const [echo] = await scriptAgent(emu.url, item.sessionId, [running(), bash('echo hi')]).then((ids) => ids.slice(1));
      const results = await waitForToolResults(emu.url, item.sessionId, [echo!]);
      expect(results.get(echo!)).toMatchObject({ type: 'user.tool_result', tool_use_id: echo, is_error: false });
      expect(resultText(results.get(echo!)).trim()).toBe('hi');
    });

    it('reads back a file written by an earlier tool call in the workdir', async () => {
      const [write, read] = await scriptAgent(emu.url, item.sessionId, [
        toolUse('write', { file_path: 'notes/hello.txt', content: 'written by the agent\n' }),
        toolUse('read', { file_path: 'notes/hello.txt' }),
      ]);
      const results = await waitForToolResults(emu.url, item.sessionId, [write!, read!]);
      expect(results.get(write!)).toMatchObject({ is_error: false });
      expect(resultText(results.get(read!))).toContain('written by the agent');
      expect(existsSync(join(runner.workdir, 'notes/hello.txt'))).toBe(true);
    });

    it('answers a failing command with is_error: true', async () => {
      const [failing] = await scriptAgent(emu.url, item.sessionId, [bash("sh -c 'echo broken >&2; exit 3'")]);
      const results = await waitForToolResults(emu.url, item.sessionId, [failing!]);
      expect(results.get(failing!)).toMatchObject({ type: 'user.tool_result', is_error: true });
      expect(resultText(results.get(failing!))).toContain('broken');
    });

    it('runs an always_ask call only after its allow confirmation, and never runs a denied one', async () => {
      const ask = { evaluated_permission: 'ask' as const };
      const [allowed, denied] = await scriptAgent(emu.url, item.sessionId, [bash('touch allowed.txt', ask), bash('touch denied.txt', ask)]);
      // Held: nothing runs before a verdict. A later ungated call is answered first, which shows the runner has read both.
      const [probe] = await scriptAgent(emu.url, item.sessionId, [bash('echo probe')]);
      await waitForToolResults(emu.url, item.sessionId, [probe!]);
      expect(existsSync(join(runner.workdir, 'allowed.txt'))).toBe(false);

      // The user's verdicts come through the public API, as a client application sends them.
      const user = new Anthropic({ apiKey: API_KEY, baseURL: emu.url, maxRetries: 0 });
      await user.beta.sessions.events.send(item.sessionId, {
        events: [
          { type: 'user.tool_confirmation', tool_use_id: allowed!, result: 'allow' },
          { type: 'user.tool_confirmation', tool_use_id: denied!, result: 'deny', deny_message: 'not this one' },
        ],
      });
      const results = await waitForToolResults(emu.url, item.sessionId, [allowed!]);
      expect(results.get(allowed!)).toMatchObject({ is_error: false });
      expect(existsSync(join(runner.workdir, 'allowed.txt'))).toBe(true);

      // The runner handles stream events in order: once a later call is answered, the denial was handled too.
      const [after] = await scriptAgent(emu.url, item.sessionId, [bash('echo after')]);
      await waitForToolResults(emu.url, item.sessionId, [after!]);
      expect(existsSync(join(runner.workdir, 'denied.txt'))).toBe(false);
      const history = await sessionEvents(emu.url, item.sessionId);
      expect(history.filter((e) => e['tool_use_id'] === denied && e.type === 'user.tool_result')).toEqual([]);
    });

    it('ends when the session terminates, and force-stops its work item', async () => {
      await scriptAgent(emu.url, item.sessionId, [endTurn(), terminated()]);
      await runner.done;
      expect(workState(emu, item)).toBe('stopped');
      const session = await fetch(`${emu.url}/v1/sessions/${item.sessionId}`, { headers: { 'x-api-key': API_KEY, ...versionHeaders } }).then((r) => r.json());
      expect(session).toMatchObject({ status: 'terminated' });
    });
  });
}

describe('the official runner and an idle session', () => {
  it('stops after maxIdleMs once the turn ended with end_turn, and the item is stopped', async () => {
    const emu = await emulator({ workSecrets: true });
    const item = await acknowledgedItem(emu);
    const [echo] = await scriptAgent(emu.url, item.sessionId, [running(), bash('echo before idle')]).then((ids) => ids.slice(1));
    const runner = startRunner(emu, item, { withSecret: true, maxIdleMs: 300 });
    try {
      // The call scripted before the runner started is found in the history and answered.
      await waitForToolResults(emu.url, item.sessionId, [echo!]);
      await scriptAgent(emu.url, item.sessionId, [endTurn()]);
      await runner.done;
      expect(workState(emu, item)).toBe('stopped');
      await waitForEvents(emu.url, item.sessionId, (events) => events.at(-1)?.type === 'session.status_idle', 'the idle to stay last');
    } finally {
      await emu.close();
      rmSync(runner.workdir, { recursive: true, force: true });
    }
  });
});
