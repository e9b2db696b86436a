/**
 * values.schema.json refuses bad values before anything renders, with a message that names the key.
 * One row per rule: the value, and what helm must say.
 */
import { describe, expect, it } from 'vitest';
import { refusal, render } from './helm.ts';

const REFUSALS: readonly { readonly set: readonly string[]; readonly says: RegExp; readonly why: string }[] = [
  { set: ['replicaCount=2', 'leaderElection.enabled=false'], says: /leaderElection\/enabled': value must be true/, why: 'two replicas without leader election would both dispatch work' },
  { set: ['apiKey.existingSecret=mine', 'apiKey.value=sk-ant-x'], says: /apiKey\/value/, why: 'one source for the API key' },
  { set: ['logLevel=verbose'], says: /\/logLevel': value must be one of/, why: 'the operator knows only its log levels' },
  { set: ['logFormat=xml'], says: /\/logFormat'/, why: 'json or text' },
  { set: ['image.digest=latest'], says: /\/image\/digest'/, why: 'a digest is sha256:<64 hex>' },
  { set: ['image.repository='], says: /\/image\/repository'/, why: 'an image needs a repository' },
  { set: ['watchNamespaces[0]=Team_A'], says: /\/watchNamespaces\/0'/, why: 'namespaces are DNS labels' },
  { set: ['resyncPeriod=ten minutes'], says: /\/resyncPeriod'/, why: 'durations such as 10m' },
  { set: ['anthropicBaseUrl=api.anthropic.com'], says: /\/anthropicBaseUrl'/, why: 'the base URL needs its scheme' },
  { set: ['metrics.port=70000'], says: /\/metrics\/port'/, why: 'ports are 1–65535' },
  { set: ['metrics.prot=9090'], says: /additional properties 'prot' not allowed/, why: 'a misspelt key is an error, not a silent default' },
  { set: ['replicas=3'], says: /additional properties 'replicas' not allowed/, why: 'a misspelt top-level key is an error too' },
  { set: ['extraEnv[0].name=ANTHROPIC_API_KEY', 'extraEnv[0].value=sk-ant-x'], says: /\/extraEnv\/0\/name'/, why: 'the API key is never a plain environment value' },
  { set: ['sidecar.pullPolicy=Sometimes'], says: /\/sidecar\/pullPolicy'/, why: 'Kubernetes pull policies only' },
  { set: ['runner.image.pullPolicy=Sometimes'], says: /\/runner\/image\/pullPolicy'/, why: 'Kubernetes pull policies only' },
  { set: ['sessionProxyAddress=host'], says: /\/sessionProxyAddress'/, why: 'loopback or pod-ip only' },
  { set: ['podDisruptionBudget.maxUnavailable=half'], says: /\/podDisruptionBudget\/maxUnavailable'/, why: 'a count or a percentage' },
  { set: ['podDisruptionBudget.maxUnavailable=0'], says: /\/podDisruptionBudget\/maxUnavailable'/, why: 'a budget that allows no eviction blocks every node drain' },
  { set: ['resyncPeriod=0s'], says: /\/resyncPeriod'/, why: 'a zero resync would spin' },
  { set: ['resyncPeriod=0m0s'], says: /\/resyncPeriod'/, why: 'zero in any spelling' },
  { set: ['leaderElection.leaseDuration=15'], says: /\/leaderElection\/leaseDuration'/, why: 'a duration needs its unit' },
  { set: ['leaderElection.leaseDuration=1500ms'], says: /\/leaderElection\/leaseDuration'/, why: 'a Lease holds whole seconds' },
  { set: ['leaderElection.retryPeriod=0s'], says: /\/leaderElection\/retryPeriod'/, why: 'a zero retry period would spin' },
  { set: ['networkPolicy.dns.ports[0]=0'], says: /\/networkPolicy\/dns\/ports\/0'/, why: 'DNS ports are 1–65535' },
  { set: ['uninstall.policy=keep'], says: /\/uninstall\/policy'/, why: 'refuse, delete or orphan' },
  { set: ['health.port=8080'], says: /metrics.port and health.port must differ/, why: 'the two servers need two ports (checked by the template)' },
  { set: ['metrics.serviceMonitor.enabled=true', 'metrics.service.enabled=false'], says: /ServiceMonitor selects the metrics Service/, why: 'a ServiceMonitor needs the Service' },
];

describe('values.schema.json', () => {
  it.each(REFUSALS)('refuses $set: $why', async ({ set, says }) => {
    expect(await refusal({ set })).toMatch(says);
  });

  it('accepts the documented alternatives', async () => {
    await render({ set: ['podDisruptionBudget.maxUnavailable=50%', 'replicaCount=1', 'leaderElection.enabled=false', 'logFormat=text', 'resyncPeriod=1h30m'] });
    await render({ set: ['resyncPeriod=90s', 'networkPolicy.enabled=true', 'networkPolicy.dns.ports[0]=5353'] });
    await render({ set: ['apiKey.existingSecret=mine', 'anthropicBaseUrl=http://emulator.agentenv-system:8090'] });
  });
});
