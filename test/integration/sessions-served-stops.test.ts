/**
 * How a served session ends, on the local cluster with the real sidecar and the default runner
 * (`agentenv runner`, the official SDK's handleItem): a graceful remote stop reaches the runner
 * through its virtual heartbeat in the middle of a long tool call (the cooperative path, never the
 * enforced one); a session that terminates ends the runner, whose stop the sidecar carries out; and
 * a real lease lost (412 from the API) is passed on to the runner, which releases the item, and
 * nothing stops it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIDECAR_EXIT_STOPPED_BY_API } from '../../src/contract/sidecar.ts';
import { WORKSPACE_VOLUME } from '../../src/sessions/objects/default-template.ts';
import { SIDECAR_NAME } from '../../src/sessions/objects/pod.ts';
import { bash, resultText, scriptAgent, terminated, waitForToolResults } from '../support/agent-script.ts';
import { createNamespace, waitFor, type TestNamespace } from '../support/cluster.ts';
import { addFaults, countOnly, faultHits } from '../support/emulator.ts';
import { containerLog, jsonLines, volumeFile } from '../support/pod-files.ts';
import { eventsOf, getPod, mainExit, serveSession, startSessionsWorld, waitForSession, waitForWork, type SessionsWorld } from './sessions.fixtures.ts';

let ns: TestNamespace;
let w: SessionsWorld;

beforeAll(async () => {
  ns = await createNamespace('served-stops');
  w = await startSessionsWorld(ns.name);
});

afterAll(async () => {
  await w?.stop();
  await ns?.cleanup();
});

const finished = (name: string) => waitForSession(w, name, (s) => s.status?.phase === 'Succeeded' || s.status?.phase === 'Failed', 'finished', 120_000);
const logged = (log: string, msg: string): boolean => jsonLines(log).some((l) => l['msg'] === msg);
const workPath = (environmentId: string, workId: string) => `/v1/environments/${environmentId}/work/${workId}`;

describe.concurrent('a served session ends', () => {
  it('a graceful remote stop in the middle of a long tool call reaches the runner through its virtual heartbeat: it ends itself, the item is stopped, Succeeded Stopped, never StopEnforced', async () => {
    // A grace far longer than the cooperative path needs: only the runner's own end can finish it in time.
    const { env, d, sessionId, pod } = await serveSession(w, 'graceful', { stopGracePeriodSeconds: 300 });
    await scriptAgent(w.emu.url, sessionId, [bash('echo begun > long.txt; sleep 30; echo done >> long.txt')]);
    await waitFor(() => volumeFile(pod, WORKSPACE_VOLUME, 'long.txt')?.startsWith('begun'), { what: 'the long tool call to begin', timeoutMs: 60_000 });

    await w.api.stopWork(env.environmentId, d.work.id, { force: false });
    const done = await finished(d.name);
    expect(done.status).toMatchObject({ phase: 'Succeeded', reason: 'Stopped', workState: 'stopped' });
    expect((await mainExit(w, pod)).exitCode).toBe(0);
    // The cooperative path: the runner heard `stopping` from its own (virtual) heartbeat, and its
    // final stop was the sidecar's real one. The operator neither deleted the Pod nor stopped the item.
    expect(logged(containerLog(pod, 'session'), 'heartbeat signals shutdown')).toBe(true);
    expect(logged(containerLog(pod, SIDECAR_NAME), 'work item stopped')).toBe(true);
    expect((await eventsOf(w, d.name)).map((e) => e.reason)).not.toContain('StopEnforced');
    expect(w.stops.filter((s) => s.workId === d.work.id)).toEqual([]);
    const ended = await getPod(w, pod.metadata!.name!);
    expect(ended?.metadata?.deletionTimestamp).toBeUndefined();
    // The API ordered the stop first, and the sidecar says so by its exit code; a native sidecar's
    // exit code never counts in the Pod's phase (the main container's exit 0 does).
    expect(ended?.status?.initContainerStatuses?.find((c) => c.name === SIDECAR_NAME)?.state?.terminated?.exitCode).toBe(SIDECAR_EXIT_STOPPED_BY_API);
    expect(ended?.status?.phase).toBe('Succeeded');
  });

  it('a session that terminates ends the runner (exit 0), its stop is the sidecar\'s real force-stop: Succeeded Completed, no stop request recorded, the operator stops nothing', async () => {
    const { env, d, sessionId, pod } = await serveSession(w, 'ends');
    const [echo] = await scriptAgent(w.emu.url, sessionId, [bash('echo last words')]);
    expect(resultText((await waitForToolResults(w.emu.url, sessionId, [echo!], { timeoutMs: 60_000 })).get(echo!)).trim()).toBe('last words');

    await scriptAgent(w.emu.url, sessionId, [terminated()]);
    expect((await mainExit(w, pod)).exitCode).toBe(0);
    const done = await finished(d.name);
    // Completed whatever a pass saw first (the item stopped, or the runner's exit): the sidecar's
    // exit 0 says the session ended the lease itself, so its final stop is no stop request.
    expect(done.status).toMatchObject({ phase: 'Succeeded', reason: 'Completed', workState: 'stopped' });
    expect(done.status?.stopRequestedAt).toBeUndefined();
    expect((await getPod(w, pod.metadata!.name!))?.status?.initContainerStatuses?.find((c) => c.name === SIDECAR_NAME)?.state?.terminated?.exitCode).toBe(0);
    await waitForWork(w, env, d.work.id, 'stopped');
    // The sidecar stopped it; the operator had nothing to do.
    expect(logged(containerLog(pod, SIDECAR_NAME), 'work item stopped')).toBe(true);
    expect(w.stops.filter((s) => s.workId === d.work.id)).toEqual([]);
  });

  it('a real lease lost (the API answers the sidecar\'s heartbeat 412) is passed on to the runner, which ends without a stop; nothing stops the item', async () => {
    // A grace long enough that only the runner's own end (told by its heartbeat) ends the Pod.
    const { env, d, pod } = await serveSession(w, 'lost', { stopGracePeriodSeconds: 300 });
    const path = workPath(env.environmentId, d.work.id);
    // Every stop of this item that reaches the API is counted; the sidecar's next beat gets 412.
    await addFaults(w.emu.url, [countOnly(`${path}/stop`, 'POST'), { method: 'POST', path: `${path}/heartbeat`, status: 412, error_type: 'precondition_failed_error', count: 1 }]);

    // The runner is told (its virtual heartbeat gets 412), ends, and releases the item without stopping it.
    expect((await mainExit(w, pod)).exitCode).toBe(0);
    const runnerLog = containerLog(pod, 'session');
    expect(logged(runnerLog, 'lease lost: heartbeat precondition failed')).toBe(true);
    expect(logged(runnerLog, 'lease lost; released without stopping it')).toBe(true);
    await waitFor(() => logged(containerLog(pod, SIDECAR_NAME), 'not stopping the work item: the lease was lost'), { what: 'the sidecar to end without a stop', timeoutMs: 60_000 });

    // The record lets go of the item (docs/sessions.md): the operator stops nothing while the API
    // still shows the claim active, and releases the record once the lease has lapsed to the queue.
    const s = await waitForSession(w, d.name, (x) => x.status?.phase === 'Failed' || x.status?.phase === 'Succeeded', 'released', 90_000);
    expect(s.status).toMatchObject({ phase: 'Failed', reason: 'AcknowledgementLapsed', workState: 'queued' });
    expect(s.status?.acknowledgedAt).toBeUndefined();
    expect((await w.api.getWork(env.environmentId, d.work.id)).state).toBe('queued');
    const hits = await faultHits(w.emu.url);
    expect(hits.find((r) => r.path === `${path}/heartbeat`)?.hits).toBe(1);
    expect(hits.find((r) => r.path === `${path}/stop`)?.hits).toBe(0);
    expect(w.stops.filter((x) => x.workId === d.work.id)).toEqual([]);
  });
});
