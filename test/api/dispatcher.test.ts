/**
 * The dispatcher against the in-process emulator (real HTTP, real long polls), with an in-memory
 * record store standing in for Kubernetes. What Kubernetes adds (owner references, finalizers, the
 * informer) is covered by test/integration/dispatch.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EnvironmentsClient } from '../../src/api/client.ts';
import type { Credential } from '../../src/api/transport.ts';
import type { Work } from '../../src/api/wire.ts';
import { decodeWorkSecret } from '../../src/api/work-secret.ts';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { SESSION_FINALIZER } from '../../src/crd/meta.ts';
import type { AgentEnvironment } from '../../src/crd/resources.ts';
import type { CredentialResolution, DispatchCredentials } from '../../src/sessions/dispatch/credentials.ts';
import { envKey } from '../../src/sessions/dispatch/capacity.ts';
import { handOff, type HandOffDeps } from '../../src/sessions/dispatch/hand-off.ts';
import { EnvironmentDispatch } from '../../src/sessions/dispatch/environment-dispatch.ts';
import type { DispatchState } from '../../src/sessions/dispatch/poller.ts';
import { secretName, sessionName } from '../../src/sessions/record/names.ts';
import { ensureWorkSecret, recordClaim, writeSessionStatus } from '../../src/sessions/record/record.ts';
import { acknowledgedStatus } from '../../src/sessions/record/status.ts';
import { settleSession } from '../../src/sessions/dispatch/settle.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { API_KEY, clientFor, emulator, selfHosted } from '../support/emulator.ts';
import { MemoryStore, prodEnvironment } from '../support/record-store.ts';

let emu: RunningEmulator;
let admin: EnvironmentsClient;
let environmentId: string;
let envKeyValue: string;
let store: MemoryStore;

const env = (): AgentEnvironment => prodEnvironment(environmentId, { conditions: [{ type: 'Ready', status: 'True', reason: 'Available', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' }] });

const bearer = (value: string): Credential => ({ kind: 'bearer', value });
const creds = (value = envKeyValue): CredentialResolution => ({ ok: true, credentials: { poll: bearer(value), sandbox: value, source: 'environment-key', fingerprint: value.slice(-8) } });
const envKeyCredentials = (): DispatchCredentials => ({ poll: bearer(envKeyValue), sandbox: envKeyValue, source: 'environment-key', fingerprint: envKeyValue.slice(-8) });
const workOf = (workId: string): Work | undefined => (emu.state.snapshot()['work'] as Work[]).find((w) => w.id === workId);
const until = async (cond: () => boolean, what: string, ms = 10_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

function dispatch(opts: { maxSessions: number; maxPollers?: number; credentials?: () => CredentialResolution; reports?: DispatchState[]; credentialRefreshMs?: number }) {
  const abort = new AbortController();
  const e = env();
  const d = new EnvironmentDispatch(
    {
      store,
      logger: silentLogger,
      metrics: { polled: () => undefined, recorded: () => undefined, acknowledged: () => undefined, settled: () => undefined },
      apiClient: (credential) => new EnvironmentsClient({ baseUrl: emu.url, credential, retry: { maxRetries: 2, backoff: { baseMs: 10, capMs: 50 }, maxRetryAfterMs: 1_000 } }),
      resolveCredentials: async () => (opts.credentials ?? creds)(),
      identity: 'test-operator',
      recorded: store.recorded,
      sessionsOf: () => store.list(),
      reportCondition: (_env, s) => opts.reports?.push(s),
      settleGraceMs: 0,
      onAcknowledged: recordAcknowledgement,
      ...(opts.credentialRefreshMs ? { credentialRefreshMs: opts.credentialRefreshMs } : {}),
    },
    e,
    environmentId,
    { maxSessions: opts.maxSessions, maxPollers: opts.maxPollers ?? 4 },
  );
  store.recorded.onChange((k) => k === envKey('ns', 'prod') && d.nudge());
  const done = d.run(abort.signal);
  return { stop: async () => (abort.abort(), await done) };
}

/** What the session reconciler does with an acknowledged item, as far as the record goes: records the acknowledgement. */
function recordAcknowledgement(namespace: string, name: string): void {
  void store.getSession(namespace, name).then((s) => s && writeSessionStatus(store, s, acknowledgedStatus(s, new Date())));
}

