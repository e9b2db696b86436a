import { describe, expect, it } from 'vitest';
import { agentEnvironment, agentSession, POD, SESSION } from '../fixtures.test-support.ts';
import { PLACEHOLDER_WORK_SECRET, SIDECAR_FALLBACK_UID, SIDECAR_UID } from '../../contract/sidecar.ts';
import { CREDENTIAL_DIR, DEFAULT_SESSION_UID, desiredPod, PROBE_PORT, PROXY_PORT, SIDECAR_NAME, STARTUP_WAIT_SECONDS, STATE_DIR, TERMINATION_MARGIN_SECONDS, type PodInputs } from './pod.ts';
import type { Container, Pod } from './pod-types.ts';

const sidecar = { image: 'ghcr.io/agentenv-io/agentenv:test', imagePullPolicy: 'IfNotPresent' as const };

function inputs(selfHosted: Record<string, unknown> = {}, more: Partial<PodInputs> = {}, extra: Record<string, unknown> = {}): PodInputs {
  return { session: agentSession().session, env: agentEnvironment(selfHosted, extra), sidecar, baseUrl: 'https://api.example.test', ...more };
}

function build(selfHosted: Record<string, unknown> = {}, more: Partial<PodInputs> = {}, extra: Record<string, unknown> = {}): Pod {
  const r = desiredPod(inputs(selfHosted, more, extra));
  if (!r.ok) throw new Error(`expected a Pod, got ${r.reason}: ${r.message}`);
  return r.pod;
}

const template = (spec: Record<string, unknown>, metadata?: Record<string, unknown>) => ({ sessionTemplate: { ...(metadata ? { metadata } : {}), spec } });
const shell = (extra: Partial<Container> = {}): Container => ({ name: 'session', image: 'local/shell', command: ['/bin/sh', '-c', 'true'], ...extra });
const mainOf = (p: Pod): Container => p.spec.containers.find((c) => c.name === 'session') ?? p.spec.containers[0]!;
const sidecarOf = (p: Pod): Container => p.spec.initContainers!.find((c) => c.name === SIDECAR_NAME)!;
const envNames = (c: Container): string[] => (c.env ?? []).map((e) => e.name);

