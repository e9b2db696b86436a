/**
 * AgentEnvironments when things go wrong: an operator killed between the API's create and the
 * status write, API faults (429 with Retry-After, 5xx, timeouts, a fatal 4xx), deletion while the
 * API is unreachable, and credentials that rotate, break or vanish — with no credential in any log
 * line, event or status at the end.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { AGENT_ENVIRONMENTS } from '../../src/crd/resources.ts';
import { CORE } from '../../src/k8s/rest.ts';
import { waitFor } from '../support/cluster.ts';
import { API_KEY } from '../support/emulator.ts';
import type { ApiCall } from '../support/operator.ts';
import {
  conditionOf,
  createEnvironment,
  environmentFixture,
  everythingVisible,
  getEnvironment,
  patchSpec,
  putSecret,
  remote,
  remoteByUid,
  waitForCondition,
  waitForEvent,
  waitForReady,
  type EnvironmentFixture,
} from '../support/environments.ts';

/** A second organization key the emulator accepts: the target of a rotation. */
const ROTATED_KEY = 'sk-ant-api03-rotated-key-for-tests';
/** A key the emulator refuses (revoked, or mistyped). */
const REVOKED_KEY = 'sk-ant-api03-revoked-key-for-tests';

let f: EnvironmentFixture;
beforeAll(async () => {
  // No resync during the file: every pass is caused by the test itself, so API calls can be counted.
  f = await environmentFixture('env-faults', { kubeconfig: inject('operatorKubeconfig'), apiKeys: [API_KEY, ROTATED_KEY], resyncMs: 600_000 });
});
afterEach(() => {
  f?.emu.admin.clearFaults();
});
afterAll(async () => {
  await f?.cleanup();
});

const updates = (): ApiCall[] => f.op.apiCalls.filter((c) => c.endpoint === 'environments.update');
const startOf = (c: ApiCall): number => c.endedAt - c.durationMs;
/** The update attempts since `before`, once the last one succeeded (as the operator saw it). */
const updatesUntilSuccess = (before: number, timeoutMs = 15_000): Promise<ApiCall[]> =>
  waitFor(() => {
    const attempts = updates().slice(before);
    return attempts.at(-1)?.outcome === 200 ? attempts : undefined;
  }, { timeoutMs, what: 'a successful update' });

describe('an operator killed between the API create and the status write', () => {
  it('leaves exactly one environment: the next operator finds it by the uid fence', async () => {
    let killed = false;
    const victim = await f.restartOperator({
      onApiCall: (r) => {
        if (killed || r.endpoint !== 'environments.create' || r.outcome !== 200) return;
        killed = true;
        // The environment exists remotely; this process dies before it can record the id.
        void victim.stop();
        throw new Error('operator killed right after the create');
      },
    });
    const created = await createEnvironment(f.admin, f.ns.name, 'crash', { cloud: {} });
    await waitFor(() => killed, { what: 'the create' });
    await victim.stop();

    const orphaned = await getEnvironment(f.admin, f.ns.name, 'crash');
    expect(orphaned.status?.environmentId).toBeUndefined();
    expect(remoteByUid(f.emu, created.metadata?.uid)).toHaveLength(1);

    await f.restartOperator();
    const env = await waitForReady(f.admin, f.ns.name, 'crash');
    const remotes = remoteByUid(f.emu, created.metadata?.uid);
    expect(remotes.map((r) => r.id)).toEqual([env.status?.environmentId]);
    expect(f.op.apiCalls.filter((c) => c.endpoint === 'environments.create')).toEqual([]);
    expect((await waitForEvent(f.admin, f.ns.name, 'crash', 'Recovered')).message).toContain('uid fence');
  });
});

describe('an operator killed after re-creating an environment deleted behind its back', () => {
  it('the next operator finds the replacement by the uid fence instead of creating a third one', async () => {
    const created = await createEnvironment(f.admin, f.ns.name, 'recreate-crash', { cloud: {} });
    const first = await waitForReady(f.admin, f.ns.name, 'recreate-crash');
    const oldId = first.status?.environmentId ?? '';

    let killed = false;
    const victim = await f.restartOperator({
      resyncMs: 500,
      onApiCall: (r) => {
        if (killed || r.endpoint !== 'environments.create' || r.outcome !== 200) return;
        killed = true;
        void victim.stop();
        throw new Error('operator killed right after the re-create');
      },
    });
    await f.console.deleteEnvironment(oldId);
    await waitFor(() => killed, { timeoutMs: 15_000, what: 'the re-create' });
    await victim.stop();
    expect((await getEnvironment(f.admin, f.ns.name, 'recreate-crash')).status?.environmentId).toBe(oldId);
    const [replacement, ...others] = remoteByUid(f.emu, created.metadata?.uid);
    expect(others).toEqual([]);

    await f.restartOperator();
    const env = await waitFor(async () => {
      const e = await getEnvironment(f.admin, f.ns.name, 'recreate-crash');
      return e.status?.environmentId !== oldId ? e : undefined;
    }, { what: 'the replacement to be recorded' });
    expect(env.status?.environmentId).toBe(replacement?.id);
    expect(remoteByUid(f.emu, created.metadata?.uid).map((r) => r.id)).toEqual([replacement?.id]);
    expect(f.op.apiCalls.filter((c) => c.endpoint === 'environments.create')).toEqual([]);
  });
});

