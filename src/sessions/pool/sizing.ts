/**
 * How big an environment's warm pool is (pure, with an injected clock).
 *
 * | spec.selfHosted.warmPool | the pool                                                              |
 * |--------------------------|-----------------------------------------------------------------------|
 * | absent                   | 0                                                                     |
 * | `{size}`                 | `size` — the field the scale subresource drives (HPA, KEDA, kubectl)  |
 * | `{size, min, max}`       | sized from the queue: depth + pending, clamped to [min, max]          |
 *
 * and 0 whatever the spec says when warm Pods could not serve: a `sessionTemplate` (its runner may
 * read its session id at start, so its sessions are served cold), a `workspace` (a session's claim
 * is named after the session and mounted at /workspace from its first Pod on; a warm Pod started
 * before the session exists cannot mount it, and serving the first item on an emptyDir would lose
 * what it wrote), `ObserveOnly` (nothing is dispatched), an environment being deleted.
 *
 * Sizing from the queue follows the HorizontalPodAutoscaler's rules, so it never flaps:
 * 1. the recommendation is `clamp(depth + pending, min, max)`: one Pod ready for every item waiting
 *    or delivered and not yet acknowledged (the figures the environment reconciler already reads);
 * 2. it grows at once (a queue is latency waiting to happen) but shrinks only to the highest
 *    recommendation of the last {@link SCALE_DOWN_WINDOW_MS} (the HPA's scale-down stabilization
 *    window): a queue that empties and refills within the window keeps its Pods;
 * 3. the size changes at most once per {@link RESIZE_INTERVAL_MS}, whatever the figures do;
 * 4. before the first queue figures the pool is `size` (clamped), and after an operator restart the
 *    window starts empty: the first recommendation stands, the window then refills.
 */
import type { WarmPool } from '../../crd/agent-environment.ts';
import type { AgentEnvironment } from '../../crd/resources.ts';

/** At most one size change per this many milliseconds (5 s). */
export const RESIZE_INTERVAL_MS = 5_000;
/** A smaller recommendation wins only after this long (2 minutes). */
export const SCALE_DOWN_WINDOW_MS = 120_000;

/** What the sizing remembers between passes of one environment (in memory: lost with the process, by design). */
export interface SizingMemory {
  readonly size: number;
  /** When `size` last changed (ms). */
  readonly changedAt: number;
  /** Recommendations of the scale-down window, oldest first. */
  readonly recent: ReadonlyArray<{ readonly at: number; readonly size: number }>;
}

export interface SizingInput {
  readonly pool: WarmPool | undefined;
  /** Whether warm Pods can serve this environment (see {@link warmPoolServes}). */
  readonly serves: boolean;
  /** The latest queue figures (status.queue), if any. */
  readonly queue: { readonly depth: number; readonly pending: number } | undefined;
  readonly now: number;
}

/** Whether a warm Pod can serve the environment's sessions: the default runner, dispatched, alive. */
export function warmPoolServes(env: AgentEnvironment): boolean {
  const sh = env.spec.selfHosted;
  return !!sh && !sh.sessionTemplate && !sh.workspace && env.spec.managementPolicy !== 'ObserveOnly' && !env.metadata?.deletionTimestamp;
}


/** The pool's size for this pass, and what to remember for the next. */
export function nextPoolSize(input: SizingInput, memory: SizingMemory | undefined): SizingMemory {
  const { pool, now } = input;
  if (!pool || !input.serves) return { size: 0, changedAt: memory?.size === 0 ? memory.changedAt : now, recent: [] };
  if (pool.min === undefined || pool.max === undefined) return { size: pool.size, changedAt: memory?.size === pool.size ? memory.changedAt : now, recent: [] };
  const clamp = (n: number): number => Math.min(pool.max!, Math.max(pool.min!, n));
  if (!input.queue) {
    const size = memory ? clamp(memory.size) : clamp(pool.size);
    return { size, changedAt: memory?.size === size ? memory.changedAt : now, recent: memory?.recent ?? [] };
  }
  const recommendation = clamp(input.queue.depth + input.queue.pending);
  const recent = [...(memory?.recent ?? []).filter((r) => now - r.at < SCALE_DOWN_WINDOW_MS), { at: now, size: recommendation }];
  // Rule 2: up at once, down only to the window's highest recommendation.
  const stabilized = Math.max(...recent.map((r) => r.size));
  if (!memory) return { size: stabilized, changedAt: now, recent };
  // Rule 3: one change per interval; a bound (min/max) edited meanwhile still applies at once.
  const current = clamp(memory.size);
  if (stabilized === current) return { size: current, changedAt: current === memory.size ? memory.changedAt : now, recent };
  if (now - memory.changedAt < RESIZE_INTERVAL_MS) return { size: current, changedAt: current === memory.size ? memory.changedAt : now, recent };
  return { size: stabilized, changedAt: now, recent };
}
