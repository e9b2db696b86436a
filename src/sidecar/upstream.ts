/**
 * The sidecar's connections to the real API: Node's `http`/`https` with keep-alive Agents, TLS
 * verified by Node's defaults (the system CAs plus `NODE_EXTRA_CA_CERTS`), and the egress proxy
 * (`HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`) honoured through the Agents' `proxyEnv` option, given
 * the values the entrypoint parsed (no module reads the environment itself).
 *
 * Two pools, on purpose:
 * - `lease`: the sidecar's own heartbeat and stop calls. At most two sockets (a beat and a stop can
 *   overlap), never shared with proxied traffic, so a flood of main-container requests or a dozen
 *   open event streams can never make a beat wait for a free socket.
 * - `proxy`: the main container's forwarded calls, bounded by {@link MAX_PROXY_SOCKETS}.
 */
import type { Agent as HttpAgent, ClientRequest, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { EgressProxy } from './config.ts';

const http = process.getBuiltinModule('node:http');
const https = process.getBuiltinModule('node:https');

/** Sockets the proxied traffic may hold open to the API at once (streams included). */
export const MAX_PROXY_SOCKETS = 24;
/** Idle keep-alive sockets are closed after this long (below common load-balancer idle timeouts). */
const FREE_SOCKET_TIMEOUT_MS = 30_000;

export interface Upstream {
  readonly baseUrl: URL;
  /** The base URL's own path without its trailing slash ('' for the root). */
  readonly prefix: string;
  /** Send one request through the given pool; the caller writes the body and ends it. */
  request(pool: 'lease' | 'proxy', method: string, path: string, headers: OutgoingHttpHeaders, onResponse: (res: IncomingMessage) => void): ClientRequest;
  close(): void;
}

export function createUpstream(baseUrl: URL, egressProxy: EgressProxy): Upstream {
  const secure = baseUrl.protocol === 'https:';
  const Agent = secure ? https.Agent : http.Agent;
  const proxyEnv = Object.keys(egressProxy).length > 0 ? { proxyEnv: { ...egressProxy } } : {};
  const agent = (maxSockets: number): HttpAgent =>
    new Agent({ keepAlive: true, maxSockets, maxFreeSockets: Math.min(maxSockets, 4), timeout: FREE_SOCKET_TIMEOUT_MS, scheduling: 'lifo', ...proxyEnv });
  const pools = { lease: agent(2), proxy: agent(MAX_PROXY_SOCKETS) };
  const send = secure ? https.request : http.request;
  return {
    baseUrl,
    prefix: baseUrl.pathname.replace(/\/+$/, ''),
    request: (pool, method, path, headers, onResponse) =>
      send({ protocol: baseUrl.protocol, hostname: baseUrl.hostname.replace(/^\[|\]$/g, ''), port: baseUrl.port || undefined, method, path, headers, agent: pools[pool] }, onResponse),
    close: () => {
      pools.lease.destroy();
      pools.proxy.destroy();
    },
  };
}
