import { describe, expect, it } from 'vitest';
import { MAX_EVENTS_BODY_BYTES, route, type Scope } from './routes.ts';

const scope: Scope = { environmentId: 'env_1', workId: 'work_1', sessionId: 'sesn_1', credentialKind: 'sessions-token' };
const keyScope: Scope = { ...scope, credentialKind: 'environment-key' };

describe('the proxy allow-list', () => {
  it.each([
    ['its own heartbeat is answered by the virtual lease', 'POST', '/v1/environments/env_1/work/work_1/heartbeat?expected_last_heartbeat=NO_HEARTBEAT', { kind: 'heartbeat' }],
    ['its own stop means the session is done', 'POST', '/v1/environments/env_1/work/work_1/stop', { kind: 'stop' }],
    ['reading its session is forwarded', 'GET', '/v1/sessions/sesn_1', { kind: 'forward', name: 'session', stream: false }],
    ['listing its events is forwarded, query included', 'GET', '/v1/sessions/sesn_1/events?limit=10&page=p', { kind: 'forward', name: 'events' }],
    ['sending its events is forwarded with the 32 MiB body limit', 'POST', '/v1/sessions/sesn_1/events', { kind: 'forward', name: 'events', maxBody: MAX_EVENTS_BODY_BYTES }],
    ['its event stream is forwarded as a stream', 'GET', '/v1/sessions/sesn_1/events/stream', { kind: 'forward', name: 'stream', stream: true }],
    ['a skill version is readable', 'GET', '/v1/skills/skill_1/versions/latest', { kind: 'forward', name: 'skill' }],
    ['a skill version is downloadable', 'GET', '/v1/skills/skill_1/versions/v1/content', { kind: 'forward', name: 'skill' }],
    ['memories are listed with a sessions token', 'GET', '/v1/memory_stores/ms_1/memories?view=full', { kind: 'forward', name: 'memories' }],
    ['a memory is updated with a sessions token', 'POST', '/v1/memory_stores/ms_1/memories/mem_1', { kind: 'forward', name: 'memory' }],
    ['a memory is deleted with a sessions token', 'DELETE', '/v1/memory_stores/ms_1/memories/mem_1', { kind: 'forward', name: 'memory' }],
  ] as const)('%s', (_rule, method, target, expected) => {
    expect(route(method, target, scope)).toMatchObject(expected);
  });

  it.each([
    ['another session', 'GET', '/v1/sessions/sesn_2/events/stream', /another session/],
    ["another work item's heartbeat", 'POST', '/v1/environments/env_1/work/work_2/heartbeat', /another work item/],
    ["another work item's stop", 'POST', '/v1/environments/env_1/work/work_2/stop', /another work item/],
    ['poll', 'GET', '/v1/environments/env_1/work/poll', /work queue/],
    ['stats', 'GET', '/v1/environments/env_1/work/stats', /work queue/],
    ['listing work', 'GET', '/v1/environments/env_1/work', /work queue/],
    ['ack of its own item', 'POST', '/v1/environments/env_1/work/work_1/ack', /only this work item's heartbeat and stop/],
    ['retrieving its own item', 'GET', '/v1/environments/env_1/work/work_1', /only this work item's heartbeat and stop/],
    ['another environment', 'POST', '/v1/environments/env_2/work/work_1/heartbeat', /another environment/],
    ['reading the environment', 'GET', '/v1/environments/env_1', /environment management/],
    ['deleting the environment', 'DELETE', '/v1/environments/env_1', /environment management/],
    ['listing environments', 'GET', '/v1/environments', /another environment/],
    ['creating a session', 'POST', '/v1/sessions', /listing or creating sessions/],
    ['deleting its session', 'DELETE', '/v1/sessions/sesn_1', /only reading this session/],
    ['archiving its session', 'POST', '/v1/sessions/sesn_1/archive', /only reading this session/],
    ['deleting a skill version', 'DELETE', '/v1/skills/skill_1/versions/v1', /only reading a skill version/],
    ['the messages API', 'POST', '/v1/messages', /messages API is not reachable/],
    ['a non-v1 path', 'GET', '/emulator/v1/state', /only \/v1/],
  ] as const)('refuses %s with 403 naming the rule', (_what, method, target, rule) => {
    const r = route(method, target, scope);
    expect(r).toMatchObject({ kind: 'refuse', status: 403 });
    expect((r as { rule: string }).rule).toMatch(rule);
  });

  it('refuses the memory stores with the environment key, which reaches every store', () => {
    expect(route('GET', '/v1/memory_stores/ms_1/memories', keyScope)).toMatchObject({ kind: 'refuse', status: 403, rule: expect.stringMatching(/sessions token/) });
  });

  it.each([
    ['a dot segment', '/v1/sessions/sesn_1/../../environments/env_1'],
    ['a percent-encoded segment', '/v1/sessions/sesn%5F1/events'],
    ['an encoded slash', '/v1/sessions/sesn_1%2F..%2Fsesn_2/events'],
    ['an empty segment', '/v1/sessions//events'],
    ['an absolute-form target', 'http://api.anthropic.com/v1/sessions/sesn_1'],
    ['an asterisk', '*'],
  ])('refuses %s with 400, so the API can never see another resource than the one checked', (_what, target) => {
    expect(route('GET', target, scope)).toMatchObject({ kind: 'refuse', status: 400 });
  });
});
