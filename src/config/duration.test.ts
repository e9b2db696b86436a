import { describe, expect, it } from 'vitest';
import { duration } from './duration.ts';

describe('duration', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['10m', 600_000],
    ['1h30m', 5_400_000],
    ['1.5s', 1_500],
    ['250', 250],
    [42, 42],
  ])('parses %s', (input, ms) => expect(duration.parse(input)).toBe(ms));

  it.each(['', 'soon', '10x', '5m garbage', '-1s'])('refuses %j with a readable message', (input) => {
    const r = duration.safeParse(input);
    expect(r.success).toBe(false);
  });
});
