/**
 * The environment-key fallback (no per-item token) and
 * acknowledged work is never stranded: a session Pod that cannot start ends in a force-stop of
 * the work item with the reason on the AgentSession and in a Warning event.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLACEHOLDER_WORK_SECRET } from '../../src/contract/sidecar.ts';
import { CORE } from '../../src/k8s/rest.ts';
import { podName, secretName } from '../../src/sessions/record/names.ts';
import { createNamespace, waitFor, type TestNamespace } from '../support/cluster.ts';
import { faultHits } from '../support/emulator.ts';
import { createEnvironment, dispatch, eventsOf, getPod, processesOfWork, sessionTemplate, startSessionsWorld, waitForSession, waitForWork, type SessionsWorld } from './sessions.fixtures.ts';

let ns: TestNamespace;
let w: SessionsWorld;

beforeAll(async () => {
  ns = await createNamespace('sessions-failures');
  // No per-item tokens here: the sidecar's credential is the environment key.
  w = await startSessionsWorld(ns.name, { workSecrets: false });
});

afterAll(async () => {
  await w?.stop();
  await ns?.cleanup();
});

const failed = (name: string) => waitForSession(w, name, (s) => s.status?.phase === 'Failed', 'Failed', 90_000);

describe.concurrent('a session Pod that cannot start', () => {
  it('an image that cannot be pulled force-stops the item: ImagePullFailed', async () => {
    const env = await createEnvironment(w, 'badimage', sessionTemplate({ image: 'registry.invalid/no-such-image:1' }));
    const d = await dispatch(w, env);
    const done = await failed(d.name);
    expect(done.status?.reason).toBe('ImagePullFailed');
    // The kubelet's own words: which container, ErrImagePull or ImagePullBackOff, and the image.
    expect(done.status?.message).toMatch(/^image pull failed: .*(ErrImagePull|ImagePullBackOff).*registry\.invalid\/no-such-image:1/);
    await waitForWork(w, env, d.work.id, 'stopped');
    expect(w.metrics.stopped).toContain('ImagePullFailed');
    await waitFor(async () => (await eventsOf(w, d.name)).some((e) => e.type === 'Warning' && e.reason === 'ImagePullFailed'), { what: 'a Warning event ImagePullFailed' });
    await waitFor(async () => {
      const pod = await getPod(w, podName(d.name, d.work.id));
      return !pod || Boolean(pod.metadata?.deletionTimestamp);
    }, { what: 'the Pod to be deleted' });
  });

  it('a Pod no node fits force-stops the item after startDeadlineSeconds: Unschedulable', async () => {
    const env = await createEnvironment(w, 'nowhere', sessionTemplate({ nodeSelector: { 'agentenv.io/test-no-such-node': 'true' } }), { startDeadlineSeconds: 10 });
    const d = await dispatch(w, env);
    const done = await failed(d.name);
    expect(done.status?.reason).toBe('Unschedulable');
    await waitForWork(w, env, d.work.id, 'stopped');
    await waitFor(async () => (await eventsOf(w, d.name)).some((e) => e.type === 'Warning' && e.reason === 'Unschedulable'), { what: 'a Warning event Unschedulable' });
  });

  it('requests larger than any node: the AgentSession says Unschedulable with the scheduler\'s reason while it waits, then the item is force-stopped with it', async () => {
    const template = sessionTemplate();
    const spec = template['spec'] as { containers: Array<Record<string, unknown>> };
    spec.containers[0]!['resources'] = { requests: { cpu: '4096', memory: '64Ti' } };
    const env = await createEnvironment(w, 'toolarge', template, { startDeadlineSeconds: 10 });
    const d = await dispatch(w, env);
    // Before the deadline: still Starting, the Pod's PodScheduled=False/Unschedulable message on the record.
    const waiting = await waitForSession(w, d.name, (s) => s.status?.reason === 'Unschedulable' && s.status.phase === 'Starting', 'Starting/Unschedulable', 30_000);
    expect(waiting.status?.message).toContain('Insufficient cpu, Insufficient memory');
    const done = await failed(d.name);
    expect(done.status?.reason).toBe('Unschedulable');
    expect(done.status?.message).toMatch(/not scheduled within startDeadlineSeconds \(10s\): .*Insufficient cpu/);
    await waitForWork(w, env, d.work.id, 'stopped');
    expect(w.metrics.stopped).toContain('Unschedulable');
  });

  it('force-stop replies that are garbage or cut short are retried with backoff, a bounded number of times, until the item is stopped', async () => {
    const env = await createEnvironment(w, 'garbledstop', sessionTemplate({ image: 'registry.invalid/no-such-image:2' }));
    const stops = `/v1/environments/${env.environmentId}/work/*/stop`;
    w.emu.admin.setFaults([
      { method: 'POST', path: stops, body: '<html>502 Bad Gateway</html>', count: 2 },
      { method: 'POST', path: stops, body: '{"id":"work_0123456789', body_bytes: 4096, truncate_at: 100, count: 2 },
      // Matches every later stop of this environment and serves it unchanged: counts them.
      { method: 'POST', path: stops, latency_ms: 0 },
    ]);
    const d = await dispatch(w, env);
    expect((await failed(d.name)).status?.reason).toBe('ImagePullFailed');
    await waitForWork(w, env, d.work.id, 'stopped');
    // Four bad replies, then the stop that lands: per-key backoff (the malformed ones) and the client's
    // own retries (the cut ones) — a handful of calls, where a loop without backoff makes hundreds.
    const hits = (await faultHits(w.emu.url)).filter((r) => r.path === stops).map((r) => r.hits);
    expect(hits.slice(0, 2)).toEqual([2, 2]);
    expect(hits[2]).toBeGreaterThanOrEqual(1);
    expect(hits[2]).toBeLessThanOrEqual(4);
    w.emu.admin.clearFaults();
  });

  it('a template that breaks the Restricted standard is refused: TemplateRefused, no Pod', async () => {
    const template = sessionTemplate();
    const spec = template['spec'] as { containers: Array<Record<string, unknown>> };
    spec.containers[0]!['securityContext'] = { privileged: true };
    const env = await createEnvironment(w, 'privileged', template);
    const d = await dispatch(w, env);
    const done = await failed(d.name);
    expect(done.status?.reason).toBe('TemplateRefused');
    expect(done.status?.message).toMatch(/privileged/);
    await waitForWork(w, env, d.work.id, 'stopped');
    expect(await getPod(w, podName(d.name, d.work.id))).toBeUndefined();
  });

  it('a Pod create refused by admission force-stops the item: PodCreateRefused', async () => {
    // The Priority admission plugin refuses a Pod naming a PriorityClass that does not exist.
    const template = sessionTemplate();
    (template['spec'] as Record<string, unknown>)['priorityClassName'] = 'agentenv-test-no-such-priority-class';
    const env = await createEnvironment(w, 'refused', template);
    const d = await dispatch(w, env);
    const done = await failed(d.name);
    expect(done.status?.reason).toBe('PodCreateRefused');
    await waitForWork(w, env, d.work.id, 'stopped');
  });
});

describe('without a per-item token', () => {
  it('the sidecar holds the environment key; the main container gets only the placeholder work secret', async () => {
    const env = await createEnvironment(w, 'envkey', sessionTemplate(), { leaseTTLSeconds: 10 });
    const d = await dispatch(w, env);
    await waitForSession(w, d.name, (s) => s.status?.phase === 'Running', 'Running');
    // No per-item Secret: the sidecar alone mounts the environment key's own Secret.
    await expect(w.admin.get(CORE.secrets, w.namespace, secretName(d.name, d.work.id))).rejects.toThrow(/not found/);
    const pod = (await getPod(w, podName(d.name, d.work.id)))!;
    expect(pod.spec.volumes?.find((v) => v.name === 'agentenv-credential')?.secret).toMatchObject({ secretName: 'envkey-key', items: [{ key: 'key', path: 'token' }] });
    for (const c of pod.spec.containers) expect((c.volumeMounts ?? []).map((m) => m.name)).not.toContain('agentenv-credential');
    expect((pod.spec.containers[0]!.env ?? []).find((e) => e.name === 'ANTHROPIC_WORK_SECRET')).toEqual({ name: 'ANTHROPIC_WORK_SECRET', value: PLACEHOLDER_WORK_SECRET });
    const procs = await waitFor(() => {
      const p = processesOfWork(d.work.id);
      return p.length ? p : undefined;
    }, { what: 'the main container process' });
    for (const p of procs) {
      expect(p.environ.join('\n')).not.toContain(env.envKey);
      expect(p.environ.filter((e) => e.startsWith('ANTHROPIC_WORK_SECRET='))).toEqual([`ANTHROPIC_WORK_SECRET=${PLACEHOLDER_WORK_SECRET}`]);
    }
    await w.api.stopWork(env.environmentId, d.work.id, { force: true });
    await waitForWork(w, env, d.work.id, 'stopped');
  });
});