describe('desiredPod: identity and injected parts', () => {
  it('names the Pod deterministically, labels it and makes the AgentSession its controller', () => {
    const pod = build();
    expect(pod.metadata?.name).toBe(POD);
    expect(pod.metadata?.labels).toMatchObject({
      'agentenv.io/environment': 'data',
      'agentenv.io/session': SESSION,
      'agentenv.io/work-id': 'work_01',
      'agentenv.io/component': 'session',
      'app.kubernetes.io/managed-by': 'agentenv',
    });
    expect(pod.metadata?.ownerReferences).toEqual([
      { apiVersion: 'agentenv.io/v1alpha1', kind: 'AgentSession', name: SESSION, uid: 'session-uid', controller: true, blockOwnerDeletion: true },
    ]);
    expect(build()).toEqual(pod);
  });

  it('sets the Pod-level hardening whatever the template says, and never shares the process namespace', () => {
    const pod = build(template({ containers: [shell()], restartPolicy: 'Always', automountServiceAccountToken: true, enableServiceLinks: true, shareProcessNamespace: true }));
    expect(pod.spec).toMatchObject({ restartPolicy: 'Never', automountServiceAccountToken: false, enableServiceLinks: false });
    expect(pod.spec).not.toHaveProperty('shareProcessNamespace');
    expect(build().spec).not.toHaveProperty('shareProcessNamespace');
  });

  it('runs the sidecar first, as a native sidecar gated by its startup probe', () => {
    const pod = build(template({ containers: [shell()], initContainers: [{ name: 'setup', image: 'local/shell' }] }));
    expect(pod.spec.initContainers!.map((c) => c.name)).toEqual([SIDECAR_NAME, 'setup']);
    const sc = sidecarOf(pod);
    expect(sc).toMatchObject({ image: sidecar.image, command: ['/nodejs/bin/node', '--no-sparkplug', '--no-maglev', '--no-turbofan', '/app/dist/sidecar.cjs'], restartPolicy: 'Always' });
    expect(sc.args).toBeUndefined();
  });

  it('the startup probe waits for the claim: an exec of the image\'s Node on dist/wait-started.cjs, which gives up before the kubelet\'s timeout', () => {
    const probe = sidecarOf(build()).startupProbe as { exec: { command: string[] }; periodSeconds: number; timeoutSeconds: number };
    expect(probe.exec.command).toEqual(['/nodejs/bin/node', '--no-sparkplug', '--no-maglev', '--no-turbofan', '/app/dist/wait-started.cjs', String(STARTUP_WAIT_SECONDS)]);
    expect(probe).not.toHaveProperty('httpGet');
    expect(probe.periodSeconds).toBe(1);
    expect(probe.timeoutSeconds).toBeGreaterThan(STARTUP_WAIT_SECONDS);
  });

  it.each([
    [300, 32],
    [10, 3],
    [86_400, 8_642],
  ])('the startup probe outlasts startDeadlineSeconds %i plus the margin (failureThreshold %i): every failed attempt waits the whole wait', (startDeadlineSeconds, failureThreshold) => {
    const probe = sidecarOf(build({ startDeadlineSeconds })).startupProbe as { failureThreshold: number };
    expect(probe.failureThreshold).toBe(failureThreshold);
    expect(probe.failureThreshold * STARTUP_WAIT_SECONDS).toBeGreaterThanOrEqual(startDeadlineSeconds + TERMINATION_MARGIN_SECONDS);
  });

  it('reads the sidecar\'s /ready every second, one failure flipping it: its "end now" to the operator', () => {
    expect(sidecarOf(build()).readinessProbe).toEqual({ httpGet: { path: '/ready', port: PROBE_PORT }, periodSeconds: 1, timeoutSeconds: 1, failureThreshold: 1, successThreshold: 1 });
  });

  it('gives the sidecar the contract environment: the real API upstream, the probe on the Pod IP, the proxy on loopback', () => {
    const env = sidecarOf(build({ leaseTTLSeconds: 45, stopGracePeriodSeconds: 7 })).env!;
    const byName = Object.fromEntries(env.map((e) => [e.name, e.value ?? e.valueFrom]));
    expect(byName).toEqual({
      ANTHROPIC_BASE_URL: 'https://api.example.test',
      AGENTENV_ENVIRONMENT_ID: 'env_1',
      AGENTENV_SESSION_ID: 'sesn_01',
      AGENTENV_WORK_ID: 'work_01',
      AGENTENV_CREDENTIAL_FILE: `${CREDENTIAL_DIR}/token`,
      AGENTENV_CREDENTIAL_KIND: 'sessions-token',
      AGENTENV_STATE_DIR: STATE_DIR,
      AGENTENV_LEASE_TTL_SECONDS: '45',
      AGENTENV_PROBE_ADDRESS: { fieldRef: { fieldPath: 'status.podIP' } },
      AGENTENV_PROBE_PORT: String(PROBE_PORT),
      AGENTENV_PROXY_ADDRESS: '127.0.0.1',
      AGENTENV_PROXY_PORT: String(PROXY_PORT),
    });
  });

  it.each([
    { rule: 'a per-item secret makes the credential a sessions token', workSecret: true, kind: 'sessions-token' },
    { rule: 'without one the credential is the environment key', workSecret: false, kind: 'environment-key' },
  ])('tells the sidecar what its credential is: $rule', ({ workSecret, kind }) => {
    const env = sidecarOf(build({}, { session: agentSession({ workSecret }).session })).env!;
    expect(env.find((e) => e.name === 'AGENTENV_CREDENTIAL_KIND')?.value).toBe(kind);
  });

  it('in pod-ip mode (the process kubelet) puts the proxy on the Pod IP, and the base URL follows it', () => {
    const pod = build({}, { proxyAddress: 'pod-ip' });
    expect(sidecarOf(pod).env!.find((e) => e.name === 'AGENTENV_PROXY_ADDRESS')).toEqual({ name: 'AGENTENV_PROXY_ADDRESS', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } });
    const env = mainOf(pod).env!;
    const ip = env.findIndex((e) => e.name === 'AGENTENV_POD_IP');
    const base = env.findIndex((e) => e.name === 'ANTHROPIC_BASE_URL');
    expect(env[ip]).toEqual({ name: 'AGENTENV_POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } });
    // $(VAR) expands only against variables defined earlier in the list.
    expect(ip).toBeLessThan(base);
    expect(env[base]!.value).toBe(`http://$(AGENTENV_POD_IP):${PROXY_PORT}`);
  });

  it('mounts the credential (key token, read-only) and the state emptyDir into the sidecar only', () => {
    const pod = build(template({ containers: [shell(), { name: 'helper', image: 'local/shell' }] }));
    expect(sidecarOf(pod).volumeMounts).toEqual([
      { name: 'agentenv-credential', mountPath: CREDENTIAL_DIR, readOnly: true },
      { name: 'agentenv-state', mountPath: STATE_DIR },
    ]);
    for (const c of pod.spec.containers) expect(c.volumeMounts ?? []).toEqual([]);
    const credential = pod.spec.volumes!.find((v) => v.name === 'agentenv-credential');
    expect(credential?.secret).toMatchObject({ secretName: POD, items: [{ key: 'token', path: 'token' }] });
    expect(pod.spec.volumes!.find((v) => v.name === 'agentenv-state')?.emptyDir).toBeDefined();
  });

  it('gives the Pod time for the sidecar to stop the main container and confirm the stop', () => {
    expect(build({ stopGracePeriodSeconds: 60 }).spec.terminationGracePeriodSeconds).toBe(75);
    expect(build(template({ containers: [shell()], terminationGracePeriodSeconds: 600 })).spec.terminationGracePeriodSeconds).toBe(600);
  });
});

describe('desiredPod: priority and disruption (the operator\'s session Pod policy)', () => {
  const autoscalerKey = 'cluster-autoscaler.kubernetes.io/safe-to-evict';
  it.each([
    ['no policy and no template value: no priority class, no annotation', {}, undefined, undefined, undefined],
    ['the operator\'s priority class applies to a template without one', { priorityClassName: 'agent-sessions' }, undefined, 'agent-sessions', undefined],
    ['a template\'s own priority class wins over the operator\'s', { priorityClassName: 'agent-sessions' }, { priorityClassName: 'critical' }, 'critical', undefined],
    ['doNotDisrupt marks the Pod for the cluster autoscaler and Karpenter', { doNotDisrupt: true }, undefined, undefined, { [autoscalerKey]: 'false', 'karpenter.sh/do-not-disrupt': 'true' }],
  ])('%s', (_rule, podPolicy, spec, priorityClassName, annotations) => {
    const pod = build(spec ? template({ containers: [shell()], ...spec }) : {}, { podPolicy });
    expect(pod.spec.priorityClassName).toBe(priorityClassName);
    expect(pod.metadata?.annotations).toEqual(annotations);
  });
  it('a template\'s own annotation wins over doNotDisrupt (a template that allows eviction keeps it)', () => {
    const pod = build(template({ containers: [shell()] }, { annotations: { [autoscalerKey]: 'true', team: 'a' } }), { podPolicy: { doNotDisrupt: true } });
    expect(pod.metadata?.annotations).toEqual({ [autoscalerKey]: 'true', 'karpenter.sh/do-not-disrupt': 'true', team: 'a' });
  });
});

describe('desiredPod: the main container environment', () => {
  const contract = ['ANTHROPIC_ENVIRONMENT_ID', 'ANTHROPIC_SESSION_ID', 'ANTHROPIC_WORK_ID', 'ANTHROPIC_BASE_URL', 'ANTHROPIC_WORK_SECRET'];
  const cases: Array<{ rule: string; selfHosted?: Record<string, unknown>; workSecret: boolean; expected: string[] }> = [
    { rule: 'the contract variables without a per-item secret', workSecret: false, expected: contract },
    { rule: 'the same variables with a per-item secret (the work secret is a placeholder either way)', workSecret: true, expected: contract },
    {
      rule: 'template values for contract and credential names are replaced or dropped, others kept',
      selfHosted: template({ containers: [shell({ env: [{ name: 'ANTHROPIC_WORK_ID', value: 'x' }, { name: 'ANTHROPIC_ENVIRONMENT_KEY', value: 'y' }, { name: 'ANTHROPIC_API_KEY', value: 'z' }, { name: 'ANTHROPIC_AUTH_TOKEN', value: 't' }, { name: 'MY_VAR', value: '1' }] })] }),
      workSecret: false,
      expected: ['MY_VAR', ...contract],
    },
  ];
  it.each(cases)('$rule', ({ selfHosted, workSecret, expected }) => {
    const main = mainOf(build(selfHosted ?? {}, { session: agentSession({ workSecret }).session }));
    expect(envNames(main)).toEqual(expected);
    expect(main.env!.find((e) => e.name === 'ANTHROPIC_WORK_ID')?.value).toBe('work_01');
  });

  it.each([true, false])('gives the main container the placeholder work secret as a plain value, never a Secret (per-item secret: %s)', (workSecret) => {
    const main = mainOf(build({}, { session: agentSession({ workSecret }).session }));
    expect(main.env!.find((x) => x.name === 'ANTHROPIC_WORK_SECRET')).toEqual({ name: 'ANTHROPIC_WORK_SECRET', value: PLACEHOLDER_WORK_SECRET });
    // The per-item Secret (named like the Pod) is the sidecar's alone: no secretKeyRef, envFrom or mount in the main container.
    for (const e of main.env ?? []) expect(e.valueFrom?.secretKeyRef).toBeUndefined();
    expect(main.envFrom ?? []).toEqual([]);
    expect(main.volumeMounts ?? []).toEqual([]);
  });

  it('points the main container at the sidecar, never at the real API', () => {
    const main = mainOf(build({}, { baseUrl: 'https://api.anthropic.com' }));
    expect(main.env!.find((e) => e.name === 'ANTHROPIC_BASE_URL')?.value).toBe(`http://127.0.0.1:${PROXY_PORT}`);
    expect(JSON.stringify(main)).not.toContain('api.anthropic.com');
  });

  it('picks the container named session as the main one, else the first', () => {
    const pod = build(template({ containers: [{ name: 'helper', image: 'local/shell' }, shell()] }));
    expect(envNames(pod.spec.containers[0]!)).toEqual([]);
    expect(envNames(pod.spec.containers[1]!)).toContain('ANTHROPIC_WORK_ID');
    const first = build(template({ containers: [{ name: 'runner', image: 'local/shell' }, { name: 'helper', image: 'local/shell' }] }));
    expect(envNames(first.spec.containers[0]!)).toContain('ANTHROPIC_WORK_ID');
    expect(envNames(first.spec.containers[1]!)).toEqual([]);
  });

  it('never puts the environment key or the API key (or their Secrets) into a sandbox container', () => {
    const pod = build({}, { session: agentSession({ workSecret: true }).session }, { apiKeySecretRef: { name: 'org-key', key: 'key' } });
    const sandbox = [...pod.spec.containers, ...pod.spec.initContainers!.filter((c) => c.name !== SIDECAR_NAME)];
    for (const c of sandbox) {
      expect(envNames(c)).not.toContain('ANTHROPIC_ENVIRONMENT_KEY');
      expect(envNames(c)).not.toContain('ANTHROPIC_API_KEY');
      for (const e of c.env ?? []) expect(['env-key', 'org-key']).not.toContain(e.valueFrom?.secretKeyRef?.name);
      expect(c.envFrom ?? []).toEqual([]);
      expect(c.volumeMounts ?? []).toEqual([]);
    }
    expect(JSON.stringify(pod)).not.toMatch(/env-key|org-key/);
  });

  it('without a per-item secret, mounts the environment key from its own Secret into the sidecar alone, as the file token', () => {
    const pod = build({}, { session: agentSession({ workSecret: false }).session }, { apiKeySecretRef: { name: 'org-key', key: 'key' } });
    const credential = pod.spec.volumes!.find((v) => v.name === 'agentenv-credential');
    expect(credential?.secret).toEqual({ secretName: 'env-key', items: [{ key: 'key', path: 'token' }], defaultMode: 0o444 });
    for (const c of [...pod.spec.containers, ...pod.spec.initContainers!]) {
      const mounts = (c.volumeMounts ?? []).map((m) => m.name);
      if (c.name === SIDECAR_NAME) expect(mounts).toContain('agentenv-credential');
      else expect(mounts).not.toContain('agentenv-credential');
      for (const e of c.env ?? []) expect(['env-key', 'org-key']).not.toContain(e.valueFrom?.secretKeyRef?.name);
    }
    // The key's Secret is named by the credential volume and nowhere else; the API key's not at all.
    const { volumes, ...rest } = pod.spec;
    expect(JSON.stringify({ ...pod, spec: { ...rest, volumes: volumes!.filter((v) => v.name !== 'agentenv-credential') } })).not.toMatch(/env-key|org-key/);
  });

  it('without a per-item secret and without an environment key, builds no Pod', () => {
    const r = desiredPod(inputs({ environmentKeySecretRef: undefined }, { session: agentSession({ workSecret: false }).session }));
    expect(r).toMatchObject({ ok: false, reason: 'InvalidTemplate', message: expect.stringMatching(/environmentKeySecretRef/) });
  });
});

describe('desiredPod: security', () => {
  it('fills in the Restricted defaults and runs a template without a user as the default UID, the sidecar as its own', () => {
    const pod = build();
    expect(pod.spec.securityContext).toEqual({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' }, runAsUser: DEFAULT_SESSION_UID, runAsGroup: DEFAULT_SESSION_UID });
    expect(mainOf(pod).securityContext).toEqual({ allowPrivilegeEscalation: false, runAsNonRoot: true, capabilities: { drop: ['ALL'] } });
    expect(sidecarOf(pod).securityContext).toMatchObject({ runAsUser: SIDECAR_UID, runAsGroup: SIDECAR_UID, runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(SIDECAR_UID).not.toBe(DEFAULT_SESSION_UID);
  });

  const uids: Array<{ rule: string; selfHosted: Record<string, unknown>; sidecar: number }> = [
    { rule: 'a main container of its own user (container level wins over Pod level)', selfHosted: template({ securityContext: { runAsUser: 2000 }, containers: [shell({ securityContext: { runAsUser: 1234, runAsGroup: 99 } })] }), sidecar: SIDECAR_UID },
    { rule: 'a main container running as the sidecar\'s UID moves the sidecar to the fallback UID', selfHosted: template({ containers: [shell({ securityContext: { runAsUser: SIDECAR_UID } })] }), sidecar: SIDECAR_FALLBACK_UID },
    { rule: 'a helper container running as the sidecar\'s UID does too', selfHosted: template({ securityContext: { runAsUser: 1000 }, containers: [shell(), { name: 'helper', image: 'local/shell', securityContext: { runAsUser: SIDECAR_UID } }] }), sidecar: SIDECAR_FALLBACK_UID },
    { rule: 'a root main container under Custom gets a non-root sidecar', selfHosted: { ...template({ containers: [shell({ securityContext: { runAsUser: 0 } })] }), podSecurity: 'Custom' }, sidecar: SIDECAR_UID },
    { rule: 'a Pod-level user under Custom', selfHosted: { ...template({ securityContext: { runAsUser: SIDECAR_UID }, containers: [shell()] }), podSecurity: 'Custom' }, sidecar: SIDECAR_FALLBACK_UID },
  ];
  it.each(uids)('runs the sidecar under a UID distinct from every template container: $rule', ({ selfHosted, sidecar: uid }) => {
    const pod = build(selfHosted);
    expect(sidecarOf(pod).securityContext).toMatchObject({ runAsUser: uid, runAsGroup: uid, runAsNonRoot: true });
    const templateUids = pod.spec.containers.map((c) => c.securityContext?.runAsUser ?? pod.spec.securityContext?.runAsUser);
    expect(templateUids).not.toContain(uid);
  });

  it('refuses a template whose containers take both of the sidecar\'s UIDs', () => {
    const r = desiredPod(inputs(template({ containers: [shell({ securityContext: { runAsUser: SIDECAR_UID } }), { name: 'h', image: 'local/shell', securityContext: { runAsUser: SIDECAR_FALLBACK_UID } }] })));
    expect(r).toMatchObject({ ok: false, reason: 'TemplateRefused', message: expect.stringMatching(/UIDs reserved for the sidecar/) });
  });

  it('keeps an explicit NET_BIND_SERVICE and adds ALL to the dropped capabilities', () => {
    const pod = build(template({ containers: [shell({ securityContext: { capabilities: { add: ['NET_BIND_SERVICE'], drop: ['NET_RAW'] } } })] }));
    expect(mainOf(pod).securityContext?.capabilities).toEqual({ add: ['NET_BIND_SERVICE'], drop: ['NET_RAW', 'ALL'] });
  });

  const refusals: Array<{ rule: string; spec: Record<string, unknown>; field: RegExp }> = [
    { rule: 'a privileged container', spec: { containers: [shell({ securityContext: { privileged: true } })] }, field: /privileged/ },
    { rule: 'privilege escalation', spec: { containers: [shell({ securityContext: { allowPrivilegeEscalation: true } })] }, field: /allowPrivilegeEscalation/ },
    { rule: 'root', spec: { containers: [shell({ securityContext: { runAsUser: 0 } })] }, field: /runAsUser is 0/ },
    { rule: 'runAsNonRoot false on the Pod', spec: { securityContext: { runAsNonRoot: false }, containers: [shell()] }, field: /runAsNonRoot is false/ },
    { rule: 'an added capability', spec: { containers: [shell({ securityContext: { capabilities: { add: ['SYS_ADMIN'] } } })] }, field: /SYS_ADMIN/ },
    { rule: 'the host network', spec: { hostNetwork: true, containers: [shell()] }, field: /hostNetwork/ },
    { rule: 'a hostPath volume', spec: { volumes: [{ name: 'h', hostPath: { path: '/' } }], containers: [shell()] }, field: /hostPath/ },
    { rule: 'an unconfined seccomp profile', spec: { securityContext: { seccompProfile: { type: 'Unconfined' } }, containers: [shell()] }, field: /Unconfined/ },
    { rule: 'a host port', spec: { containers: [shell({ ports: [{ containerPort: 80, hostPort: 80 }] })] }, field: /hostPort/ },
    { rule: 'a privileged init container', spec: { initContainers: [{ name: 'i', securityContext: { privileged: true } }], containers: [shell()] }, field: /initContainers\[i\]/ },
  ];
  it.each(refusals)('refuses $rule under Restricted, with the field in the message', ({ spec, field }) => {
    const r = desiredPod(inputs(template(spec)));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toBe('TemplateRefused');
      expect(r.message).toMatch(field);
    }
  });

  it.each(refusals)('accepts $rule under Custom and leaves it as written', ({ spec }) => {
    const r = desiredPod(inputs({ ...template(spec), podSecurity: 'Custom' }));
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.pod.spec.securityContext).toEqual((spec as { securityContext?: unknown }).securityContext);
  });

  it('keeps the sidecar hardened and non-root under Custom, even beside a root main container', () => {
    const rootMain = build({ ...template({ containers: [shell({ securityContext: { runAsUser: 0 } })] }), podSecurity: 'Custom' });
    expect(sidecarOf(rootMain).securityContext).toMatchObject({ runAsUser: SIDECAR_UID, runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  });
});

describe('desiredPod: templates it cannot use', () => {
  const cases: Array<{ rule: string; selfHosted: Record<string, unknown>; extra?: Record<string, unknown>; reason: string; message: RegExp }> = [
    { rule: 'no containers', selfHosted: template({ containers: [] }), reason: 'InvalidTemplate', message: /containers is empty/ },
    { rule: 'a container named like the sidecar', selfHosted: template({ containers: [shell({ name: SIDECAR_NAME })] }), reason: 'InvalidTemplate', message: /reserved/ },
    { rule: 'a volume named like the credential volume', selfHosted: template({ containers: [shell()], volumes: [{ name: 'agentenv-credential', emptyDir: {} }] }), reason: 'InvalidTemplate', message: /reserved/ },
    {
      rule: 'a container mounting the sidecar credential volume',
      selfHosted: template({ containers: [shell({ volumeMounts: [{ name: 'agentenv-credential', mountPath: '/steal' }] })] }),
      reason: 'TemplateRefused',
      message: /container session mounts a volume reserved for the operator's sidecar/,
    },
    {
      rule: 'an init container mounting the sidecar state volume',
      selfHosted: template({ containers: [shell()], initContainers: [shell({ name: 'init', volumeMounts: [{ name: 'agentenv-state', mountPath: '/state' }] })] }),
      reason: 'TemplateRefused',
      message: /container init mounts a volume reserved/,
    },
    {
      rule: 'env from the environment key Secret',
      selfHosted: template({ containers: [shell({ env: [{ name: 'K', valueFrom: { secretKeyRef: { name: 'env-key', key: 'key' } } }] })] }),
      reason: 'TemplateRefused',
      message: /env K reads Secret env-key/,
    },
    {
      rule: 'envFrom the API key Secret',
      selfHosted: template({ containers: [shell({ envFrom: [{ secretRef: { name: 'org-key' } }] })] }),
      extra: { apiKeySecretRef: { name: 'org-key', key: 'key' } },
      reason: 'TemplateRefused',
      message: /envFrom reads Secret org-key/,
    },
    {
      rule: 'a volume of the environment key Secret',
      selfHosted: { ...template({ containers: [shell()], volumes: [{ name: 'k', secret: { secretName: 'env-key' } }] }), podSecurity: 'Custom' },
      reason: 'TemplateRefused',
      message: /mounts Secret env-key/,
    },
  ];
  it.each(cases)('refuses $rule', ({ selfHosted, extra, reason, message }) => {
    const r = desiredPod(inputs(selfHosted, {}, extra ?? {}));
    expect(r).toMatchObject({ ok: false, reason });
    if (!r.ok) expect(r.message).toMatch(message);
  });

  it('runs the default runner for an environment without a session template', () => {
    const env = agentEnvironment();
    delete env.spec.selfHosted!.sessionTemplate;
    env.spec.selfHosted!.idleTimeoutSeconds = 5;
    const r = desiredPod({ ...inputs(), env, runner: { image: 'ghcr.io/agentenv-io/agentenv-runner:1.2.3', imagePullPolicy: 'Always' } });
    if (!r.ok) throw new Error(r.message);
    const main = mainOf(r.pod);
    expect(main).toMatchObject({ name: 'session', image: 'ghcr.io/agentenv-io/agentenv-runner:1.2.3', imagePullPolicy: 'Always', command: ['agentenv', 'runner', '--idle-timeout', '5s'], workingDir: '/workspace', volumeMounts: [{ name: 'workspace', mountPath: '/workspace' }] });
    expect(main.resources?.limits?.['memory']).toBeDefined();
    expect(r.pod.spec.volumes!.find((v) => v.name === 'workspace')?.emptyDir).toBeDefined();
    // The default template meets Restricted: it is hardened like any other, never refused.
    expect(r.pod.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: DEFAULT_SESSION_UID });
  });

  it('mounts the session\'s workspace claim at /workspace in the main container only, in place of the default runner\'s emptyDir', () => {
    const env = agentEnvironment();
    delete env.spec.selfHosted!.sessionTemplate;
    env.spec.selfHosted!.workspace = { volumeClaimTemplate: { spec: { accessModes: ['ReadWriteOnce'] } }, reclaimPolicy: 'Delete', retainSecondsAfterLastWork: 60 };
    const r = desiredPod({ ...inputs(), env });
    if (!r.ok) throw new Error(r.message);
    const claimName = `${r.pod.metadata?.labels?.['agentenv.io/session']}-workspace`;
    expect(r.pod.spec.volumes!.filter((v) => v.name === 'workspace')).toEqual([{ name: 'workspace', persistentVolumeClaim: { claimName } }]);
    expect(mainOf(r.pod).volumeMounts).toEqual([{ name: 'workspace', mountPath: '/workspace' }]);
    expect(r.pod.spec.initContainers![0]!.volumeMounts!.some((m) => m.name === 'workspace')).toBe(false);
  });

  it('mounts the workspace over a template\'s own /workspace mount', () => {
    const env = agentEnvironment();
    env.spec.selfHosted!.sessionTemplate = { spec: { containers: [{ name: 'session', image: 'local/shell', volumeMounts: [{ name: 'scratch', mountPath: '/workspace' }, { name: 'cache', mountPath: '/cache' }] }], volumes: [{ name: 'scratch', emptyDir: {} }, { name: 'cache', emptyDir: {} }] } };
    env.spec.selfHosted!.workspace = { volumeClaimTemplate: { spec: {} }, reclaimPolicy: 'Retain', retainSecondsAfterLastWork: 60 };
    const r = desiredPod({ ...inputs(), env });
    if (!r.ok) throw new Error(r.message);
    expect(mainOf(r.pod).volumeMounts).toEqual([{ name: 'cache', mountPath: '/cache' }, { name: 'workspace', mountPath: '/workspace' }]);
  });

  it('keeps the template\'s labels and annotations, with the operator\'s labels winning', () => {
    const pod = build(template({ containers: [shell()] }, { labels: { team: 'a', 'agentenv.io/session': 'spoof' }, annotations: { note: 'x' } }));
    expect(pod.metadata?.labels).toMatchObject({ team: 'a', 'agentenv.io/session': SESSION });
    expect(pod.metadata?.annotations).toEqual({ note: 'x' });
  });
});

describe('desiredPod: image pull Secrets', () => {
  it("adds the operator's pull Secrets (sessions.imagePullSecrets) after the template's own, each name once; none set, no field", () => {
    const withSecrets = { sidecar: { ...sidecar, imagePullSecrets: ['registry', 'shared'] } };
    expect(build({}, withSecrets).spec.imagePullSecrets).toEqual([{ name: 'registry' }, { name: 'shared' }]);
    expect(build(template({ containers: [shell()], imagePullSecrets: [{ name: 'shared' }, { name: 'team' }] }), withSecrets).spec.imagePullSecrets).toEqual([{ name: 'shared' }, { name: 'team' }, { name: 'registry' }]);
    expect(build().spec).not.toHaveProperty('imagePullSecrets');
  });
});
