/**
 * Ownership between tenants against the real apiserver (as the operator's least-privilege
 * ServiceAccount), the in-process emulator and the in-process operator: a remote environment belongs
 * to the AgentEnvironment whose uid tags it; adopting one it does not own is refused without the
 * administrator's grant (nothing sent, nothing read into status, no dispatch), a deletion policy
 * never touches it, and the default API key serves only the namespaces it is granted to.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Environment } from '../../src/api/wire.ts';
import { REMOTE_METADATA } from '../../src/crd/meta.ts';
import { AGENT_ENVIRONMENTS } from '../../src/crd/resources.ts';
import { CORE, type KubeObject } from '../../src/k8s/rest.ts';
import {
  conditionOf,
  createEnvironment,
  deleteAndWait,
  environmentFixture,
  getEnvironment,
  putSecret,
  remote,
  waitForCondition,
  waitForEvent,
  waitForReady,
  type EnvironmentFixture,
} from '../support/environments.ts';
import { API_KEY } from '../support/emulator.ts';

const GRANT = "namespace listed in the operator's --adoption-namespaces (chart value tenancy.adoptionNamespaces)";

let f: EnvironmentFixture;
beforeAll(async () => {
  // No grant: the cluster administrator has not let this namespace adopt anything it does not own.
  f = await environmentFixture('tenancy', { kubeconfig: inject('operatorKubeconfig'), adoptionNamespaces: [] });
});
afterAll(async () => {
  await f?.cleanup();
});

/** The remote environment as stored by the emulator (a write would change it, updated_at included). */
const snapshot = (id: string): Environment => structuredClone(remote(f.emu, id)!);
/** The operator's API calls other than reads. */
const writesAndPolls = (): string[] => f.op.apiCalls.filter((c) => c.endpoint !== 'environments.get' && c.endpoint !== 'environments.list' && c.endpoint !== 'work.stats').map((c) => c.endpoint);

describe('adoption without the administrator\'s grant', () => {
  it("adopting another AgentEnvironment's environment is AdoptionRefused in both conditions, saying why and which grant; nothing is sent and nothing of it reaches status", async () => {
    await createEnvironment(f.admin, f.ns.name, 'owner', { cloud: {}, description: 'the owner', deletionPolicy: 'Delete' });
    const owner = await waitForReady(f.admin, f.ns.name, 'owner');
    const id = owner.status!.environmentId!;
    const before = snapshot(id);
    f.op.resetCounters();

    await createEnvironment(f.admin, f.ns.name, 'intruder', { environmentId: id, cloud: {}, description: 'taken', deletionPolicy: 'Delete' });
    const refused = await waitForCondition(f.admin, f.ns.name, 'intruder', 'Synced', 'False', 'AdoptionRefused');
    const synced = conditionOf(refused, 'Synced')!;
    expect(synced.message).toContain(`environment ${id} belongs to another AgentEnvironment`);
    expect(synced.message).toContain(GRANT.replace('namespace', `namespace ${f.ns.name}`));
    // The other tenant's namespace and name are not revealed to this one.
    expect(JSON.stringify(refused.status)).not.toContain('owner');
    expect(conditionOf(refused, 'Ready')).toMatchObject({ status: 'False', reason: 'AdoptionRefused' });
    expect(refused.status?.environmentId).toBeUndefined();
    expect(refused.status?.type).toBeUndefined();
    await waitForEvent(f.admin, f.ns.name, 'intruder', 'AdoptionRefused');
    expect(snapshot(id)).toEqual(before);
    expect(writesAndPolls()).toEqual([]);
    // The administrator reads who owns it in the operator's log.
    expect(f.op.logLines.some((l) => l.includes(`AgentEnvironment ${f.ns.name}/owner`))).toBe(true);
  });

  it('deleting the refused resource with deletionPolicy Delete leaves the environment in place and says so', async () => {
    const id = (await getEnvironment(f.admin, f.ns.name, 'owner')).status!.environmentId!;
    await deleteAndWait(f.admin, f.ns.name, 'intruder');
    const r = remote(f.emu, id);
    expect(r?.archived_at).toBeNull();
    expect(r?.description).toBe('the owner');
    expect(f.op.apiWrites().map((c) => c.endpoint)).toEqual([]);
    // The owner is untouched by all this.
    expect(conditionOf(await waitForReady(f.admin, f.ns.name, 'owner'), 'Synced')?.status).toBe('True');
  });

  it('adopting a self-hosted environment made in the Console is refused, and its queue is never polled', async () => {
    const made = await f.console.createEnvironment({ name: 'console-made', config: { type: 'self_hosted' } });
    const key = f.emu.admin.mintKey(made.id);
    await f.admin.create(CORE.secrets, f.ns.name, { metadata: { name: 'console-made-key' }, stringData: { key } } as KubeObject);
    f.emu.admin.createSession(made.id);
    f.op.resetCounters();
    await createEnvironment(f.admin, f.ns.name, 'console-made', {
      environmentId: made.id,
      selfHosted: { environmentKeySecretRef: { name: 'console-made-key', key: 'key' } },
      deletionPolicy: 'Delete',
    });
    const refused = await waitForCondition(f.admin, f.ns.name, 'console-made', 'Ready', 'False', 'AdoptionRefused');
    expect(conditionOf(refused, 'Synced')?.message).toContain('was not created by an AgentEnvironment (no agentenv.io/uid tag in its metadata)');
    // Dispatch starts only for a Ready environment, so it never started: no poll, no session.
    await waitForEvent(f.admin, f.ns.name, 'console-made', 'AdoptionRefused');
    expect(f.op.apiCalls.filter((c) => c.endpoint.startsWith('work.'))).toEqual([]);
    expect(conditionOf(await getEnvironment(f.admin, f.ns.name, 'console-made'), 'Dispatching')?.status).not.toBe('True');
    await deleteAndWait(f.admin, f.ns.name, 'console-made');
    expect(remote(f.emu, made.id)?.archived_at).toBeNull();
  });
});

