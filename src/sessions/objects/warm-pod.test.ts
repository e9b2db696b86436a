import { describe, expect, it } from 'vitest';
import { agentEnvironment } from '../fixtures.test-support.ts';
import { ASSIGNMENT_AUDIENCE, ASSIGNMENT_DIR, SIDECAR_UID } from '../../contract/sidecar.ts';
import { SIDECAR_NAME } from './pod.ts';
import { ASSIGNMENT_VOLUME, desiredWarmPod, type WarmPodInputs } from './warm-pod.ts';
import type { Container, Pod } from './pod-types.ts';
import { warmPodName, warmPoolSelector } from '../record/names.ts';

const defaultRunner = { sessionTemplate: undefined, warmPool: { size: 2 } };
function inputs(selfHosted: Record<string, unknown> = defaultRunner, more: Partial<WarmPodInputs> = {}): WarmPodInputs {
  return {
    env: agentEnvironment(selfHosted),
    ordinal: 0,
    sidecar: { image: 'ghcr.io/agentenv-io/agentenv:test', imagePullPolicy: 'IfNotPresent' },
    baseUrl: 'https://api.example.test',
    assignment: { url: 'https://agentenv-assignment.agentenv-system.svc:8443', caConfigMap: 'agentenv-assignment-ca', caPem: 'PEM' },
    ...more,
  };
}
function build(selfHosted?: Record<string, unknown>, more?: Partial<WarmPodInputs>): Pod {
  const pod = desiredWarmPod(inputs(selfHosted, more));
  if (!pod) throw new Error('expected a warm Pod');
  return pod;
}
const sidecarOf = (p: Pod): Container => p.spec.initContainers!.find((c) => c.name === SIDECAR_NAME)!;
const mainOf = (p: Pod): Container => p.spec.containers[0]!;
const envNames = (c: Container): string[] => (c.env ?? []).map((e) => e.name);

describe('desiredWarmPod', () => {
  it('names the Pod from the environment and its ordinal, labels it for the pool selector and makes the AgentEnvironment its controller', () => {
    const pod = build(undefined, { ordinal: 3 });
    expect(pod.metadata?.name).toBe(warmPodName('data', 3));
    expect(pod.metadata?.name).toMatch(/^data-warm-[0-9a-f]{6}-3$/);
    expect(pod.metadata?.labels).toEqual({ 'app.kubernetes.io/managed-by': 'agentenv', 'agentenv.io/component': 'warm-pool', 'agentenv.io/environment': 'data', 'agentenv.io/warm-pool': 'data' });
    expect(warmPoolSelector('data')).toBe('agentenv.io/component=warm-pool,agentenv.io/warm-pool=data');
    expect(pod.metadata?.ownerReferences).toEqual([{ apiVersion: 'agentenv.io/v1alpha1', kind: 'AgentEnvironment', name: 'data', uid: 'env-uid', controller: true, blockOwnerDeletion: true }]);
    expect(build(undefined, { ordinal: 3 })).toEqual(pod);
  });

  it('holds no work item and no credential: no Secret anywhere, no session or work id, no credential file', () => {
    const pod = build();
    expect(pod.spec.volumes!.filter((v) => v.secret || v.projected?.sources?.some((s) => s.secret))).toEqual([]);
    for (const c of [...pod.spec.initContainers!, ...pod.spec.containers]) {
      expect(c.envFrom, c.name).toBeUndefined();
      expect((c.env ?? []).filter((e) => e.valueFrom?.secretKeyRef), c.name).toEqual([]);
    }
    for (const name of ['ANTHROPIC_SESSION_ID', 'ANTHROPIC_WORK_ID', 'ANTHROPIC_API_KEY', 'ANTHROPIC_ENVIRONMENT_KEY', 'ANTHROPIC_AUTH_TOKEN']) expect(envNames(mainOf(pod))).not.toContain(name);
    for (const name of ['AGENTENV_SESSION_ID', 'AGENTENV_WORK_ID', 'AGENTENV_CREDENTIAL_FILE', 'AGENTENV_CREDENTIAL_KIND']) expect(envNames(sidecarOf(pod))).not.toContain(name);
    expect(mainOf(pod).env).toEqual(expect.arrayContaining([{ name: 'AGENTENV_WAIT_FOR_ASSIGNMENT', value: '1' }]));
  });

  it('mounts the assignment token (its own audience) and the endpoint CA into the sidecar alone, and no service-account token anywhere else', () => {
    const pod = build();
    expect(pod.spec.automountServiceAccountToken).toBe(false);
    const volume = pod.spec.volumes!.find((v) => v.name === ASSIGNMENT_VOLUME)!;
    expect(volume.projected?.sources).toEqual([
      { serviceAccountToken: { audience: ASSIGNMENT_AUDIENCE, expirationSeconds: 3600, path: 'token' } },
      { configMap: { name: 'agentenv-assignment-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
    ]);
    expect(sidecarOf(pod).volumeMounts).toContainEqual({ name: ASSIGNMENT_VOLUME, mountPath: ASSIGNMENT_DIR, readOnly: true });
    expect(mainOf(pod).volumeMounts!.map((m) => m.name)).toEqual(['workspace']);
    expect(envNames(sidecarOf(pod))).toEqual(expect.arrayContaining(['AGENTENV_ASSIGNMENT_URL', 'AGENTENV_ASSIGNMENT_TOKEN_FILE', 'AGENTENV_ASSIGNMENT_CA_FILE']));
  });

  it('starts the runner at once (no startup probe) and keeps the sidecar hardened under its own UID', () => {
    const pod = build();
    const sc = sidecarOf(pod);
    expect(sc.startupProbe).toBeUndefined();
    expect(sc.readinessProbe).toMatchObject({ httpGet: { path: '/ready' } });
    expect(sc.securityContext).toMatchObject({ runAsUser: SIDECAR_UID, runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(pod.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532 });
    expect(pod.spec).toMatchObject({ restartPolicy: 'Never', enableServiceLinks: false });
    expect(pod.spec).not.toHaveProperty('shareProcessNamespace');
  });

  it('in pod-ip mode points the runner at the sidecar on the Pod IP', () => {
    const main = mainOf(build(undefined, { proxyAddress: 'pod-ip' }));
    expect(main.env).toEqual(expect.arrayContaining([{ name: 'ANTHROPIC_BASE_URL', value: 'http://$(AGENTENV_POD_IP):8096' }]));
  });

  it.each([
    ['a sessionTemplate (its runner may read its session id at start: served cold)', { warmPool: { size: 2 } }, {}],
    ['no remote environment id yet', defaultRunner, { env: { ...agentEnvironment(defaultRunner), status: {} } }],
  ])('builds no warm Pod for %s', (_why, selfHosted, more) => {
    expect(desiredWarmPod(inputs(selfHosted, more))).toBeUndefined();
  });
});
