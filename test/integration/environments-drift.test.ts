/**
 * What the periodic resync finds and what it does about it, with a 1 s resync: nothing at steady
 * state (zero API writes, zero Kubernetes writes), drift made in the Console corrected under Full
 * and reported under ObserveOnly, and remote environments deleted or archived behind the
 * operator's back handled by the documented rules (deploy/samples/README.md).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { waitFor } from '../support/cluster.ts';
import { TEST_TIMINGS } from '../support/operator.ts';
import {
  conditionOf,
  createEnvironment,
  deleteAndWait,
  environmentFixture,
  eventsOf,
  patchSpec,
  remote,
  remoteByUid,
  waitForCondition,
  waitForEvent,
  waitForReady,
  type EnvironmentFixture,
} from '../support/environments.ts';

const RESYNC_MS = 1_000;

let f: EnvironmentFixture;
beforeAll(async () => {
  f = await environmentFixture('env-drift', {
    kubeconfig: inject('operatorKubeconfig'),
    resyncMs: RESYNC_MS,
    timings: { ...TEST_TIMINGS, queueRefreshMs: RESYNC_MS },
  });
});
afterAll(async () => {
  await f?.cleanup();
});

/** Remote write requests the emulator served, by route (independent of the operator's own hooks). */
function emulatorWrites(): number {
  const counts = f.emu.state.requestCounts();
  return Object.entries(counts)
    .filter(([route]) => !route.startsWith('GET '))
    .reduce((n, [, byStatus]) => n + Object.values(byStatus).reduce((a, b) => a + b, 0), 0);
}

