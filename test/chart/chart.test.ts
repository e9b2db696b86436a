/**
 * The Helm chart rendered by the real helm and validated by kubeconform against the Kubernetes
 * schemas of the local control plane's version (see scripts/kubeconform-schemas.ts), for the
 * default values and for the hardened, namespaced profile (values-namespaced.yaml).
 */
import { readFile, readdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CHART, find, helm, kubeconform, NAMESPACED_VALUES, parseManifests, RELEASE_NAMESPACE, render, renderText, REPO, type Manifest } from './helm.ts';

interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}
interface Container {
  name: string;
  args: string[];
  env: { name: string; value?: string; valueFrom?: unknown }[];
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  securityContext: Record<string, unknown>;
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface PodSpec {
  securityContext: Record<string, unknown>;
  containers: Container[];
  volumes: { name: string; secret?: { secretName: string }; emptyDir?: unknown }[];
  topologySpreadConstraints: unknown[];
  [k: string]: unknown;
}
const podSpec = (m: Manifest): PodSpec => (m['spec'] as { template: { spec: PodSpec } }).template.spec;
const operatorContainer = (m: Manifest): Container => podSpec(m).containers[0]!;
const envValue = (c: Container, name: string): string | undefined => c.env.find((e) => e.name === name)?.value;

const rulesFile = async (): Promise<PolicyRule[]> => parse(await readFile(join(CHART, 'files', 'operator-rbac-rules.yaml'), 'utf8')) as PolicyRule[];
const isLeaseRule = (r: PolicyRule): boolean => r.apiGroups.includes('coordination.k8s.io');

describe('default values', () => {
  let text: string;
  let manifests: Manifest[];
  beforeAll(async () => {
    text = await renderText({ includeCrds: true });
    manifests = parseManifests(text);
  }, 300_000);

  it('passes helm lint', async () => {
    const r = await helm(['lint', CHART, '--strict']);
    expect(r.stderr + r.stdout).toMatch(/0 chart\(s\) failed/);
    expect(r.ok).toBe(true);
  });

  it('validates strictly against the Kubernetes and CRD schemas', async () => {
    const report = await kubeconform(text);
    expect(report.output).toMatch(/Invalid: 0, Errors: 0, Skipped: 0/);
    expect(report.ok).toBe(true);
  });

  it('renders the CRDs from crds/ (one copy): the same objects plus the release labels and the keep policy', async () => {
    const crds = manifests.filter((m) => m.kind === 'CustomResourceDefinition');
    expect(crds.map((m) => m.metadata.name).sort()).toEqual(['agentenvironments.agentenv.io', 'agentsessions.agentenv.io']);
    for (const file of (await readdir(join(REPO, 'crds'))).filter((f) => f.endsWith('.yaml'))) {
      const source = parse(await readFile(join(REPO, 'crds', file), 'utf8')) as Manifest;
      const rendered = crds.find((m) => m.metadata.name === source.metadata.name)!;
      expect(rendered['spec']).toEqual(source['spec']);
      expect(rendered.metadata.labels).toEqual({ ...source.metadata.labels, 'helm.sh/chart': expect.stringMatching(/^agentenv-/), 'app.kubernetes.io/instance': 'agentenv', 'app.kubernetes.io/managed-by': 'Helm' });
      // helm uninstall leaves the CRDs, and with them every AgentEnvironment and AgentSession.
      expect(rendered.metadata.annotations).toEqual({ 'helm.sh/resource-policy': 'keep' });
    }
  });

  it('leaves the CRDs out with crds.enabled=false, and lets uninstall remove them with crds.keep=false', async () => {
    expect((await render({ set: ['crds.enabled=false'] })).some((m) => m.kind === 'CustomResourceDefinition')).toBe(false);
    const unkept = (await render({ set: ['crds.keep=false'] })).filter((m) => m.kind === 'CustomResourceDefinition');
    expect(unkept).toHaveLength(2);
    for (const crd of unkept) expect(crd.metadata.annotations?.['helm.sh/resource-policy']).toBeUndefined();
  });

  it('runs two replicas with leader election, the health port for probes and the metrics port', () => {
    const deployment = find(manifests, 'Deployment');
    expect((deployment['spec'] as { replicas: number }).replicas).toBe(2);
    const c = operatorContainer(deployment);
    expect(c.args[0]).toBe('operator');
    expect(c.args).not.toContain('--no-leader-elect');
    expect(c.args).toEqual(expect.arrayContaining(['--metrics-port=8080', '--health-port=8081']));
    expect(c.ports).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'metrics', containerPort: 8080 }), expect.objectContaining({ name: 'health', containerPort: 8081 })]));
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'health' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'health' });
    expect(c.resources.requests).toBeDefined();
    expect(c.resources.limits?.['memory']).toBeDefined();
    expect(podSpec(deployment).topologySpreadConstraints.length).toBeGreaterThan(0);
    expect(envValue(c, 'POD_NAMESPACE')).toBeUndefined(); // from the downward API, not a literal
    expect(c.env.find((e) => e.name === 'POD_NAMESPACE')?.valueFrom).toEqual({ fieldRef: { fieldPath: 'metadata.namespace' } });
  });

  it('hardens the Pod: numeric non-root user, read-only root filesystem, no capabilities, RuntimeDefault seccomp', () => {
    const spec = podSpec(find(manifests, 'Deployment'));
    expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } });
    expect(spec.containers[0]!.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    // The only writable paths are volumes.
    expect(spec.volumes.find((v) => v.name === 'tmp')?.emptyDir).toBeDefined();
  });

  it('grants the rules of files/operator-rbac-rules.yaml cluster-wide, except Leases, which only the release namespace gets', async () => {
    const rules = await rulesFile();
    const clusterRole = find(manifests, 'ClusterRole', 'agentenv');
    expect(clusterRole['rules']).toEqual(rules.filter((r) => !isLeaseRule(r)));
    const leaseRole = find(manifests, 'Role', 'agentenv-leader-election');
    expect(leaseRole.metadata.namespace).toBe(RELEASE_NAMESPACE);
    expect(leaseRole['rules']).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['agentenv'], verbs: ['get', 'update'] },
    ]);
    const binding = find(manifests, 'ClusterRoleBinding');
    expect(binding['subjects']).toEqual([{ kind: 'ServiceAccount', name: 'agentenv', namespace: RELEASE_NAMESPACE }]);
  });

  it('keeps one voluntary disruption at a time with a PodDisruptionBudget', () => {
    const pdb = find(manifests, 'PodDisruptionBudget');
    expect(pdb['spec']).toEqual({ maxUnavailable: 1, selector: { matchLabels: expect.objectContaining({ 'app.kubernetes.io/component': 'operator' }) } });
  });

  it('renders no PodDisruptionBudget for one replica, which would block every node drain', async () => {
    const one = parseManifests(await renderText({ set: ['replicaCount=1', 'leaderElection.enabled=false'] }));
    expect(one.some((m) => m.kind === 'PodDisruptionBudget')).toBe(false);
  });

  it('labels every templated object with the app.kubernetes.io/* set', () => {
    for (const m of manifests.filter((x) => x.kind !== 'CustomResourceDefinition')) {
      expect(m.metadata.labels, `${m.kind}/${m.metadata.name}`).toMatchObject({
        'app.kubernetes.io/name': 'agentenv',
        'app.kubernetes.io/instance': 'agentenv',
        'app.kubernetes.io/version': expect.any(String),
        'app.kubernetes.io/managed-by': 'Helm',
        'app.kubernetes.io/part-of': 'agentenv',
      });
    }
  });

  it('creates no Secret, NetworkPolicy or ServiceMonitor unless asked', () => {
    expect(manifests.map((m) => m.kind)).not.toEqual(expect.arrayContaining(['Secret']));
    expect(manifests.some((m) => m.kind === 'NetworkPolicy' || m.kind === 'ServiceMonitor')).toBe(false);
  });
});

