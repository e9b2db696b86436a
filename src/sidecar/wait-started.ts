/**
 * `node sidecar.cjs wait-started <seconds>`: the sidecar container's startup probe, run by the
 * kubelet as an `exec` probe inside the sidecar container. It exits 0 the moment the lease is
 * claimed, and 1 once `<seconds>` have passed without a claim (the probe fails, as a 503 did).
 *
 * Why it waits instead of asking once: the kubelet starts the main container on the sidecar's first
 * startup-probe success, and a probe that asks once is answered again only a period (1 s, the API's
 * minimum) later. Asked as soon as the container starts, the sidecar's Node is not even listening
 * yet, so the gate cost a whole period although the claim takes about 0.1 s. This waiter retries
 * while the probe server is not listening, then long-polls `/started?wait_ms=` (probe.ts), which
 * the sidecar answers the moment its first heartbeat succeeds.
 *
 * It reads the probe server's address and port from the sidecar's own environment (the exec probe
 * runs with the container's environment).
 */
import type { Socket } from 'node:net';
import { DEFAULT_PROBE_ADDRESS, DEFAULT_PROBE_PORT, SIDECAR_ENV as E, STARTED_PATH } from '../contract/sidecar.ts';

const { connect } = process.getBuiltinModule('node:net');

/** Between two attempts that got no 200 (the probe server not listening yet, or a 503). */
export const RETRY_AFTER_MS = 20;
/** The longest `<seconds>` (the probe's `timeoutSeconds` is above it). */
export const MAX_WAIT_SECONDS = 3_600;

/** One request to `/started`: its status, or no answer (not listening yet, reset, timed out). */
export type Attempt = { readonly status: number } | { readonly unreachable: true };
export type Step = { readonly exit: 0 | 1 } | { readonly retryAfterMs: number };

/**
 * What follows an attempt, with `remainingMs` left of the wait:
 * - 200: the lease is claimed → exit 0;
 * - 503 (the server's hold ended without a claim, or it holds too many requests to hold this one)
 *   → ask again shortly while time remains (shortly, not at once: never a tight loop);
 * - no answer → the sidecar is starting (or restarting): try again shortly while time remains;
 * - any other status (400, 404): the server does not know the probe → exit 1, retrying cannot help;
 * - no time left → exit 1.
 */
export function nextStep(attempt: Attempt, remainingMs: number): Step {
  if ('status' in attempt) {
    if (attempt.status === 200) return { exit: 0 };
    if (attempt.status !== 503) return { exit: 1 };
  }
  if (remainingMs <= 0) return { exit: 1 };
  return { retryAfterMs: Math.min(RETRY_AFTER_MS, remainingMs) };
}

export interface ProbeEndpoint {
  readonly host: string;
  readonly port: number;
}

/** Where to reach the probe server: its listening address (the Pod IP), a wildcard as loopback. */
export function probeEndpoint(env: Readonly<Record<string, string | undefined>>): ProbeEndpoint | string {
  const address = env[E.probeAddress]?.trim() || DEFAULT_PROBE_ADDRESS;
  const rawPort = env[E.probePort]?.trim() || String(DEFAULT_PROBE_PORT);
  const port = Number(rawPort);
  if (!/^\d{1,5}$/.test(rawPort) || port < 1 || port > 65_535) return `${E.probePort} must be a port from 1 to 65535 (got ${JSON.stringify(rawPort)})`;
  const host = address === '0.0.0.0' ? '127.0.0.1' : address === '::' ? '::1' : address;
  return { host, port };
}

/** Waits until the lease is claimed or `waitMs` passes; resolves with the exit code. */
export async function waitStarted(endpoint: ProbeEndpoint, waitMs: number, attempt = askStarted): Promise<0 | 1> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const remaining = deadline - Date.now();
    const step = nextStep(remaining > 0 ? await attempt(endpoint, remaining) : { unreachable: true }, deadline - Date.now());
    if ('exit' in step) return step.exit;
    if (step.retryAfterMs > 0) await new Promise((resolve) => setTimeout(resolve, step.retryAfterMs));
  }
}

/** One `GET /started?wait_ms=` on its own connection; no answer within the wait (plus a second) counts as unreachable. */
export function askStarted(endpoint: ProbeEndpoint, waitMs: number): Promise<Attempt> {
  return new Promise<Attempt>((resolve) => {
    let head = '';
    const socket: Socket = connect({ host: endpoint.host, port: endpoint.port });
    const done = (a: Attempt): void => {
      socket.destroy();
      resolve(a);
    };
    socket.setTimeout(waitMs + 1_000, () => done({ unreachable: true }));
    socket.once('error', () => done({ unreachable: true }));
    socket.once('close', () => done(statusOf(head) ?? { unreachable: true }));
    socket.once('connect', () => socket.write(`GET ${STARTED_PATH}?wait_ms=${Math.ceil(waitMs)} HTTP/1.1\r\nhost: probe\r\nconnection: close\r\n\r\n`));
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const status = statusOf(head);
      if (status) done(status);
    });
  });
}

/** The status of a response whose first line has arrived. */
function statusOf(head: string): Attempt | undefined {
  const end = head.indexOf('\r\n');
  if (end < 0) return undefined;
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head.slice(0, end));
  return m ? { status: Number(m[1]) } : { status: 0 };
}

/** The `wait-started` mode's entry: `args` is `[<seconds>]`; exits 0 (claimed), 1 (not in time), 2 (bad use). */
export async function runWaitStarted(args: readonly string[]): Promise<number> {
  const [raw, ...rest] = args;
  const seconds = Number(raw);
  if (rest.length > 0 || raw === undefined || !/^\d+$/.test(raw) || seconds < 1 || seconds > MAX_WAIT_SECONDS) {
    process.stderr.write(`usage: wait-started <seconds> (1 to ${MAX_WAIT_SECONDS}): wait for the sidecar's lease claim\n`);
    return 2;
  }
  const endpoint = probeEndpoint(process.env);
  if (typeof endpoint === 'string') {
    process.stderr.write(`wait-started: ${endpoint}\n`);
    return 2;
  }
  const code = await waitStarted(endpoint, seconds * 1_000);
  // The kubelet shows an exec probe's output in the failure event.
  if (code !== 0) process.stderr.write(`the sidecar has not claimed the lease (waited ${seconds}s)\n`);
  return code;
}
