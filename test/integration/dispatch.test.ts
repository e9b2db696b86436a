/**
 * Dispatch against the real apiserver as the operator's ServiceAccount, the in-process emulator and
 * the in-process operator and the process kubelet running the real sidecar: capacity,
 * record-before-ack across an operator restart at each crash point, convergence of a duplicate
 * delivery, an idle environment that polls without writing to Kubernetes, and the whole path end to end.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Work } from '../../src/api/wire.ts';
import { LABELS } from '../../src/crd/meta.ts';
import { AGENT_SESSIONS, type AgentEnvironment, type AgentSession } from '../../src/crd/resources.ts';
import { CORE, type KubeObject } from '../../src/k8s/rest.ts';
import { podName, sessionName } from '../../src/sessions/record/names.ts';
import { DEFAULT_IMAGE } from '../../src/config/operator.ts';
import { desiredPod } from '../../src/sessions/objects/pod.ts';
import { kubeRecordStore, recordClaim } from '../../src/sessions/record/record.ts';
import { operatorRest, waitFor } from '../support/cluster.ts';
import { clientFor } from '../support/emulator.ts';
import { createEnvironment, deleteAndWait, environmentFixture, waitForReady, type EnvironmentFixture } from '../support/environments.ts';

let f: EnvironmentFixture;
beforeAll(async () => {
  f = await environmentFixture('dispatch', { kubeconfig: inject('operatorKubeconfig') });
});
afterAll(async () => {
  await f?.cleanup();
});

const TEMPLATE = { spec: { containers: [{ name: 'session', image: 'local/shell', command: ['/bin/sh', '-c', 'sleep 3600'] }] } };

interface SelfHosted {
  readonly environmentId: string;
  readonly envKey: string;
  readonly env: AgentEnvironment;
}

/** A remote self-hosted environment, its key in a Secret, and a Ready AgentEnvironment adopting it. */
async function selfHostedEnvironment(name: string, maxSessions: number): Promise<SelfHosted> {
  const remote = await f.console.createEnvironment({ name, config: { type: 'self_hosted' } });
  const envKey = f.emu.admin.mintKey(remote.id);
  await f.admin.create(CORE.secrets, f.ns.name, { metadata: { name: `${name}-key` }, stringData: { key: envKey } } as KubeObject);
  await createEnvironment(f.admin, f.ns.name, name, {
    environmentId: remote.id,
    selfHosted: { environmentKeySecretRef: { name: `${name}-key`, key: 'key' }, sessionTemplate: TEMPLATE, maxSessions },
  });
  const env = await waitForReady(f.admin, f.ns.name, name);
  return { environmentId: remote.id, envKey, env };
}

const sessionsOf = async (env: string): Promise<AgentSession[]> =>
  (await f.admin.list<AgentSession>(AGENT_SESSIONS, f.ns.name, { labelSelector: `${LABELS.environment}=${env}` })).items;
const workState = (id: string): Work['state'] | undefined => (f.emu.state.snapshot()['work'] as Work[]).find((w) => w.id === id)?.state;
const acknowledged = (s: AgentSession): boolean => s.status?.workId === s.spec.workId && Boolean(s.status?.acknowledgedAt);

