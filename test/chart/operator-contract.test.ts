/**
 * The chart ↔ operator contract: the args and environment the chart renders are parsed by the
 * operator's own CLI and configuration schema (src/cli/operator.ts), so a renamed flag or variable
 * fails here instead of in a cluster.
 */
import { describe, expect, it } from 'vitest';
import { command, parseConfig } from '../../src/cli/operator.ts';
import type { OperatorConfig } from '../../src/config/operator.ts';
import { find, NAMESPACED_VALUES, RELEASE_NAMESPACE, render, type RenderOptions } from './helm.ts';

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}

/** Render, then parse the operator container's args and env as the operator process would. */
async function operatorConfig(options: RenderOptions): Promise<OperatorConfig> {
  const deployment = find(await render(options), 'Deployment');
  const container = (deployment['spec'] as { template: { spec: { containers: { args: string[]; env: EnvVar[] }[] } } }).template.spec.containers[0]!;
  // The downward API, as the kubelet would resolve it.
  const fieldRefs: Record<string, string> = { 'metadata.name': 'agentenv-7d9f-abcde', 'metadata.namespace': RELEASE_NAMESPACE };
  const env: NodeJS.ProcessEnv = {};
  for (const e of container.env) {
    const path = e.valueFrom?.fieldRef?.fieldPath;
    env[e.name] = e.value ?? (path ? fieldRefs[path] : undefined);
    expect(env[e.name], `env ${e.name}`).toBeDefined();
  }
  const [sub, ...args] = container.args;
  expect(sub).toBe('operator');
  let flags: Parameters<typeof parseConfig>[0] | undefined;
  const cli = command()
    .exitOverride()
    .action((f: Parameters<typeof parseConfig>[0]) => {
      flags = f;
    });
  await cli.parseAsync(args, { from: 'user' });
  return parseConfig(flags!, env);
}

describe('the operator accepts what the chart renders', () => {
  it('default values: leader election in the release namespace, ports, logging, the chart image as sidecar', async () => {
    const config = await operatorConfig({});
    expect(config).toMatchObject({
      leaderElect: true,
      leaderElectionNamespace: RELEASE_NAMESPACE,
      metricsPort: 8080,
      healthPort: 8081,
      logLevel: 'info',
      logFormat: 'json',
      namespaces: [],
      concurrency: 4,
      resyncMs: 600_000,
      sidecarImage: 'ghcr.io/agentenv-io/agentenv:0.1.0',
      sidecarImagePullPolicy: 'IfNotPresent',
      runnerImage: 'ghcr.io/agentenv-io/agentenv-runner:0.1.0',
      runnerImagePullPolicy: 'IfNotPresent',
      sessionProxyAddress: 'loopback',
      baseUrl: 'https://api.anthropic.com',
    });
    expect(config.apiKey).toBeUndefined();
    expect(config.apiKeyFile).toBeUndefined();
  });

  it('namespaced profile: watched namespaces, the key file, base URL and sidecar settings', async () => {
    const config = await operatorConfig({ valuesFiles: [NAMESPACED_VALUES] });
    expect(config).toMatchObject({
      namespaces: ['team-a', 'team-b'],
      apiKeyFile: '/var/run/agentenv/api-key/key',
      baseUrl: 'https://api.anthropic.com',
      logLevel: 'debug',
      sidecarImagePullPolicy: 'Always',
      runnerImage: 'registry.example.com/agentenv/agentenv-runner@sha256:0000000000000000000000000000000000000000000000000000000000000003',
      runnerImagePullPolicy: 'Always',
    });
    expect(config.sidecarImage).toMatch(/@sha256:0+2$/);
    expect(config.apiKey).toBeUndefined();
  });

  it('the runner tag follows the chart, and pod-ip is passed through for the process kubelet', async () => {
    const config = await operatorConfig({ set: ['runner.image.tag=9.9.9', 'sessionProxyAddress=pod-ip'] });
    expect(config).toMatchObject({ runnerImage: 'ghcr.io/agentenv-io/agentenv-runner:9.9.9', sessionProxyAddress: 'pod-ip' });
  });

  it('the leader Lease is named after the release unless leaderElection.id says otherwise, so two releases in one namespace each lead', async () => {
    expect((await operatorConfig({})).leaderElectionId).toBe('agentenv');
    expect((await operatorConfig({ release: 'team-b' })).leaderElectionId).toBe('team-b-agentenv');
    expect((await operatorConfig({ set: ['leaderElection.id=my-lease'] })).leaderElectionId).toBe('my-lease');
  });

  it('tenancy grants, session pull Secrets and the egress proxy reach the operator', async () => {
    const config = await operatorConfig({
      set: [
        'tenancy.adoptionNamespaces={team-a,team-b}',
        'tenancy.defaultApiKeyNamespaces={team-a}',
        'sessions.imagePullSecrets[0].name=registry',
        'sessions.imagePullSecrets[1].name=mirror',
        'proxy.httpsProxy=http://proxy.example.com:3128',
        'proxy.noProxy=.svc\\,10.0.0.0/8',
      ],
    });
    expect(config).toMatchObject({
      adoptionNamespaces: ['team-a', 'team-b'],
      defaultApiKeyNamespaces: ['team-a'],
      sessionImagePullSecrets: ['registry', 'mirror'],
      httpsProxy: 'http://proxy.example.com:3128',
      noProxy: '.svc,10.0.0.0/8',
    });
    expect((await operatorConfig({ set: ['tenancy.adoptionNamespaces={*}'] })).adoptionNamespaces).toEqual(['*']);
    // Defaults: no grant, the key serves every namespace, no pull Secret, no proxy.
    expect(await operatorConfig({})).toMatchObject({ adoptionNamespaces: [], defaultApiKeyNamespaces: [], sessionImagePullSecrets: [] });
    expect((await operatorConfig({})).httpsProxy).toBeUndefined();
  });

  it('the session Pods\' priority class and do-not-disrupt reach the operator; by default neither is set', async () => {
    expect(await operatorConfig({ set: ['sessions.priorityClassName=agent-sessions', 'sessions.doNotDisrupt=true'] })).toMatchObject({ sessionPriorityClassName: 'agent-sessions', sessionDoNotDisrupt: true });
    const defaults = await operatorConfig({});
    expect(defaults.sessionPriorityClassName).toBeUndefined();
    expect(defaults.sessionDoNotDisrupt).toBe(false);
  });

  it('leader-election timings: the production defaults (15s / 10s / 2s) unless the values say otherwise', async () => {
    expect(await operatorConfig({})).toMatchObject({ leaderElectionLeaseDurationMs: 15_000, leaderElectionRenewDeadlineMs: 10_000, leaderElectionRetryPeriodMs: 2_000 });
    const fast = await operatorConfig({ set: ['leaderElection.leaseDuration=3s', 'leaderElection.renewDeadline=2s', 'leaderElection.retryPeriod=500ms'] });
    expect(fast).toMatchObject({ leaderElectionLeaseDurationMs: 3_000, leaderElectionRenewDeadlineMs: 2_000, leaderElectionRetryPeriodMs: 500 });
  });

  it('a single replica without leader election, text logs and a custom resync', async () => {
    const config = await operatorConfig({ set: ['replicaCount=1', 'leaderElection.enabled=false', 'logFormat=text', 'resyncPeriod=1h30m', 'concurrency=8'] });
    expect(config).toMatchObject({ leaderElect: false, logFormat: 'text', resyncMs: 5_400_000, concurrency: 8 });
  });
});
