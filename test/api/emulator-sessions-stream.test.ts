/**
 * The emulator's session event stream over plain HTTP: headers at once, SSE framing with an
 * `event:` line equal to each event's type, pings on the injected clock, fresh streams on
 * reconnect, and the stream's resources released when the client goes away.
 */
import { get, type IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock, type RunningEmulator } from '../../src/emulator/index.ts';
import { bash, running, scriptAgent } from '../support/agent-script.ts';
import { API_KEY, emulator, versionHeaders } from '../support/emulator.ts';

interface Frame {
  event: string | undefined;
  data: string;
}

/** An open stream: its response, and the complete SSE messages received so far. */
interface OpenStream {
  res: IncomingMessage;
  frames: Frame[];
  raw: () => string;
  /** Wait until `n` messages (pings included) have arrived. */
  waitFor(n: number): Promise<Frame[]>;
  close(): void;
}

function openStream(emu: RunningEmulator, sessionId: string): Promise<OpenStream> {
  return new Promise((resolve, reject) => {
    const req = get(`${emu.url}/v1/sessions/${sessionId}/events/stream`, { headers: { ...versionHeaders, 'x-api-key': API_KEY } }, (res) => {
      let text = '';
      const frames: Frame[] = [];
      const waiters: Array<() => void> = [];
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        for (let end = text.indexOf('\n\n'); end >= 0; end = text.indexOf('\n\n')) {
          const lines = text.slice(0, end).split('\n');
          text = text.slice(end + 2);
          frames.push({ event: lines.find((l) => l.startsWith('event: '))?.slice(7), data: lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n') });
        }
        for (const w of waiters.splice(0)) w();
      });
      res.on('error', () => undefined);
      let all = '';
      res.on('data', (chunk: string) => (all += chunk));
      resolve({
        res,
        frames,
        raw: () => all,
        waitFor: async (n) => {
          while (frames.length < n) await new Promise<void>((r) => waiters.push(r));
          return frames.slice(0, n);
        },
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
  });
}

async function newSession(emu: RunningEmulator): Promise<string> {
  const env = await fetch(`${emu.url}/v1/environments`, {
    method: 'POST',
    headers: { ...versionHeaders, 'x-api-key': API_KEY, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'streams', config: { type: 'self_hosted' } }),
  }).then((r) => r.json() as Promise<{ id: string }>);
  return emu.admin.createSession(env.id).session_id;
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((r) => setTimeout(r, 5));
}

let clock: ManualClock;
let emu: RunningEmulator;
beforeAll(async () => {
  clock = new ManualClock();
  emu = await emulator({ clock, sse: { pingIntervalMs: 1000 } });
});
afterAll(() => emu.close());

describe('sessions: the event stream', () => {
  it('sends its headers before any event: 200, text/event-stream, no caching', async () => {
    const sessionId = await newSession(emu);
    const stream = await openStream(emu, sessionId);
    expect(stream.res.statusCode).toBe(200);
    expect(stream.res.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(stream.res.headers['cache-control']).toBe('no-cache');
    expect(stream.res.headers['request-id']).toMatch(/^req_/);
    expect(stream.frames).toEqual([]);
    stream.close();
  });

  it('frames every event with an event line equal to its type and the event as one data line', async () => {
    const sessionId = await newSession(emu);
    const stream = await openStream(emu, sessionId);
    const ids = await scriptAgent(emu.url, sessionId, [running(), bash('echo hi')]);
    const frames = await stream.waitFor(2);
    expect(frames.map((f) => f.event)).toEqual(['session.status_running', 'agent.tool_use']);
    expect(frames.map((f) => JSON.parse(f.data).id)).toEqual(ids);
    expect(JSON.parse(frames[1]!.data)).toMatchObject({ type: 'agent.tool_use', name: 'bash', input: { command: 'echo hi' } });
    expect(stream.raw()).toMatch(/^event: session\.status_running\ndata: \{[^\n]*\}\n\nevent: agent\.tool_use\ndata: \{[^\n]*\}\n\n$/);
    stream.close();
  });

  it('carries what clients send too, so every reader sees the user side', async () => {
    const sessionId = await newSession(emu);
    const [toolUseId] = await scriptAgent(emu.url, sessionId, [bash('true')]);
    const stream = await openStream(emu, sessionId);
    const res = await fetch(`${emu.url}/v1/sessions/${sessionId}/events`, {
      method: 'POST',
      headers: { ...versionHeaders, 'x-api-key': API_KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ events: [{ type: 'user.tool_result', tool_use_id: toolUseId, content: [{ type: 'text', text: 'done' }] }] }),
    });
    expect(res.status).toBe(200);
    const [frame] = await stream.waitFor(1);
    expect(frame).toMatchObject({ event: 'user.tool_result' });
    stream.close();
  });

  it('pings an idle stream on the injected clock, and only while a stream is open', async () => {
    const sessionId = await newSession(emu);
    const stream = await openStream(emu, sessionId);
    clock.advance(999);
    await new Promise((r) => setTimeout(r, 20));
    expect(stream.frames).toEqual([]);
    clock.advance(1);
    expect(await stream.waitFor(1)).toEqual([{ event: 'ping', data: '{"type":"ping"}' }]);
    clock.advance(1000);
    await stream.waitFor(2);
    stream.close();
    await until(() => emu.state.sessions.openStreams() === 0);
  });

  it('starts a reconnect with a fresh stream that carries only new events', async () => {
    const sessionId = await newSession(emu);
    const first = await openStream(emu, sessionId);
    await scriptAgent(emu.url, sessionId, [running()]);
    await first.waitFor(1);
    first.close();
    await scriptAgent(emu.url, sessionId, [bash('missed while away')]);
    const second = await openStream(emu, sessionId);
    const [newer] = await scriptAgent(emu.url, sessionId, [bash('after reconnect')]);
    const frames = await second.waitFor(1);
    expect(frames.map((f) => JSON.parse(f.data).id)).toEqual([newer]);
    second.close();
  });

  it('releases a stream whose client went away, and ends the streams of a deleted environment', async () => {
    const sessionId = await newSession(emu);
    const before = emu.state.sessions.openStreams();
    const stream = await openStream(emu, sessionId);
    await until(() => emu.state.sessions.openStreams() === before + 1);
    stream.close();
    await until(() => emu.state.sessions.openStreams() === before);

    const other = await openStream(emu, sessionId);
    const ended = new Promise<void>((r) => other.res.once('end', () => r()));
    const environmentId = emu.state.sessions.environmentOf(sessionId)!;
    emu.state.deleteEnvironment(environmentId);
    await ended;
    expect(emu.state.sessions.openStreams()).toBe(before);
  });

  it('answers a stream of an unknown session with a JSON 404, not an event stream', async () => {
    const res = await fetch(`${emu.url}/v1/sessions/sesn_missing/events/stream`, { headers: { ...versionHeaders, 'x-api-key': API_KEY } });
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
  });
});
