/**
 * Every Prometheus metric of the operator, defined in one place. Core loops never touch
 * prom-client: they call the narrow recorder methods below. Label values come from closed sets
 * (error codes, phases, endpoint names), never from free text.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Enqueue → lease active spans a Pod start (seconds under a microVM runtime, more with an image pull). */
const START_BUCKETS = [0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120];

/**
 * The per-environment labels. Not `namespace`: the scrape's target labels already carry the
 * operator Pod's own `namespace` (dashboards and alerts filter by it), and a metric label of the
 * same name would be renamed `exported_namespace` unless the scrape honours labels.
 */
export const ENVIRONMENT_LABELS = ['environment_namespace', 'environment'] as const;
type EnvironmentLabel = (typeof ENVIRONMENT_LABELS)[number];

/** How a session's Pod came to be: created for it (`cold`) or taken from a warm pool (`warm`). */
export type SessionStart = 'warm' | 'cold';

/** One self-hosted environment's autoscaling figures at scrape time (plain data: telemetry knows no CRD). */
export interface EnvironmentFigures {
  readonly namespace: string;
  readonly name: string;
  /** The queue figures from the API (`GET …/work/stats`, as of the last environment pass), if read yet. */
  readonly queue?: { readonly depth: number; readonly pending: number; readonly workersPolling: number; readonly oldestQueuedAt?: number | undefined } | undefined;
  /** Sessions of the environment recorded in this cluster and not finished. */
  readonly activeSessions: number;
  /** Whether dispatch is polling (true), paused (false), or not known here (undefined: not reported). */
  readonly dispatching?: boolean | undefined;
}

export class OperatorMetrics {
  readonly registry: Registry;
  readonly #reconciles: Counter<'controller' | 'result'>;
  readonly #reconcileDuration: Histogram<'controller'>;
  readonly #queueDepth: Gauge<'controller'>;
  readonly #apiRequests: Counter<'endpoint' | 'outcome'>;
  readonly #apiDuration: Histogram<'endpoint'>;
  readonly #kubeRequests: Counter<'verb' | 'resource' | 'code'>;
  readonly #sessions: Gauge<'phase'>;
  readonly #workspaces: Gauge<'phase'>;
  readonly #dispatchLatency: Histogram<string>;
  readonly #claimLatency: Histogram<string>;
  readonly #polls: Counter<'outcome' | 'code'>;
  readonly #recordLatency: Histogram<string>;
  readonly #acknowledged: Counter<string>;
  readonly #settled: Counter<'action'>;
  readonly #podCreatedLatency: Histogram<string>;
  readonly #stops: Counter<'reason'>;
  readonly #heartbeats: Counter<'outcome'>;
  readonly #leader: Gauge<string>;
  #leading = false;
  #figures: (() => readonly EnvironmentFigures[]) | undefined;
  readonly #sessionStarts: Histogram<EnvironmentLabel | 'start'>;
  /** The label sets of {@link #sessionStarts} observed, by environment key (so an environment gone loses its series). */
  readonly #startSeries = new Map<string, Set<SessionStart>>();

