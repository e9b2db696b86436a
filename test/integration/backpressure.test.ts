/**
 * Backpressure against the real apiserver (its ResourceQuota and LimitRanger admission plugins and
 * the quota controller), the in-process emulator and operator, and the process kubelet running the
 * real sidecar: dispatch stops before claiming work whose session Pod the namespace would refuse,
 * says why in `Dispatching=False`, and resumes on its own; the per-environment metrics, scraped
 * from the operator's /metrics, show the waiting work.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Work } from '../../src/api/wire.ts';
import { LABELS } from '../../src/crd/meta.ts';
import { AGENT_ENVIRONMENTS, AGENT_SESSIONS, type AgentEnvironment, type AgentSession } from '../../src/crd/resources.ts';
import { CORE, resource, type KubeObject } from '../../src/k8s/rest.ts';
import { waitFor } from '../support/cluster.ts';
import { createEnvironment, environmentFixture, waitForReady, type EnvironmentFixture } from '../support/environments.ts';

let f: EnvironmentFixture;
beforeAll(async () => {
  // Queue figures refreshed every second, so the per-environment metrics show the waiting work.
  f = await environmentFixture('backpressure', { kubeconfig: inject('operatorKubeconfig'), timings: { queueRefreshMs: 1_000 } });
});
afterAll(async () => {
  await f?.cleanup();
});

const template = (limits?: Record<string, string>) => ({
  spec: { containers: [{ name: 'session', image: 'local/shell', command: ['/bin/sh', '-c', 'sleep 3600'], ...(limits ? { resources: { limits } } : {}) }] },
});

interface Quota extends KubeObject {
  spec: { hard: Record<string, string> };
  status?: { hard?: Record<string, string>; used?: Record<string, string> };
}

/** A remote self-hosted environment, its key in a Secret, and a Ready AgentEnvironment adopting it. */
async function selfHostedEnvironment(name: string, sessionTemplate: Record<string, unknown>): Promise<{ environmentId: string }> {
  const remote = await f.console.createEnvironment({ name, config: { type: 'self_hosted' } });
  await f.admin.create(CORE.secrets, f.ns.name, { metadata: { name: `${name}-key` }, stringData: { key: f.emu.admin.mintKey(remote.id) } } as KubeObject);
  await createEnvironment(f.admin, f.ns.name, name, { environmentId: remote.id, selfHosted: { environmentKeySecretRef: { name: `${name}-key`, key: 'key' }, sessionTemplate, maxSessions: 5 } });
  await waitForReady(f.admin, f.ns.name, name);
  return { environmentId: remote.id };
}

const sessionsOf = async (env: string): Promise<AgentSession[]> => (await f.admin.list<AgentSession>(AGENT_SESSIONS, f.ns.name, { labelSelector: `${LABELS.environment}=${env}` })).items;
const workStates = (ids: readonly string[]): Array<Work['state'] | undefined> => ids.map((id) => (f.emu.state.snapshot()['work'] as Work[]).find((w) => w.id === id)?.state);
const dispatching = async (env: string) => (await f.admin.get<AgentEnvironment>(AGENT_ENVIRONMENTS, f.ns.name, env)).status?.conditions?.find((c) => c.type === 'Dispatching');

/** The operator's /metrics, as Prometheus scrapes it. */
async function scrape(): Promise<string> {
  const started = f.op.logLines.filter((l) => l.includes('"operator starting"')).map((l) => JSON.parse(l) as { metricsPort?: number })[0];
  const res = await fetch(`http://127.0.0.1:${started?.metricsPort}/metrics`);
  return res.text();
}

