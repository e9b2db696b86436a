import { describe, expect, it } from 'vitest';
import { MAX_WAIT_MS, startedWaitMs, startProbeServer } from './probe.ts';
import { askStarted, nextStep, probeEndpoint, RETRY_AFTER_MS, waitStarted, type Attempt } from './wait-started.ts';

describe('wait-started: what follows an attempt', () => {
  it.each<[string, Attempt, number, ReturnType<typeof nextStep>]>([
    ['a 200 means the lease is claimed: exit 0', { status: 200 }, 5_000, { exit: 0 }],
    ['a 200 counts even when the wait has run out', { status: 200 }, -1, { exit: 0 }],
    ['a 503 (the hold ended unclaimed, or the server holds too many) asks again shortly, never in a tight loop', { status: 503 }, 5_000, { retryAfterMs: RETRY_AFTER_MS }],
    ['a 503 with no time left fails the probe', { status: 503 }, 0, { exit: 1 }],
    ['no answer (the sidecar is not listening yet) tries again shortly', { unreachable: true }, 5_000, { retryAfterMs: RETRY_AFTER_MS }],
    ['no answer near the end waits no longer than what is left', { unreachable: true }, 5, { retryAfterMs: 5 }],
    ['no answer with no time left fails the probe', { unreachable: true }, 0, { exit: 1 }],
    ['a 404 (a server without the probe) fails at once: retrying cannot help', { status: 404 }, 5_000, { exit: 1 }],
    ['a malformed answer fails at once', { status: 0 }, 5_000, { exit: 1 }],
  ])('%s', (_rule, attempt, remaining, step) => {
    expect(nextStep(attempt, remaining)).toEqual(step);
  });
});

describe('wait-started: where the probe server is', () => {
  it.each<[string, Record<string, string>, ReturnType<typeof probeEndpoint>]>([
    ['the Pod IP and port from the sidecar\'s environment', { AGENTENV_PROBE_ADDRESS: '10.1.2.3', AGENTENV_PROBE_PORT: '8095' }, { host: '10.1.2.3', port: 8095 }],
    ['the defaults: all addresses, reached on loopback, port 8095', {}, { host: '127.0.0.1', port: 8095 }],
    ['an IPv6 wildcard is reached on the IPv6 loopback', { AGENTENV_PROBE_ADDRESS: '::' }, { host: '::1', port: 8095 }],
    ['a port that is no port is a clear error', { AGENTENV_PROBE_PORT: 'http' }, 'AGENTENV_PROBE_PORT must be a port from 1 to 65535 (got "http")'],
    ['port 0 cannot be connected to', { AGENTENV_PROBE_PORT: '0' }, 'AGENTENV_PROBE_PORT must be a port from 1 to 65535 (got "0")'],
  ])('%s', (_rule, env, endpoint) => {
    expect(probeEndpoint(env)).toEqual(endpoint);
  });
});

describe('probe server: /started?wait_ms= holds the request until the claim', () => {
  const unclaimed = { started: false, ready: false };
  it.each<[string, string, { started: boolean; ready: boolean }, number]>([
    ['a /started before the claim is held for its wait_ms', 'GET /started?wait_ms=2500 HTTP/1.1', unclaimed, 2_500],
    ['the hold is capped', 'GET /started?wait_ms=999999999 HTTP/1.1', unclaimed, MAX_WAIT_MS],
    ['after the claim nothing is held', 'GET /started?wait_ms=2500 HTTP/1.1', { started: true, ready: true }, 0],
    ['no wait_ms, no hold (a plain probe)', 'GET /started HTTP/1.1', unclaimed, 0],
    ['a malformed wait_ms is not held', 'GET /started?wait_ms=-5 HTTP/1.1', unclaimed, 0],
    ['only /started is held', 'GET /ready?wait_ms=2500 HTTP/1.1', unclaimed, 0],
    ['only a GET is held', 'HEAD /started?wait_ms=2500 HTTP/1.1', unclaimed, 0],
  ])('%s', (_rule, line, state, ms) => {
    expect(startedWaitMs(line, state)).toBe(ms);
  });
});

describe('wait-started against the probe server', () => {
  it('retries while nothing listens, then long-polls: exits 0 when the claim is announced', async () => {
    const attempts: Attempt[] = [{ unreachable: true }, { unreachable: true }, { status: 503 }, { status: 200 }];
    let asked = 0;
    const code = await waitStarted({ host: '127.0.0.1', port: 1 }, 5_000, async () => attempts[asked++]!);
    expect([code, asked]).toEqual([0, 4]);
  });

  it('a claim during the hold answers the waiting request at once (exit 0), not at the end of its wait', async () => {
    let started = false;
    const server = await startProbeServer('127.0.0.1', 0, () => ({ started, ready: started }));
    try {
      let requests = 0;
      const counted: typeof askStarted = (endpoint, ms) => (requests++, askStarted(endpoint, ms));
      const waiting = waitStarted({ host: '127.0.0.1', port: server.port }, 30_000, counted);
      await new Promise((resolve) => setTimeout(resolve, 200));
      started = true;
      server.changed();
      // Without the answer, the test's own 5 s timeout fails long before the 30 s wait.
      expect(await waiting).toBe(0);
      expect(requests).toBe(1); // held, not polled
    } finally {
      await server.close();
    }
  });

  it('no claim within the wait: exit 1 (the probe fails as a 503 did)', async () => {
    const server = await startProbeServer('127.0.0.1', 0, () => ({ started: false, ready: false }));
    try {
      expect(await waitStarted({ host: '127.0.0.1', port: server.port }, 300)).toBe(1);
    } finally {
      await server.close();
    }
  });
});
