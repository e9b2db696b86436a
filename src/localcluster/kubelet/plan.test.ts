import { describe, expect, it } from 'vitest';
import { pod, shell } from './fixtures.test-support.ts';
import { decide, restartDelayMs, type ContainerRecord, type PodRecord } from './plan.ts';
import { podStatus } from './status.ts';

const NOW = 1_000_000;
const T = new Date(NOW).toISOString();
const running = (extra: Partial<ContainerRecord> = {}): ContainerRecord => ({ restartCount: 0, running: { startedAt: T }, started: true, ready: true, ...extra });
const exited = (exitCode: number, extra: Partial<ContainerRecord> = {}): ContainerRecord => ({ restartCount: 0, terminated: { exitCode, startedAt: T, finishedAt: T }, started: false, ready: false, ...extra });
const record = (containers: Record<string, ContainerRecord>, extra: Partial<PodRecord> = {}): PodRecord => ({ initialized: false, startTime: T, podIP: '127.1.2.3', containers, ...extra });

const sidecarPod = (extra: Parameters<typeof pod>[0] = {}) =>
  pod({
    restartPolicy: 'Never',
    initContainers: [shell('setup'), shell('side', { restartPolicy: 'Always', startupProbe: { httpGet: { port: 8095, path: '/started' } } })],
    containers: [shell('main')],
    ...extra,
  });

describe('what runs next', () => {
  it('runs init containers one at a time, in order', () => {
    expect(decide(sidecarPod(), record({}), NOW)).toMatchObject({ start: ['setup'], initialized: false, phase: 'Pending' });
    expect(decide(sidecarPod(), record({ setup: running() }), NOW).start).toEqual([]);
    expect(decide(sidecarPod(), record({ setup: exited(0, { succeeded: true }) }), NOW).start).toEqual(['side']);
  });

  it('starts regular containers only once the sidecar has started (its startup probe passed)', () => {
    const notStarted = record({ setup: exited(0, { succeeded: true }), side: running({ started: false, ready: false }) });
    expect(decide(sidecarPod(), notStarted, NOW)).toMatchObject({ start: [], initialized: false });
    const started = record({ setup: exited(0, { succeeded: true }), side: running() });
    expect(decide(sidecarPod(), started, NOW)).toMatchObject({ start: ['main'], initialized: true, phase: 'Pending' });
  });

  it('the main container exiting stops the sidecar; the Pod succeeds once the sidecar is down', () => {
    const mainDone = record({ setup: exited(0, { succeeded: true }), side: running(), main: exited(0) }, { initialized: true });
    expect(decide(sidecarPod(), mainDone, NOW)).toMatchObject({ start: [], stopSidecars: true, phase: 'Running' });
    const allDown = record({ setup: exited(0, { succeeded: true }), side: exited(143), main: exited(0) }, { initialized: true });
    expect(decide(sidecarPod(), allDown, NOW)).toMatchObject({ start: [], stopSidecars: true, phase: 'Succeeded' });
  });

  it("a failing main container fails the Pod; the sidecar's exit code does not count", () => {
    const failed = record({ setup: exited(0, { succeeded: true }), side: exited(0), main: exited(3) }, { initialized: true });
    expect(decide(sidecarPod(), failed, NOW).phase).toBe('Failed');
  });

  it('a sidecar that exits while the main container runs is restarted after its back-off', () => {
    const sideDied = record({ setup: exited(0, { succeeded: true }), side: exited(1, { notBefore: NOW + 500 }), main: running() }, { initialized: true });
    expect(decide(sidecarPod(), sideDied, NOW)).toMatchObject({ start: [], wakeAt: NOW + 500, phase: 'Running' });
    expect(decide(sidecarPod(), sideDied, NOW + 500)).toMatchObject({ start: ['side'] });
  });

  it('with restartPolicy Never a failed init container fails the Pod', () => {
    expect(decide(sidecarPod(), record({ setup: exited(1) }), NOW)).toMatchObject({ phase: 'Failed', stopSidecars: true, start: [] });
  });

  it('with OnFailure a failed init container is retried and the Pod stays Pending', () => {
    expect(decide(sidecarPod({ restartPolicy: 'OnFailure' }), record({ setup: exited(1) }), NOW)).toMatchObject({ phase: 'Pending', start: ['setup'] });
  });

  it.each([
    ['Always', 0, true],
    ['Always', 1, true],
    ['OnFailure', 0, false],
    ['OnFailure', 1, true],
    ['Never', 1, false],
  ] as const)('restartPolicy %s, exit %i: restarted = %s', (restartPolicy, code, restarted) => {
    const plan = decide(pod({ restartPolicy }), record({ main: exited(code) }, { initialized: true }), NOW);
    expect(plan.start.includes('main')).toBe(restarted);
    expect(plan.phase).toBe(restarted ? 'Running' : code === 0 ? 'Succeeded' : 'Failed');
  });

  it('a recorded terminal phase is final', () => {
    expect(decide(pod(), record({ main: exited(0) }, { initialized: true, phase: 'Succeeded' }), NOW)).toMatchObject({ phase: 'Succeeded', start: [] });
  });

  it('back-off doubles from 1 s and is capped at 60 s', () => {
    expect([0, 1, 2, 3, 10].map(restartDelayMs)).toEqual([1000, 2000, 4000, 8000, 60000]);
  });
});