/** The value of one series, by its exact labels (undefined when absent). */
const sample = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe('backpressure', () => {
  it('a ResourceQuota with room for one more Pod: one session runs, dispatch stops with a readable condition and claims nothing more; raising the quota serves the waiting work', async () => {
    // Room for exactly one session Pod, counted by the quota controller before anything is dispatched.
    await f.admin.create<Quota>(CORE.resourceQuotas, f.ns.name, { metadata: { name: 'sessions' }, spec: { hard: { pods: '1' } } });
    await waitFor(async () => (await f.admin.get<Quota>(CORE.resourceQuotas, f.ns.name, 'sessions')).status?.hard?.['pods'] === '1', { what: 'the quota counted' });
    const e = await selfHostedEnvironment('quota', template());
    const items = Array.from({ length: 3 }, () => f.emu.admin.createSession(e.environmentId).work_id);

    const paused = await waitFor(async () => {
      const c = await dispatching('quota');
      return c?.status === 'False' ? c : undefined;
    }, { what: 'Dispatching=False', timeoutMs: 60_000 });
    expect(paused).toMatchObject({ reason: 'QuotaExhausted' });
    expect(paused.message).toContain(`session Pods do not fit ResourceQuota sessions in namespace ${f.ns.name}: pods: 1 of 1 used, a session Pod needs 1`);
    await waitFor(async () => (await sessionsOf('quota')).some((s) => s.status?.phase === 'Running'), { what: 'the one session Running', timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 3_000)); // several long polls' worth: nothing more is claimed
    // No claimed-then-killed session: one record, Running; the others never left the queue.
    const records = await sessionsOf('quota');
    expect(records.map((s) => s.status?.phase)).toEqual(['Running']);
    expect(workStates(items).sort()).toEqual(['active', 'queued', 'queued']);
    expect(f.op.apiCalls.filter((c) => c.endpoint.startsWith('work.stop'))).toEqual([]);
    // The signals a scaler reads: two items waiting, one session active, dispatch paused.
    const labels = `{environment_namespace="${f.ns.name}",environment="quota"}`;
    await waitFor(async () => sample(await scrape(), `agentenv_environment_queue_depth${labels}`) === 2, { what: 'queue depth 2 in the metrics', timeoutMs: 15_000 });
    const metrics = await scrape();
    expect(sample(metrics, `agentenv_environment_dispatching${labels}`)).toBe(0);
    expect(sample(metrics, `agentenv_environment_sessions_active${labels}`)).toBe(1);
    expect(sample(metrics, `agentenv_environment_queue_oldest_age_seconds${labels}`)).toBeGreaterThan(0);
    expect(sample(metrics, `agentenv_environment_workers_polling${labels}`)).toEqual(expect.any(Number));
    expect(sample(metrics, `agentenv_environment_claim_latency_seconds_count{environment_namespace="${f.ns.name}",environment="quota",start="cold"}`)).toBe(1);

    // Raise the quota: the quota's status shows room, dispatch resumes by itself and serves the rest
    // (with room to spare, so it keeps polling).
    await f.admin.patch(CORE.resourceQuotas, f.ns.name, 'sessions', { spec: { hard: { pods: '4' } } }, 'merge');
    await waitFor(async () => (await sessionsOf('quota')).filter((s) => s.status?.phase === 'Running').length === 3, { what: 'three sessions Running', timeoutMs: 90_000 });
    expect(workStates(items)).toEqual(['active', 'active', 'active']);
    await waitFor(async () => (await dispatching('quota'))?.status === 'True', { what: 'Dispatching=True', timeoutMs: 30_000 });
    await f.admin.delete(CORE.resourceQuotas, f.ns.name, 'sessions');
  }, 240_000);

  it('a LimitRange that refuses the session Pods: the claimed item fails as before, dispatch holds with the LimitRange\'s words, and resumes on its own once a dry run admits the next Pod', async () => {
    const limitRanges = resource('', 'v1', 'limitranges', 'LimitRange');
    await f.admin.create(limitRanges, f.ns.name, { metadata: { name: 'small' }, spec: { limits: [{ type: 'Container', max: { cpu: '200m' } }] } } as KubeObject);
    // Small figures: once the LimitRange is gone the Pod must also fit the node (the test kubelet schedules by requests).
    const e = await selfHostedEnvironment('limits', template({ cpu: '300m' }));
    const first = f.emu.admin.createSession(e.environmentId).work_id;
    const failed = await waitFor(async () => (await sessionsOf('limits')).find((s) => s.status?.phase === 'Failed'), { what: 'the claimed session Failed', timeoutMs: 60_000 });
    expect(failed.status).toMatchObject({ reason: 'PodCreateRefused' });
    expect(failed.status?.message).toContain('maximum cpu usage per Container is 200m, but limit is 300m');
    const held = await waitFor(async () => {
      const c = await dispatching('limits');
      return c?.status === 'False' ? c : undefined;
    }, { what: 'Dispatching=False', timeoutMs: 30_000 });
    expect(held).toMatchObject({ reason: 'LimitRangeRefused' });
    expect(held.message).toContain(`a LimitRange in namespace ${f.ns.name} refuses session Pods: `);

    // Held: new work stays queued.
    const second = f.emu.admin.createSession(e.environmentId).work_id;
    await new Promise((r) => setTimeout(r, 3_000));
    expect(workStates([first, second])).toEqual(['stopped', 'queued']);

    // The LimitRange goes: the next dry run admits the Pod, dispatch resumes and serves the waiting item.
    await f.admin.delete(limitRanges, f.ns.name, 'small');
    await waitFor(async () => (await sessionsOf('limits')).some((s) => s.spec.workId === second && s.status?.phase === 'Running'), { what: 'the waiting session Running', timeoutMs: 60_000 });
    await waitFor(async () => (await dispatching('limits'))?.status === 'True', { what: 'Dispatching=True', timeoutMs: 30_000 });
  }, 180_000);
});
