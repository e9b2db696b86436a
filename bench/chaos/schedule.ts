/**
 * The chaos run's plan, a pure function of (profile, seed): when each session is enqueued, in
 * which environment, whether it is resumed and how it ends, and when each fault is injected.
 * Printing the seed is enough to replay a run: the same seed gives the same plan (what happens in
 * between still depends on timing, as in any real run).
 */

export const FAULT_KINDS = ['leader-kill', 'apiserver-restart', 'api-faults', 'sidecar-kill', 'warm-sidecar-kill', 'kubelet-restart', 'duplicate-delivery'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/**
 * The run's three self-hosted environments (docs/chaos.md): `cold` (every session gets a new Pod),
 * `warm` (a warm pool: sessions are bound to ready Pods), `workspace` (each session keeps a claim;
 * some sessions go idle and are resumed on it).
 */
export const ENVIRONMENT_KINDS = ['cold', 'warm', 'workspace'] as const;
export type EnvironmentKind = (typeof ENVIRONMENT_KINDS)[number];

/** When a warm Pod's sidecar is SIGKILLed: while it waits for an assignment, or as soon as the Pod is seen bound. */
export const WARM_MOMENTS = ['waiting', 'bound'] as const;
export type WarmMoment = (typeof WARM_MOMENTS)[number];

/** The emulator fault rule sets an `api-faults` window applies (docs/chaos.md). */
export const API_FAULTS = ['server-errors', 'rate-limited', 'resets', 'latency'] as const;
export type ApiFaults = (typeof API_FAULTS)[number];

export type ChaosEvent =
  | { readonly at: number; readonly kind: 'leader-kill' | 'apiserver-restart' | 'kubelet-restart' }
  | { readonly at: number; readonly kind: 'api-faults'; readonly faults: ApiFaults; readonly durationMs: number }
  /** `pick` in [0, 1) chooses among the Pods whose sidecar runs at that moment, sorted by name. */
  | { readonly at: number; readonly kind: 'sidecar-kill'; readonly pick: number }
  /** `waiting`: `pick` chooses among the warm Pods whose sidecar runs; `bound`: the next warm Pod bound after `at`. */
  | { readonly at: number; readonly kind: 'warm-sidecar-kill'; readonly moment: WarmMoment; readonly pick: number }
  | { readonly at: number; readonly kind: 'duplicate-delivery'; readonly durationMs: number };

export interface SessionPlan {
  readonly index: number;
  /** When it is enqueued, ms after the start of the run. */
  readonly at: number;
  readonly environment: EnvironmentKind;
  /**
   * Workspace sessions only: the first work item writes a file and the agent ends its turn; once
   * the runner ended idle, the session is woken (a new work item) and reads the file back from its
   * workspace before it is ended.
   */
  readonly resume: boolean;
  /** `terminate`: the agent ends the session after the tool result; `remote-stop`: a stop through the API. */
  readonly ending: 'terminate' | 'remote-stop';
  /** How long after its tool result the session is ended (a stop lands anywhere in the runner's heartbeat cycle). */
  readonly endDelayMs: number;
}

export interface Profile {
  readonly name: 'small' | 'full';
  readonly sessions: number;
  /** Sessions are enqueued evenly over this span (with jitter). */
  readonly enqueueMs: number;
  /** Faults are injected in [0, windowMs); the run goes on until the last one was applied and every session settled. */
  readonly windowMs: number;
  readonly faults: Readonly<Record<FaultKind, number>>;
  /** Each environment's maxSessions: how many of its session Pods run at once. */
  readonly maxSessions: number;
  /** The warm environment's `warmPool.size`. */
  readonly warmPoolSize: number;
  /** Share of the workspace environment's sessions that go idle and are resumed. */
  readonly resumeShare: number;
  /** The whole run (driving and settling, not start-up or cleanup) gives up after this long. */
  readonly deadlineMs: number;
  /** Share of sessions ended by a remote stop. */
  readonly remoteStopShare: number;
}

export const PROFILES: Readonly<Record<Profile['name'], Profile>> = {
  // CI: must finish within 4 minutes on 2 cores, cluster start-up and cleanup included.
  small: {
    name: 'small',
    sessions: 30,
    enqueueMs: 75_000,
    windowMs: 75_000,
    faults: { 'leader-kill': 2, 'apiserver-restart': 1, 'api-faults': 4, 'sidecar-kill': 3, 'warm-sidecar-kill': 2, 'kubelet-restart': 1, 'duplicate-delivery': 3 },
    maxSessions: 4,
    warmPoolSize: 2,
    resumeShare: 0.5,
    deadlineMs: 150_000,
    remoteStopShare: 0.25,
  },
  full: {
    name: 'full',
    sessions: 500,
    enqueueMs: 600_000,
    windowMs: 600_000,
    faults: { 'leader-kill': 10, 'apiserver-restart': 4, 'api-faults': 24, 'sidecar-kill': 30, 'warm-sidecar-kill': 10, 'kubelet-restart': 5, 'duplicate-delivery': 16 },
    maxSessions: 5,
    warmPoolSize: 2,
    resumeShare: 0.4,
    deadlineMs: 1_200_000,
    remoteStopShare: 0.2,
  },
};

/** Disruptive faults (a control-plane or operator process goes away) keep this far apart, so each failover is measured on its own. */
export const DISRUPTION_SPACING_MS = 10_000;
export const DISRUPTIVE: ReadonlySet<FaultKind> = new Set(['leader-kill', 'apiserver-restart', 'kubelet-restart']);

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ChaosPlan {
  readonly sessions: readonly SessionPlan[];
  readonly events: readonly ChaosEvent[];
}

export function chaosPlan(profile: Profile, seed: number): ChaosPlan {
  const random = seededRandom(seed);
  const step = profile.enqueueMs / profile.sessions;
  const sessions: SessionPlan[] = Array.from({ length: profile.sessions }, (_, index) => {
    const at = Math.round(index * step + random() * step * 0.9);
    const environment = ENVIRONMENT_KINDS[Math.floor(random() * ENVIRONMENT_KINDS.length)]!;
    const resume = random() < profile.resumeShare && environment === 'workspace';
    return { index, at, environment, resume, ending: random() < profile.remoteStopShare ? 'remote-stop' : 'terminate', endDelayMs: Math.round(random() * 3_000) };
  });

  const events: ChaosEvent[] = [];
  // The first fault waits until sessions are in flight. Disruptions get one slot each of equal
  // width in a shuffled order, placed inside their slot so neighbours stay DISRUPTION_SPACING_MS apart.
  const lo = Math.min(8_000, profile.windowMs / 4);
  const span = profile.windowMs - lo;
  const disruptive = FAULT_KINDS.filter((k) => DISRUPTIVE.has(k)).flatMap((k) => Array.from({ length: profile.faults[k] }, () => k));
  const width = span / Math.max(1, disruptive.length);
  if (disruptive.length > 0 && width < DISRUPTION_SPACING_MS) throw new Error(`profile ${profile.name}: ${disruptive.length} disruptions do not fit ${DISRUPTION_SPACING_MS} ms apart`);
  for (let i = disruptive.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [disruptive[i], disruptive[j]] = [disruptive[j]!, disruptive[i]!];
  }
  disruptive.forEach((kind, slot) => {
    const t = Math.round(lo + slot * width + DISRUPTION_SPACING_MS / 2 + random() * (width - DISRUPTION_SPACING_MS));
    events.push({ at: t, kind: kind as 'leader-kill' | 'apiserver-restart' | 'kubelet-restart' });
  });
  const anytime = (): number => Math.round(lo + random() * span);
  for (let i = 0; i < profile.faults['api-faults']; i++) events.push({ at: anytime(), kind: 'api-faults', faults: API_FAULTS[i % API_FAULTS.length]!, durationMs: 4_000 + Math.round(random() * 6_000) });
  for (let i = 0; i < profile.faults['sidecar-kill']; i++) events.push({ at: anytime(), kind: 'sidecar-kill', pick: random() });
  for (let i = 0; i < profile.faults['warm-sidecar-kill']; i++) events.push({ at: anytime(), kind: 'warm-sidecar-kill', moment: WARM_MOMENTS[i % WARM_MOMENTS.length]!, pick: random() });
  for (let i = 0; i < profile.faults['duplicate-delivery']; i++) events.push({ at: anytime(), kind: 'duplicate-delivery', durationMs: 3_000 + Math.round(random() * 3_000) });
  events.sort((a, b) => a.at - b.at);
  return { sessions, events };
}

/** One line per event, for the run's log (and for comparing two runs of a seed). */
export function describeEvent(e: ChaosEvent): string {
  const t = `t+${(e.at / 1000).toFixed(1)}s`;
  switch (e.kind) {
    case 'api-faults':
      return `${t} ${e.kind} ${e.faults} for ${(e.durationMs / 1000).toFixed(1)}s`;
    case 'duplicate-delivery':
      return `${t} ${e.kind} for ${(e.durationMs / 1000).toFixed(1)}s`;
    case 'sidecar-kill':
      return `${t} ${e.kind} (pick ${e.pick.toFixed(3)})`;
    case 'warm-sidecar-kill':
      return e.moment === 'waiting' ? `${t} ${e.kind} waiting (pick ${e.pick.toFixed(3)})` : `${t} ${e.kind} right after binding`;
    default:
      return `${t} ${e.kind}`;
  }
}
