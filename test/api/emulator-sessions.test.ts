/**
 * The emulator's Sessions routes over plain HTTP: the session object, sending and listing events,
 * the rules on results and confirmations, bounds, the admin routes, faults, and who may call what.
 * Streams are in emulator-sessions-stream.test.ts.
 */
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session } from '../../src/api/sessions-wire.ts';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { bash, endTurn, running, terminated } from '../support/agent-script.ts';
import { API_KEY, emulator, versionHeaders } from '../support/emulator.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function call(emu: RunningEmulator, method: 'GET' | 'POST', path: string, options: { body?: unknown; auth?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<{ status: number; body: Json }> {
  const res = await request(`${emu.url}${path}`, {
    method,
    headers: { ...versionHeaders, 'content-type': 'application/json', ...(options.auth ?? { 'x-api-key': API_KEY }), ...options.headers },
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
  });
  return { status: res.statusCode, body: (await res.body.json()) as Json };
}

async function newSession(emu: RunningEmulator, metadata: Record<string, string> = {}): Promise<{ environmentId: string; sessionId: string; workId: string }> {
  const env = await call(emu, 'POST', '/v1/environments', { body: { name: 'sessions', config: { type: 'self_hosted' } } });
  const created = await call(emu, 'POST', `/emulator/v1/environments/${env.body['id']}/sessions`, { body: { metadata } });
  return { environmentId: env.body['id'], sessionId: created.body['session_id'], workId: created.body['work_id'] };
}

const script = (emu: RunningEmulator, sessionId: string, events: unknown[]) => call(emu, 'POST', `/emulator/v1/sessions/${sessionId}/events`, { body: { events } });
const send = (emu: RunningEmulator, sessionId: string, events: unknown[], auth?: Record<string, string>) =>
  call(emu, 'POST', `/v1/sessions/${sessionId}/events`, { body: { events }, ...(auth ? { auth } : {}) });
const result = (toolUseId: string, extra: Json = {}) => ({ type: 'user.tool_result', tool_use_id: toolUseId, content: [{ type: 'text', text: 'ok' }], is_error: false, ...extra });

let emu: RunningEmulator;
beforeAll(async () => {
  emu = await emulator();
});
afterAll(() => emu.close());

describe('sessions: the session object', () => {
  it('is created by the admin session route: a sesn_ id, idle, no resources, an agent with no skills', async () => {
    const { environmentId, sessionId } = await newSession(emu, { team: 'a' });
    expect(sessionId).toMatch(/^sesn_[0-9A-Za-z]{24}$/);
    const { status, body } = await call(emu, 'GET', `/v1/sessions/${sessionId}`);
    expect(status).toBe(200);
    expect(Session.safeParse(body).success).toBe(true);
    expect(body).toMatchObject({ id: sessionId, type: 'session', environment_id: environmentId, status: 'idle', resources: [], metadata: { team: 'a' }, archived_at: null });
    expect(body['agent']).toMatchObject({ type: 'agent', skills: [], mcp_servers: [], multiagent: null });
  });

  it('answers an unknown session with a 404 not_found_error and a request id', async () => {
    const res = await request(`${emu.url}/v1/sessions/sesn_missing`, { headers: { ...versionHeaders, 'x-api-key': API_KEY } });
    expect(res.statusCode).toBe(404);
    expect(res.headers['request-id']).toMatch(/^req_/);
    expect(await res.body.json()).toEqual({ type: 'error', error: { type: 'not_found_error', message: 'session sesn_missing not found' } });
  });

  it('follows the status events: running, idle, terminated, and terminated is final', async () => {
    const { environmentId, sessionId } = await newSession(emu);
    const status = async () => (await call(emu, 'GET', `/v1/sessions/${sessionId}`)).body['status'];
    await script(emu, sessionId, [running()]);
    expect(await status()).toBe('running');
    await script(emu, sessionId, [bash('true')]);
    expect(await status()).toBe('running');
    await script(emu, sessionId, [endTurn()]);
    expect(await status()).toBe('idle');
    await script(emu, sessionId, [terminated()]);
    expect(await status()).toBe('terminated');
    expect((await script(emu, sessionId, [running()])).status).toBe(409);
    expect((await send(emu, sessionId, [{ type: 'user.message', content: [{ type: 'text', text: 'hello?' }] }])).status).toBe(409);
    const wake = await call(emu, 'POST', `/emulator/v1/environments/${environmentId}/sessions/${sessionId}/wake`);
    expect(wake.status).toBe(409);
  });
});

