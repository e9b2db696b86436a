/**
 * Bad replies from the API, scripted with the emulator's "reply with this body" fault: malformed,
 * wrongly typed, truncated mid-body and oversized bodies, for every call the operator and the
 * sidecar make. Each becomes one typed error with a stable code — never an exception of another
 * kind — and is retried only when `classify` calls it transient, a bounded number of times.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { EnvironmentsClient } from '../../src/api/client.ts';
import { ApiError, classify, ConnectionError, MalformedResponseError } from '../../src/api/errors.ts';
import { MAX_REPLY_BYTES } from '../../src/api/transport.ts';
import type { FaultRule, RunningEmulator } from '../../src/emulator/index.ts';
import { clientFor, emulator } from '../support/emulator.ts';

let emu: RunningEmulator;
beforeAll(async () => {
  emu = await emulator();
});
afterAll(() => emu.close());
beforeEach(() => {
  emu.admin.clearFaults();
  emu.state.resetRequestCounts();
});

/** Faults answer before routing reaches a handler, so these ids need not exist. */
const ENV = 'env_0123456789abcdefghijklmn';
const WORK = 'work_0123456789abcdefghijklmn';
const workPath = `/v1/environments/${ENV}/work`;

interface Call {
  readonly name: string;
  readonly method: 'GET' | 'POST';
  readonly path: string;
  /** The route template the emulator counts requests under. */
  readonly template: string;
  readonly retried: boolean;
  /** A valid reply's beginning, cut or padded by the fault. */
  readonly prefix: string;
  /** A well-formed JSON reply of the wrong types. */
  readonly wrong: string;
  readonly call: (api: EnvironmentsClient) => Promise<unknown>;
}

const CALLS: readonly Call[] = [
  { name: 'environment create', method: 'POST', path: '/v1/environments', template: 'POST /v1/environments', retried: false, prefix: '{"id":"env_', wrong: '{"id":42,"type":"environment"}', call: (api) => api.createEnvironment({ name: 'x', config: { type: 'self_hosted' } }) },
  { name: 'environment get', method: 'GET', path: `/v1/environments/${ENV}`, template: 'GET /v1/environments/{environment_id}', retried: true, prefix: '{"id":"env_', wrong: '{"id":"env_1","config":"self_hosted"}', call: (api) => api.getEnvironment(ENV) },
  { name: 'environment update', method: 'POST', path: `/v1/environments/${ENV}`, template: 'POST /v1/environments/{environment_id}', retried: true, prefix: '{"id":"env_', wrong: '[]', call: (api) => api.updateEnvironment(ENV, { description: 'd' }) },
  { name: 'work poll', method: 'GET', path: `${workPath}/poll`, template: 'GET /v1/environments/{environment_id}/work/poll', retried: false, prefix: '{"id":"work_', wrong: '{"id":42}', call: (api) => api.pollWork(ENV, { blockMs: 10 }) },
  { name: 'work ack', method: 'POST', path: `${workPath}/${WORK}/ack`, template: 'POST /v1/environments/{environment_id}/work/{work_id}/ack', retried: true, prefix: '{"id":"work_', wrong: '"starting"', call: (api) => api.ackWork(ENV, WORK) },
  { name: 'heartbeat', method: 'POST', path: `${workPath}/${WORK}/heartbeat`, template: 'POST /v1/environments/{environment_id}/work/{work_id}/heartbeat', retried: false, prefix: '{"type":"work_heartbeat","last_heartbeat":"2026-', wrong: '{"type":"work_heartbeat","last_heartbeat":1,"lease_extended":"yes","state":"active","ttl_seconds":90}', call: (api) => api.heartbeatWork(ENV, WORK, { expectedLastHeartbeat: 'NO_HEARTBEAT' }) },
  { name: 'graceful stop', method: 'POST', path: `${workPath}/${WORK}/stop`, template: 'POST /v1/environments/{environment_id}/work/{work_id}/stop', retried: false, prefix: '{"id":"work_', wrong: '{"id":"work_1","state":"gone"}', call: (api) => api.stopWork(ENV, WORK) },
  { name: 'force stop', method: 'POST', path: `${workPath}/${WORK}/stop`, template: 'POST /v1/environments/{environment_id}/work/{work_id}/stop', retried: true, prefix: '{"id":"work_', wrong: 'null', call: (api) => api.stopWork(ENV, WORK, { force: true }) },
  { name: 'queue stats', method: 'GET', path: `${workPath}/stats`, template: 'GET /v1/environments/{environment_id}/work/stats', retried: true, prefix: '{"type":"work_queue_stats","depth":', wrong: '{"type":"work_queue_stats","depth":"many","pending":-1}', call: (api) => api.getQueueStats(ENV) },
];

const requests = (template: string): number => Object.values(emu.state.requestCounts()[template] ?? {}).reduce((a, b) => a + b, 0);

