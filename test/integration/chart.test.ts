/**
 * The Helm chart's manifests against a real kube-apiserver: server-side dry run (admission, OpenAPI
 * and CRD schemas, strict field validation) of both profiles and of the PrometheusRule, and the
 * namespaced profile's RBAC applied for real to show what the operator may and may not do.
 *
 * The ServiceMonitor and PrometheusRule kinds come from the prometheus-operator CRDs (fetched through
 * the Go module proxy, see scripts/tools.ts); this file installs them and removes them afterwards.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensureControlPlaneBinaries } from '../../src/localcluster/index.ts';
import { ensureTool, goModuleDir, PROMETHEUS_OPERATOR_VERSION } from '../../scripts/tools.ts';
import { NAMESPACED_VALUES, parseManifests, renderText, REPO } from '../chart/helm.ts';
import { createNamespace, type TestNamespace } from '../support/cluster.ts';

const MONITORING_CRDS = ['servicemonitors', 'prometheusrules'];

let kubectlBin: string;
async function kubectl(args: readonly string[], stdin?: string): Promise<{ ok: boolean; out: string }> {
  return new Promise((resolve) => {
    const child = execFile(kubectlBin, ['--kubeconfig', inject('adminKubeconfig'), ...args], { maxBuffer: 32 << 20 }, (err, stdout, stderr) =>
      resolve({ ok: !err, out: `${stdout}${stderr}` }),
    );
    child.stdin?.end(stdin ?? '');
  });
}

/**
 * Server-side apply in dry-run mode with strict field validation: nothing is persisted. The chart
 * names each object's namespace itself; `namespace` is for manifests that carry none.
 */
const dryRun = (yaml: string, namespace?: string) =>
  kubectl(['apply', '--server-side', '--dry-run=server', '--validate=strict', '--field-manager=agentenv-chart-test', ...(namespace ? ['-n', namespace] : []), '-f', '-'], yaml);

let release: TestNamespace;
let watched: TestNamespace[];
let outside: TestNamespace;

beforeAll(async () => {
  kubectlBin = (await ensureControlPlaneBinaries()).kubectl;
  await ensureTool('helm');
  const [r, o, ...w] = await Promise.all(['chart-release', 'chart-outside', 'chart-team-a', 'chart-team-b'].map((p) => createNamespace(p)));
  [release, outside, watched] = [r!, o!, w];
  const crdDir = join(await goModuleDir('github.com/prometheus-operator/prometheus-operator', PROMETHEUS_OPERATOR_VERSION), 'example', 'prometheus-operator-crd');
  for (const plural of MONITORING_CRDS) {
    const applied = await kubectl(['apply', '--server-side', '-f', join(crdDir, `monitoring.coreos.com_${plural}.yaml`)]);
    expect(applied.ok, applied.out).toBe(true);
  }
  const established = await kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...MONITORING_CRDS.map((p) => `crd/${p}.monitoring.coreos.com`)]);
  expect(established.ok, established.out).toBe(true);
  // A cold cache builds helm here (about a minute on an idle machine).
}, 900_000);

afterAll(async () => {
  await Promise.all([release, outside, ...(watched ?? [])].filter(Boolean).map((ns) => ns.cleanup()));
  if (kubectlBin) await kubectl(['delete', '--ignore-not-found', '--wait=false', ...MONITORING_CRDS.map((p) => `crd/${p}.monitoring.coreos.com`)]);
});

function expectAllApplied(out: string, yaml: string): void {
  const manifests = parseManifests(yaml);
  const applied = out.split('\n').filter((l) => /serverside-applied \(server dry run\)/.test(l));
  expect(applied.length, out).toBe(manifests.length);
}