describe('sessions: wake', () => {
  it('queues a new work item for the same session, whose history carries over', async () => {
    const { environmentId, sessionId, workId } = await newSession(emu);
    await script(emu, sessionId, [running(), bash('true'), endTurn()]);
    expect((await call(emu, 'POST', `/v1/environments/${environmentId}/work/${workId}/stop`, { body: { force: true } })).status).toBe(200);
    const woken = await call(emu, 'POST', `/emulator/v1/environments/${environmentId}/sessions/${sessionId}/wake`);
    expect(woken.status).toBe(200);
    expect(woken.body['work_id']).not.toBe(workId);
    const polled = await call(emu, 'GET', `/v1/environments/${environmentId}/work/poll`);
    expect(polled.body).toMatchObject({ id: woken.body['work_id'], data: { id: sessionId, type: 'session' } });
    expect((await call(emu, 'GET', `/v1/sessions/${sessionId}/events`)).body['data']).toHaveLength(3);
  });
});

describe('sessions: sending events', () => {
  it('assigns id and processed_at, returns the events under data, and keeps them in the history', async () => {
    const { sessionId } = await newSession(emu);
    const { body } = await script(emu, sessionId, [running(), bash('echo hi')]);
    const [, toolUseId] = body['ids'] as string[];
    const sent = await send(emu, sessionId, [result(toolUseId!), { type: 'user.message', content: [{ type: 'text', text: 'next' }] }]);
    expect(sent.status).toBe(200);
    expect(sent.body['data']).toEqual([
      { ...result(toolUseId!), id: expect.stringMatching(/^sevt_/), processed_at: expect.any(String) },
      { type: 'user.message', content: [{ type: 'text', text: 'next' }], id: expect.stringMatching(/^sevt_/), processed_at: expect.any(String) },
    ]);
    const history = await call(emu, 'GET', `/emulator/v1/sessions/${sessionId}/events`);
    expect(history.body['data'].map((e: Json) => e['type'])).toEqual(['session.status_running', 'agent.tool_use', 'user.tool_result', 'user.message']);
    expect(history.body['data'][1]).toMatchObject({ id: toolUseId, name: 'bash', input: { command: 'echo hi' }, evaluated_permission: 'allow', evaluation: { type: 'always_allow' } });
  });

  it.each([
    ['an unknown event type', [{ type: 'user.shout' }], /^events\.0\.type: /],
    ['a result without tool_use_id', [{ type: 'user.tool_result' }], /^events\.0\.tool_use_id: /],
    ['a field the API does not know', [{ type: 'user.message', content: [{ type: 'text', text: 'x' }], extra: 1 }], /^events\.0: .*extra/],
    ['a deny_message on an allow', [{ type: 'user.tool_confirmation', tool_use_id: 'x', result: 'allow', deny_message: 'no' }], /^events\.0\.deny_message: /],
    ['no events', [], /^events: /],
  ])('rejects %s with a 400 naming the field', async (_, events, message) => {
    const { sessionId } = await newSession(emu);
    const { status, body } = await send(emu, sessionId, events);
    expect(status).toBe(400);
    expect(body['error']).toMatchObject({ type: 'invalid_request_error', message: expect.stringMatching(message) });
  });

  it('accepts a result only for a tool use of its own kind, once', async () => {
    const { sessionId } = await newSession(emu);
    const [toolUse, custom] = (await script(emu, sessionId, [bash('true'), { type: 'agent.custom_tool_use', name: 'lookup', input: {} }])).body['ids'];
    expect((await send(emu, sessionId, [result('sevt_nope')])).status).toBe(400);
    expect((await send(emu, sessionId, [result(custom)])).status).toBe(400);
    expect((await send(emu, sessionId, [result(toolUse), result(toolUse)])).status).toBe(409);
    expect((await send(emu, sessionId, [result(toolUse)])).status).toBe(200);
    expect((await send(emu, sessionId, [result(toolUse)])).status).toBe(409);
    expect((await send(emu, sessionId, [{ type: 'user.custom_tool_result', custom_tool_use_id: custom, content: [] }])).status).toBe(200);
  });

  it('accepts a confirmation only for a call gated with ask, once, and no result after a denial', async () => {
    const { sessionId } = await newSession(emu);
    const [plain, gated, refused] = (await script(emu, sessionId, [bash('true'), bash('true', { evaluated_permission: 'ask' }), bash('true', { evaluated_permission: 'ask' })])).body['ids'];
    const confirm = (id: string, verdict: 'allow' | 'deny') => send(emu, sessionId, [{ type: 'user.tool_confirmation', tool_use_id: id, result: verdict }]);
    const events = (await call(emu, 'GET', `/emulator/v1/sessions/${sessionId}/events`)).body['data'];
    expect(events[1]).toMatchObject({ evaluated_permission: 'ask', evaluation: { type: 'always_ask' } });
    expect((await confirm(plain, 'allow')).status).toBe(400);
    expect((await confirm(gated, 'allow')).status).toBe(200);
    expect((await confirm(gated, 'allow')).status).toBe(409);
    expect((await send(emu, sessionId, [result(gated)])).status).toBe(200);
    expect((await confirm(refused, 'deny')).status).toBe(200);
    expect((await send(emu, sessionId, [result(refused)])).status).toBe(409);
    const [another] = (await script(emu, sessionId, [bash('true', { evaluated_permission: 'ask' })])).body['ids'];
    const both = await send(emu, sessionId, [{ type: 'user.tool_confirmation', tool_use_id: another, result: 'deny' }, result(another)]);
    expect(both.status).toBe(409);
  });

  it('keeps a bounded history: a batch that would overflow it is refused whole', async () => {
    const small = await emulator({ sessionLimits: { maxEvents: 3 } });
    try {
      const { sessionId } = await newSession(small);
      expect((await script(small, sessionId, [running(), bash('true')])).status).toBe(200);
      const full = await script(small, sessionId, [bash('true'), bash('true')]);
      expect(full.status).toBe(409);
      expect(full.body['error']['message']).toMatch(/history is full/);
      expect((await call(small, 'GET', `/emulator/v1/sessions/${sessionId}/events`)).body['data']).toHaveLength(2);
    } finally {
      await small.close();
    }
  });

  it('refuses a body over 1 MB with 413', async () => {
    const { sessionId } = await newSession(emu);
    const { status } = await send(emu, sessionId, [{ type: 'user.message', content: [{ type: 'text', text: 'x'.repeat(1_100_000) }] }]);
    expect(status).toBe(413);
  });
});

