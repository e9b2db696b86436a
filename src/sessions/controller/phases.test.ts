import { describe, expect, it } from 'vitest';
import type { Work } from '../../api/wire.ts';
import { MemoryEventRecorder } from '../../k8s/events.ts';
import type { KubeRest } from '../../k8s/rest.ts';
import { silentLogger } from '../../telemetry/logger.ts';
import { agentEnvironment, agentSession, at, NAMESPACE, POD, running, SESSION, WORK_ID } from '../fixtures.test-support.ts';
import type { Pod } from '../objects/pod-types.ts';
import { Acknowledgements } from './acknowledgements.ts';
import { reconcilerDeps, type ReconcilerDeps } from './deps.ts';
import { launch, observeWork, tidy } from './phases.ts';
import { settingsOf, type SessionScope } from './scope.ts';

const item = (state: Work['state']): Work => ({ id: WORK_ID, type: 'work', environment_id: 'env_1', data: { id: 'sesn_01', type: 'session' }, state, metadata: {}, created_at: 't' });

/** The phases' deps over a Kubernetes client that records what it is asked and an API that serves one work item. */
function world(o: { work?: Work } = {}) {
  const calls: string[] = [];
  const rest = {
    create: async (t: { plural: string }, _ns: string, obj: Pod) => (calls.push(`create ${t.plural} ${obj.metadata?.name}`), obj),
    delete: async (t: { plural: string }, _ns: string, name: string) => void calls.push(`delete ${t.plural} ${name}`),
  } as unknown as KubeRest;
  const deps: ReconcilerDeps = reconcilerDeps({
    rest,
    events: new MemoryEventRecorder(),
    apiClient: () => ({
      getWork: async () => (calls.push('getWork'), o.work ?? item('active')),
      stopWork: async () => (calls.push('stopWork'), o.work ?? item('stopped')),
      getSession: async () => (calls.push('getSession'), { id: 'sesn_1', status: 'running' }),
    }),
    workCredential: async () => ({ kind: 'bearer', value: 'env-key' }),
    sidecar: { image: 'agentenv:test', imagePullPolicy: 'IfNotPresent' },
    baseUrl: 'https://api.example.test',
    podsOf: () => [],
    acknowledgements: new Acknowledgements(),
    now: () => at(1),
  });
  return { deps, calls };
}

function scope(o: { session?: ReturnType<typeof agentSession>; ack?: Work; pods?: Pod[] } = {}): SessionScope {
  const env = agentEnvironment();
  const fixture = o.session ?? agentSession().acknowledged();
  return {
    key: `${NAMESPACE}/${SESSION}`,
    namespace: NAMESPACE,
    name: SESSION,
    session: fixture.session,
    record: fixture.session,
    ack: o.ack ? { work: o.ack, at: at(0) } : undefined,
    env,
    settings: settingsOf(env),
    pods: o.pods ?? [],
    podName: POD,
    log: silentLogger,
    signal: new AbortController().signal,
    now: at(1),
  };
}

describe('observe work', () => {
  it('the ack reply this process holds stands in for the read while no Pod is seen', async () => {
    const { deps, calls } = world();
    expect(await observeWork(deps, scope({ ack: item('starting') }))).toEqual({ kind: 'found', work: item('starting') });
    expect(calls).toEqual([]);
  });

  it('with the Pod in the cache the item is read from the API', async () => {
    const { deps, calls } = world({ work: item('active') });
    const pod = agentSession().withPod(running()).pod!;
    expect(await observeWork(deps, scope({ ack: item('starting'), pods: [pod] }))).toEqual({ kind: 'found', work: item('active') });
    expect(calls).toEqual(['getWork']);
  });

  it('a record that does not acknowledge its item reads nothing', async () => {
    const { deps, calls } = world();
    expect(await observeWork(deps, scope({ session: agentSession() }))).toMatchObject({ kind: 'unknown' });
    expect(calls).toEqual([]);
  });
});

describe('launch: the only place a Pod is created', () => {
  it('creates the Pod of a starting item with no Pod seen', async () => {
    const { deps, calls } = world();
    const launched = await launch(deps, scope(), { kind: 'found', work: item('starting') });
    expect(launched?.pod?.metadata?.name).toBe(POD);
    expect(calls).toEqual([`create pods ${POD}`]);
  });

  it.each([
    ['an active item', item('active'), []],
    ['a starting item whose Pod is in the cache', item('starting'), [agentSession().withPod(running()).pod!]],
  ])('creates nothing for %s', async (_rule, work, pods) => {
    const { deps, calls } = world();
    expect(await launch(deps, scope({ pods }), { kind: 'found', work })).toBeUndefined();
    expect(calls).toEqual([]);
  });
});

describe('tidy', () => {
  it('deletes the Pods of earlier work items and their Secrets, never the current one', async () => {
    const { deps, calls } = world();
    const current = agentSession().withPod(running()).pod!;
    const earlier = agentSession().withPod(running(), { name: `${SESSION}-old` }).pod!;
    await tidy(deps, scope({ pods: [current, earlier] }));
    expect(calls).toEqual([`delete pods ${SESSION}-old`, `delete secrets ${SESSION}-old`]);
  });
});
