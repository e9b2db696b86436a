import { describe, expect, it } from 'vitest';
import { OperatorMetrics, type EnvironmentFigures } from './metrics.ts';

/** The exposition lines of one metric (without HELP/TYPE). */
async function lines(m: OperatorMetrics, name: string): Promise<string[]> {
  const text = await m.registry.metrics();
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

const figures = (over: Partial<EnvironmentFigures> = {}): EnvironmentFigures => ({
  namespace: 'team-a',
  name: 'prod',
  queue: { depth: 5, pending: 2, workersPolling: 3, oldestQueuedAt: Date.now() - 90_000 },
  activeSessions: 4,
  dispatching: false,
  ...over,
});

describe('per-environment metrics', () => {
  it('reports each self-hosted environment by environment_namespace and environment while leading', async () => {
    const m = new OperatorMetrics({ defaultMetrics: false });
    m.environments(() => [figures()]);
    m.leader(true);
    const labels = '{environment_namespace="team-a",environment="prod"}';
    expect(await lines(m, 'agentenv_environment_queue_depth')).toEqual([`agentenv_environment_queue_depth${labels} 5`]);
    expect(await lines(m, 'agentenv_environment_queue_pending')).toEqual([`agentenv_environment_queue_pending${labels} 2`]);
    expect(await lines(m, 'agentenv_environment_workers_polling')).toEqual([`agentenv_environment_workers_polling${labels} 3`]);
    expect(await lines(m, 'agentenv_environment_sessions_active')).toEqual([`agentenv_environment_sessions_active${labels} 4`]);
    expect(await lines(m, 'agentenv_environment_dispatching')).toEqual([`agentenv_environment_dispatching${labels} 0`]);
    const [age] = await lines(m, 'agentenv_environment_queue_oldest_age_seconds');
    expect(Number(age?.split(' ')[1])).toBeGreaterThanOrEqual(90);
  });

  it('reports nothing from a standby replica (sum over replicas must not count twice)', async () => {
    const m = new OperatorMetrics({ defaultMetrics: false });
    m.environments(() => [figures()]);
    m.leader(false);
    expect(await lines(m, 'agentenv_environment_queue_depth')).toEqual([]);
  });

  it('leaves out what is not known: no queue read yet, dispatch state not reported, nothing queued', async () => {
    const m = new OperatorMetrics({ defaultMetrics: false });
    m.environments(() => [figures({ queue: undefined, dispatching: undefined }), figures({ name: 'idle', dispatching: undefined, queue: { depth: 0, pending: 0, workersPolling: 1 } })]);
    m.leader(true);
    expect(await lines(m, 'agentenv_environment_queue_depth')).toEqual(['agentenv_environment_queue_depth{environment_namespace="team-a",environment="idle"} 0']);
    expect(await lines(m, 'agentenv_environment_queue_oldest_age_seconds')).toEqual(['agentenv_environment_queue_oldest_age_seconds{environment_namespace="team-a",environment="idle"} 0']);
    expect(await lines(m, 'agentenv_environment_dispatching')).toEqual([]);
  });

  it('an environment that goes loses every series, its claim latency included', async () => {
    const m = new OperatorMetrics({ defaultMetrics: false });
    let envs = [figures(), figures({ name: 'other' })];
    m.environments(() => envs);
    m.leader(true);
    m.sessionStarted({ namespace: 'team-a', name: 'prod' }, 'cold', 1_500);
    m.sessionStarted({ namespace: 'team-a', name: 'other' }, 'cold', 800);
    expect((await lines(m, 'agentenv_environment_claim_latency_seconds_count')).sort()).toEqual([
      'agentenv_environment_claim_latency_seconds_count{environment_namespace="team-a",environment="other",start="cold"} 1',
      'agentenv_environment_claim_latency_seconds_count{environment_namespace="team-a",environment="prod",start="cold"} 1',
    ]);
    envs = [figures({ name: 'other' })];
    expect(await lines(m, 'agentenv_environment_claim_latency_seconds_count')).toEqual(['agentenv_environment_claim_latency_seconds_count{environment_namespace="team-a",environment="other",start="cold"} 1']);
    expect(await lines(m, 'agentenv_environment_queue_depth')).toEqual(['agentenv_environment_queue_depth{environment_namespace="team-a",environment="other"} 5']);
  });

  it('claim latency is a histogram split by start (warm, cold) in seconds', async () => {
    const m = new OperatorMetrics({ defaultMetrics: false });
    m.environments(() => [figures()]);
    m.sessionStarted({ namespace: 'team-a', name: 'prod' }, 'warm', 200);
    m.sessionStarted({ namespace: 'team-a', name: 'prod' }, 'cold', 3_000);
    expect(await lines(m, 'agentenv_environment_claim_latency_seconds_sum')).toEqual([
      'agentenv_environment_claim_latency_seconds_sum{environment_namespace="team-a",environment="prod",start="warm"} 0.2',
      'agentenv_environment_claim_latency_seconds_sum{environment_namespace="team-a",environment="prod",start="cold"} 3',
    ]);
  });
});
