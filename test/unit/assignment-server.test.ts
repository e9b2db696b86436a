/**
 * The assignment endpoint's holds (src/sessions/assign/server.ts, flow step 3), over real HTTPS on loopback. The
 * TokenReview is answered by a stand-in for the apiserver (one method of KubeRest) that vouches
 * for one Pod; there is no AgentSession, so every ask is held ("wait").
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import type { ClientRequest } from 'node:http';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ASSIGNMENT_AUDIENCE } from '../../src/contract/sidecar.ts';
import type { KubeRest } from '../../src/k8s/rest.ts';
import { writeServingCertificate } from '../../src/localcluster/serving-cert.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { MAX_WAIT_MS, startAssignmentServer, type AssignmentServer } from '../../src/sessions/assign/server.ts';

const tlsDir = writeServingCertificate(mkdtempSync(join(tmpdir(), 'agentenv-assign-test-')));
const read = (f: string): string => readFileSync(join(tlsDir, f), 'utf8');

/** The apiserver's TokenReview, as it answers for a bound token of Pod `warm-0` in namespace `ns`. */
const apiserver = {
  create: async () => ({
    status: {
      authenticated: true,
      audiences: [ASSIGNMENT_AUDIENCE],
      user: { username: 'system:serviceaccount:ns:default', extra: { 'authentication.kubernetes.io/pod-name': ['warm-0'], 'authentication.kubernetes.io/pod-uid': ['uid-0'] } },
    },
  }),
} as unknown as KubeRest;

let server: AssignmentServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(): Promise<AssignmentServer> {
  server = await startAssignmentServer({ rest: apiserver, log: silentLogger, tls: { cert: read('tls.crt'), key: read('tls.key') }, address: '127.0.0.1', port: 0, sessions: [], environment: () => undefined });
  return server;
}

/** An ask held as long as the endpoint allows; the response (if any) is ignored. */
function ask(port: number): ClientRequest {
  const req = request({ host: '127.0.0.1', port, path: `/v1/assignment?wait_ms=${MAX_WAIT_MS}`, ca: read('ca.crt'), headers: { authorization: 'Bearer token-of-warm-0' } });
  req.on('error', () => undefined);
  req.end();
  return req;
}

describe('the assignment endpoint holds an ask only while someone waits for it', () => {
  it('an ask whose asker hangs up (a restarted sidecar) is no longer held', async () => {
    const s = await start();
    const req = ask(s.port);
    await vi.waitFor(() => expect(s.held()).toBe(1), { timeout: 5_000 });
    req.destroy();
    await vi.waitFor(() => expect(s.held()).toBe(0), { timeout: 5_000 });
  });

  it('closing the endpoint (the replica stops) ends every hold and arms no new one, so no timer outlives it', async () => {
    const s = await start();
    ask(s.port);
    ask(s.port);
    await vi.waitFor(() => expect(s.held()).toBe(2), { timeout: 5_000 });
    await s.close();
    server = undefined;
    await new Promise((resolve) => setImmediate(resolve));
    expect(s.held()).toBe(0);
  });
});
