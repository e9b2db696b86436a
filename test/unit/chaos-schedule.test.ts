import { describe, expect, it } from 'vitest';
import { chaosPlan, DISRUPTION_SPACING_MS, ENVIRONMENT_KINDS, FAULT_KINDS, PROFILES } from '../../bench/chaos/schedule.ts';

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

  it.each([1, 7, 12345, 2 ** 31 - 1])('seed %i: sessions spread over the cold, warm and workspace environments; only workspace sessions are resumed, and some are', (seed) => {
    for (const profile of Object.values(PROFILES)) {
      const { sessions } = chaosPlan(profile, seed);
      for (const kind of ENVIRONMENT_KINDS) expect(sessions.filter((s) => s.environment === kind).length, `${profile.name} ${kind}`).toBeGreaterThanOrEqual(profile.sessions / 6);
      expect(sessions.filter((s) => s.resume).every((s) => s.environment === 'workspace')).toBe(true);
      expect(sessions.some((s) => s.resume)).toBe(true);
      expect(sessions.some((s) => s.environment === 'workspace' && !s.resume)).toBe(true);
    }
  });

  it('warm sidecars are killed both while they wait and right after binding', () => {
    for (const profile of Object.values(PROFILES)) {
      const moments = chaosPlan(profile, 3).events.flatMap((e) => (e.kind === 'warm-sidecar-kill' ? [e.moment] : []));
      expect(new Set(moments)).toEqual(new Set(['waiting', 'bound']));
    }
  });

  it('the plan of a session does not depend on the profile\'s fault counts (same seed, same sessions)', () => {
    const quiet = { ...PROFILES.small, faults: { ...PROFILES.small.faults, 'warm-sidecar-kill': 0, 'sidecar-kill': 0 } };
    expect(chaosPlan(quiet, 9).sessions).toEqual(chaosPlan(PROFILES.small, 9).sessions);
  });
});
