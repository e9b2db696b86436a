import { describe, expect, it } from 'vitest';
import { parseEnvironmentSpec } from './agent-environment.ts';

const selfHosted = (maxSessions: number) => ({ selfHosted: { maxSessions } });

describe('parseEnvironmentSpec', () => {
  it('parses a spec object once: the same object gives the same result', () => {
    const spec = selfHosted(3);
    const first = parseEnvironmentSpec(spec);
    expect(first.success && first.data.selfHosted?.maxSessions).toBe(3);
    expect(parseEnvironmentSpec(spec)).toBe(first);
  });

  it('parses a replaced spec (a new resource version) anew', () => {
    const before = parseEnvironmentSpec(selfHosted(3));
    const after = parseEnvironmentSpec(selfHosted(7));
    expect(after).not.toBe(before);
    expect(after.success && after.data.selfHosted?.maxSessions).toBe(7);
  });

  it('reports an invalid spec, and a spec that is not an object', () => {
    expect(parseEnvironmentSpec({ selfHosted: { maxSessions: -1 } }).success).toBe(false);
    expect(parseEnvironmentSpec(undefined).success).toBe(false);
  });
});