async function failure(c: Call, rule: Omit<FaultRule, 'path'>, api = clientFor(emu)): Promise<ApiError> {
  emu.admin.setFaults([{ method: c.method, path: c.path, ...rule }]);
  const err = await c.call(api).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof ApiError)) throw new Error(`${c.name}: expected an ApiError, got ${String(err)}`);
  return err;
}

describe.each(CALLS.map((c) => [c.name, c] as const))('bad replies to %s', (_name, c) => {
  it('a body that is not JSON is a malformed_response, fatal, sent once', async () => {
    const err = await failure(c, { body: `${c.prefix}<html>oops` });
    expect(err).toBeInstanceOf(MalformedResponseError);
    expect(err).toMatchObject({ code: 'malformed_response', field: '(body)', status: 200 });
    expect(classify(err)).toBe('fatal');
    expect(requests(c.template)).toBe(1);
  });

  it('JSON of the wrong types is a malformed_response naming the field, fatal, sent once', async () => {
    const err = await failure(c, { body: c.wrong });
    expect(err).toBeInstanceOf(MalformedResponseError);
    expect((err as MalformedResponseError).field).not.toBe('(body)');
    expect(err.message).toMatch(/reply field '.+'/);
    expect(requests(c.template)).toBe(1);
  });

  it(`a body cut mid-way is a connection_error, transient, ${c.retried ? 'retried a bounded number of times' : 'never retried'}`, async () => {
    const err = await failure(c, { body: `${c.prefix}${'x'.repeat(4096)}"}`, truncate_at: c.prefix.length + 100 });
    expect(err).toBeInstanceOf(ConnectionError);
    expect(classify(err)).toBe('transient');
    // clientFor's policy: 3 retries on retry-safe calls, none on the others.
    expect(requests(c.template)).toBe(c.retried ? 4 : 1);
  });

  it('a body over the read cap is a malformed_response saying so, not read further, sent once', async () => {
    const err = await failure(c, { body: c.prefix, body_bytes: 256 * 1024 }, clientFor(emu, undefined, { maxReplyBytes: 64 * 1024 }));
    expect(err).toBeInstanceOf(MalformedResponseError);
    expect(err.message).toContain(`reply body exceeds ${64 * 1024} bytes`);
    expect(requests(c.template)).toBe(1);
  });
});

describe('the read cap', () => {
  it('an error reply over the cap keeps its status class (a 503 stays transient)', async () => {
    const get = CALLS[1]!;
    const err = await failure(get, { status: 503, body: '<html>', body_bytes: 256 * 1024 }, clientFor(emu, undefined, { maxReplyBytes: 64 * 1024, retry: { maxRetries: 0, backoff: { baseMs: 1, capMs: 1, jitter: 0 }, maxRetryAfterMs: 0 } }));
    expect(err).toMatchObject({ code: 'server_error', status: 503 });
  });

  it(`a 256 MiB reply is cut at the default cap (${MAX_REPLY_BYTES / 1024 / 1024} MiB): memory does not grow with the body`, async () => {
    const get = CALLS[1]!;
    const before = process.memoryUsage().rss;
    const err = await failure(get, { body: get.prefix, body_bytes: 256 * 1024 * 1024 });
    expect(err.message).toContain(`exceeds ${MAX_REPLY_BYTES} bytes`);
    // Reading the body whole would take 256 MiB of buffers and as much again as a string.
    expect(process.memoryUsage().rss - before).toBeLessThan(96 * 1024 * 1024);
  });
});

describe('the emulator\'s body fault', () => {
  it('sends its headers and status as given, and refuses a status below 400 without a body', async () => {
    emu.admin.setFaults([{ method: 'GET', path: `/v1/environments/${ENV}`, status: 203, body: '<html>proxy</html>', headers: { 'content-type': 'text/html', 'x-proxy': 'squid' } }]);
    const res = await fetch(`${emu.url}/v1/environments/${ENV}`);
    expect(res.status).toBe(203);
    expect(res.headers.get('content-type')).toBe('text/html');
    expect(res.headers.get('x-proxy')).toBe('squid');
    expect(await res.text()).toBe('<html>proxy</html>');
    expect(() => emu.admin.setFaults([{ path: '/v1/**', status: 200 }])).toThrow(/a status below 400 needs a body/);
  });

  it('body_bytes repeats the body to exactly that length', async () => {
    emu.admin.setFaults([{ method: 'GET', path: `/v1/environments/${ENV}`, body: 'abc', body_bytes: 200_000 }]);
    const text = await (await fetch(`${emu.url}/v1/environments/${ENV}`)).text();
    expect(text).toHaveLength(200_000);
    expect(text).toBe('abc'.repeat(66_667).slice(0, 200_000));
  });
});
