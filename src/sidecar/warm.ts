/**
 * A warm Pod's sidecar until its Pod is bound (docs/sessions.md, "Warm pool"):
 * 1. the probe server answers `/ready` 200 (waiting and healthy: the pool counts the Pod ready) and
 *    `/healthz`;
 * 2. the proxy port holds the runner's `GET /agentenv/v1/assignment` and answers everything else
 *    503 — there is no session to serve and no credential here yet;
 * 3. the sidecar long-polls the operator (`assignment.ts`) until it names the bound work item;
 * 4. the proxy closes, the held asks are answered 503 ("ask again": the runner then asks the real
 *    proxy, which holds it until the lease is claimed), and the caller starts the sidecar proper
 *    on the same ports with the assigned ids and credential. The probe server stays open and is
 *    handed over (`ProbeServer.use`): were it closed and opened again, a readiness probe in the
 *    gap would fail, and a warm Pod's sidecar has long `started` (it has no startup probe), so
 *    the operator would read that `ready: false` as a stop due since the containers started —
 *    minutes ago for a Pod that waited — and delete the Pod at once (rule 6 of the session
 *    controller): a bound session killed before its first tool call.
 * SIGTERM while waiting (the pool shrank, the environment went): undefined, nothing to stop.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RUNNER_ASSIGNMENT_PATH } from '../contract/sidecar.ts';
import { waitForAssignment, type Assignment } from './assignment.ts';
import type { SidecarConfig } from './config.ts';
import type { SidecarLogger } from './log.ts';
import { startProbeServer, type ProbeServer } from './probe.ts';

const http = process.getBuiltinModule('node:http');

/** Held runner asks at most (the proxy port is the sandbox's; more are answered at once). */
const MAX_HELD = 8;
const HOLD_MS = 30_000;

/** What a bound warm sidecar hands the sidecar proper: its item and its (still open) probe server. */
export interface Binding {
  readonly assignment: Assignment;
  readonly probe: ProbeServer;
}

export async function awaitBinding(config: SidecarConfig, log: SidecarLogger, signal: AbortSignal): Promise<Binding | undefined> {
  const probe = await startProbeServer(config.probeAddress, config.probePort, () => ({ started: true, ready: true }));
  const held = new Set<ServerResponse>();
  const retry = (res: ServerResponse, message: string): void => {
    if (res.writableEnded) return;
    res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0', connection: 'close' });
    res.end(JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message } }));
  };
  const proxy = http.createServer({ requestTimeout: HOLD_MS + 5_000 }, (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'GET' || req.url !== RUNNER_ASSIGNMENT_PATH || held.size >= MAX_HELD) return retry(res, 'agentenv sidecar: this Pod is not bound to a work item yet');
    held.add(res);
    const timer = setTimeout(() => retry(res, 'agentenv sidecar: not bound yet; ask again'), HOLD_MS);
    res.on('close', () => {
      clearTimeout(timer);
      held.delete(res);
    });
  });
  await new Promise<void>((resolve, reject) => {
    proxy.once('error', reject);
    proxy.listen(config.proxyPort, config.proxyAddress, () => resolve());
  });
  log.info('warm: waiting for an assignment', { probe_port: probe.port, proxy_address: config.proxyAddress });
  let assignment: Assignment | undefined;
  try {
    assignment = await waitForAssignment(config.assignment!, log, signal);
  } finally {
    for (const res of held) retry(res, 'agentenv sidecar: bound; ask again');
    proxy.closeAllConnections();
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
    if (!assignment) await probe.close();
  }
  return assignment ? { assignment, probe } : undefined;
}