describe('server-side dry run of the chart', () => {
  it('default values (CRDs included) are accepted by the apiserver', async () => {
    const yaml = await renderText({ includeCrds: true, release: 'dryrun-default', namespace: release.name });
    const r = await dryRun(yaml);
    expect(r.ok, r.out).toBe(true);
    expectAllApplied(r.out, yaml);
  });

  it('the hardened, namespaced profile with its ServiceMonitor and NetworkPolicy is accepted', async () => {
    const yaml = await renderText({
      includeCrds: true,
      release: 'dryrun-namespaced',
      namespace: release.name,
      valuesFiles: [NAMESPACED_VALUES],
      set: watched.map((ns, i) => `watchNamespaces[${i}]=${ns.name}`),
    });
    const r = await dryRun(yaml);
    expect(r.ok, r.out).toBe(true);
    expectAllApplied(r.out, yaml);
  });

  it('the suggested alerts (PrometheusRule) are accepted', async () => {
    const yaml = await readFile(join(REPO, 'deploy', 'observability', 'alerts.yaml'), 'utf8');
    const r = await dryRun(yaml, release.name);
    expect(r.ok, r.out).toBe(true);
    expectAllApplied(r.out, yaml);
  });

  it('refuses a manifest with an unknown field (the dry run validates, it does not just parse)', async () => {
    const yaml = (await renderText({ release: 'dryrun-bad', namespace: release.name })).replace('revisionHistoryLimit: 5', 'revisionHistoryLimit: 5\n  revisionHistoryLimt: 5');
    const r = await dryRun(yaml);
    expect(r.ok).toBe(false);
    expect(r.out).toMatch(/\.spec\.revisionHistoryLimt: field not declared in schema/);
  });
});

describe('the namespaced profile grants permissions in the watched namespaces only', () => {
  it('lets the operator manage Pods and AgentSessions where it watches, and nowhere else', async () => {
    const yaml = await renderText({ release: 'rbac', namespace: release.name, valuesFiles: [NAMESPACED_VALUES], set: watched.map((ns, i) => `watchNamespaces[${i}]=${ns.name}`) });
    // Only the ServiceAccount and the namespaced RBAC are created for real (they go with the namespaces).
    const rbac = parseManifests(yaml).filter((m) => ['ServiceAccount', 'Role', 'RoleBinding'].includes(m.kind));
    const applied = await kubectl(['apply', '-f', '-'], rbac.map((m) => JSON.stringify(m)).join('\n---\n'));
    expect(applied.ok, applied.out).toBe(true);
    const as = `system:serviceaccount:${release.name}:rbac-agentenv`;
    const can = async (...args: string[]): Promise<boolean> => (await kubectl(['auth', 'can-i', '--as', as, ...args])).out.trim().startsWith('yes');
    for (const ns of watched) {
      expect(await can('create', 'pods', '-n', ns.name)).toBe(true);
      expect(await can('create', 'agentsessions.agentenv.io', '-n', ns.name)).toBe(true);
      expect(await can('watch', 'agentenvironments.agentenv.io', '-n', ns.name)).toBe(true);
      expect(await can('update', 'secrets', '-n', ns.name)).toBe(false);
    }
    // The release's own Lease only (resourceNames), which any Lease may not be.
    expect(await can('update', 'leases.coordination.k8s.io/rbac-agentenv', '-n', release.name)).toBe(true);
    expect(await can('update', 'leases.coordination.k8s.io/another-release', '-n', release.name)).toBe(false);
    expect(await can('create', 'leases.coordination.k8s.io', '-n', release.name)).toBe(true);
    expect(await can('create', 'pods', '-n', outside.name)).toBe(false);
    expect(await can('get', 'secrets', '-n', outside.name)).toBe(false);
    expect(await can('update', 'leases.coordination.k8s.io', '-n', outside.name)).toBe(false);
    expect(await can('list', 'agentenvironments.agentenv.io', '--all-namespaces')).toBe(false);
  });
});