describe('Pod status', () => {
  const status = (p: ReturnType<typeof pod>, r: PodRecord) => podStatus({ pod: p, record: r, plan: decide(p, r, NOW), hostIP: '127.0.0.1', now: T });
  const condition = (s: ReturnType<typeof status>, type: string) => s.conditions?.find((c) => c.type === type);

  it('reports a running, started, ready Pod with its IP and every condition True', () => {
    const r = record({ setup: exited(0, { succeeded: true }), side: running(), main: running() }, { initialized: true });
    const s = status(sidecarPod(), r);
    expect(s).toMatchObject({ phase: 'Running', podIP: '127.1.2.3', podIPs: [{ ip: '127.1.2.3' }], hostIP: '127.0.0.1', startTime: T });
    for (const type of ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready']) expect(condition(s, type)?.status).toBe('True');
    expect(s.containerStatuses?.[0]).toMatchObject({ name: 'main', ready: true, started: true, restartCount: 0, state: { running: { startedAt: T } } });
    expect(s.initContainerStatuses?.map((c) => Object.keys(c.state)[0])).toEqual(['terminated', 'running']);
  });

  it('waits regular containers in PodInitializing while init containers run', () => {
    const s = status(sidecarPod(), record({ setup: running() }));
    expect(condition(s, 'Initialized')).toMatchObject({ status: 'False', reason: 'ContainersNotInitialized' });
    expect(s.containerStatuses?.[0]?.state).toEqual({ waiting: { reason: 'PodInitializing' } });
  });

  it('a restarting container is waiting in CrashLoopBackOff with its last termination', () => {
    const s = status(pod({ restartPolicy: 'Always' }), record({ main: exited(2, { restartCount: 1 }) }, { initialized: true }));
    expect(s.containerStatuses?.[0]).toMatchObject({ restartCount: 1, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 2, reason: 'Error' } } });
  });

  it('a completed Pod shows terminated containers (sidecar included) and Ready=False PodCompleted', () => {
    const r = record({ setup: exited(0, { succeeded: true }), side: exited(143), main: exited(0) }, { initialized: true });
    const s = status(sidecarPod(), r);
    expect(s.phase).toBe('Succeeded');
    expect(condition(s, 'Ready')).toMatchObject({ status: 'False', reason: 'PodCompleted' });
    expect(s.initContainerStatuses?.[1]?.state).toMatchObject({ terminated: { exitCode: 143, reason: 'Error' } });
    expect(s.containerStatuses?.[0]?.state).toMatchObject({ terminated: { exitCode: 0, reason: 'Completed' } });
  });

  it("a finished container that ran before shows that earlier run as lastState", () => {
    const earlier = { exitCode: 1, startedAt: T, finishedAt: T };
    const r = record({ side: exited(0, { restartCount: 1, previous: earlier }), main: exited(0) }, { initialized: true });
    const s = status(pod({ restartPolicy: 'Never', initContainers: [shell('side', { restartPolicy: 'Always' })] }), r);
    expect(s.initContainerStatuses?.[0]).toMatchObject({ restartCount: 1, state: { terminated: { exitCode: 0 } }, lastState: { terminated: { exitCode: 1, reason: 'Error' } } });
  });

  it('an image pull failure is reported as the container waiting reason', () => {
    const s = status(pod(), record({ main: { restartCount: 0, started: false, ready: false, waiting: { reason: 'ErrImagePull', message: 'no' } } }, { initialized: true }));
    expect(s.containerStatuses?.[0]?.state).toEqual({ waiting: { reason: 'ErrImagePull', message: 'no' } });
    expect(s.phase).toBe('Pending');
  });

  it('keeps a condition transition time while its status is unchanged', () => {
    const p = pod();
    p.status = { conditions: [{ type: 'PodScheduled', status: 'True', lastTransitionTime: '2020-01-01T00:00:00Z' }, { type: 'Ready', status: 'True', lastTransitionTime: '2020-01-01T00:00:00Z' }] };
    const s = status(p, record({}, { initialized: true }));
    expect(condition(s, 'PodScheduled')?.lastTransitionTime).toBe('2020-01-01T00:00:00Z');
    expect(condition(s, 'Ready')?.lastTransitionTime).toBe(T);
  });
});