describe('sessions: the admin script route', () => {
  it('takes caller-chosen ids once, refuses unknown event types, and 404s an unknown session', async () => {
    const { sessionId } = await newSession(emu);
    const first = await script(emu, sessionId, [bash('true', { id: 'toolu_fixed' }), { type: 'session.status_idle', stop_reason: { type: 'requires_action', event_ids: ['toolu_fixed'] } }]);
    expect(first.body['ids'][0]).toBe('toolu_fixed');
    expect((await script(emu, sessionId, [bash('true', { id: 'toolu_fixed' })])).status).toBe(409);
    expect((await script(emu, sessionId, [{ type: 'user.message' }])).status).toBe(400);
    expect((await script(emu, sessionId, [{ type: 'session.status_idle' }])).body['error']['message']).toMatch(/^events\.0\.stop_reason: /);
    expect((await script(emu, 'sesn_missing', [running()])).status).toBe(404);
    const idle = (await call(emu, 'GET', `/emulator/v1/sessions/${sessionId}/events`)).body['data'][1];
    expect(idle).toMatchObject({ type: 'session.status_idle', stop_reason: { type: 'requires_action', event_ids: ['toolu_fixed'] }, stop_details: null });
  });
});

describe('sessions: listing events', () => {
  it('pages with limit and page to next_page, null on the last page, in both orders, filtered by type', async () => {
    const { sessionId } = await newSession(emu);
    const ids: string[] = (await script(emu, sessionId, [running(), bash('1'), bash('2'), bash('3'), endTurn()])).body['ids'];
    const list = async (query: string) => (await call(emu, 'GET', `/v1/sessions/${sessionId}/events?${query}`)).body;
    const collect = async (query: string) => {
      const seen: string[] = [];
      let page = await list(query);
      for (;;) {
        seen.push(...page['data'].map((e: Json) => e['id']));
        if (!page['next_page']) return seen;
        page = await list(`${query}&page=${encodeURIComponent(page['next_page'])}`);
      }
    };
    expect(await collect('limit=2')).toEqual(ids);
    expect(await collect('limit=2&order=desc')).toEqual([...ids].reverse());
    expect(await collect('limit=1&types[]=agent.tool_use')).toEqual(ids.slice(1, 4));
    expect((await list('limit=5'))['next_page']).toBeNull();
    expect((await list(''))['data']).toHaveLength(5);
  });

  it.each([
    ['limit=0', /^limit must be an integer between 1 and 1000/],
    ['limit=1001', /^limit must be/],
    ['page=garbage', /^page: invalid cursor/],
    ['order=sideways', /^order must be asc or desc/],
    ['created_at[gt]=yesterday', /^created_at\[gt\] must be an RFC 3339 timestamp/],
  ])('rejects %s with a 400 naming the parameter', async (query, message) => {
    const { sessionId } = await newSession(emu);
    const { status, body } = await call(emu, 'GET', `/v1/sessions/${sessionId}/events?${query}`);
    expect(status).toBe(400);
    expect(body['error']['message']).toMatch(message);
  });
});

