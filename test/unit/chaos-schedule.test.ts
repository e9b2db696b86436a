import { describe, expect, it } from 'vitest';
import { chaosPlan, DISRUPTION_SPACING_MS, FAULT_KINDS, PROFILES } from '../../bench/chaos/schedule.ts';

describe('the chaos plan', () => {
  it('a seed replays exactly the same plan; another seed gives another', () => {
    expect(chaosPlan(PROFILES.small, 42)).toEqual(chaosPlan(PROFILES.small, 42));
    expect(chaosPlan(PROFILES.small, 43).events).not.toEqual(chaosPlan(PROFILES.small, 42).events);
  });

  it.each([1, 7, 12345, 2 ** 31 - 1])('seed %i: every fault of the profile, inside the window, disruptions spaced apart, sessions in order', (seed) => {
    for (const profile of Object.values(PROFILES)) {
      const { events, sessions } = chaosPlan(profile, seed);
      for (const kind of FAULT_KINDS) expect(events.filter((e) => e.kind === kind)).toHaveLength(profile.faults[kind]);
      expect(events.every((e) => e.at >= 0 && e.at < profile.windowMs)).toBe(true);
      const disruptions = events.filter((e) => ['leader-kill', 'apiserver-restart', 'kubelet-restart'].includes(e.kind)).map((e) => e.at);
      disruptions.slice(1).forEach((t, i) => expect(t - disruptions[i]!).toBeGreaterThanOrEqual(DISRUPTION_SPACING_MS));
      expect(sessions).toHaveLength(profile.sessions);
      sessions.slice(1).forEach((s, i) => expect(s.at).toBeGreaterThanOrEqual(sessions[i]!.at));
      expect(events.filter((e) => e.kind === 'api-faults').map((e) => (e.kind === 'api-faults' ? e.faults : '')).sort()).toEqual(expect.arrayContaining(['latency', 'rate-limited', 'resets', 'server-errors']));
    }
  });
});
