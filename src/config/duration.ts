import { z } from 'zod';

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/**
 * A duration like Kubernetes and Go write them: "500ms", "30s", "10m", "1h30m" (or a bare number
 * of milliseconds), parsed to milliseconds.
 */
export const duration = z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const s = v.trim();
  if (/^\d+$/.test(s)) return Number(s);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let total = 0;
  let consumed = 0;
  for (const m of s.matchAll(re)) {
    total += Number(m[1]) * (UNITS[m[2]!] ?? 0);
    consumed += m[0].length;
  }
  if (consumed === 0 || consumed !== s.length) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration (use e.g. 500ms, 30s, 10m, 1h)` });
    return z.NEVER;
  }
  return Math.round(total);
});