describe('end to end through the operator', () => {
  it('queued sessions become AgentSessions and Pods whose sidecars hold the leases; remote stops end every one cleanly', async () => {
    const N = 4;
    const e = await selfHostedEnvironment('e2e', N);
    const items = Array.from({ length: N }, () => f.emu.admin.createSession(e.environmentId));
    await waitFor(() => items.every((i) => workState(i.work_id) === 'active'), { what: `${N} leases claimed by sidecars`, timeoutMs: 120_000, intervalMs: 250 });
    const records = await waitFor(async () => {
      const all = await sessionsOf('e2e');
      return all.length === N && all.every((s) => s.status?.phase === 'Running') ? all : undefined;
    }, { what: `${N} AgentSessions Running`, timeoutMs: 60_000 });
    expect(new Set(records.map((s) => s.spec.workId))).toEqual(new Set(items.map((i) => i.work_id)));
    const pods = (await f.admin.list(CORE.pods, f.ns.name, { labelSelector: `${LABELS.environment}=e2e` })).items;
    expect(pods).toHaveLength(N);

    for (const i of items) await f.console.stopWork(e.environmentId, i.work_id);
    await waitFor(() => items.every((i) => workState(i.work_id) === 'stopped'), { what: 'every item stopped', timeoutMs: 90_000, intervalMs: 250 });
    await waitFor(async () => (await sessionsOf('e2e')).every((s) => s.status?.phase === 'Succeeded'), { what: 'every AgentSession Succeeded', timeoutMs: 60_000 });
    await waitFor(async () => {
      const left = (await f.admin.list<KubeObject & { status?: { phase?: string } }>(CORE.pods, f.ns.name, { labelSelector: `${LABELS.environment}=e2e` })).items;
      return left.every((p) => p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed');
    }, { what: 'no session Pod left running', timeoutMs: 60_000 });

    // Deleting the environment stops its dispatcher and lets it go (nothing is left running to drain).
    await deleteAndWait(f.admin, f.ns.name, 'e2e', 60_000);
    expect(f.emu.state.environments.get(e.environmentId).archived_at).toEqual(expect.any(String));
  }, 300_000);
});

describe('dispatch', () => {
  it('with maxSessions N and N+3 queued sessions, exactly N are recorded and acknowledged and 3 stay queued', async () => {
    const N = 3;
    const e = await selfHostedEnvironment('capacity', N);
    const items = Array.from({ length: N + 3 }, () => f.emu.admin.createSession(e.environmentId));
    await waitFor(async () => (await sessionsOf('capacity')).filter(acknowledged).length === N, { what: `${N} acknowledged AgentSessions` });
    await new Promise((r) => setTimeout(r, 2_500)); // more than two long polls: nothing more is claimed
    const records = await sessionsOf('capacity');
    expect(records).toHaveLength(N);
    const states = items.map((i) => workState(i.work_id));
    expect(states.filter((s) => s === 'queued')).toHaveLength(3);
    expect(states.filter((s) => s !== 'queued')).toHaveLength(N);
    for (const s of records) {
      expect(s.metadata?.ownerReferences).toEqual([expect.objectContaining({ kind: 'AgentEnvironment', name: 'capacity', controller: true, blockOwnerDeletion: true })]);
      expect(s.metadata?.finalizers).toContain('agentenv.io/session');
      expect(s.spec).toMatchObject({ environmentRef: { name: 'capacity' }, environmentId: e.environmentId });
      expect(items.map((i) => i.work_id)).toContain(s.spec.workId);
      // No per-item secret: no per-item Secret either; the sidecar alone mounts the environment key's.
      expect(s.spec.workSecret).toBe(false);
    }
    expect((await f.admin.list(CORE.secrets, f.ns.name, { labelSelector: `${LABELS.environment}=capacity` })).items).toEqual([]);
    const pods = await waitFor(async () => {
      const all = (await f.admin.list<KubeObject & { spec: { volumes?: Array<{ name: string; secret?: unknown }> } }>(CORE.pods, f.ns.name, { labelSelector: `${LABELS.environment}=capacity` })).items;
      return all.length === N ? all : undefined;
    }, { what: `${N} session Pods` });
    for (const p of pods) expect(p.spec.volumes?.find((v) => v.name === 'agentenv-credential')?.secret).toEqual({ secretName: 'capacity-key', items: [{ key: 'key', path: 'token' }], defaultMode: 0o444 });
    const env = await waitForReady(f.admin, f.ns.name, 'capacity');
    expect(env.status?.conditions).toContainEqual(expect.objectContaining({ type: 'Dispatching', status: 'True' }));
  });

  it('an idle environment long-polls about once a second and writes nothing to Kubernetes', async () => {
    await selfHostedEnvironment('idle', 2);
    await waitFor(async () => (await waitForReady(f.admin, f.ns.name, 'idle')).status?.conditions?.some((c) => c.type === 'Dispatching' && c.status === 'True'), { what: 'Dispatching=True' });
    await new Promise((r) => setTimeout(r, 1_000)); // trailing writes of the first passes
    f.op.resetCounters();
    await new Promise((r) => setTimeout(r, 4_000));
    const idlePolls = f.op.apiCalls.filter((c) => c.endpoint === 'work.poll');
    expect(f.op.kubeWrites()).toEqual([]);
    // One poller per environment ('capacity' is full, so only 'idle' polls): ~4 long polls of 999 ms.
    expect(idlePolls.length).toBeGreaterThanOrEqual(3);
    expect(idlePolls.length).toBeLessThanOrEqual(6);
  });

  // The environment has no per-item secrets (the emulator's default), so a record is complete as
  // created: no per-item Secret is written, and the sidecar mounts the environment key's Secret.
  // The per-item Secret's own crash points are covered in test/api/dispatcher.test.ts.
  describe.each([
    ['after recording the AgentSession, before acknowledging', 'restart-record', 'recorded'],
    ['after acknowledging, before the Pod and the recorded acknowledgement', 'restart-acked', 'acknowledged'],
    ['after acknowledging and creating the Pod, before recording the acknowledgement', 'restart-pod', 'podCreated'],
  ] as const)('the operator died %s', (_when, name, reached) => {
    it('the restarted operator converges on one acknowledged AgentSession and exactly one Pod that claims the lease, with no per-item Secret', async () => {
      const e = await selfHostedEnvironment(name, 5);
      await f.op.stop();
      const { session_id, work_id } = f.emu.admin.createSession(e.environmentId);
      // What the dead operator did: claim the item, record it, maybe ack it and create its Pod, and die.
      const worker = clientFor(f.emu, { kind: 'bearer', value: e.envKey });
      const claimed = await worker.pollWork(e.environmentId, { workerId: 'dead-operator/0', blockMs: 999 });
      expect(claimed?.id).toBe(work_id);
      const store = kubeRecordStore(operatorRest());
      const { session } = await recordClaim(store, e.env, { sessionId: session_id, workId: work_id, environmentId: e.environmentId, workerId: 'dead-operator/0', claimedAt: new Date(), workSecret: false });
      if (reached !== 'recorded') await worker.ackWork(e.environmentId, work_id);
      if (reached === 'podCreated') {
        const build = desiredPod({ session, env: e.env, sidecar: { image: `${DEFAULT_IMAGE}:latest`, imagePullPolicy: 'IfNotPresent' }, baseUrl: f.emu.url });
        if (!build.ok) throw new Error(build.message);
        await operatorRest().create(CORE.pods, f.ns.name, build.pod);
      }
      expect(workState(work_id)).toBe(reached === 'recorded' ? 'queued' : 'starting');

      await f.restartOperator();
      const record = sessionName(name, session_id);
      await waitFor(async () => (await sessionsOf(name)).some((s) => s.metadata?.name === record && acknowledged(s)), { what: 'the record acknowledged', timeoutMs: 40_000 });
      expect(workState(work_id)).not.toBe('queued');
      const records = await sessionsOf(name);
      expect(records.map((s) => s.metadata?.name)).toEqual([record]);
      expect(records[0]?.spec).toMatchObject({ workId: work_id, workSecret: false });
      expect((await f.admin.list(CORE.secrets, f.ns.name, { labelSelector: `${LABELS.session}=${record}` })).items).toEqual([]);
      // Exactly one Pod runs it: its sidecar claims the lease.
      await waitFor(() => workState(work_id) === 'active', { what: 'the lease claimed by the session Pod', timeoutMs: 60_000 });
      const pods = (await f.admin.list(CORE.pods, f.ns.name, { labelSelector: `${LABELS.session}=${record}` })).items;
      expect(pods.map((p) => p.metadata?.name)).toEqual([podName(record, work_id)]);
    });
  });
});