describe('API faults', () => {
  it('429 with Retry-After: the retry waits as long as the API asked', async () => {
    await createEnvironment(f.admin, f.ns.name, 'rate-limited', { cloud: {} });
    const env = await waitForReady(f.admin, f.ns.name, 'rate-limited');
    const before = updates().length;
    f.emu.admin.setFaults([{ method: 'POST', path: `/v1/environments/${env.status?.environmentId}`, status: 429, retry_after: 1, count: 2 }]);

    await patchSpec(f.admin, f.ns.name, 'rate-limited', { name: 'after the rate limit' });
    const attempts = await updatesUntilSuccess(before);
    expect(remote(f.emu, env.status?.environmentId)?.name).toBe('after the rate limit');
    expect(attempts.map((c) => c.outcome)).toEqual([429, 429, 200]);
    for (let i = 1; i < attempts.length; i++) expect(startOf(attempts[i]!) - attempts[i - 1]!.endedAt).toBeGreaterThanOrEqual(990);
  });

  it('429 asking for longer than the client waits in place: the controller requeues no earlier than Retry-After', async () => {
    const env = await waitForReady(f.admin, f.ns.name, 'rate-limited');
    const before = updates().length;
    f.emu.admin.setFaults([{ method: 'POST', path: `/v1/environments/${env.status?.environmentId}`, status: 429, retry_after: 5, count: 1 }]);

    await patchSpec(f.admin, f.ns.name, 'rate-limited', { name: 'after a long rate limit' });
    await waitForCondition(f.admin, f.ns.name, 'rate-limited', 'Synced', 'False', 'ApiUnavailable');
    const attempts = await updatesUntilSuccess(before);
    expect(remote(f.emu, env.status?.environmentId)?.name).toBe('after a long rate limit');
    expect(attempts.map((c) => c.outcome)).toEqual([429, 200]);
    expect(startOf(attempts[1]!) - attempts[0]!.endedAt).toBeGreaterThanOrEqual(4_900);
    await waitForReady(f.admin, f.ns.name, 'rate-limited');
  });

  it('5xx: retried with backoff until the API recovers, reported as ApiUnavailable meanwhile', async () => {
    await createEnvironment(f.admin, f.ns.name, 'server-errors', { cloud: {} });
    const env = await waitForReady(f.admin, f.ns.name, 'server-errors');
    const before = updates().length;
    f.emu.admin.setFaults([{ method: 'POST', path: `/v1/environments/${env.status?.environmentId}`, status: 503, count: 5 }]);

    await patchSpec(f.admin, f.ns.name, 'server-errors', { description: 'after the outage' });
    const attempts = await updatesUntilSuccess(before);
    expect(remote(f.emu, env.status?.environmentId)?.description).toBe('after the outage');
    expect(attempts.map((c) => c.outcome)).toEqual([503, 503, 503, 503, 503, 200]);
    await waitForEvent(f.admin, f.ns.name, 'server-errors', 'ApiUnavailable');
    await waitForReady(f.admin, f.ns.name, 'server-errors');
  });

  it('timeouts (a slow API): the call is abandoned at its deadline and retried', async () => {
    const env = await waitForReady(f.admin, f.ns.name, 'server-errors');
    const id = env.status?.environmentId ?? '';
    const before = f.op.apiCalls.length;
    f.emu.admin.setFaults([{ method: 'GET', path: `/v1/environments/${id}`, latency_ms: 4_000, count: 2 }]);

    await patchSpec(f.admin, f.ns.name, 'server-errors', { description: 'after the slow replies' });
    await waitFor(() => remote(f.emu, id)?.description === 'after the slow replies', { timeoutMs: 20_000, what: 'the update' });
    const gets = f.op.apiCalls.slice(before).filter((c) => c.endpoint === 'environments.get');
    expect(gets.map((c) => c.outcome).slice(0, 3)).toEqual(['timeout', 'timeout', 200]);
  });

  it("a fatal 4xx sets Synced=False with the API's message and is not retried in a loop", async () => {
    await createEnvironment(f.admin, f.ns.name, 'refused', { cloud: {} });
    const env = await waitForReady(f.admin, f.ns.name, 'refused');
    const id = env.status?.environmentId ?? '';
    const message = 'config.networking.allowed_hosts: example.org is blocked by your organization policy';
    f.emu.admin.setFaults([{ method: 'POST', path: `/v1/environments/${id}`, status: 400, message }]);
    const before = updates().length;

    await patchSpec(f.admin, f.ns.name, 'refused', { cloud: { networking: { type: 'limited', allowedHosts: ['example.org'] } } });
    const refused = await waitForCondition(f.admin, f.ns.name, 'refused', 'Synced', 'False', 'ApiRejected');
    expect(conditionOf(refused, 'Synced')?.message).toContain(message);
    expect((await waitForEvent(f.admin, f.ns.name, 'refused', 'ApiRejected')).message).toContain(message);

    // A hot loop would retry every few hundred ms (the test backoff); a fatal error waits for a change.
    await sleep(3_000);
    expect(updates().slice(before)).toHaveLength(1);

    f.emu.admin.clearFaults();
    await patchSpec(f.admin, f.ns.name, 'refused', { cloud: { networking: { type: 'limited', allowedHosts: ['example.com'] } } });
    await waitForReady(f.admin, f.ns.name, 'refused');
  });

  it('deletion while the API is unreachable waits with DeletionBlocked (condition and event), then completes', async () => {
    await createEnvironment(f.admin, f.ns.name, 'blocked-deletion', { cloud: {}, deletionPolicy: 'Delete' });
    const env = await waitForReady(f.admin, f.ns.name, 'blocked-deletion');
    const id = env.status?.environmentId ?? '';
    f.emu.admin.setFaults([{ path: '/v1/**', reset: true }]);

    await f.admin.delete(AGENT_ENVIRONMENTS, f.ns.name, 'blocked-deletion');
    const blocked = await waitForCondition(f.admin, f.ns.name, 'blocked-deletion', 'Synced', 'False', 'DeletionBlocked');
    expect(blocked.metadata?.deletionTimestamp).toBeDefined();
    expect(blocked.metadata?.finalizers).toContain('agentenv.io/environment');
    expect(conditionOf(blocked, 'Synced')?.message).toContain('deletionPolicy Delete');
    await waitForEvent(f.admin, f.ns.name, 'blocked-deletion', 'DeletionBlocked');
    expect(remote(f.emu, id)).toBeDefined();

    f.emu.admin.clearFaults();
    await waitFor(() => getEnvironment(f.admin, f.ns.name, 'blocked-deletion').then(() => false, () => true), { timeoutMs: 15_000, what: 'the deletion to complete' });
    expect(remote(f.emu, id)).toBeUndefined();
  });
});

