/**
 * Scripted faults for the public API routes: a status (with Retry-After), added latency, a
 * connection reset, or a reply with a body of the test's choosing (malformed, wrongly typed,
 * truncated mid-body, or N bytes long), for requests matching a method and path pattern, with a
 * probability or for the next N matches. Admin routes are never faulted.
 */
import { z } from 'zod';

export const FaultRule = z.object({
  /** HTTP method to match; any when omitted. */
  method: z.string().toUpperCase().optional(),
  /** Path pattern: `*` matches one segment, `**` any number; or a regular expression as `re:<regex>`. */
  path: z.string().min(1),
  /** Chance (0–1) that a matching request is faulted. Default 1. */
  probability: z.number().min(0).max(1).optional(),
  /** Fault only the next `count` matching requests. Unlimited when omitted. */
  count: z.number().int().positive().optional(),
  /** Reply with this status: an Anthropic error body, or with `body`/`body_bytes` the body given (default 200 then). */
  status: z.number().int().min(200).max(599).optional(),
  /** `retry-after` header for the faulted reply (seconds, or an HTTP date). */
  retry_after: z.union([z.number().nonnegative(), z.string()]).optional(),
  /** Delay before replying (and before serving normally when no status/reset is given). */
  latency_ms: z.number().int().min(0).max(600_000).optional(),
  /** Destroy the connection instead of replying. */
  reset: z.boolean().optional(),
  message: z.string().optional(),
  error_type: z.string().optional(),
  /** Reply with this raw body instead of the route's (not JSON-encoded: `"{\\"id\\": 1"` is sent as is). */
  body: z.string().optional(),
  /** Reply with a body of exactly this many bytes: `body` repeated (`x` without one), streamed, cut at this length. */
  body_bytes: z.number().int().min(0).max(1024 * 1024 * 1024).optional(),
  /** Declare the whole body's `content-length` but send only its first N bytes, then cut the connection. */
  truncate_at: z.number().int().min(0).optional(),
  /** Extra headers on a faulted reply (e.g. a wrong `content-type`). */
  headers: z.record(z.string(), z.string()).optional(),
}).refine((r) => r.status === undefined || r.status >= 400 || r.body !== undefined || r.body_bytes !== undefined, {
  message: 'a status below 400 needs a body or body_bytes',
  path: ['status'],
});
export type FaultRule = z.infer<typeof FaultRule>;
export const FaultRules = z.union([z.array(FaultRule), z.object({ rules: z.array(FaultRule) }).transform((o) => o.rules)]);

interface ActiveRule {
  rule: FaultRule;
  pattern: RegExp;
  remaining: number;
  hits: number;
}

function compile(path: string): RegExp {
  if (path.startsWith('re:')) return new RegExp(path.slice(3));
  const body = path
    .split('/')
    .map((seg) => (seg === '**' ? '.*' : seg === '*' ? '[^/]+' : seg.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')))
    .join('/');
  return new RegExp(`^${body}$`);
}

export class FaultInjector {
  #rules: ActiveRule[] = [];

  add(rules: FaultRule[]): void {
    for (const rule of rules) this.#rules.push({ rule, pattern: compile(rule.path), remaining: rule.count ?? Infinity, hits: 0 });
  }

  clear(): void {
    this.#rules = [];
  }

  list(): Array<FaultRule & { hits: number }> {
    return this.#rules.map((r) => ({ ...r.rule, hits: r.hits }));
  }

  /** The fault for this request, if any (consumes one use of a counted rule). */
  match(method: string, path: string, random: () => number = Math.random): FaultRule | undefined {
    for (const r of this.#rules) {
      if (r.remaining <= 0) continue;
      if (r.rule.method && r.rule.method !== method) continue;
      if (!r.pattern.test(path)) continue;
      if (r.rule.probability !== undefined && random() >= r.rule.probability) continue;
      r.remaining--;
      r.hits++;
      return r.rule;
    }
    return undefined;
  }
}