  constructor(options: { registry?: Registry; defaultMetrics?: boolean } = {}) {
    const registry = options.registry ?? new Registry();
    this.registry = registry;
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'agentenv_' });
    const registers = [registry];
    this.#reconciles = new Counter({ name: 'agentenv_reconcile_total', help: 'Reconciles by controller and result (success, error, requeue).', labelNames: ['controller', 'result'], registers });
    this.#reconcileDuration = new Histogram({ name: 'agentenv_reconcile_duration_seconds', help: 'Reconcile duration.', labelNames: ['controller'], buckets: LATENCY_BUCKETS, registers });
    this.#queueDepth = new Gauge({ name: 'agentenv_workqueue_depth', help: 'Keys waiting in a controller work queue.', labelNames: ['controller'], registers });
    this.#apiRequests = new Counter({ name: 'agentenv_api_requests_total', help: 'Environments API calls by endpoint and outcome (HTTP status or error code).', labelNames: ['endpoint', 'outcome'], registers });
    this.#apiDuration = new Histogram({ name: 'agentenv_api_request_duration_seconds', help: 'Environments API call duration.', labelNames: ['endpoint'], buckets: LATENCY_BUCKETS, registers });
    this.#kubeRequests = new Counter({ name: 'agentenv_kube_requests_total', help: 'Kubernetes API requests by verb, resource and HTTP status.', labelNames: ['verb', 'resource', 'code'], registers });
    this.#sessions = new Gauge({ name: 'agentenv_sessions', help: 'AgentSessions by phase.', labelNames: ['phase'], registers });
    this.#workspaces = new Gauge({ name: 'agentenv_workspace_claims', help: 'Session workspace PersistentVolumeClaims by phase (Pending, Bound, Lost, Retained), as of the last sweep.', labelNames: ['phase'], registers });
    this.#dispatchLatency = new Histogram({ name: 'agentenv_dispatch_latency_seconds', help: 'Work item seen by a poller → session Pod created.', buckets: LATENCY_BUCKETS, registers });
    this.#claimLatency = new Histogram({ name: 'agentenv_claim_latency_seconds', help: 'Work item seen by a poller → lease claimed by the sidecar (as observed).', buckets: LATENCY_BUCKETS, registers });
    this.#polls = new Counter({ name: 'agentenv_polls_total', help: 'Work queue polls by outcome (work, empty, error, fatal) and error code (empty unless an error).', labelNames: ['outcome', 'code'], registers });
    this.#recordLatency = new Histogram({ name: 'agentenv_dispatch_record_latency_seconds', help: 'Work item seen by a poller → its AgentSession recorded.', buckets: LATENCY_BUCKETS, registers });
    this.#acknowledged = new Counter({ name: 'agentenv_sessions_acknowledged_total', help: 'Work items acknowledged by the dispatcher after recording them.', registers });
    this.#podCreatedLatency = new Histogram({ name: 'agentenv_session_pod_created_latency_seconds', help: 'Work item claimed (AgentSession spec.claimedAt) → session Pod created by the session reconciler.', buckets: LATENCY_BUCKETS, registers });
    this.#settled = new Counter({ name: 'agentenv_dispatch_settled_total', help: 'Records written but not acknowledged, settled against the API, by action (acknowledged, adopted, dropped, finished).', labelNames: ['action'], registers });
    this.#stops = new Counter({ name: 'agentenv_work_stops_total', help: 'Work items stopped by the operator, by reason.', labelNames: ['reason'], registers });
    this.#leader = new Gauge({ name: 'agentenv_leader', help: 'Whether this replica holds the leader Lease (1) or stands by (0); without leader election, 1 while running.', registers });
    this.#leader.set(0);
    this.#heartbeats = new Counter({ name: 'agentenv_heartbeats_total', help: 'Lease heartbeats by outcome, as reported by session sidecars when their sessions end.', labelNames: ['outcome'], registers });
    this.#sessionStarts = new Histogram({
      name: 'agentenv_environment_claim_latency_seconds',
      help: "Work item enqueued (its created_at) → lease active (its started_at), both the API's timestamps, per environment and by start (cold: a Pod created for the item; warm: a warm Pod bound to it).",
      labelNames: [...ENVIRONMENT_LABELS, 'start'],
      buckets: START_BUCKETS,
      registers,
      collect: () => this.#forgetGoneStarts(),
    });
    this.#environmentGauges(registers);
  }

  /**
   * The per-environment gauges, read at scrape time from {@link environments}' source, so a gauge
   * never outlives its environment: each scrape starts from nothing. Reported by the leader only
   * (its caches are the same as a standby's, and `sum` over replicas must not count twice).
   */
  #environmentGauges(registers: Registry[]): void {
    const leading = (): boolean => this.#leading;
    const figures = (): readonly EnvironmentFigures[] => this.#figures?.() ?? [];
    const gauge = (name: string, help: string, value: (f: EnvironmentFigures, now: number) => number | undefined): void => {
      new Gauge({
        name,
        help,
        labelNames: ENVIRONMENT_LABELS,
        registers,
        collect() {
          this.reset();
          if (!leading()) return;
          const now = Date.now();
          for (const f of figures()) {
            const v = value(f, now);
            if (v !== undefined) this.set({ environment_namespace: f.namespace, environment: f.name }, v);
          }
        },
      });
    };
    gauge('agentenv_environment_queue_depth', "Work items waiting in the environment's queue (the API's queue stats, refreshed by each environment pass).", (f) => f.queue?.depth);
    gauge('agentenv_environment_queue_pending', 'Work items delivered to a worker and not yet acknowledged (queue stats).', (f) => f.queue?.pending);
    gauge('agentenv_environment_queue_oldest_age_seconds', 'Age of the oldest queued work item at scrape time (now − the queue stats\' oldest_queued_at); 0 when nothing is queued.', (f, now) => (f.queue ? (f.queue.oldestQueuedAt === undefined ? 0 : Math.max(0, (now - f.queue.oldestQueuedAt) / 1000)) : undefined));
    gauge('agentenv_environment_workers_polling', 'Workers polling the queue, across every cluster and process serving it (queue stats).', (f) => f.queue?.workersPolling);
    gauge('agentenv_environment_sessions_active', 'Sessions of the environment recorded in this cluster and not finished (what counts against maxSessions).', (f) => f.activeSessions);
    gauge('agentenv_environment_dispatching', 'Whether the operator polls the environment for work (1) or dispatch is paused (0; the Dispatching condition says why).', (f) => (f.dispatching === undefined ? undefined : f.dispatching ? 1 : 0));
  }

  /** Where the per-environment figures come from (the sessions feature's caches). */
  environments(source: () => readonly EnvironmentFigures[]): void {
    this.#figures = source;
  }

  /** A session's lease became active: enqueue → lease active, by how its Pod started. */
  sessionStarted(env: { readonly namespace: string; readonly name: string }, start: SessionStart, latencyMs: number): void {
    this.#sessionStarts.observe({ environment_namespace: env.namespace, environment: env.name, start }, latencyMs / 1000);
    const key = `${env.namespace}/${env.name}`;
    const starts = this.#startSeries.get(key) ?? new Set();
    starts.add(start);
    this.#startSeries.set(key, starts);
  }

  /** An environment no longer served here loses its latency series (bounded cardinality). */
  #forgetGoneStarts(): void {
    if (this.#startSeries.size === 0 || !this.#figures) return;
    const live = new Set(this.#figures().map((f) => `${f.namespace}/${f.name}`));
    for (const [key, starts] of this.#startSeries) {
      if (live.has(key)) continue;
      const [namespace = '', name = ''] = key.split('/');
      for (const start of starts) this.#sessionStarts.remove({ environment_namespace: namespace, environment: name, start });
      this.#startSeries.delete(key);
    }
  }

  reconciled(controller: string, result: 'success' | 'error' | 'requeue', durationMs: number): void {
    this.#reconciles.inc({ controller, result });
    this.#reconcileDuration.observe({ controller }, durationMs / 1000);
  }
  queueDepth(controller: string, depth: number): void {
    this.#queueDepth.set({ controller }, depth);
  }
  apiCall(endpoint: string, outcome: number | string, durationMs: number): void {
    this.#apiRequests.inc({ endpoint, outcome: String(outcome) });
    this.#apiDuration.observe({ endpoint }, durationMs / 1000);
  }
  kubeRequest(verb: string, resource: string, code: number | string): void {
    this.#kubeRequests.inc({ verb, resource, code: String(code) });
  }
  sessionsByPhase(counts: Readonly<Record<string, number>>): void {
    this.#sessions.reset();
    for (const [phase, n] of Object.entries(counts)) this.#sessions.set({ phase }, n);
  }
  workspaces(counts: Readonly<Record<string, number>>): void {
    this.#workspaces.reset();
    for (const [phase, n] of Object.entries(counts)) this.#workspaces.set({ phase }, n);
  }
  dispatched(latencyMs: number): void {
    this.#dispatchLatency.observe(latencyMs / 1000);
  }
  claimed(latencyMs: number): void {
    this.#claimLatency.observe(latencyMs / 1000);
  }
  polled(outcome: 'work' | 'empty' | 'error' | 'fatal', code = ''): void {
    this.#polls.inc({ outcome, code });
  }
  /** Dispatch: work seen by a poll → AgentSession recorded. */
  recorded(latencyMs: number): void {
    this.#recordLatency.observe(latencyMs / 1000);
  }
  acknowledged(): void {
    this.#acknowledged.inc();
  }
  podCreated(latencyMs: number): void {
    this.#podCreatedLatency.observe(latencyMs / 1000);
  }
  settled(action: string): void {
    this.#settled.inc({ action });
  }
  stopped(reason: string): void {
    this.#stops.inc({ reason });
  }
  leader(leading: boolean): void {
    this.#leading = leading;
    this.#leader.set(leading ? 1 : 0);
  }
  heartbeats(outcome: string, n: number): void {
    if (n > 0) this.#heartbeats.inc({ outcome }, n);
  }
}
