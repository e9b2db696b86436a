/**
 * Duplicate deliveries and late readings against the in-process emulator, with the in-memory
 * record store standing in for Kubernetes: a record this cluster acknowledged and served is never
 * settled as `NotAcknowledged`, whatever reading of it the duplicate's hand-off or the settle pass
 * started from (the chaos run's duplicate-delivery windows, docs/chaos.md).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EnvironmentsClient } from '../../src/api/client.ts';
import { NO_HEARTBEAT, type Work } from '../../src/api/wire.ts';
import type { AgentEnvironment, AgentSession } from '../../src/crd/resources.ts';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { Acknowledgements } from '../../src/sessions/controller/acknowledgements.ts';
import type { DispatchCredentials } from '../../src/sessions/dispatch/credentials.ts';
import { handOff, type HandOffDeps } from '../../src/sessions/dispatch/hand-off.ts';
import { settleSession, type SettleDeps } from '../../src/sessions/dispatch/settle.ts';
import { sessionName } from '../../src/sessions/record/names.ts';
import { recordClaim, writeSessionStatus } from '../../src/sessions/record/record.ts';
import { acknowledgedStatus } from '../../src/sessions/record/status.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { clientFor, emulator, selfHosted } from '../support/emulator.ts';
import { MemoryStore, prodEnvironment } from '../support/record-store.ts';

let emu: RunningEmulator;
let admin: EnvironmentsClient;
let worker: EnvironmentsClient;
let environmentId: string;
let envKeyValue: string;
let store: MemoryStore;

const env = (): AgentEnvironment => prodEnvironment(environmentId);

const credentials = (): DispatchCredentials => ({ poll: { kind: 'bearer', value: envKeyValue }, sandbox: envKeyValue, source: 'environment-key', fingerprint: envKeyValue.slice(-8) });
const workOf = (workId: string): Work | undefined => (emu.state.snapshot()['work'] as Work[]).find((w) => w.id === workId);
const recordOf = (sessionId: string): AgentSession | undefined => store.sessions.get(`ns/${sessionName('prod', sessionId)}`);
const acks = (): number => Object.values(emu.state.requestCounts()['POST /v1/environments/{environment_id}/work/{work_id}/ack'] ?? {}).reduce((a, b) => a + b, 0);

/** The worker client, with `before` run ahead of the given call once (what happens while that call is on its way). */
function apiWith(before: { ackWork?: number; getWork?: number }, meanwhile: () => Promise<void>): HandOffDeps['api'] {
  const calls = { ackWork: 0, getWork: 0 };
  const first = async (call: 'ackWork' | 'getWork'): Promise<void> => {
    if (++calls[call] === before[call]) await meanwhile();
  };
  return {
    getWork: async (e, w, o) => (await first('getWork'), worker.getWork(e, w, o)),
    ackWork: async (e, w, o) => (await first('ackWork'), worker.ackWork(e, w, o)),
    stopWork: (e, w, s) => worker.stopWork(e, w, s),
  };
}

/**
 * What serving the record's item looks like from outside the dispatcher: the session reconciler
 * writes the acknowledgement (with the Pod), the Pod's sidecar claims the lease, the session ends
 * (its item stopped) and the record is Succeeded.
 */
async function serve(sessionId: string, workId: string, onWritten: () => void = () => undefined): Promise<void> {
  const s = recordOf(sessionId)!;
  await writeSessionStatus(store, s, acknowledgedStatus(s, new Date()));
  onWritten();
  await worker.heartbeatWork(environmentId, workId, { expectedLastHeartbeat: NO_HEARTBEAT });
  await admin.stopWork(environmentId, workId, { force: true });
  await store.patchSessionStatus('ns', s.metadata!.name!, undefined, { phase: 'Succeeded', workState: 'stopped' });
}

const servedRecord = { phase: 'Succeeded', workState: 'stopped', acknowledgedAt: expect.any(String) };

beforeEach(async () => {
  emu = await emulator();
  admin = clientFor(emu);
  environmentId = (await selfHosted(admin)).id;
  envKeyValue = emu.admin.mintKey(environmentId);
  worker = clientFor(emu, { kind: 'bearer', value: envKeyValue });
  store = new MemoryStore();
});
afterEach(async () => {
  await emu.close();
});

