import { describe, expect, it } from 'vitest';
import { firstProblem, Reachability } from './health.ts';

describe('Reachability (the apiserver part of /healthz)', () => {
  const at = (events: ReadonlyArray<readonly [ms: number, code: number | string]>, nowMs: number): string | undefined => {
    let now = 0;
    const r = new Reachability({ staleAfterMs: 60_000, now: () => now });
    for (const [ms, code] of events) {
      now = ms;
      r.observe(code);
    }
    now = nowMs;
    return r.problem();
  };
  it.each([
    ['a process that has not talked to the apiserver yet is healthy', [], 120_000, false],
    ['an answer keeps it healthy however long the silence after it (an idle watch)', [[1_000, 200]], 600_000, false],
    ['any HTTP status is an answer: a 503 means the server is there', [[1_000, 'connection_error'], [2_000, 503]], 600_000, false],
    ['failures for less than the stale period are not yet unhealthy', [[1_000, 200], [30_000, 'connection_error']], 50_000, false],
    ['failures and no answer for longer than the stale period: unhealthy', [[1_000, 200], [30_000, 'connection_error'], [62_000, 'connection_error']], 62_000, true],
    ['one answer after the failures heals it at once', [[1_000, 'connection_error'], [70_000, 'connection_error'], [71_000, 201]], 72_000, false],
  ] as const)('%s', (_rule, events, now, unhealthy) => {
    const problem = at(events, now);
    expect(problem !== undefined).toBe(unhealthy);
    if (problem) expect(problem).toMatch(/^the Kubernetes apiserver has not answered for \d+ s$/);
  });

  it('firstProblem reports the first failing check, or nothing', () => {
    expect(firstProblem(() => undefined, () => 'b', () => 'c')).toBe('b');
    expect(firstProblem(() => undefined)).toBeUndefined();
  });
});
