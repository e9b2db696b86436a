/**
 * The operator going away in the middle of a session's life: level-triggered reconciles pick up
 * where the last life stopped, from what Kubernetes and the API say (what was kept in memory — an
 * acknowledgement not yet written — is recovered by the settle pass).
 * Each test restarts the controller, so they run one after the other in their own namespace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_SESSIONS, type AgentSession } from '../../src/crd/resources.ts';
import { CORE } from '../../src/k8s/rest.ts';
import { podName, secretName } from '../../src/sessions/record/names.ts';
import { kubeRecordStore } from '../../src/sessions/record/record.ts';
import { settleSession } from '../../src/sessions/dispatch/settle.ts';
import { createNamespace, waitFor, type TestNamespace } from '../support/cluster.ts';
import { createEnvironment, dispatch, getPod, sessionTemplate, startSessionsWorld, waitForSession, waitForWork, type SessionsWorld, type TestEnvironment } from './sessions.fixtures.ts';

let ns: TestNamespace;
let w: SessionsWorld;
let env: TestEnvironment;

beforeAll(async () => {
  ns = await createNamespace('sessions-restart');
  w = await startSessionsWorld(ns.name);
  env = await createEnvironment(w, 'restart', sessionTemplate(), { leaseTTLSeconds: 10 });
});

afterAll(async () => {
  await w?.stop();
  await ns?.cleanup();
});

const gone = async (t: typeof AGENT_SESSIONS | typeof CORE.secrets, name: string): Promise<boolean> => {
  try {
    await w.admin.get(t, w.namespace, name);
    return false;
  } catch {
    return true;
  }
};

describe('the operator restarted', () => {
  it('between acknowledgement and Pod creation: the settle pass adopts the record and the next life launches exactly one Pod', async () => {
    let d: Awaited<ReturnType<typeof dispatch>> | undefined;
    await w.restartController(async () => {
      d = await dispatch(w, env); // recorded and acknowledged while no controller runs: the acknowledgement was never written
    });
    expect((await w.admin.get<AgentSession>(AGENT_SESSIONS, w.namespace, d!.name)).status?.acknowledgedAt).toBeUndefined();
    // What the next life's dispatcher does on start (dispatcher-set.ts): settle records not acknowledged.
    const settled = await settleSession({ store: kubeRecordStore(w.operator), api: env.worker, now: () => new Date() }, await w.admin.get<AgentSession>(AGENT_SESSIONS, w.namespace, d!.name));
    expect(settled).toBe('adopted');
    const s = await waitForSession(w, d!.name, (x) => x.status?.phase === 'Running', 'Running');
    expect(s.status?.podName).toBe(podName(d!.name, d!.work.id));
    const pods = await w.admin.list(CORE.pods, w.namespace, { labelSelector: `agentenv.io/session=${d!.name}` });
    expect(pods.items).toHaveLength(1);
    await w.api.stopWork(env.environmentId, d!.work.id, { force: true });
  });

  it('while deleting an AgentSession: the next life stops the work and releases the record', async () => {
    const d = await dispatch(w, env);
    await waitForSession(w, d.name, (x) => x.status?.phase === 'Running', 'Running');
    await w.restartController(async () => {
      await w.admin.delete(AGENT_SESSIONS, w.namespace, d.name); // the finalizer waits for nobody
      expect((await w.api.getWork(env.environmentId, d.work.id)).state).toBe('active');
    });
    await waitForWork(w, env, d.work.id, 'stopped');
    await waitFor(() => gone(AGENT_SESSIONS, d.name), { what: 'the AgentSession to be released' });
    await waitFor(() => gone(CORE.secrets, secretName(d.name, d.work.id)), { what: 'the Secret to be deleted' });
  });

  it('during a graceful stop: the next life sees it through', async () => {
    const d = await dispatch(w, env);
    await waitForSession(w, d.name, (x) => x.status?.phase === 'Running', 'Running');
    await w.admin.delete(AGENT_SESSIONS, w.namespace, d.name);
    await waitForWork(w, env, d.work.id, 'stopping');
    await w.restartController();
    await waitForWork(w, env, d.work.id, 'stopped');
    await waitFor(() => gone(AGENT_SESSIONS, d.name), { what: 'the AgentSession to be released' });
    const pod = await getPod(w, podName(d.name, d.work.id));
    expect(!pod || pod.metadata?.deletionTimestamp || pod.status?.phase === 'Succeeded').toBeTruthy();
  });
});