describe('a duplicate delivery of an item this cluster acknowledged', () => {
  it('is ours while its acknowledgement waits to be written: not acknowledged again, and the session served meanwhile keeps its record', async () => {
    const { session_id, work_id } = emu.admin.createSession(environmentId);
    const first = (await worker.pollWork(environmentId, { workerId: 'w1' }))!;
    // The queue reclaims the pending item before our ack lands and hands it out again.
    const again = (await worker.pollWork(environmentId, { workerId: 'w2', reclaimOlderThanMs: 0 }))!;
    expect(again.id).toBe(first.id);
    const held = new Acknowledgements();
    const key = `ns/${sessionName('prod', session_id)}`;
    // Should the duplicate ack, the session is served while that ack is on its way (its reply: 409).
    const deps: HandOffDeps = {
      store,
      api: apiWith({ ackWork: 2 }, () => serve(session_id, work_id, () => held.delete(key))),
      now: () => new Date(),
      logger: silentLogger,
      metrics: { dispatched: () => undefined, acknowledged: () => undefined, settled: () => undefined },
      onAcknowledged: (ns, name, work, record) => held.add(`${ns}/${name}`, work, new Date(), record),
      acknowledgedHere: (k, workId) => held.holds(k, workId),
    };
    const claimed = (work: Work, workerId: string) => ({ work, env: env(), credentials: credentials(), workerId, seenAt: performance.now() });
    expect(await handOff(deps, claimed(first, 'w1'))).toEqual({ outcome: 'acknowledged', holdsSlot: true });
    expect(await handOff(deps, claimed(again, 'w2'))).toEqual({ outcome: 'alreadyAcknowledged', holdsSlot: true });
    expect(acks()).toBe(1);
    if (workOf(work_id)?.state !== 'stopped') await serve(session_id, work_id, () => held.delete(key));
    expect(recordOf(session_id)?.status).toMatchObject(servedRecord);
  });
});

describe('the settle pass decides on the record as stored, never on an older reading of it', () => {
  /** A record claimed (and, for a returning session, moved forward to its new item) but not acknowledged: the reading a duplicate's hand-off or a lagging cache holds. */
  async function claimed(returning: boolean): Promise<{ sessionId: string; workId: string; reading: AgentSession }> {
    const { session_id: sessionId, work_id: first } = emu.admin.createSession(environmentId);
    let workId = first;
    if (returning) {
      await worker.pollWork(environmentId, { workerId: 'w' });
      await recordClaim(store, env(), { sessionId, workId, environmentId, workerId: 'w', claimedAt: new Date(), workSecret: false });
      await worker.ackWork(environmentId, workId);
      await serve(sessionId, workId);
      workId = emu.admin.wake(environmentId, sessionId).work_id;
    }
    await worker.pollWork(environmentId, { workerId: 'w' });
    const { session: reading, outcome } = await recordClaim(store, env(), { sessionId, workId, environmentId, workerId: 'w', claimedAt: new Date(), workSecret: false });
    expect(outcome).toBe(returning ? 'movedForward' : 'created');
    return { sessionId, workId, reading };
  }
  const deps = (api: SettleDeps['api'] = worker): SettleDeps => ({ store, api, now: () => new Date() });

  it.each([
    ['a first work item', false],
    ['a returning session’s new work item (a record with a history)', true],
  ])('an older reading without the acknowledgement of %s, since acknowledged, served and stopped, leaves the record served', async (_name, returning) => {
    const { sessionId, workId, reading } = await claimed(returning);
    await worker.ackWork(environmentId, workId);
    await serve(sessionId, workId);
    expect(await settleSession(deps(), reading)).toBe('none');
    expect(recordOf(sessionId)?.status).toMatchObject({ ...servedRecord, workItems: returning ? 2 : 1 });
  });

  it('a record acknowledged while the pass reads its item is left to that acknowledgement', async () => {
    const { sessionId, workId } = await claimed(false);
    await worker.ackWork(environmentId, workId);
    const stored = recordOf(sessionId)!;
    // The pass read the record unacknowledged; its item is served and stopped before the pass sees the item.
    expect(await settleSession(deps(apiWith({ getWork: 1 }, () => serve(sessionId, workId))), stored)).toBe('none');
    expect(recordOf(sessionId)?.status).toMatchObject(servedRecord);
  });
});

describe('an active item of a record bound to a warm Pod', () => {
  const warmPod = { name: 'prod-warm-1a2b3c-0', uid: 'warm-pod-uid' };
  async function boundAndActive(): Promise<{ sessionId: string; workId: string; reading: AgentSession }> {
    const { session_id: sessionId, work_id: workId } = emu.admin.createSession(environmentId);
    await worker.pollWork(environmentId, { workerId: 'w' });
    const { session: reading } = await recordClaim(store, env(), { sessionId, workId, environmentId, workerId: 'w', claimedAt: new Date(), workSecret: false, warmPod });
    await worker.ackWork(environmentId, workId);
    await worker.heartbeatWork(environmentId, workId, { expectedLastHeartbeat: NO_HEARTBEAT });
    return { sessionId, workId, reading };
  }

  it('is adopted when the record’s warm Pod serves it', async () => {
    const { sessionId, reading } = await boundAndActive();
    store.pods.set(`ns/${warmPod.name}`, warmPod.uid);
    expect(await settleSession({ store, api: worker, now: () => new Date() }, reading)).toBe('adopted');
    expect(recordOf(sessionId)?.status).toMatchObject({ phase: 'Starting', workState: 'active', acknowledgedAt: expect.any(String) });
  });

  it('is released when a later Pod took the warm Pod’s name: another worker holds the lease', async () => {
    const { sessionId, workId, reading } = await boundAndActive();
    store.pods.set(`ns/${warmPod.name}`, 'a-later-pod-uid');
    expect(await settleSession({ store, api: worker, now: () => new Date() }, reading)).toBe('dropped');
    expect(recordOf(sessionId)).toBeUndefined();
    expect(workOf(workId)?.state).toBe('active');
  });
});