function handOffDeps(api: EnvironmentsClient): HandOffDeps {
  return { store, api, now: () => new Date(), logger: silentLogger, metrics: { dispatched: () => undefined, acknowledged: () => undefined, settled: () => undefined }, onAcknowledged: recordAcknowledgement };
}

beforeEach(async () => {
  emu = await emulator();
  admin = clientFor(emu);
  environmentId = (await selfHosted(admin)).id;
  envKeyValue = emu.admin.mintKey(environmentId);
  store = new MemoryStore();
});
afterEach(async () => {
  await emu.close();
});

describe('dispatch against the emulator', () => {
  it('claims exactly maxSessions items, records each before acknowledging it, and leaves the rest queued', async () => {
    const N = 4;
    const items = Array.from({ length: N + 3 }, () => emu.admin.createSession(environmentId));
    const d = dispatch({ maxSessions: N });
    await until(() => [...store.sessions.values()].filter((s) => s.status?.acknowledgedAt).length === N, `${N} acknowledged records`);
    await new Promise((r) => setTimeout(r, 1_500)); // more than a long poll: nothing else is claimed
    await d.stop();
    const states = items.map((i) => workOf(i.work_id)?.state);
    expect(states.filter((s) => s === 'starting')).toHaveLength(N);
    expect(states.filter((s) => s === 'queued')).toHaveLength(3);
    expect(store.sessions.size).toBe(N);
    for (const s of store.sessions.values()) {
      expect(s.metadata?.finalizers).toEqual([SESSION_FINALIZER]);
      expect(s.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'AgentEnvironment', name: 'prod', uid: 'env-uid', controller: true, blockOwnerDeletion: true });
      expect(s.status).toMatchObject({ phase: 'Starting', workState: 'starting', workId: s.spec.workId, workItems: 1 });
      expect(s.spec.workerId).toMatch(/^test-operator\/env-uid\/\d+$/);
      // No per-item secret from the poll: the record is complete as created, no Secret is written.
      expect(s.spec.workSecret).toBe(false);
    }
    expect(store.secrets.size).toBe(0);
  });

  it('an item that cannot be recorded is not acknowledged: the queue hands it out again', async () => {
    const item = emu.admin.createSession(environmentId);
    store.failCreates = true;
    const d = dispatch({ maxSessions: 2 });
    await until(() => ((emu.state.requestCounts()['GET /v1/environments/{environment_id}/work/poll'] ?? {})['200'] ?? 0) >= 1, 'a poll');
    await new Promise((r) => setTimeout(r, 300));
    expect(workOf(item.work_id)?.state).toBe('queued');
    expect(emu.state.requestCounts()['POST /v1/environments/{environment_id}/work/{work_id}/ack']).toBeUndefined();
    store.failCreates = false; // the apiserver is back: the re-delivery (after 5 s) is recorded and acknowledged
    await until(() => workOf(item.work_id)?.state === 'starting', 'the re-delivered item acknowledged', 15_000);
    await d.stop();
    expect(store.sessions.size).toBe(1);
  }, 20_000);

  it('a duplicate delivery converges on the same AgentSession', async () => {
    const { session_id, work_id } = emu.admin.createSession(environmentId);
    const api = clientFor(emu, bearer(envKeyValue));
    const first = (await api.pollWork(environmentId, { workerId: 'w1' }))!;
    // The operator died after recording and before its ack.
    await recordClaim(store, env(), { sessionId: session_id, workId: work_id, environmentId, workerId: 'w1', claimedAt: new Date(), workSecret: false });
    const again = (await api.pollWork(environmentId, { workerId: 'w2', reclaimOlderThanMs: 0 }))!;
    expect(again.id).toBe(first.id);
    const result = await handOff(handOffDeps(api), { work: again, env: env(), credentials: envKeyCredentials(), workerId: 'w2', seenAt: performance.now() });
    expect(result).toEqual({ outcome: 'acknowledged', holdsSlot: true });
    expect(store.sessions.size).toBe(1);
    expect(store.secrets.size).toBe(0);
    expect(workOf(work_id)?.state).toBe('starting');
    // A further duplicate of an acknowledged record changes nothing.
    const third = await handOff(handOffDeps(api), { work: again, env: env(), credentials: undefined, workerId: 'w3', seenAt: performance.now() });
    expect(third.outcome).toBe('noSandboxCredential');
    const fourth = await handOff(handOffDeps(api), { work: again, env: env(), credentials: envKeyCredentials(), workerId: 'w3', seenAt: performance.now() });
    expect(fourth.outcome).toBe('alreadyAcknowledged');
  });

  it('a session returning with a new work item moves its record forward', async () => {
    const { session_id, work_id } = emu.admin.createSession(environmentId);
    const d = dispatch({ maxSessions: 2 });
    await until(() => workOf(work_id)?.state === 'starting', 'first item acknowledged');
    await admin.stopWork(environmentId, work_id, { force: true });
    const name = sessionName('prod', session_id);
    await store.patchSessionStatus('ns', name, undefined, { phase: 'Succeeded', workState: 'stopped' });
    const { work_id: next } = emu.admin.wake(environmentId, session_id);
    await until(() => workOf(next)?.state === 'starting', 'the returning item acknowledged');
    await d.stop();
    const s = store.sessions.get(`ns/${name}`)!;
    expect(store.sessions.size).toBe(1);
    expect(s.spec.workId).toBe(next);
    expect(s.status).toMatchObject({ phase: 'Starting', workId: next, workItems: 2 });
    expect(s.status?.finishedAt).toBeUndefined();
    expect(s.spec.workSecret).toBe(false);
  });

  it('puts the per-item token, never the environment key, in the Secret when the poll carries one', async () => {
    await emu.close();
    emu = await emulator({ workSecrets: true });
    admin = clientFor(emu);
    environmentId = (await selfHosted(admin)).id;
    envKeyValue = emu.admin.mintKey(environmentId);
    const { work_id } = emu.admin.createSession(environmentId);
    const d = dispatch({ maxSessions: 1 });
    await until(() => workOf(work_id)?.state === 'starting', 'acknowledged');
    await d.stop();
    const [secret] = [...store.secrets.values()];
    const [record] = [...store.sessions.values()];
    expect(record?.spec.workSecret).toBe(true);
    expect(secret?.metadata?.name).toBe(secretName(record!.metadata!.name!, work_id));
    const token = Buffer.from(secret!.data['token']!, 'base64').toString();
    const raw = Buffer.from(secret!.data['work-secret']!, 'base64').toString();
    expect(token).not.toBe(envKeyValue);
    expect(decodeWorkSecret(raw)?.sessions_token).toBe(token);
  });

  it('under the API-key fallback, an item without a per-item token is not acknowledged and dispatch pauses', async () => {
    const { work_id } = emu.admin.createSession(environmentId);
    const reports: DispatchState[] = [];
    const apiKey: CredentialResolution = { ok: true, credentials: { poll: { kind: 'api-key', value: API_KEY }, sandbox: undefined, source: 'api-key', fingerprint: 'k' } };
    const d = dispatch({ maxSessions: 3, credentials: () => apiKey, reports });
    await until(() => reports.some((r) => !r.dispatching), 'a Dispatching=False report');
    await d.stop();
    expect(reports.at(-1)).toMatchObject({ dispatching: false, reason: 'EnvironmentKeyRequired' });
    expect(workOf(work_id)?.state).toBe('queued');
    expect(store.sessions.size).toBe(0);
  });

  it('a refused environment key stops polling with a reason instead of hot-looping', async () => {
    const reports: DispatchState[] = [];
    const d = dispatch({ maxSessions: 3, credentials: () => creds('sk-ant-oat01-wrong'), reports });
    await until(() => reports.length > 0, 'a report');
    await new Promise((r) => setTimeout(r, 500));
    await d.stop();
    expect(reports).toEqual([{ dispatching: false, reason: 'CredentialsInvalid', message: expect.any(String) }]);
    expect(JSON.stringify(reports)).not.toContain('sk-ant-oat01-wrong');
    expect(emu.state.requestCounts()['GET /v1/environments/{environment_id}/work/poll']).toEqual({ '401': 1 });
  });

  it('a rotated environment key resumes dispatch without a restart', async () => {
    const reports: DispatchState[] = [];
    let key = 'sk-ant-oat01-revoked';
    const d = dispatch({ maxSessions: 3, credentials: () => creds(key), reports, credentialRefreshMs: 200 });
    await until(() => reports.length > 0, 'a report');
    expect(reports[0]).toMatchObject({ dispatching: false, reason: 'CredentialsInvalid' });
    key = envKeyValue; // the Secret is updated with a valid key
    const { work_id } = emu.admin.createSession(environmentId);
    await until(() => workOf(work_id)?.state === 'starting', 'the item acknowledged with the new key');
    await d.stop();
    expect(reports.at(-1)).toEqual({ dispatching: true });
  });

  it('while paused for a refused key, the Secret is re-read every 5 s: a fixed key resumes dispatch long before the 60 s refresh', async () => {
    const reports: DispatchState[] = [];
    let key = 'sk-ant-oat01-placeholder';
    const started = Date.now();
    const d = dispatch({ maxSessions: 3, credentials: () => creds(key), reports });
    await until(() => reports.length > 0, 'a report');
    expect(reports[0]).toMatchObject({ dispatching: false, reason: 'CredentialsInvalid' });
    key = envKeyValue; // someone puts the real key in the Secret
    const { work_id } = emu.admin.createSession(environmentId);
    await until(() => workOf(work_id)?.state === 'starting', 'the item acknowledged with the fixed key');
    await d.stop();
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(reports.at(-1)).toEqual({ dispatching: true });
  });
});