describe('hardened, namespaced profile (values-namespaced.yaml)', () => {
  let text: string;
  let manifests: Manifest[];
  beforeAll(async () => {
    text = await renderText({ valuesFiles: [NAMESPACED_VALUES], includeCrds: true });
    manifests = parseManifests(text);
  }, 300_000);

  it('passes helm lint and validates strictly against the schemas', async () => {
    const lint = await helm(['lint', CHART, '--strict', '--values', NAMESPACED_VALUES]);
    expect(lint.ok).toBe(true);
    const report = await kubeconform(text);
    expect(report.output).toMatch(/Invalid: 0, Errors: 0, Skipped: 0/);
    expect(report.ok).toBe(true);
  });

  it('has no cluster-wide permission: one Role and RoleBinding per watched namespace, and WATCH_NAMESPACES', async () => {
    expect(manifests.some((m) => m.kind === 'ClusterRole' || m.kind === 'ClusterRoleBinding')).toBe(false);
    const rules = (await rulesFile()).filter((r) => !isLeaseRule(r));
    for (const ns of ['team-a', 'team-b']) {
      const role = manifests.find((m) => m.kind === 'Role' && m.metadata.namespace === ns);
      expect(role?.['rules']).toEqual(rules);
      const binding = manifests.find((m) => m.kind === 'RoleBinding' && m.metadata.namespace === ns);
      expect(binding?.['roleRef']).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role?.metadata.name });
    }
    expect(envValue(operatorContainer(find(manifests, 'Deployment')), 'WATCH_NAMESPACES')).toBe('team-a,team-b');
  });

  it('mounts the existing API key Secret as a file and never puts a key in the environment', () => {
    const deployment = find(manifests, 'Deployment');
    const c = operatorContainer(deployment);
    expect(envValue(c, 'ANTHROPIC_API_KEY_FILE')).toBe('/var/run/agentenv/api-key/key');
    expect(c.env.some((e) => e.name === 'ANTHROPIC_API_KEY')).toBe(false);
    expect(c.volumeMounts).toContainEqual({ name: 'api-key', mountPath: '/var/run/agentenv/api-key', readOnly: true });
    expect(podSpec(deployment).volumes.find((v) => v.name === 'api-key')?.secret?.secretName).toBe('anthropic-api-key');
    expect(manifests.some((m) => m.kind === 'Secret')).toBe(false);
  });

  it('pins images by digest and passes the sidecar image to the operator', () => {
    const c = podSpec(find(manifests, 'Deployment')).containers[0] as Container & { image: string };
    expect(c.image).toBe('registry.example.com/agentenv/agentenv@sha256:0000000000000000000000000000000000000000000000000000000000000001');
    expect(envValue(c, 'AGENTENV_SIDECAR_IMAGE')).toBe('registry.example.com/agentenv/agentenv@sha256:0000000000000000000000000000000000000000000000000000000000000002');
    expect(envValue(c, 'AGENTENV_SIDECAR_IMAGE_PULL_POLICY')).toBe('Always');
    expect(envValue(c, 'AGENTENV_RUNNER_IMAGE')).toBe('registry.example.com/agentenv/agentenv-runner@sha256:0000000000000000000000000000000000000000000000000000000000000003');
    expect(envValue(c, 'AGENTENV_RUNNER_IMAGE_PULL_POLICY')).toBe('Always');
    expect(envValue(c, 'AGENTENV_SESSION_PROXY_ADDRESS')).toBe('loopback');
  });

  it('renders the NetworkPolicy, the ServiceMonitor and the scheduling constraints', () => {
    const policy = find(manifests, 'NetworkPolicy');
    expect((policy['spec'] as { policyTypes: string[] }).policyTypes).toEqual(['Ingress', 'Egress']);
    expect(JSON.stringify(policy['spec'])).toContain('172.18.0.2/32');
    expect(find(manifests, 'ServiceMonitor').metadata.labels?.['release']).toBe('prometheus');
    const spec = podSpec(find(manifests, 'Deployment'));
    expect(spec).toMatchObject({ priorityClassName: 'system-cluster-critical', nodeSelector: { 'kubernetes.io/os': 'linux' }, imagePullSecrets: [{ name: 'registry-credentials' }] });
    expect(spec.topologySpreadConstraints).toEqual([expect.objectContaining({ whenUnsatisfiable: 'DoNotSchedule' })]);
  });
});

