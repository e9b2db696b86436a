/**
 * A session keeps its workspace (issue 12) on the local cluster: the real volume provisioner
 * (test/provisioner) binds each session's claim to a host directory the process kubelet mounts at
 * /workspace; the default runner (the SDK's handleItem) ends on its idle timeout, and the session's
 * next work item (the emulator's `wake`) runs in a new Pod on the same volume.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeWorkSecret } from '../../src/api/work-secret.ts';
import type { Workspace } from '../../src/crd/agent-environment.ts';
import { AGENT_ENVIRONMENTS, AGENT_SESSIONS, type AgentSession } from '../../src/crd/resources.ts';
import { CORE } from '../../src/k8s/rest.ts';
import { settleSession } from '../../src/sessions/dispatch/settle.ts';
import { RECLAIM_POLICY_LABEL } from '../../src/sessions/controller/workspace.ts';
import { desiredWorkspaceClaim, workspaceClaimName, type PersistentVolumeClaim } from '../../src/sessions/objects/workspace.ts';
import { ensureWorkSecret, kubeRecordStore, recordClaim } from '../../src/sessions/record/record.ts';
import { podName } from '../../src/sessions/record/names.ts';
import { bash, endTurn, resultText, scriptAgent, terminated, waitForToolResults } from '../support/agent-script.ts';
import { createNamespace, waitFor, type TestNamespace } from '../support/cluster.ts';
import { createEnvironment, dispatch, eventsOf, getSession, startSessionsWorld, waitForSession, waitForWork, type Dispatched, type SessionsWorld, type TestEnvironment } from './sessions.fixtures.ts';

let ns: TestNamespace;
let w: SessionsWorld;

beforeAll(async () => {
  ns = await createNamespace('workspace');
  w = await startSessionsWorld(ns.name);
});

afterAll(async () => {
  await w?.stop();
  await ns?.cleanup();
});

const claimSpec = { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } };
const workspace = (extra: Partial<Workspace> = {}) => ({ volumeClaimTemplate: { spec: claimSpec }, ...extra });

const readClaim = async (name: string): Promise<PersistentVolumeClaim | undefined> => {
  try {
    return await w.admin.get<PersistentVolumeClaim>(CORE.persistentvolumeclaims, w.namespace, name);
  } catch {
    return undefined;
  }
};
const claimsOf = async (session: string) => (await w.admin.list<PersistentVolumeClaim>(CORE.persistentvolumeclaims, w.namespace, { labelSelector: `agentenv.io/session=${session}` })).items;
const podsOf = async (session: string) => (await w.admin.list(CORE.pods, w.namespace, { labelSelector: `agentenv.io/session=${session}` })).items;
const sessionGone = async (name: string) => {
  try {
    await w.admin.get(AGENT_SESSIONS, w.namespace, name);
    return false;
  } catch {
    return true;
  }
};

/** The session's next message: the emulator queues a new work item, handed over as the dispatcher would. */
async function wake(e: TestEnvironment, sessionId: string): Promise<Dispatched> {
  const { work_id } = w.emu.admin.wake(e.environmentId, sessionId);
  const work = await waitFor(async () => {
    const polled = await e.worker.pollWork(e.environmentId, { blockMs: 999, workerId: 'test-dispatcher' });
    return polled?.id === work_id ? polled : undefined;
  }, { what: `work item ${work_id} to be delivered` });
  const store = kubeRecordStore(w.operator);
  const secret = decodeWorkSecret(work.secret);
  const { session } = await recordClaim(store, e.env, { sessionId, workId: work.id, environmentId: e.environmentId, workerId: 'test-dispatcher', claimedAt: new Date(), workSecret: Boolean(secret) });
  if (secret && work.secret) await ensureWorkSecret(store, session, { token: secret.sessions_token, workSecret: work.secret });
  const acked = await e.worker.ackWork(e.environmentId, work.id);
  const name = session.metadata?.name ?? '';
  w.controller.acknowledged(w.namespace, name, acked);
  return { session, work, name };
}

const idle = (name: string) => waitForSession(w, name, (s) => s.status?.phase === 'Succeeded' && s.status.reason === 'Idle', 'Succeeded Idle', 90_000);

