/**
 * Bad input to the AgentEnvironment reconciler, on the real apiserver.
 *
 * Bad replies from the API: malformed,
 * wrongly typed, truncated and oversized bodies (the emulator's "reply with this body" fault) on
 * environment create, get and update and on the queue stats. Each becomes a condition and a
 * Warning event naming what broke — never a crash, never a tight retry loop: a reply the client
 * cannot read waits for a change of the spec (or the slow resync); a reply cut short is transient
 * and backs off. Retry counts are asserted over a window, never timings.
 *
 * Secrets of the wrong shape (a missing key, an empty value, binary bytes, a space or a line break
 * inside the key): a condition and an event naming the Secret and the key, never the value.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { CORE, type KubeObject } from '../../src/k8s/rest.ts';
import { waitFor } from '../support/cluster.ts';
import { API_KEY } from '../support/emulator.ts';
import {
  conditionOf,
  createEnvironment,
  environmentFixture,
  everythingVisible,
  getEnvironment,
  patchSpec,
  putSecret,
  waitForCondition,
  waitForEvent,
  waitForReady,
  type EnvironmentFixture,
} from '../support/environments.ts';

let f: EnvironmentFixture;
beforeAll(async () => {
  // No resync during the file: every pass is caused by the test itself, so API calls can be counted.
  f = await environmentFixture('env-bad-replies', { kubeconfig: inject('operatorKubeconfig'), resyncMs: 600_000 });
});
afterEach(() => {
  f?.emu.admin.clearFaults();
});
afterAll(async () => {
  await f?.cleanup();
});

const calls = (endpoint: string, since: number): number => f.op.apiCalls.slice(since).filter((c) => c.endpoint === endpoint).length;

describe('bad replies to the environment reconciler', () => {
  it('a create reply that is not JSON: Synced=False MalformedApiReply with an event, one create, none again until the spec changes', async () => {
    f.emu.admin.setFaults([{ method: 'POST', path: '/v1/environments', body: '<html><body>502 Bad Gateway</body></html>' }]);
    const before = f.op.apiCalls.length;
    await createEnvironment(f.admin, f.ns.name, 'garbled-create', { cloud: {} });
    const env = await waitForCondition(f.admin, f.ns.name, 'garbled-create', 'Synced', 'False', 'MalformedApiReply');
    expect(conditionOf(env, 'Synced')?.message).toMatch(/unexpected reply \(field \(body\)\).*reply is not JSON/);
    expect((await waitForEvent(f.admin, f.ns.name, 'garbled-create', 'MalformedApiReply')).type).toBe('Warning');
    await sleep(3_000); // the test backoff would retry several times in this window
    // One create; a second pass already queued when the first ended (the finalizer's own update
    // event, late under load) may make one more — a retry loop would make many in this window.
    expect(calls('environments.create', before)).toBeLessThanOrEqual(2);

    f.emu.admin.clearFaults();
    await patchSpec(f.admin, f.ns.name, 'garbled-create', { description: 'after the proxy was fixed' });
    await waitForReady(f.admin, f.ns.name, 'garbled-create');
  });

  it('a get reply of the wrong types names the field; an oversized one says it was not read; neither is retried in a loop', async () => {
    await createEnvironment(f.admin, f.ns.name, 'wrong-types', { cloud: {} });
    const id = (await waitForReady(f.admin, f.ns.name, 'wrong-types')).status?.environmentId ?? '';
    f.emu.admin.setFaults([{ method: 'GET', path: `/v1/environments/${id}`, body: JSON.stringify({ id, type: 'environment', name: 42, config: 'cloud' }) }]);
    let before = f.op.apiCalls.length;
    await patchSpec(f.admin, f.ns.name, 'wrong-types', { description: 'one' });
    let env = await waitForCondition(f.admin, f.ns.name, 'wrong-types', 'Synced', 'False', 'MalformedApiReply');
    expect(conditionOf(env, 'Synced')?.message).toMatch(/reply field '(name|config)'/);
    await sleep(2_000);
    expect(calls('environments.get', before)).toBe(1);

    // 32 MiB of a reply: the client stops at its 16 MiB cap.
    f.emu.admin.setFaults([{ method: 'GET', path: `/v1/environments/${id}`, body: `{"id":"${id}","name":"`, body_bytes: 32 * 1024 * 1024 }]);
    before = f.op.apiCalls.length;
    await patchSpec(f.admin, f.ns.name, 'wrong-types', { description: 'two' });
    env = await waitFor(
      async () => {
        const e = await getEnvironment(f.admin, f.ns.name, 'wrong-types');
        return conditionOf(e, 'Synced')?.message.includes('exceeds') ? e : undefined;
      },
      { what: 'the oversized reply in Synced' },
    );
    expect(conditionOf(env, 'Synced')?.reason).toBe('MalformedApiReply');
    expect(conditionOf(env, 'Synced')?.message).toContain(`reply body exceeds ${16 * 1024 * 1024} bytes`);
    await sleep(2_000);
    expect(calls('environments.get', before)).toBe(1);

    f.emu.admin.clearFaults();
    await patchSpec(f.admin, f.ns.name, 'wrong-types', { description: 'three' });
    await waitForReady(f.admin, f.ns.name, 'wrong-types');
  });

  it('update replies cut mid-body are transient: ApiUnavailable with an event, a bounded number of attempts in the window, then Synced', async () => {
    await createEnvironment(f.admin, f.ns.name, 'cut-short', { cloud: {} });
    const id = (await waitForReady(f.admin, f.ns.name, 'cut-short')).status?.environmentId ?? '';
    f.emu.admin.setFaults([{ method: 'POST', path: `/v1/environments/${id}`, body: `{"id":"${id}","type":"environment","name":"${'n'.repeat(2000)}"}`, truncate_at: 100 }]);
    const before = f.op.apiCalls.length;
    await patchSpec(f.admin, f.ns.name, 'cut-short', { description: 'after the cut replies' });
    await waitForCondition(f.admin, f.ns.name, 'cut-short', 'Synced', 'False', 'ApiUnavailable');
    await waitForEvent(f.admin, f.ns.name, 'cut-short', 'ApiUnavailable');
    await sleep(3_000);
    // Each pass: 1 + 2 client retries; passes back off from 100 ms doubling to 2 s. A hot loop makes hundreds.
    const attempts = calls('environments.update', before);
    expect(attempts).toBeGreaterThanOrEqual(3);
    expect(attempts).toBeLessThanOrEqual(30);

    f.emu.admin.clearFaults();
    await waitForReady(f.admin, f.ns.name, 'cut-short', 30_000);
  });

  it('a malformed queue stats reply leaves a self-hosted environment Ready, with a log line, and no retry loop', async () => {
    f.emu.admin.setFaults([{ method: 'GET', path: '/v1/environments/*/work/stats', body: '{"type":"work_queue_stats","depth":"many"}' }]);
    const before = f.op.apiCalls.length;
    const logsBefore = f.op.logLines.length;
    await createEnvironment(f.admin, f.ns.name, 'stats', { selfHosted: {} });
    const env = await waitForReady(f.admin, f.ns.name, 'stats');
    expect(conditionOf(env, 'Synced')?.status).toBe('True');
    await sleep(2_000);
    expect(f.op.logLines.slice(logsBefore).some((l) => l.includes('queue stats unavailable') && l.includes('malformed_response'))).toBe(true);
    expect(calls('work.stats', before)).toBeLessThanOrEqual(2);
  });
});