describe('resync', () => {
  it('makes zero API writes and zero Kubernetes writes at steady state (cloud and self-hosted)', async () => {
    await createEnvironment(f.admin, f.ns.name, 'steady-cloud', { cloud: { networking: { type: 'limited', allowedHosts: ['pypi.org'] }, packages: { pip: ['pandas'] } }, metadata: { a: 'b' } });
    await createEnvironment(f.admin, f.ns.name, 'steady-self-hosted', { selfHosted: {}, description: 'steady' });
    await waitForReady(f.admin, f.ns.name, 'steady-cloud');
    await waitForReady(f.admin, f.ns.name, 'steady-self-hosted');
    // Steady state: the pass after the create has replaced Synced reason Created with Synced.
    await waitForCondition(f.admin, f.ns.name, 'steady-cloud', 'Synced', 'True', 'Synced');
    await waitForCondition(f.admin, f.ns.name, 'steady-self-hosted', 'Synced', 'True', 'Synced');
    // A self-hosted environment is dispatched (no sessionTemplate = the default runner): its
    // Dispatching condition is written once, by the dispatcher, when polling starts.
    await waitForCondition(f.admin, f.ns.name, 'steady-self-hosted', 'Dispatching', 'True', 'Polling');

    f.op.resetCounters();
    const writesBefore = emulatorWrites();
    const calls = (endpoint: string): number => f.op.apiCalls.filter((c) => c.endpoint === endpoint).length;
    // Three resyncs of each resource: every pass reads its remote environment, and a self-hosted
    // pass its queue figures too (so gets minus stats counts the cloud passes).
    const selfHostedPasses = (): number => calls('work.stats');
    const cloudPasses = (): number => calls('environments.get') - selfHostedPasses();
    await waitFor(() => selfHostedPasses() >= 3 && cloudPasses() >= 3, { timeoutMs: 15_000, what: 'three resyncs of each resource' });

    expect(f.op.kubeWrites()).toEqual([]);
    expect(f.op.apiWrites()).toEqual([]);
    expect(emulatorWrites()).toBe(writesBefore);
  });

  it('corrects drift made in the Console under Full, with a DriftCorrected event', async () => {
    await createEnvironment(f.admin, f.ns.name, 'drift-full', { cloud: { networking: { type: 'limited', allowedHosts: ['pypi.org'] }, packages: { npm: ['typescript@5'] } }, metadata: { owner: 'team-a' } });
    const env = await waitForReady(f.admin, f.ns.name, 'drift-full');
    const id = env.status?.environmentId ?? '';
    const spec = structuredClone(remote(f.emu, id));

    await f.console.updateEnvironment(id, {
      name: 'edited in the Console',
      metadata: { owner: 'someone-else', extra: 'x' },
      config: { type: 'cloud', networking: { type: 'unrestricted' }, packages: { type: 'packages', npm: [] } },
    });
    const corrected = await waitFor(() => {
      const r = remote(f.emu, id);
      return r && r.name === spec?.name && JSON.stringify(r.config) === JSON.stringify(spec?.config) && JSON.stringify(r.metadata) === JSON.stringify(spec?.metadata) ? r : undefined;
    }, { timeoutMs: 10_000, what: 'the drift to be corrected' });
    expect(corrected.metadata).not.toHaveProperty('extra');
    const event = await waitForEvent(f.admin, f.ns.name, 'drift-full', 'DriftCorrected');
    expect(event.message).toMatch(/name/);
    expect(event.message).toMatch(/config\.networking/);
    expect(conditionOf(await waitForReady(f.admin, f.ns.name, 'drift-full'), 'Synced')?.reason).toBe('Synced');
  });

  it('reports drift under ObserveOnly (Synced=False, Drifted) without ever writing, and never deletes the remote environment', async () => {
    const existing = await f.console.createEnvironment({ name: 'Observed', config: { type: 'cloud', networking: { type: 'unrestricted' } } });
    const before = structuredClone(remote(f.emu, existing.id));
    const createsAndUpdates = (): number => f.op.apiWrites().length;
    const writesBefore = createsAndUpdates();
    await createEnvironment(f.admin, f.ns.name, 'observed', { environmentId: existing.id, name: 'Observed', cloud: { networking: { type: 'limited', allowedHosts: ['pypi.org'] } }, managementPolicy: 'ObserveOnly', deletionPolicy: 'Delete' });

    const env = await waitForCondition(f.admin, f.ns.name, 'observed', 'Synced', 'False', 'Drifted');
    expect(conditionOf(env, 'Synced')?.message).toContain('config.networking');
    expect(conditionOf(env, 'Ready')?.status).toBe('True');
    expect(env.status?.environmentId).toBe(existing.id);
    await waitForEvent(f.admin, f.ns.name, 'observed', 'Drifted');

    // Several resyncs later: still not corrected, one Drifted event, nothing written remotely.
    const gets = f.op.apiCalls.length;
    await waitFor(() => f.op.apiCalls.length >= gets + 4, { what: 'more resyncs' });
    expect(remote(f.emu, existing.id)).toEqual(before);
    expect(createsAndUpdates()).toBe(writesBefore);
    const drifted = (await eventsOf(f.admin, f.ns.name, 'observed')).filter((e) => e.reason === 'Drifted');
    expect(drifted).toHaveLength(1);
    expect(drifted[0]?.count).toBe(1);

    // The Console brings it in line: the next resync reports Synced.
    await f.console.updateEnvironment(existing.id, { config: { type: 'cloud', networking: { type: 'limited', allowed_hosts: ['pypi.org'] } } });
    await waitForCondition(f.admin, f.ns.name, 'observed', 'Synced', 'True');

    // deletionPolicy Delete does not apply under ObserveOnly.
    await deleteAndWait(f.admin, f.ns.name, 'observed');
    expect(remote(f.emu, existing.id)?.archived_at).toBeNull();
    expect(createsAndUpdates()).toBe(writesBefore);
  });

  it('recreates a managed environment deleted behind its back (Synced reason Recreated, RemoteDeleted event)', async () => {
    const created = await createEnvironment(f.admin, f.ns.name, 'deleted-remotely', { cloud: {} });
    const env = await waitForReady(f.admin, f.ns.name, 'deleted-remotely');
    const oldId = env.status?.environmentId ?? '';
    await f.console.deleteEnvironment(oldId);

    const recreated = await waitForCondition(f.admin, f.ns.name, 'deleted-remotely', 'Synced', 'True', 'Recreated');
    expect(recreated.status?.environmentId).not.toBe(oldId);
    expect(conditionOf(recreated, 'Synced')?.message).toContain(oldId);
    expect(remoteByUid(f.emu, created.metadata?.uid).map((e) => e.id)).toEqual([recreated.status?.environmentId]);
    await waitForEvent(f.admin, f.ns.name, 'deleted-remotely', 'RemoteDeleted');
  });

  it('reports an environment archived behind its back (Ready=False, Archived) and sends no updates to it', async () => {
    await createEnvironment(f.admin, f.ns.name, 'archived-remotely', { cloud: {}, deletionPolicy: 'Delete' });
    const env = await waitForReady(f.admin, f.ns.name, 'archived-remotely');
    const id = env.status?.environmentId ?? '';
    await f.console.archiveEnvironment(id);

    const archived = await waitForCondition(f.admin, f.ns.name, 'archived-remotely', 'Ready', 'False', 'Archived');
    expect(archived.status?.archivedAt).toEqual(expect.any(String));

    const updatesBefore = f.op.apiCalls.filter((c) => c.endpoint === 'environments.update').length;
    await patchSpec(f.admin, f.ns.name, 'archived-remotely', { name: 'too late' });
    const reported = await waitForCondition(f.admin, f.ns.name, 'archived-remotely', 'Synced', 'False', 'Archived');
    expect(conditionOf(reported, 'Synced')?.message).toContain('name');
    expect(f.op.apiCalls.filter((c) => c.endpoint === 'environments.update').length).toBe(updatesBefore);
    expect(remote(f.emu, id)?.name).toBe('archived-remotely');

    // An archived environment can still be deleted.
    await deleteAndWait(f.admin, f.ns.name, 'archived-remotely');
    expect(remote(f.emu, id)).toBeUndefined();
  });
});