describe('clusters that differ from kind', () => {
  it('takes the DNS peers and ports, extra egress and extra volumes (a corporate CA) from values', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'agentenv-values-'));
    try {
      const file = join(dir, 'values.yaml');
      await writeFile(
        file,
        [
          'networkPolicy:',
          '  enabled: true',
          '  dns:',
          '    to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: openshift-dns}}}]',
          '    ports: [5353]',
          '  extraEgress: [{to: [{ipBlock: {cidr: 10.9.0.5/32}}], ports: [{port: 3128, protocol: TCP}]}]',
          'extraVolumes: [{name: corp-ca, configMap: {name: corp-ca}}]',
          'extraVolumeMounts: [{name: corp-ca, mountPath: /etc/corp-ca, readOnly: true}]',
          'extraEnv: [{name: NODE_EXTRA_CA_CERTS, value: /etc/corp-ca/ca.crt}]',
        ].join('\n'),
      );
      const manifests = await render({ valuesFiles: [file] });
      const egress = (find(manifests, 'NetworkPolicy')['spec'] as { egress: { to?: unknown[]; ports?: { port: number; protocol: string }[] }[] }).egress;
      expect(egress[0]).toEqual({
        to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'openshift-dns' } } }],
        ports: [{ port: 5353, protocol: 'UDP' }, { port: 5353, protocol: 'TCP' }],
      });
      expect(egress.at(-1)).toEqual({ to: [{ ipBlock: { cidr: '10.9.0.5/32' } }], ports: [{ port: 3128, protocol: 'TCP' }] });
      const deployment = find(manifests, 'Deployment');
      expect(podSpec(deployment).volumes).toContainEqual({ name: 'corp-ca', configMap: { name: 'corp-ca' } });
      expect(operatorContainer(deployment).volumeMounts).toContainEqual({ name: 'corp-ca', mountPath: '/etc/corp-ca', readOnly: true });
      expect(envValue(operatorContainer(deployment), 'NODE_EXTRA_CA_CERTS')).toBe('/etc/corp-ca/ca.crt');
      const report = await kubeconform(await renderText({ valuesFiles: [file] }));
      expect(report.ok, report.output).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('warm pools (warmPools.enabled)', () => {
  it('issues the assignment endpoint\'s certificate, exposes it by a Service, tells the operator its URL and TLS directory, and validates strictly', async () => {
    const text = await renderText({ set: ['warmPools.enabled=true', 'networkPolicy.enabled=true'] });
    const manifests = parseManifests(text);
    const secret = manifests.find((m) => m.kind === 'Secret' && m.metadata.name.endsWith('-assignment-tls')) as Manifest & { type?: string; data?: Record<string, string> };
    expect(secret.type).toBe('kubernetes.io/tls');
    expect(Object.keys(secret.data ?? {}).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    const service = manifests.find((m) => m.kind === 'Service' && m.metadata.name.endsWith('-assignment'))!;
    const deployment = find(manifests, 'Deployment');
    const container = operatorContainer(deployment);
    expect(envValue(container, 'AGENTENV_ASSIGNMENT_URL')).toBe(`https://${service.metadata.name}.${RELEASE_NAMESPACE}.svc:8443`);
    expect(envValue(container, 'AGENTENV_ASSIGNMENT_TLS_DIR')).toBe('/var/run/agentenv/assignment-tls');
    expect(container.volumeMounts).toContainEqual({ name: 'assignment-tls', mountPath: '/var/run/agentenv/assignment-tls', readOnly: true });
    const report = await kubeconform(text);
    expect(report.ok, report.output).toBe(true);
  });

  it('grants TokenReviews cluster-wide, alone, when the operator watches a list of namespaces', async () => {
    const manifests = parseManifests(await renderText({ set: ['warmPools.enabled=true', 'watchNamespaces={team-a}'] }));
    const role = manifests.find((m) => m.kind === 'ClusterRole' && m.metadata.name.endsWith('-tokenreviews')) as Manifest & { rules?: unknown[] };
    expect(role.rules).toEqual([{ apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] }]);
  });
});

