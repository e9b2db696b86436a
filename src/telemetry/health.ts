/**
 * The operator's HTTP endpoints: `/healthz` (the process is alive and its loops are not wedged),
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