describe('settling records after a restart', () => {
  /**
   * What an operator that died before its ack left behind: `complete` — a record without a per-item
   * secret (complete as created); `secret-written` — a record with a per-item secret and its Secret;
   * `secret-missing` — a record with a per-item secret whose Secret was never written.
   */
  async function claimWithoutAck(left: 'complete' | 'secret-written' | 'secret-missing') {
    const { session_id, work_id } = emu.admin.createSession(environmentId);
    const api = clientFor(emu, bearer(envKeyValue));
    await api.pollWork(environmentId, { workerId: 'old-operator' });
    const { session } = await recordClaim(store, env(), { sessionId: session_id, workId: work_id, environmentId, workerId: 'old-operator', claimedAt: new Date(), workSecret: left !== 'complete' });
    if (left === 'secret-written') await ensureWorkSecret(store, session, { token: 'per-item-token', workSecret: 'raw-work-secret' });
    return { api, session: (await store.getSession('ns', session.metadata!.name!))!, work_id };
  }
  const deps = (api: EnvironmentsClient) => ({ store, api, now: () => new Date() });

  it.each(['complete', 'secret-written'] as const)('acknowledges a recorded item that is still queued (record %s)', async (left) => {
    const { api, session, work_id } = await claimWithoutAck(left);
    expect(await settleSession(deps(api), session)).toBe('acknowledged');
    expect(workOf(work_id)?.state).toBe('starting');
    expect(store.sessions.get(`ns/${session.metadata!.name}`)?.status).toMatchObject({ phase: 'Starting', workId: work_id });
  });

  it('releases a queued item whose per-item Secret was never written (the queue hands it out again)', async () => {
    const { api, session, work_id } = await claimWithoutAck('secret-missing');
    expect(await settleSession(deps(api), session)).toBe('dropped');
    expect(workOf(work_id)?.state).toBe('queued');
  });

  it('adopts a complete record whose item is starting, whoever acknowledged it: the first heartbeat arbitrates', async () => {
    const { api, session, work_id } = await claimWithoutAck('complete');
    await api.ackWork(environmentId, work_id); // our ack landed, or another worker's: the API cannot tell us which
    expect(await settleSession(deps(api), session)).toBe('adopted');
    expect(store.sessions.get(`ns/${session.metadata!.name}`)?.status).toMatchObject({ phase: 'Starting', workId: work_id, acknowledgedAt: expect.any(String) });
  });

  it('the restarted dispatcher settles such a record on start', async () => {
    const { session, work_id } = await claimWithoutAck('complete');
    const d = dispatch({ maxSessions: 3 });
    await until(() => Boolean(store.sessions.get(`ns/${session.metadata!.name}`)?.status?.acknowledgedAt), 'the record acknowledged');
    await d.stop();
    expect(workOf(work_id)?.state).toBe('starting');
    expect(store.sessions.size).toBe(1);
  });

  it('drops a record whose per-item Secret was never written and whose item another worker acknowledged, without stopping the item', async () => {
    const { api, session, work_id } = await claimWithoutAck('secret-missing');
    const other = (await api.pollWork(environmentId, { workerId: 'other', reclaimOlderThanMs: 0 }))!;
    await api.ackWork(environmentId, other.id);
    expect(await settleSession(deps(api), session)).toBe('dropped');
    expect(store.sessions.size).toBe(0);
    expect(workOf(work_id)?.state).toBe('starting');
  });

  it('marks a record whose item was stopped as Failed NotAcknowledged', async () => {
    const { api, session, work_id } = await claimWithoutAck('complete');
    await admin.stopWork(environmentId, work_id, { force: true });
    expect(await settleSession(deps(api), session)).toBe('finished');
    expect(store.sessions.get(`ns/${session.metadata!.name}`)?.status).toMatchObject({ phase: 'Failed', reason: 'NotAcknowledged', workState: 'stopped' });
    expect(store.sessions.get(`ns/${session.metadata!.name}`)?.status?.acknowledgedAt).toBeUndefined();
  });

  it('a 409 on our own ack of a stopped item settles the record instead of failing', async () => {
    const { session_id, work_id } = emu.admin.createSession(environmentId);
    const api = clientFor(emu, bearer(envKeyValue));
    const work = (await api.pollWork(environmentId, { workerId: 'w' }))!;
    await admin.stopWork(environmentId, work_id, { force: true });
    const result = await handOff(handOffDeps(api), { work, env: env(), credentials: envKeyCredentials(), workerId: 'w', seenAt: performance.now() });
    expect(result).toEqual({ outcome: 'settled:finished', holdsSlot: false });
    expect(store.sessions.get(`ns/${sessionName('prod', session_id)}`)?.status).toMatchObject({ phase: 'Failed', reason: 'NotAcknowledged' });
  });
});

