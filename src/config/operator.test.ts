import { describe, expect, it } from 'vitest';
import { OperatorConfig } from './operator.ts';

const parse = (extra: Record<string, unknown>) => OperatorConfig.safeParse({ identity: 'me', ...extra });

describe('leader-election timings', () => {
  it('default to controller-runtime\'s 15 s lease, 10 s renew deadline and 2 s retry period', () => {
    const c = parse({});
    expect(c.success && [c.data.leaderElectionLeaseDurationMs, c.data.leaderElectionRenewDeadlineMs, c.data.leaderElectionRetryPeriodMs]).toEqual([15_000, 10_000, 2_000]);
  });

  it('accept durations as Go writes them (the chaos run\'s 3s / 2s / 500ms)', () => {
    const c = parse({ leaderElectionLeaseDurationMs: '3s', leaderElectionRenewDeadlineMs: '2s', leaderElectionRetryPeriodMs: '500ms' });
    expect(c.success && [c.data.leaderElectionLeaseDurationMs, c.data.leaderElectionRenewDeadlineMs, c.data.leaderElectionRetryPeriodMs]).toEqual([3_000, 2_000, 500]);
  });

  it.each([
    ['a lease duration that is not whole seconds', { leaderElectionLeaseDurationMs: '2500ms', leaderElectionRenewDeadlineMs: '1s', leaderElectionRetryPeriodMs: '200ms' }, 'leaderElectionLeaseDurationMs'],
    ['a renew deadline not shorter than the lease', { leaderElectionLeaseDurationMs: '3s', leaderElectionRenewDeadlineMs: '3s' }, 'leaderElectionRenewDeadlineMs'],
    ['a retry period over half the renew deadline', { leaderElectionLeaseDurationMs: '3s', leaderElectionRenewDeadlineMs: '2s', leaderElectionRetryPeriodMs: '1500ms' }, 'leaderElectionRetryPeriodMs'],
  ])('refuse %s, naming the setting', (_, extra, setting) => {
    const c = parse(extra);
    expect(c.success).toBe(false);
    expect(c.error?.issues.map((i) => i.path.join('.'))).toContain(setting);
  });
});
