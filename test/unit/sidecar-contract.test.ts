import { describe, expect, it } from 'vitest';
import { agentEnvironment, agentSession } from '../../src/sessions/fixtures.test-support.ts';
import { desiredPod, SIDECAR_NAME } from '../../src/sessions/objects/pod.ts';
import { parseSidecarConfig } from '../../src/sidecar/config.ts';
import { DEFAULT_CREDENTIAL_FILE, DEFAULT_PROBE_PORT, DEFAULT_PROXY_PORT, DEFAULT_STATE_DIR } from '../../src/contract/sidecar.ts';

describe('the sidecar contract, both sides', () => {
  it("the sidecar's config parser accepts the env the operator builds into the Pod", () => {
    const built = desiredPod({
      session: agentSession().session,
      env: agentEnvironment({ leaseTTLSeconds: 40, stopGracePeriodSeconds: 12 }),
      sidecar: { image: 'ghcr.io/agentenv-io/agentenv:test', imagePullPolicy: 'IfNotPresent' },
      baseUrl: 'https://api.example.test',
    });
    if (!built.ok) throw new Error(built.message);
    const sidecar = built.pod.spec.initContainers!.find((c) => c.name === SIDECAR_NAME)!;
    // The kubelet resolves fieldRefs; the Pod IP stands in for status.podIP here.
    const env = Object.fromEntries((sidecar.env ?? []).map((e) => [e.name, e.value ?? (e.valueFrom?.fieldRef ? '10.0.0.7' : undefined)]));
    const config = parseSidecarConfig(env);
    const spec = agentSession().session.spec;
    expect(config).toMatchObject({
      environmentId: spec.environmentId,
      sessionId: spec.sessionId,
      workId: spec.workId,
      credentialFile: DEFAULT_CREDENTIAL_FILE,
      stateDir: DEFAULT_STATE_DIR,
      leaseTtlSeconds: 40,
      probeAddress: '10.0.0.7',
      probePort: DEFAULT_PROBE_PORT,
      credentialKind: 'sessions-token',
      proxyAddress: '127.0.0.1',
      proxyPort: DEFAULT_PROXY_PORT,
    });
    expect(config.baseUrl.href).toBe('https://api.example.test/');
  });

  it("in pod-ip mode the sidecar's proxy listens on the Pod IP the main container's base URL names", () => {
    const built = desiredPod({
      session: agentSession().session,
      env: agentEnvironment(),
      sidecar: { image: 'ghcr.io/agentenv-io/agentenv:test', imagePullPolicy: 'IfNotPresent' },
      baseUrl: 'https://api.example.test',
      proxyAddress: 'pod-ip',
    });
    if (!built.ok) throw new Error(built.message);
    const sidecar = built.pod.spec.initContainers!.find((c) => c.name === SIDECAR_NAME)!;
    const env = Object.fromEntries((sidecar.env ?? []).map((e) => [e.name, e.value ?? (e.valueFrom?.fieldRef ? '127.3.4.5' : undefined)]));
    const config = parseSidecarConfig(env);
    const main = built.pod.spec.containers[0]!;
    const baseUrl = main.env!.find((e) => e.name === 'ANTHROPIC_BASE_URL')!.value!.replace('$(AGENTENV_POD_IP)', '127.3.4.5');
    expect(baseUrl).toBe(`http://${config.proxyAddress}:${config.proxyPort}`);
  });
});