const SECRET_VALUE = 'sk-ant-api03-not-a-real-key-SECRETVALUE';

describe('Secrets of the wrong shape', () => {
  it.each([
    ['a missing key', { other: SECRET_VALUE }, 'has no key "api-key"'],
    ['an empty value', { 'api-key': '' }, 'key "api-key" is empty'],
    ['binary bytes', { 'api-key': Buffer.from([0x73, 0x6b, 0x00, 0xff, 0x13, 0x80, 0x01]) }, 'key "api-key" is not a credential: it contains bytes that are not printable ASCII'],
    ['a line break inside', { 'api-key': `${SECRET_VALUE}\n${SECRET_VALUE}` }, 'key "api-key" is not a credential: it contains a line break'],
    ['a space inside', { 'api-key': `x-api-key: ${SECRET_VALUE}` }, 'key "api-key" is not a credential: it contains whitespace'],
  ] as const)('%s: Synced=False CredentialsMissing with an event naming the Secret and key, no API call', async (_name, data, message) => {
    const name = `shape-${Math.random().toString(36).slice(2, 8)}`;
    const secret = { metadata: { name, namespace: f.ns.name }, type: 'Opaque', data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) };
    await f.admin.create(CORE.secrets, f.ns.name, secret as KubeObject);
    const before = f.op.apiCalls.length;
    await createEnvironment(f.admin, f.ns.name, name, { cloud: {}, apiKeySecretRef: { name, key: 'api-key' } });
    const env = await waitForCondition(f.admin, f.ns.name, name, 'Synced', 'False', 'CredentialsMissing');
    expect(conditionOf(env, 'Synced')?.message).toContain(`Secret ${f.ns.name}/${name}`);
    expect(conditionOf(env, 'Synced')?.message).toContain(message);
    expect((await waitForEvent(f.admin, f.ns.name, name, 'CredentialsMissing')).message).toContain(message);
    expect(f.op.apiCalls.length - before).toBe(0);

    // Fixed in place: served without a change to the resource (the Secret is re-read).
    await putSecret(f.admin, f.ns.name, name, 'api-key', `${API_KEY}\n`);
    await waitForReady(f.admin, f.ns.name, name);
  });
});

describe('at the end', () => {
  it('no bad reply or Secret put a credential in a log line, event or status', async () => {
    const visible = await everythingVisible(f);
    expect(visible).not.toContain(API_KEY);
    expect(visible).not.toContain('SECRETVALUE');
  });
});
