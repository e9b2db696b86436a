/**
 * `agentenv uninstall` (the chart's pre-delete hook) against the real apiserver, the emulator and the
 * in-process operator: refuse while AgentEnvironments exist, delete them with their deletion policies
 * applied, or orphan them (finalizers removed, remote environments untouched) so that nothing is
 * left stuck in Terminating once the operator is gone.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AGENT_ENVIRONMENTS, AGENT_SESSIONS, type AgentSession } from '../../src/crd/resources.ts';
import { SESSION_FINALIZER } from '../../src/crd/meta.ts';
import { isNotFound } from '../../src/k8s/errors.ts';
import { runUninstall, type UninstallPolicy } from '../../src/lifecycle/uninstall.ts';
import { waitFor } from '../support/cluster.ts';
import { createEnvironment, environmentFixture, getEnvironment, remote, waitForReady, type EnvironmentFixture } from '../support/environments.ts';

const CLOUD = { cloud: { networking: { type: 'unrestricted' } } };

let f: EnvironmentFixture;
beforeAll(async () => {
  f = await environmentFixture('uninstall', { kubeconfig: inject('operatorKubeconfig') });
});
afterAll(async () => {
  await f?.cleanup();
});

async function uninstall(policy: UninstallPolicy, timeoutMs = 20_000): Promise<{ ok: boolean; lines: string[] }> {
  const lines: string[] = [];
  // The chart's hook Job has a ServiceAccount of its own (get, list, delete, patch on the two kinds);
  // the operator's own identity may not delete AgentEnvironments.
  const ok = await runUninstall({ rest: f.admin, policy, namespaces: [f.ns.name], timeoutMs, pollMs: 200, print: (l) => lines.push(l) });
  return { ok, lines };
}

const gone = async (name: string): Promise<boolean> => getEnvironment(f.admin, f.ns.name, name).then(() => false, (err) => isNotFound(err));

describe('agentenv uninstall', () => {
  it('refuses while an AgentEnvironment exists, naming it and the two ways on; nothing is changed', async () => {
    await createEnvironment(f.admin, f.ns.name, 'refused', CLOUD);
    const before = await waitForReady(f.admin, f.ns.name, 'refused');
    const { ok, lines } = await uninstall('refuse');
    expect(ok).toBe(false);
    expect(lines.at(-1)).toMatch(new RegExp(`refusing to uninstall: 1 AgentEnvironment\\(s\\) still exist \\(${f.ns.name}/refused\\).*uninstall\\.policy=delete.*uninstall\\.policy=orphan`));
    const after = await getEnvironment(f.admin, f.ns.name, 'refused');
    expect(after.metadata?.deletionTimestamp).toBeUndefined();
    expect(after.metadata?.finalizers).toEqual(before.metadata?.finalizers);
  });

  it('delete: every AgentEnvironment is deleted by the operator with its deletionPolicy applied (Archive by default), then the release may go', async () => {
    const env = await waitForReady(f.admin, f.ns.name, 'refused');
    const { ok, lines } = await uninstall('delete');
    expect(ok, lines.join('\n')).toBe(true);
    expect(await gone('refused')).toBe(true);
    expect(remote(f.emu, env.status?.environmentId)?.archived_at).not.toBeNull();
    expect((await uninstall('refuse')).ok).toBe(true);
  });

  it('orphan: with the operator gone, the finalizers are removed and the remote environment is untouched, so deletion no longer hangs', async () => {
    await createEnvironment(f.admin, f.ns.name, 'orphaned', CLOUD);
    const env = await waitForReady(f.admin, f.ns.name, 'orphaned');
    await f.op.stop();
    // A session record with the operator's finalizer, as a dispatcher would leave it (made after the operator stopped, so nothing acts on it).
    await f.admin.create<AgentSession>(AGENT_SESSIONS, f.ns.name, {
      apiVersion: 'agentenv.io/v1alpha1',
      kind: 'AgentSession',
      metadata: { name: 'orphaned-work-1', namespace: f.ns.name, finalizers: [SESSION_FINALIZER] },
      spec: { environmentRef: { name: 'orphaned' }, environmentId: env.status!.environmentId!, sessionId: 'sesn_orphan', workId: 'work_orphan', workerId: 'w', claimedAt: new Date().toISOString() },
    } as AgentSession);
    await f.admin.delete(AGENT_ENVIRONMENTS, f.ns.name, 'orphaned');
    // Without the operator the finalizer holds the object in Terminating.
    expect((await getEnvironment(f.admin, f.ns.name, 'orphaned')).metadata?.deletionTimestamp).toBeDefined();

    const { ok, lines } = await uninstall('orphan');
    expect(ok, lines.join('\n')).toBe(true);
    expect(lines.join('\n')).toContain(`orphaned AgentEnvironment ${f.ns.name}/orphaned: finalizer removed, remote environment ${env.status?.environmentId} left untouched`);
    await waitFor(() => gone('orphaned'), { timeoutMs: 10_000, what: 'the orphaned AgentEnvironment to be gone' });
    const session = await f.admin.get<AgentSession>(AGENT_SESSIONS, f.ns.name, 'orphaned-work-1');
    expect(session.metadata?.finalizers ?? []).toEqual([]);
    const r = remote(f.emu, env.status?.environmentId);
    expect(r).toBeDefined();
    expect(r?.archived_at).toBeNull();
    await f.admin.delete(AGENT_SESSIONS, f.ns.name, 'orphaned-work-1');
    await f.restartOperator();
  });
});