describe('the aggregated ClusterRoles', () => {
  it("give the built-in view and edit roles' holders read, and manage-environments, rights on the custom resources", async () => {
    const yaml = await renderText({ release: 'aggregate', namespace: release.name });
    const roles = parseManifests(yaml).filter((m) => m.kind === 'ClusterRole' && /-(view|edit)$/.test(m.metadata.name));
    expect(roles.map((m) => m.metadata.name).sort()).toEqual(['aggregate-agentenv-edit', 'aggregate-agentenv-view']);
    const bindings = ['view', 'edit'].map((role) => ({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: `aggregate-${role}`, namespace: outside.name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: `${role}-user` }],
    }));
    const applied = await kubectl(['apply', '-f', '-'], [...roles, ...bindings].map((m) => JSON.stringify(m)).join('\n---\n'));
    expect(applied.ok, applied.out).toBe(true);
    try {
      const can = async (user: string, ...args: string[]): Promise<boolean> => (await kubectl(['auth', 'can-i', '--as', user, '-n', outside.name, ...args])).out.trim().startsWith('yes');
      // kube-controller-manager's aggregation controller folds the labelled roles into view/edit/admin.
      const deadline = Date.now() + 30_000;
      while (!(await can('view-user', 'list', 'agentenvironments.agentenv.io')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
      expect(await can('view-user', 'list', 'agentenvironments.agentenv.io')).toBe(true);
      expect(await can('view-user', 'get', 'agentsessions.agentenv.io')).toBe(true);
      expect(await can('view-user', 'create', 'agentenvironments.agentenv.io')).toBe(false);
      expect(await can('view-user', 'delete', 'agentsessions.agentenv.io')).toBe(false);
      while (!(await can('edit-user', 'create', 'agentenvironments.agentenv.io')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
      expect(await can('edit-user', 'create', 'agentenvironments.agentenv.io')).toBe(true);
      expect(await can('edit-user', 'delete', 'agentsessions.agentenv.io')).toBe(true);
      // AgentSessions are the operator's records: nobody but the operator writes them.
      expect(await can('edit-user', 'create', 'agentsessions.agentenv.io')).toBe(false);
      expect(await can('edit-user', 'update', 'agentsessions.agentenv.io')).toBe(false);
    } finally {
      await kubectl(['delete', '--ignore-not-found', ...roles.map((m) => `clusterrole/${m.metadata.name}`)]);
    }
  });
});

describe("the uninstall hook's ServiceAccount", () => {
  it('may list, delete and un-finalize AgentEnvironments and AgentSessions where the operator watches, and nothing else', async () => {
    const yaml = await renderText({ release: 'hook', namespace: release.name, valuesFiles: [NAMESPACED_VALUES], set: watched.map((ns, i) => `watchNamespaces[${i}]=${ns.name}`) });
    const hook = parseManifests(yaml).filter((m) => m.metadata.annotations?.['helm.sh/hook'] === 'pre-delete' && m.kind !== 'Job');
    const applied = await kubectl(['apply', '-f', '-'], hook.map((m) => JSON.stringify(m)).join('\n---\n'));
    expect(applied.ok, applied.out).toBe(true);
    const as = `system:serviceaccount:${release.name}:hook-agentenv-uninstall`;
    const can = async (...args: string[]): Promise<boolean> => (await kubectl(['auth', 'can-i', '--as', as, ...args])).out.trim().startsWith('yes');
    for (const ns of watched) {
      expect(await can('delete', 'agentenvironments.agentenv.io', '-n', ns.name)).toBe(true);
      expect(await can('patch', 'agentsessions.agentenv.io', '-n', ns.name)).toBe(true);
      expect(await can('list', 'agentenvironments.agentenv.io', '-n', ns.name)).toBe(true);
      expect(await can('create', 'agentenvironments.agentenv.io', '-n', ns.name)).toBe(false);
      expect(await can('get', 'secrets', '-n', ns.name)).toBe(false);
      expect(await can('delete', 'pods', '-n', ns.name)).toBe(false);
    }
    expect(await can('delete', 'agentenvironments.agentenv.io', '-n', outside.name)).toBe(false);
  });
});
