/**
 * AgentEnvironment lifecycle against the real apiserver, the in-process emulator and the in-process
 * operator (least-privilege ServiceAccount): the samples become Ready resources whose remote
 * environments match their specs, every spec field reaches the API, adoption, and each deletion
 * policy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import type { Environment } from '../../src/api/wire.ts';
import { AGENT_ENVIRONMENTS, type AgentEnvironment } from '../../src/crd/resources.ts';
import { CORE, type KubeObject } from '../../src/k8s/rest.ts';
import { isNotFound } from '../../src/k8s/errors.ts';
import { createNamespace, waitFor } from '../support/cluster.ts';
import { startTestOperator } from '../support/operator.ts';
import { API_KEY } from '../support/emulator.ts';
import {
  conditionOf,
  createEnvironment,
  deleteAndWait,
  environmentFixture,
  eventsOf,
  everythingVisible,
  getEnvironment,
  loadSample,
  patchSpec,
  putSecret,
  remote,
  remoteByUid,
  waitForCondition,
  waitForEvent,
  waitForReady,
  type EnvironmentFixture,
} from '../support/environments.ts';

let f: EnvironmentFixture;
/** The environment key minted for the self-hosted sample (must never show up anywhere). */
let environmentKey = 'sk-ant-oat01-not-minted-yet';
beforeAll(async () => {
  f = await environmentFixture('env-lifecycle', { kubeconfig: inject('operatorKubeconfig') });
});
afterAll(async () => {
  await f?.cleanup();
});

/** Wait until the remote environment of `name` satisfies `check`. */
async function remoteMatches(name: string, check: (e: Environment) => boolean, what: string): Promise<Environment> {
  const env = await getEnvironment(f.admin, f.ns.name, name);
  return waitFor(
    async () => {
      const id = (await getEnvironment(f.admin, f.ns.name, name)).status?.environmentId;
      const r = remote(f.emu, id);
      return r && check(r) ? r : undefined;
    },
    { timeoutMs: 10_000, what: `${what} on the remote environment of ${env.metadata?.name}` },
  );
}