describe('the uninstall hook', () => {
  const hookOf = (manifests: Manifest[]) => manifests.filter((m) => m.metadata.annotations?.['helm.sh/hook'] === 'pre-delete');

  it('runs `agentenv uninstall --policy=refuse` before helm removes anything, with its own ServiceAccount and only the rights it uses', async () => {
    const manifests = await render();
    const hook = hookOf(manifests);
    expect(hook.map((m) => m.kind).sort()).toEqual(['ClusterRole', 'ClusterRoleBinding', 'Job', 'ServiceAccount']);
    const job = find(hook, 'Job');
    const pod = (job['spec'] as { template: { metadata: { labels: Record<string, string> }; spec: PodSpec & { serviceAccountName: string } } }).template;
    expect(pod.spec.serviceAccountName).toBe('agentenv-uninstall');
    expect(pod.spec.containers[0]!.args).toEqual(['uninstall', '--policy=refuse', '--timeout=5m']);
    // The operator's Service, PDB and NetworkPolicy select component=operator: never the hook's Pod.
    expect(pod.metadata.labels['app.kubernetes.io/component']).toBe('uninstall');
    expect(find(hook, 'ClusterRole')['rules']).toEqual([{ apiGroups: ['agentenv.io'], resources: ['agentenvironments', 'agentsessions'], verbs: ['get', 'list', 'delete', 'patch'] }]);
    // RBAC first, then the Job; a failed Job stays for its log until the next try.
    expect(find(hook, 'ServiceAccount').metadata.annotations?.['helm.sh/hook-weight']).toBe('-10');
    expect(job.metadata.annotations?.['helm.sh/hook-delete-policy']).toBe('before-hook-creation,hook-succeeded');
  });

  it('grants a Role per watched namespace in the namespaced profile, and is left out with uninstall.hook=false', async () => {
    const hook = hookOf(await render({ valuesFiles: [NAMESPACED_VALUES], set: ['uninstall.policy=orphan'] }));
    expect(hook.filter((m) => m.kind === 'Role').map((m) => m.metadata.namespace).sort()).toEqual(['team-a', 'team-b']);
    expect(hook.some((m) => m.kind === 'ClusterRole')).toBe(false);
    expect(JSON.stringify(find(hook, 'Job'))).toContain('--policy=orphan');
    expect(hookOf(await render({ set: ['uninstall.hook=false'] }))).toEqual([]);
  });
});