describe('sessions: faults apply to the session routes', () => {
  it('answers a scripted 503 on sending, then serves normally', async () => {
    const { sessionId } = await newSession(emu);
    emu.admin.setFaults([{ method: 'POST', path: '/v1/sessions/*/events', status: 503, count: 1, retry_after: 0 }]);
    try {
      expect((await send(emu, sessionId, [{ type: 'user.message', content: [{ type: 'text', text: 'x' }] }])).status).toBe(503);
      expect((await send(emu, sessionId, [{ type: 'user.message', content: [{ type: 'text', text: 'x' }] }])).status).toBe(200);
    } finally {
      emu.admin.clearFaults();
    }
  });
});

for (const workSecrets of [true, false]) {
  describe(`sessions: who may call (${workSecrets ? 'with' : 'without'} per-item secrets)`, () => {
    let own: RunningEmulator;
    let a: { environmentId: string; sessionId: string; workId: string };
    let b: { environmentId: string; sessionId: string; workId: string };
    const keys: Record<string, Record<string, string>> = {};

    beforeAll(async () => {
      own = await emulator({ workSecrets });
      a = await newSession(own);
      b = await newSession(own);
      keys['api key (x-api-key)'] = { 'x-api-key': API_KEY };
      keys['api key (bearer)'] = { authorization: `Bearer ${API_KEY}` };
      keys['environment key of A'] = { authorization: `Bearer ${own.admin.mintKey(a.environmentId)}` };
      keys['environment key of A as x-api-key'] = { 'x-api-key': keys['environment key of A']!['authorization']!.slice(7) };
      keys['unknown bearer'] = { authorization: 'Bearer sk-ant-unknown' };
      if (workSecrets) {
        const poll = await call(own, 'GET', `/v1/environments/${a.environmentId}/work/poll`, { auth: keys['environment key of A']! });
        const secret = JSON.parse(Buffer.from(poll.body['secret'], 'base64url').toString()) as { sessions_token: string };
        keys['sessions token of A'] = { authorization: `Bearer ${secret.sessions_token}` };
      }
    });
    afterAll(() => own.close());

    const expected: Array<[string, 'A' | 'B', number]> = [
      ['api key (x-api-key)', 'A', 200],
      ['api key (x-api-key)', 'B', 200],
      ['api key (bearer)', 'B', 200],
      ['environment key of A', 'A', 200],
      ['environment key of A', 'B', 403],
      ['environment key of A as x-api-key', 'A', 401],
      ['unknown bearer', 'A', 401],
      ...(workSecrets ? ([['sessions token of A', 'A', 200], ['sessions token of A', 'B', 403]] as Array<[string, 'A' | 'B', number]>) : []),
    ];

    it.each(expected)('%s on session %s: %i on every session route', async (who, which, status) => {
      const sessionId = (which === 'A' ? a : b).sessionId;
      const auth = keys[who]!;
      const answers = [
        (await call(own, 'GET', `/v1/sessions/${sessionId}`, { auth })).status,
        (await call(own, 'GET', `/v1/sessions/${sessionId}/events`, { auth })).status,
        (await send(own, sessionId, [{ type: 'user.message', content: [{ type: 'text', text: 'hi' }] }], auth)).status,
      ];
      const stream = await request(`${own.url}/v1/sessions/${sessionId}/events/stream`, { headers: { ...versionHeaders, ...auth } });
      answers.push(stream.statusCode);
      stream.body.on('error', () => undefined).destroy(); // an open stream: hang up
      expect(answers).toEqual([status, status, status, status]);
    });

    it('the environment key and the sessions token still cannot reach environment CRUD', async () => {
      for (const who of ['environment key of A', ...(workSecrets ? ['sessions token of A'] : [])]) {
        expect((await call(own, 'GET', `/v1/environments/${a.environmentId}`, { auth: keys[who]! })).status).toBe(403);
      }
    });

    it('an environment key reaches no session that does not exist (403, not 404)', async () => {
      expect((await call(own, 'GET', '/v1/sessions/sesn_missing', { auth: keys['environment key of A']! })).status).toBe(403);
    });

    it('the version headers are required on session routes too', async () => {
      const res = await request(`${own.url}/v1/sessions/${a.sessionId}`, { headers: { 'x-api-key': API_KEY, 'anthropic-version': '2023-06-01' } });
      expect(res.statusCode).toBe(400);
      await res.body.dump();
    });
  });
}