describe('credentials', () => {
  it('a rotated Secret takes effect without a restart; a refused key and a missing Secret are conditions and events, not crashes', async () => {
    await putSecret(f.admin, f.ns.name, 'org-key', 'api-key', API_KEY);
    await createEnvironment(f.admin, f.ns.name, 'rotating', { cloud: {}, apiKeySecretRef: { name: 'org-key', key: 'api-key' } });
    const env = await waitForReady(f.admin, f.ns.name, 'rotating');
    const id = env.status?.environmentId ?? '';
    const operator = f.op;

    // The key is revoked: the Secret now holds a key the API refuses.
    await putSecret(f.admin, f.ns.name, 'org-key', 'api-key', REVOKED_KEY);
    await patchSpec(f.admin, f.ns.name, 'rotating', { description: 'written with the rotated key' });
    const refused = await waitForCondition(f.admin, f.ns.name, 'rotating', 'Synced', 'False', 'CredentialsInvalid');
    expect(conditionOf(refused, 'Ready')?.status).toBe('False');
    await waitForEvent(f.admin, f.ns.name, 'rotating', 'CredentialsInvalid');
    expect(remote(f.emu, id)?.description).toBe('');

    // The new key lands in the Secret: the resource recovers on its own.
    await putSecret(f.admin, f.ns.name, 'org-key', 'api-key', ROTATED_KEY);
    await waitForReady(f.admin, f.ns.name, 'rotating');
    expect(remote(f.emu, id)?.description).toBe('written with the rotated key');

    // The Secret disappears: CredentialsMissing, and the operator keeps serving other resources.
    await f.admin.delete(CORE.secrets, f.ns.name, 'org-key');
    await patchSpec(f.admin, f.ns.name, 'rotating', { description: 'after the Secret is back' });
    const missing = await waitForCondition(f.admin, f.ns.name, 'rotating', 'Synced', 'False', 'CredentialsMissing');
    expect(conditionOf(missing, 'Synced')?.message).toContain('org-key');
    await waitForEvent(f.admin, f.ns.name, 'rotating', 'CredentialsMissing');
    await createEnvironment(f.admin, f.ns.name, 'unaffected', { cloud: {} });
    await waitForReady(f.admin, f.ns.name, 'unaffected');

    await putSecret(f.admin, f.ns.name, 'org-key', 'api-key', ROTATED_KEY);
    await waitForReady(f.admin, f.ns.name, 'rotating');
    expect(remote(f.emu, id)?.description).toBe('after the Secret is back');
    expect(f.op).toBe(operator);
  });

  it('no credential in any log line, event or status', async () => {
    const visible = await everythingVisible(f);
    // The failures above were logged with their errors: the lines most likely to carry a credential.
    const lines = f.operators.flatMap((o) => o.logLines);
    expect(lines.filter((l) => l.includes('"err"')).length).toBeGreaterThanOrEqual(4);
    expect(lines.some((l) => l.includes('CredentialsInvalid'))).toBe(true);
    expect(lines.some((l) => l.includes('CredentialsMissing'))).toBe(true);
    for (const secret of [API_KEY, ROTATED_KEY, REVOKED_KEY]) expect(visible).not.toContain(secret);
  });
});