describe('API key given as a value', () => {
  it('goes into a chart-created Secret mounted as a file; the value appears nowhere else', async () => {
    const key = 'sk-ant-test-0123456789';
    const manifests = await render({ set: [`apiKey.value=${key}`] });
    const secret = find(manifests, 'Secret', 'agentenv-api-key');
    expect(Buffer.from((secret['data'] as Record<string, string>)['api-key']!, 'base64').toString()).toBe(key);
    const others = manifests.filter((m) => m !== secret).map((m) => JSON.stringify(m));
    expect(others.join('\n')).not.toContain(key);
    expect(others.join('\n')).not.toContain(Buffer.from(key).toString('base64'));
    expect(envValue(operatorContainer(find(manifests, 'Deployment')), 'ANTHROPIC_API_KEY_FILE')).toBe('/var/run/agentenv/api-key/api-key');
  });
});

describe('helm package', () => {
  it('follows the files/crds symlink: the packaged chart carries the CRD files themselves', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'agentenv-chart-'));
    try {
      const r = await helm(['package', CHART, '--destination', dir]);
      expect(r.ok).toBe(true);
      const [tgz] = (await readdir(dir)).map((f) => join(dir, f));
      const { stdout } = await promisify(execFile)('tar', ['-xzOf', tgz!, 'agentenv/files/crds/agentenv.io_agentsessions.yaml']);
      expect(stdout).toBe(await readFile(join(REPO, 'crds', 'agentenv.io_agentsessions.yaml'), 'utf8'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
