/**
 * The official @anthropic-ai/sdk's sessions resources against the emulator, as an independent
 * check of the wire format: retrieve, the paging of events.list, events.stream's SSE parsing
 * (pings dropped, events typed by their `event:` line), events.send, and its error classes.
 */
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { bash, endTurn, running, scriptAgent, terminated } from '../support/agent-script.ts';
import { API_KEY, emulator } from '../support/emulator.ts';

let emu: RunningEmulator;
let sdk: Anthropic;
beforeAll(async () => {
  // Pings every 20 ms on the real clock, so the SDK's parser meets them between events.
  emu = await emulator({ workSecrets: true, sse: { pingIntervalMs: 20 } });
  sdk = new Anthropic({ apiKey: API_KEY, baseURL: emu.url, maxRetries: 0 });
});
afterAll(() => emu.close());

async function newSession(): Promise<{ environmentId: string; sessionId: string }> {
  const env = await sdk.beta.environments.create({ name: 'sdk-sessions', config: { type: 'self_hosted' } });
  return { environmentId: env.id, sessionId: emu.admin.createSession(env.id, { team: 'sdk' }).session_id };
}

describe('the official SDK against the emulator: sessions', () => {
  it('retrieves a session with the fields handleItem reads', async () => {
    const { environmentId, sessionId } = await newSession();
    const session = await sdk.beta.sessions.retrieve(sessionId);
    expect(session).toMatchObject({ id: sessionId, type: 'session', environment_id: environmentId, status: 'idle', resources: [], metadata: { team: 'sdk' } });
    expect(session.agent.skills).toEqual([]);
    await expect(sdk.beta.sessions.retrieve('sesn_missing')).rejects.toBeInstanceOf(Anthropic.NotFoundError);
  });

  it('pages through the events with limit and next_page', async () => {
    const { sessionId } = await newSession();
    const ids = emu.admin.appendAgentEvents(sessionId, [running(), bash('1'), bash('2'), bash('3'), endTurn()]);
    const first = await sdk.beta.sessions.events.list(sessionId, { limit: 2 });
    expect(first.data.map((e) => e.id)).toEqual(ids.slice(0, 2));
    expect(first.hasNextPage()).toBe(true);
    const seen: string[] = [];
    for await (const e of sdk.beta.sessions.events.list(sessionId, { limit: 2 })) seen.push(e.id);
    expect(seen).toEqual(ids);
    const tools: string[] = [];
    for await (const e of sdk.beta.sessions.events.list(sessionId, { limit: 1000, types: ['agent.tool_use'] })) tools.push(e.type);
    expect(tools).toEqual(['agent.tool_use', 'agent.tool_use', 'agent.tool_use']);
  });

  it('streams events as they are appended, through pings, typed by the event line', async () => {
    const { sessionId } = await newSession();
    const stream = await sdk.beta.sessions.events.stream(sessionId);
    const received: string[] = [];
    const reading = (async () => {
      for await (const e of stream) {
        received.push(e.type);
        if (e.type === 'session.status_terminated') break;
      }
    })();
    await new Promise((r) => setTimeout(r, 60)); // a few pings first
    await scriptAgent(emu.url, sessionId, [running(), bash('echo streamed')]);
    await new Promise((r) => setTimeout(r, 60));
    await scriptAgent(emu.url, sessionId, [endTurn(), terminated()]);
    await reading;
    expect(received).toEqual(['session.status_running', 'agent.tool_use', 'session.status_idle', 'session.status_terminated']);
  });

  it('sends a tool result and gets it back with its id and processed_at', async () => {
    const { sessionId } = await newSession();
    const [toolUseId] = emu.admin.appendAgentEvents(sessionId, [bash('echo hi')]);
    const sent = await sdk.beta.sessions.events.send(sessionId, {
      events: [{ type: 'user.tool_result', tool_use_id: toolUseId!, is_error: false, content: [{ type: 'text', text: 'hi\n' }] }],
    });
    expect(sent.data).toEqual([expect.objectContaining({ type: 'user.tool_result', tool_use_id: toolUseId, id: expect.stringMatching(/^sevt_/), processed_at: expect.any(String) })]);
    expect(emu.admin.sessionEvents(sessionId).map((e) => e.type)).toEqual(['agent.tool_use', 'user.tool_result']);
    const again = await sdk.beta.sessions.events
      .send(sessionId, { events: [{ type: 'user.tool_result', tool_use_id: toolUseId!, content: [] }] })
      .catch((e: unknown) => e);
    expect(again).toBeInstanceOf(Anthropic.ConflictError);
  });

  it('sees a permission error for an environment key of another environment', async () => {
    const { sessionId } = await newSession();
    const other = await newSession();
    const keyed = new Anthropic({ apiKey: null, authToken: emu.admin.mintKey(other.environmentId), baseURL: emu.url, maxRetries: 0 });
    await expect(keyed.beta.sessions.retrieve(sessionId)).rejects.toBeInstanceOf(Anthropic.PermissionDeniedError);
    expect((await keyed.beta.sessions.retrieve(other.sessionId)).id).toBe(other.sessionId);
  });
});