describe.concurrent('a session keeps its workspace', () => {
  it('reads back in work item 2, in a new Pod after an idle timeout ended the first, the file work item 1 wrote; another session never sees it', async () => {
    const env = await createEnvironment(w, 'ws-resume', undefined, { idleTimeoutSeconds: 5, workspace: workspace() });
    const d = await dispatch(w, env);
    const other = await dispatch(w, env);
    const first = await waitForSession(w, d.name, (s) => s.status?.phase === 'Running' && s.status.workspace?.phase === 'Bound', 'Running on a bound workspace');
    expect(first.status?.workspace?.claimName).toBe(workspaceClaimName(d.name));

    const [write] = await scriptAgent(w.emu.url, d.work.data.id, [bash('echo built-in-item-1 > kept.txt && pwd')]);
    expect(resultText((await waitForToolResults(w.emu.url, d.work.data.id, [write!], { timeoutMs: 60_000 })).get(write!)).trim()).toBe('/workspace');
    await scriptAgent(w.emu.url, d.work.data.id, [endTurn()]);
    const ended = await idle(d.name);
    expect(ended.status).toMatchObject({ workState: 'stopped', workItems: 1, workspace: { phase: 'Bound' } });
    const claim = await readClaim(workspaceClaimName(d.name));

    // Two sessions never see each other's files.
    await waitForSession(w, other.name, (s) => s.status?.phase === 'Running', 'Running');
    const [look] = await scriptAgent(w.emu.url, other.work.data.id, [bash('cat kept.txt 2>&1 || echo absent')]);
    expect(resultText((await waitForToolResults(w.emu.url, other.work.data.id, [look!], { timeoutMs: 60_000 })).get(look!))).toContain('absent');
    await scriptAgent(w.emu.url, other.work.data.id, [terminated()]);

    const next = await wake(env, d.work.data.id);
    const resumed = await waitForSession(w, d.name, (s) => s.status?.phase === 'Running' && s.status.workId === next.work.id, 'Running its second work item');
    expect(resumed.status?.podName).toBe(podName(d.name, next.work.id));
    const [read] = await scriptAgent(w.emu.url, d.work.data.id, [bash('cat kept.txt')]);
    expect(resultText((await waitForToolResults(w.emu.url, d.work.data.id, [read!], { timeoutMs: 60_000 })).get(read!)).trim()).toBe('built-in-item-1');
    // The same claim, one Pod of the session at a time, two items served.
    expect((await readClaim(workspaceClaimName(d.name)))?.metadata?.uid).toBe(claim?.metadata?.uid);
    expect((await podsOf(d.name)).map((p) => p.metadata?.name)).toEqual([podName(d.name, next.work.id)]);
    expect((await getSession(w, d.name)).status?.workItems).toBe(2);
    await scriptAgent(w.emu.url, d.work.data.id, [terminated()]);
  });

  it('deletes the workspace of a session terminated in the API, and keeps one retained by reclaimPolicy: Retain', async () => {
    const env = await createEnvironment(w, 'ws-retain', undefined, { idleTimeoutSeconds: 5, workspace: workspace({ reclaimPolicy: 'Retain' }) });
    const kept = await dispatch(w, env);
    await waitForSession(w, kept.name, (s) => s.status?.workspace?.phase === 'Bound', 'a bound workspace');
    const deleting = await createEnvironment(w, 'ws-delete', undefined, { idleTimeoutSeconds: 5, workspace: workspace() });
    const d = await dispatch(w, deleting);
    await waitForSession(w, d.name, (s) => s.status?.workspace?.phase === 'Bound', 'a bound workspace');

    for (const s of [kept, d]) {
      await scriptAgent(w.emu.url, s.work.data.id, [terminated()]);
    }
    await waitFor(() => sessionGone(d.name), { what: 'the terminated session to be deleted', timeoutMs: 60_000 });
    await waitFor(async () => (await claimsOf(d.name)).length === 0, { what: 'its workspace claim to be deleted', timeoutMs: 60_000 });

    await waitFor(() => sessionGone(kept.name), { what: 'the retained session\'s record to be deleted', timeoutMs: 60_000 });
    const retained = await readClaim(workspaceClaimName(kept.name));
    expect(retained?.metadata?.deletionTimestamp).toBeUndefined();
    expect(retained?.metadata?.ownerReferences ?? []).toEqual([]);
    expect(retained?.metadata?.labels?.['agentenv.io/retained']).toBe('true');
  });

  it('deleting the AgentEnvironment leaves no workspace claim behind', async () => {
    const env = await createEnvironment(w, 'ws-envdel', undefined, { workspace: workspace() });
    const d = await dispatch(w, env);
    await waitForSession(w, d.name, (s) => s.status?.phase === 'Running' && s.status.workspace?.phase === 'Bound', 'Running on a bound workspace');
    await w.admin.delete(AGENT_ENVIRONMENTS, w.namespace, env.env.metadata?.name ?? '');
    await waitFor(() => sessionGone(d.name), { what: 'the AgentSession to be deleted with its environment', timeoutMs: 90_000 });
    await waitFor(async () => (await claimsOf(d.name)).length === 0, { what: 'no workspace claim left', timeoutMs: 60_000 });
    await waitForWork(w, env, d.work.id, 'stopped');
  });

  it('a claim that stays Pending ends the start in WorkspaceUnavailable: a Warning and a force-stop', async () => {
    const env = await createEnvironment(w, 'ws-pending', undefined, { startDeadlineSeconds: 10, workspace: { volumeClaimTemplate: { spec: { ...claimSpec, storageClassName: 'no-such-class' } } } });
    const d = await dispatch(w, env);
    const failed = await waitForSession(w, d.name, (s) => s.status?.phase === 'Failed', 'Failed', 60_000);
    expect(failed.status).toMatchObject({ reason: 'WorkspaceUnavailable', workspace: { phase: 'Pending' } });
    expect(await eventsOf(w, d.name)).toContainEqual(expect.objectContaining({ type: 'Warning', reason: 'WorkspaceUnavailable' }));
    await waitForWork(w, env, d.work.id, 'stopped');
    expect(w.stops).toContainEqual({ environmentId: env.environmentId, workId: d.work.id, force: true });
  });
});