describe('bad poll and ack replies', () => {
  const POLL = 'GET /v1/environments/{environment_id}/work/poll';
  const polls = (): number => Object.values(emu.state.requestCounts()[POLL] ?? {}).reduce((a, b) => a + b, 0);

  it('a malformed poll reply pauses dispatch with MalformedApiReply: one poll in the window, not a loop', async () => {
    emu.admin.setFaults([{ method: 'GET', path: '/v1/environments/*/work/poll', body: '{"id": 42, "type": "work"}' }]);
    const reports: DispatchState[] = [];
    const d = dispatch({ maxSessions: 3, reports });
    await until(() => reports.some((r) => !r.dispatching), 'a Dispatching=False report');
    await new Promise((r) => setTimeout(r, 1_500));
    await d.stop();
    expect(reports).toEqual([{ dispatching: false, reason: 'MalformedApiReply', message: expect.stringContaining("reply field 'id'") }]);
    // The slow retry (FATAL_RETRY_MS, 60 s) is the next poll: a tight loop would make hundreds here.
    expect(polls()).toBe(1);
  });

  it('poll replies cut mid-body back off exponentially: a bounded number of polls in the window, then dispatch resumes', async () => {
    emu.admin.setFaults([{ method: 'GET', path: '/v1/environments/*/work/poll', body: `{"id":"work_${'x'.repeat(500)}"}`, truncate_at: 64 }]);
    const reports: DispatchState[] = [];
    const d = dispatch({ maxSessions: 3, reports });
    await new Promise((r) => setTimeout(r, 2_500));
    // Backoff 1 s doubling (jittered ±50 %): at most 3 polls in 2.5 s; a loop without it, thousands.
    expect(polls()).toBeGreaterThanOrEqual(1);
    expect(polls()).toBeLessThanOrEqual(3);
    emu.admin.clearFaults();
    const { work_id } = emu.admin.createSession(environmentId);
    await until(() => workOf(work_id)?.state === 'starting', 'the item acknowledged once the replies are whole', 15_000);
    await d.stop();
    expect(reports.some((r) => !r.dispatching)).toBe(false);
  });

  it('a malformed ack reply is not a loss: the record stays claimed and the item is acknowledged on a later pass', async () => {
    const { work_id } = emu.admin.createSession(environmentId);
    const api = new EnvironmentsClient({ baseUrl: emu.url, credential: bearer(envKeyValue) });
    const work = await api.pollWork(environmentId);
    emu.admin.setFaults([{ method: 'POST', path: '/v1/environments/*/work/*/ack', body: '<html>502</html>', count: 1 }]);
    const result = await handOff(handOffDeps(api), { work: work!, env: env(), credentials: envKeyCredentials(), workerId: 'w', seenAt: performance.now() });
    expect(result).toEqual({ outcome: 'ackFailed', holdsSlot: true });
    expect(workOf(work_id)?.state).toBe('queued');
    expect(store.sessions.size).toBe(1);
    // What the settle pass does with the claimed record: the ack, again, succeeds.
    const [record] = store.list();
    expect(await settleSession({ store, api, now: () => new Date() }, record!)).toBe('acknowledged');
    expect(workOf(work_id)?.state).toBe('starting');
  });
});
