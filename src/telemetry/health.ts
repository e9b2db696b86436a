/**
 * The operator's HTTP endpoints: `/healthz` (the process reaches the apiserver and has not lost
 * the leadership it held — see {@link Reachability} and `LeaderElector.health`),
 * `/readyz` (caches synced; a standby replica waiting for leadership is ready too) and `/metrics`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface HealthChecks {
  /** Liveness: return a reason string when unhealthy. */
  readonly live: () => string | undefined;
  /** Readiness: return a reason string when not ready. */
  readonly ready: () => string | undefined;
}

/**
 * Whether the apiserver answers, judged from the requests the process makes anyway (leader
 * election every few seconds, watches, reconciles), so it costs no traffic of its own. Any HTTP
 * status is an answer (a 5xx included: the server is there); a connection error is not.
 * Unreachable means: a failure since the last answer, and no answer for `staleAfterMs`.
 */
export class Reachability {
  readonly #staleAfterMs: number;
  readonly #now: () => number;
  #lastAnswer: number;
  #lastFailure = -Infinity;

  /** `staleAfterMs` default 60 s; `now` default `Date.now`. */
  constructor(options: { staleAfterMs?: number; now?: () => number } = {}) {
    this.#staleAfterMs = options.staleAfterMs ?? 60_000;
    this.#now = options.now ?? Date.now;
    this.#lastAnswer = this.#now();
  }

  /** One request's outcome: an HTTP status (answered) or an error code (not). */
  observe(code: number | string): void {
    if (typeof code === 'number') this.#lastAnswer = this.#now();
    else this.#lastFailure = this.#now();
  }

  /** Why the apiserver counts as unreachable, or undefined. */
  problem(): string | undefined {
    const silentMs = this.#now() - this.#lastAnswer;
    if (this.#lastFailure > this.#lastAnswer && silentMs > this.#staleAfterMs) return `the Kubernetes apiserver has not answered for ${Math.round(silentMs / 1000)} s`;
    return undefined;
  }
}

/** The first problem of several checks, or undefined when all pass. */
export const firstProblem = (...checks: Array<() => string | undefined>): string | undefined => {
  for (const check of checks) {
    const problem = check();
    if (problem) return problem;
  }
  return undefined;
};

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Serve health and metrics on `host:port` (port 0 picks a free port). */
export async function serveHealth(options: { host: string; port: number; checks: HealthChecks; registry?: Registry }): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const answer = (problem: string | undefined): void => {
      res.statusCode = problem ? 503 : 200;
      res.setHeader('content-type', 'text/plain; charset=utf-8');
      res.end(problem ? `not ok: ${problem}\n` : 'ok\n');
    };
    if (path === '/healthz' || path === '/livez') return answer(options.checks.live());
    if (path === '/readyz') return answer(options.checks.ready());
    if (path === '/metrics' && options.registry) {
      options.registry
        .metrics()
        .then((text) => {
          res.setHeader('content-type', options.registry!.contentType);
          res.end(text);
        })
        .catch(() => {
          res.statusCode = 500;
          res.end();
        });
      return;
    }
    res.statusCode = 404;
    res.end('not found\n');
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