describe('a returning session served while a duplicate delivery of its new item waits on its ack', () => {
  it('is never settled as NotAcknowledged from the reading that hand-off took before the item was served', async () => {
    const env = await createEnvironment(w, 'ws-duplicate', undefined, { idleTimeoutSeconds: 5, workspace: workspace() });
    const d = await dispatch(w, env);
    await waitForSession(w, d.name, (s) => s.status?.phase === 'Running', 'Running');
    await scriptAgent(w.emu.url, d.work.data.id, [endTurn()]);
    await idle(d.name);
    // The record moved forward to item 2, not acknowledged yet: what a duplicate delivery's hand-off
    // reads before its own ack, which answers 409 once the item has been served (the chaos run's
    // duplicate-delivery windows slow acks to 1.5 s).
    const next = await wake(env, d.work.data.id);
    expect(next.session.status).toMatchObject({ workItems: 1, phase: 'Succeeded' });
    await waitForSession(w, d.name, (s) => s.status?.phase === 'Running' && s.status.workId === next.work.id, 'Running its second work item');
    await scriptAgent(w.emu.url, d.work.data.id, [endTurn()]);
    const served = await waitForSession(w, d.name, (s) => s.status?.workId === next.work.id && s.status.phase === 'Succeeded', 'its second item Succeeded', 90_000);
    await waitForWork(w, env, next.work.id, 'stopped');

    // The 409's settle, from that reading.
    expect(await settleSession({ store: kubeRecordStore(w.operator), api: env.worker, now: () => new Date() }, next.session)).toBe('none');
    const after = await getSession(w, d.name);
    expect(after.status).toMatchObject({ phase: 'Succeeded', reason: served.status?.reason, workId: next.work.id, workItems: 2, acknowledgedAt: served.status?.acknowledgedAt });
    await scriptAgent(w.emu.url, d.work.data.id, [terminated()]);
  });
});

describe('the operator killed between the claim and the Pod', () => {
  it('converges on one claim and one Pod', async () => {
    const env = await createEnvironment(w, 'ws-restart', undefined, { workspace: workspace() });
    let d: Dispatched | undefined;
    await w.restartController(async () => {
      // The dead operator's life: recorded, acknowledged, the claim created — and no Pod.
      d = await dispatch(w, env);
      const claim = desiredWorkspaceClaim(d.session, { volumeClaimTemplate: { spec: claimSpec }, reclaimPolicy: 'Delete', retainSecondsAfterLastWork: 60 });
      claim.metadata!.labels![RECLAIM_POLICY_LABEL] = 'Delete';
      await w.operator.create(CORE.persistentvolumeclaims, w.namespace, claim);
    });
    const before = await readClaim(workspaceClaimName(d!.name));
    // The next life's dispatcher settles the record it did not see acknowledged.
    await settleSession({ store: kubeRecordStore(w.operator), api: env.worker, now: () => new Date() }, await w.admin.get<AgentSession>(AGENT_SESSIONS, w.namespace, d!.name));
    await waitForSession(w, d!.name, (s) => s.status?.phase === 'Running', 'Running');
    expect((await claimsOf(d!.name)).map((c) => c.metadata?.uid)).toEqual([before?.metadata?.uid]);
    expect(await podsOf(d!.name)).toHaveLength(1);
    await scriptAgent(w.emu.url, d!.work.data.id, [terminated()]);
  });
});