describe('AgentEnvironment lifecycle', () => {
  it('cloud sample: finalizer, Ready and Synced, the remote environment matches the spec, Created event; deleting it archives it (the default policy)', async () => {
    const [sample] = loadSample('cloud.yaml', f.ns.name) as [AgentEnvironment];
    await f.admin.create(AGENT_ENVIRONMENTS, f.ns.name, sample);
    const env = await waitForReady(f.admin, f.ns.name, 'data-analysis');

    expect(env.metadata?.finalizers).toContain('agentenv.io/environment');
    expect(env.status?.type).toBe('cloud');
    expect(env.status?.lastSyncTime).toBeDefined();
    const [r, ...others] = remoteByUid(f.emu, env.metadata?.uid);
    expect(others).toEqual([]);
    expect(r?.id).toBe(env.status?.environmentId);
    expect(r).toMatchObject({
      name: 'Data analysis',
      description: 'Python sandbox for notebooks and data pipelines',
      scope: 'organization',
      archived_at: null,
      metadata: { team: 'analytics', 'cost-center': '4711', 'agentenv.io/uid': env.metadata?.uid, 'agentenv.io/owner': `${f.ns.name}/data-analysis` },
      config: {
        type: 'cloud',
        networking: { type: 'limited', allowed_hosts: ['api.github.com', '*.pythonhosted.org'], allow_package_managers: true, allow_mcp_servers: false },
        packages: { type: 'packages', apt: ['ripgrep'], pip: ['pandas==2.2.0', 'pyarrow'], npm: ['typescript@5'], cargo: [], gem: [], go: [] },
      },
    });
    expect((await eventsOf(f.admin, f.ns.name, 'data-analysis')).map((e) => e.reason)).toContain('Created');

    await deleteAndWait(f.admin, f.ns.name, 'data-analysis');
    expect(remote(f.emu, r?.id)?.archived_at).toEqual(expect.any(String));
  });

  it('self-hosted sample, in the order its comments give: the resource, then the environment key minted for its id in the Secret', async () => {
    const objects = loadSample('self-hosted.yaml', f.ns.name);
    const resource = objects.find((o) => o.kind === 'AgentEnvironment') as AgentEnvironment;
    const secret = objects.find((o) => o.kind === 'Secret') as KubeObject & { stringData: Record<string, string> };
    await f.admin.create(AGENT_ENVIRONMENTS, f.ns.name, resource);
    const env = await waitForReady(f.admin, f.ns.name, 'build-agents');

    expect(env.status?.type).toBe('self_hosted');
    expect(env.status?.queue).toEqual({ depth: 0, pending: 0, workersPolling: 0 });
    const r = remote(f.emu, env.status?.environmentId);
    expect(r).toMatchObject({ name: 'Build agents', description: 'Sessions run as Pods in this cluster', config: { type: 'self_hosted' }, metadata: { team: 'platform' } });
    expect(remoteByUid(f.emu, env.metadata?.uid)).toHaveLength(1);

    environmentKey = f.emu.admin.mintKey(env.status?.environmentId ?? '');
    await f.admin.create(CORE.secrets, f.ns.name, { ...secret, stringData: { 'environment-key': environmentKey } } as KubeObject);
    await waitForReady(f.admin, f.ns.name, 'build-agents');
  });

  it('another writer of the status (the Dispatching condition) neither stalls the reconciler nor loses its condition', async () => {
    const name = 'shared-status';
    await createEnvironment(f.admin, f.ns.name, name, { cloud: {} });
    await waitForReady(f.admin, f.ns.name, name);
    let writing = true;
    let writes = 0;
    const coWriter = (async () => {
      while (writing) {
        const current = await getEnvironment(f.admin, f.ns.name, name);
        const others = (current.status?.conditions ?? []).filter((c) => c.type !== 'Dispatching');
        const dispatching = { type: 'Dispatching', status: 'False' as const, reason: 'Test', message: `write ${writes}`, lastTransitionTime: new Date().toISOString() };
        await f.admin.replace(AGENT_ENVIRONMENTS, f.ns.name, { ...current, status: { ...current.status, conditions: [...others, dispatching] } }, 'status').then(
          () => writes++,
          () => undefined,
        );
      }
    })();
    try {
      await waitFor(() => writes >= 3, { what: 'the other writer to start' });
      await patchSpec(f.admin, f.ns.name, name, { description: 'written while someone else writes the status' });
      const env = await waitForReady(f.admin, f.ns.name, name);
      expect(remote(f.emu, env.status?.environmentId)?.description).toBe('written while someone else writes the status');
    } finally {
      writing = false;
      await coWriter;
    }
    const env = await getEnvironment(f.admin, f.ns.name, name);
    expect(conditionOf(env, 'Dispatching')?.reason).toBe('Test');
    expect(conditionOf(env, 'Synced')?.status).toBe('True');
  });

  it('an update of each spec field reaches the API, as an Updated event, and is observed in status', async () => {
    const name = 'updates';
    await createEnvironment(f.admin, f.ns.name, name, { cloud: {} });
    await waitForReady(f.admin, f.ns.name, name);

    await patchSpec(f.admin, f.ns.name, name, { name: 'Renamed' });
    await remoteMatches(name, (r) => r.name === 'Renamed', 'name');

    await patchSpec(f.admin, f.ns.name, name, { description: 'now with a description' });
    await remoteMatches(name, (r) => r.description === 'now with a description', 'description');

    await patchSpec(f.admin, f.ns.name, name, { metadata: { team: 'a', tier: 'gold' } });
    await remoteMatches(name, (r) => r.metadata['team'] === 'a' && r.metadata['tier'] === 'gold', 'metadata added');

    await patchSpec(f.admin, f.ns.name, name, { metadata: { tier: null } });
    const afterRemoval = await remoteMatches(name, (r) => !('tier' in r.metadata), 'metadata key removed');
    expect(afterRemoval.metadata).toMatchObject({ team: 'a', 'agentenv.io/uid': expect.any(String), 'agentenv.io/owner': `${f.ns.name}/${name}` });

    await patchSpec(f.admin, f.ns.name, name, { scope: 'account' });
    await remoteMatches(name, (r) => r.scope === 'account', 'scope');

    await patchSpec(f.admin, f.ns.name, name, { cloud: { networking: { type: 'limited', allowedHosts: ['pypi.org'], allowMcpServers: true } } });
    await remoteMatches(
      name,
      (r) => r.config.type === 'cloud' && r.config.networking.type === 'limited' && r.config.networking.allowed_hosts.join() === 'pypi.org' && r.config.networking.allow_mcp_servers,
      'networking limited',
    );

    await patchSpec(f.admin, f.ns.name, name, { cloud: { networking: { type: 'unrestricted', allowedHosts: null, allowMcpServers: null } } });
    await remoteMatches(name, (r) => r.config.type === 'cloud' && r.config.networking.type === 'unrestricted', 'networking unrestricted');

    const packages = { apt: ['jq'], cargo: ['serde@1.0.0'], gem: ['rails'], go: ['golang.org/x/tools/gopls@latest'], npm: ['typescript@5'], pip: ['pandas==2.2.0'] };
    await patchSpec(f.admin, f.ns.name, name, { cloud: { packages } });
    await remoteMatches(name, (r) => r.config.type === 'cloud' && Object.entries(packages).every(([m, list]) => JSON.stringify(r.config.type === 'cloud' && r.config.packages[m as 'apt']) === JSON.stringify(list)), 'every package manager');

    await patchSpec(f.admin, f.ns.name, name, { cloud: { packages: { pip: null } } });
    await remoteMatches(name, (r) => r.config.type === 'cloud' && r.config.packages.pip.length === 0 && r.config.packages.apt[0] === 'jq', 'pip packages removed');

    const env = await waitForReady(f.admin, f.ns.name, name);
    expect(remoteByUid(f.emu, env.metadata?.uid)).toHaveLength(1);
    const updated = (await eventsOf(f.admin, f.ns.name, name)).filter((e) => e.reason === 'Updated');
    expect(updated.length).toBeGreaterThan(0);
    expect(updated.map((e) => e.message).join('\n')).toMatch(/config\.networking/);
  });

  it('adopts an existing environment by environmentId: no create, the spec is applied to it, Adopted event', async () => {
    const existing = await f.console.createEnvironment({ name: 'Legacy', metadata: { legacy: 'yes' }, config: { type: 'cloud', networking: { type: 'unrestricted' } } });
    const creates = (): number => f.op.apiCalls.filter((c) => c.endpoint === 'environments.create').length;
    const createsBefore = creates();
    const created = await createEnvironment(f.admin, f.ns.name, 'adopted', { environmentId: existing.id, name: 'Adopted', cloud: {}, deletionPolicy: 'Orphan' });
    const env = await waitForReady(f.admin, f.ns.name, 'adopted');

    expect(env.status?.environmentId).toBe(existing.id);
    expect(creates()).toBe(createsBefore);
    expect(remoteByUid(f.emu, created.metadata?.uid).map((e) => e.id)).toEqual([existing.id]);
    const r = remote(f.emu, existing.id);
    expect(r?.name).toBe('Adopted');
    expect(r?.metadata).toEqual({ 'agentenv.io/uid': created.metadata?.uid, 'agentenv.io/owner': `${f.ns.name}/adopted` });
    await waitForEvent(f.admin, f.ns.name, 'adopted', 'Adopted');

    await deleteAndWait(f.admin, f.ns.name, 'adopted');
    expect(remote(f.emu, existing.id)?.archived_at).toBeNull();
  });

  it('an adopted id that does not exist is a condition, and nothing is created', async () => {
    const created = await createEnvironment(f.admin, f.ns.name, 'adopt-missing', { environmentId: 'env_doesnotexist', cloud: {} });
    const env = await waitForCondition(f.admin, f.ns.name, 'adopt-missing', 'Synced', 'False', 'RemoteNotFound');
    expect(env.status?.environmentId).toBe('env_doesnotexist');
    expect(env.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('False');
    expect(remoteByUid(f.emu, created.metadata?.uid)).toEqual([]);
    // Deleting it needs no remote clean-up.
    await deleteAndWait(f.admin, f.ns.name, 'adopt-missing');
  });

  it('adopting an environment of the other type is TypeMismatch in both conditions, and nothing is sent to it', async () => {
    const existing = await f.console.createEnvironment({ name: 'Runs here', config: { type: 'self_hosted' } });
    await createEnvironment(f.admin, f.ns.name, 'adopt-other-type', { environmentId: existing.id, name: 'Wants cloud', cloud: {}, deletionPolicy: 'Orphan' });
    const env = await waitForCondition(f.admin, f.ns.name, 'adopt-other-type', 'Synced', 'False', 'TypeMismatch');
    expect(conditionOf(env, 'Synced')?.message).toBe(`environment ${existing.id} is self_hosted, but the spec asks for cloud; the type cannot change`);
    expect(conditionOf(env, 'Ready')).toMatchObject({ status: 'False', reason: 'TypeMismatch' });
    // Not even the fields that could change (the name, the operator's metadata keys) are sent.
    expect(remote(f.emu, existing.id)).toEqual(existing);
    await deleteAndWait(f.admin, f.ns.name, 'adopt-other-type');
    expect(remote(f.emu, existing.id)).toEqual(existing);
  });

  it.each([
    ['Delete', (r: Environment | undefined) => r === undefined],
    ['Archive', (r: Environment | undefined) => typeof r?.archived_at === 'string'],
    ['Orphan', (r: Environment | undefined) => r !== undefined && r.archived_at === null],
  ] as const)('deletionPolicy %s is applied when the resource is deleted, then the finalizer goes', async (policy, expected) => {
    const name = `policy-${policy.toLowerCase()}`;
    await createEnvironment(f.admin, f.ns.name, name, { cloud: {}, deletionPolicy: policy });
    const env = await waitForReady(f.admin, f.ns.name, name);
    const before = remote(f.emu, env.status?.environmentId);
    await deleteAndWait(f.admin, f.ns.name, name);
    const after = remote(f.emu, env.status?.environmentId);
    expect(expected(after)).toBe(true);
    if (policy === 'Orphan') expect(after).toEqual(before);
    const reasons = (await eventsOf(f.admin, f.ns.name, name)).map((e) => e.reason);
    expect(reasons).toContain({ Delete: 'Deleted', Archive: 'Archived', Orphan: 'Orphaned' }[policy]);
  });

  it('deleting the namespace applies the deletion policy even though the API key Secret goes with it', async () => {
    const doomed = await createNamespace('env-doomed');
    const op = await startTestOperator({ kubeconfig: inject('operatorKubeconfig'), namespace: doomed.name, baseUrl: f.emu.url });
    try {
      await putSecret(f.admin, doomed.name, 'org-key', 'api-key', API_KEY);
      await createEnvironment(f.admin, doomed.name, 'goes-with-namespace', { cloud: {}, deletionPolicy: 'Delete', apiKeySecretRef: { name: 'org-key', key: 'api-key' } });
      const env = await waitForReady(f.admin, doomed.name, 'goes-with-namespace');
      expect(remote(f.emu, env.status?.environmentId)).toBeDefined();

      await doomed.cleanup();
      await waitFor(() => remote(f.emu, env.status?.environmentId) === undefined, { timeoutMs: 60_000, what: 'the remote environment to be deleted' });
      await waitFor(() => f.admin.get(CORE.namespaces, undefined, doomed.name).then(() => false, (err: unknown) => isNotFound(err)), { timeoutMs: 60_000, what: 'the namespace to go' });
      expect(op.logLines.join('')).not.toContain(API_KEY);
    } finally {
      await op.stop();
    }
  });

  it('no credential in any log line, event or status', async () => {
    const secretValues = [API_KEY, environmentKey];
    const haystack = await everythingVisible(f);
    expect(f.op.logLines.length).toBeGreaterThan(10);
    for (const secret of secretValues) expect(haystack).not.toContain(secret);
  });
});