describe("with the administrator's grant", () => {
  it('a granted namespace adopts: the tag becomes its own; the AgentEnvironment that had the environment reports OwnedElsewhere and its deletion leaves it in place', async () => {
    await f.restartOperator({ adoptionNamespaces: [f.ns.name] });
    const id = (await getEnvironment(f.admin, f.ns.name, 'owner')).status!.environmentId!;
    const taker = await createEnvironment(f.admin, f.ns.name, 'taker', { environmentId: id, cloud: {}, description: 'taken over', deletionPolicy: 'Orphan' });
    await waitForReady(f.admin, f.ns.name, 'taker');
    expect(remote(f.emu, id)?.metadata[REMOTE_METADATA.uid]).toBe(taker.metadata?.uid);
    expect(remote(f.emu, id)?.description).toBe('taken over');

    // The old owner (created it, deletionPolicy Delete) lost it: it neither fights back nor deletes it.
    // A label change makes the old owner's next pass now (instead of at the next resync).
    await f.admin.patch(AGENT_ENVIRONMENTS, f.ns.name, 'owner', { metadata: { labels: { nudge: '1' } } }, 'merge');
    const lost = await waitForCondition(f.admin, f.ns.name, 'owner', 'Synced', 'False', 'OwnedElsewhere');
    expect(conditionOf(lost, 'Synced')?.message).toContain(`environment ${id} now belongs to another AgentEnvironment`);
    await deleteAndWait(f.admin, f.ns.name, 'owner');
    await waitForEvent(f.admin, f.ns.name, 'owner', 'Orphaned');
    expect(remote(f.emu, id)?.archived_at).toBeNull();
    expect(remote(f.emu, id)?.metadata[REMOTE_METADATA.uid]).toBe(taker.metadata?.uid);
    await deleteAndWait(f.admin, f.ns.name, 'taker');
  });
});

describe('the default API key limited to named namespaces', () => {
  it('outside them an AgentEnvironment without its own key is CredentialsMissing, saying which setting; with spec.apiKeySecretRef it is served', async () => {
    await f.restartOperator({ defaultApiKeyNamespaces: ['some-other-team'] });
    f.op.resetCounters();
    await createEnvironment(f.admin, f.ns.name, 'keyless', { cloud: {} });
    const missing = await waitForCondition(f.admin, f.ns.name, 'keyless', 'Ready', 'False', 'CredentialsMissing');
    expect(conditionOf(missing, 'Synced')?.message).toBe(
      `spec.apiKeySecretRef is not set, and the operator's default API key does not serve namespace ${f.ns.name} (the operator's --default-api-key-namespaces (chart value tenancy.defaultApiKeyNamespaces)): name a Secret of this namespace in spec.apiKeySecretRef`,
    );
    expect(f.op.apiCalls).toEqual([]);

    await putSecret(f.admin, f.ns.name, 'team-key', 'api-key', API_KEY);
    await createEnvironment(f.admin, f.ns.name, 'keyed', { cloud: {}, apiKeySecretRef: { name: 'team-key', key: 'api-key' } });
    await waitForReady(f.admin, f.ns.name, 'keyed');
    await deleteAndWait(f.admin, f.ns.name, 'keyed');
    await deleteAndWait(f.admin, f.ns.name, 'keyless');
  });
});
