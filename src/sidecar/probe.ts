/**
 * The sidecar's probe endpoints:
 * - `GET /started` → 200 once the lease is claimed, 503 before. With `?wait_ms=N` (at most
 *   {@link MAX_WAIT_MS}) a request made before the claim is held until the claim (200) or for N ms
 *   (503): the native sidecar's startup probe (`wait-started.ts`, an exec probe) long-polls it, so
 *   the kubelet starts the main container the moment the lease is claimed, not a probe period later.
 * - `GET /ready` → 200 while the sidecar holds the lease with no stop pending, 503 from the moment
 *   a stop is due (the contract's `READY_PATH`). The operator reads the sidecar's `ready: false` as
 *   "the main container should end now" and deletes the Pod if it has not ended within the grace:
 *   no signal crosses containers without a shared process namespace.
 * - `GET /healthz` → 200 while the sidecar runs.
 *
 * Served over `node:net` with a one-line HTTP/1.1 responder, apart from the proxy's `node:http`
 * server: probes are tiny GETs answered with `Connection: close`, and the kubelet's probes must
 * never be refused by the proxy's connection bound while the main container floods it.
 */
import type { AddressInfo, Socket } from 'node:net';
import { READY_PATH, STARTED_PATH } from '../contract/sidecar.ts';

const { createServer } = process.getBuiltinModule('node:net');

/** Requests whose head has not ended after this many bytes are refused. */
const MAX_HEAD_BYTES = 8 * 1024;
/** The longest `/started?wait_ms=` hold; a longer wait is cut to it. */
export const MAX_WAIT_MS = 60_000;
/**
 * Held `/started` requests at most: the probe port is reachable from the main container and the
 * cluster, so beyond this a request is answered at once instead of holding one more socket.
 */
const MAX_WAITING = 16;
const IDLE_TIMEOUT_MS = 10_000;
const REASONS: Readonly<Record<number, string>> = { 200: 'OK', 400: 'Bad Request', 404: 'Not Found', 503: 'Service Unavailable' };

export interface ProbeServer {
  readonly port: number;
  /** The state changed (the lease was claimed): answer the held `/started` requests that may pass now. */
  changed(): void;
  /**
   * Report from `state` from now on: a warm sidecar hands its probe server to the sidecar proper
   * instead of closing it, so the kubelet's readiness probe is never refused across the switch (a
   * refused probe is `ready: false`, which the operator reads as "end the main container").
   */
  use(state: () => ProbeState): void;
  close(): Promise<void>;
}

/** What the probes report, read at each request. */
export interface ProbeState {
  /** The lease has been claimed (the main container may start). */
  readonly started: boolean;
  /** The lease is held and no stop is due. */
  readonly ready: boolean;
}

/**
 * What the sidecar's probes report from its lease. Started: the lease was claimed. Ready: a cold
 * sidecar while it holds the lease with no stop due (its startup probe covers the claim); a warm
 * one — which has no startup probe, so the kubelet calls it started from its first second — while
 * no stop is due, its claim included: a `ready: false` of a started sidecar is read by the operator
 * as "end the main container" (rule 6 of the session controller).
 */
export function leaseProbeState(lease: { readonly started: boolean; readonly claimed: boolean; readonly ended: boolean }, warm: boolean): ProbeState {
  return { started: lease.started, ready: warm ? !lease.ended : lease.started && lease.claimed && !lease.ended };
}

/** The status a probe request line gets (e.g. `GET /started HTTP/1.1`). */
export function probeStatus(requestLine: string, state: ProbeState): number {
  const m = /^(GET|HEAD) (\S+) HTTP\/1\.[01]$/.exec(requestLine);
  if (!m) return 400;
  const path = m[2]!.split('?')[0];
  if (path === '/healthz') return 200;
  if (path === STARTED_PATH) return state.started ? 200 : 503;
  if (path === READY_PATH) return state.ready ? 200 : 503;
  return 404;
}

/**
 * How long a request may be held before it is answered: the `wait_ms` of a `/started` that would
 * get 503 now, capped at {@link MAX_WAIT_MS}; 0 for every other request (and a malformed `wait_ms`).
 */
export function startedWaitMs(requestLine: string, state: ProbeState): number {
  const m = /^GET (\S+) HTTP\/1\.[01]$/.exec(requestLine);
  if (!m || state.started) return 0;
  const [path, query = ''] = m[1]!.split('?', 2);
  if (path !== STARTED_PATH) return 0;
  const raw = new URLSearchParams(query).get('wait_ms');
  if (raw === null || !/^\d{1,9}$/.test(raw)) return 0;
  return Math.min(Number(raw), MAX_WAIT_MS);
}

export async function startProbeServer(address: string, port: number, initial: () => ProbeState): Promise<ProbeServer> {
  let state = initial;
  const sockets = new Set<Socket>();
  /** Held `/started` requests: each answers itself when the state allows or its wait ends. */
  const waiting = new Set<() => void>();
  const answer = (socket: Socket, head: string, status: number): void => {
    const body = status === 200 ? 'ok\n' : status === 503 ? 'not now\n' : `${REASONS[status]!.toLowerCase()}\n`;
    const isHead = head.startsWith('HEAD ');
    socket.end(`HTTP/1.1 ${status} ${REASONS[status]}\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${isHead ? '' : body}`);
  };
  const hold = (socket: Socket, head: string, line: string, waitMs: number): void => {
    const release = (): void => {
      clearTimeout(timer);
      waiting.delete(check);
      answer(socket, head, probeStatus(line, state()));
    };
    const check = (): void => {
      if (state().started) release();
    };
    const timer = setTimeout(release, waitMs);
    waiting.add(check);
    socket.setTimeout(waitMs + IDLE_TIMEOUT_MS);
    socket.once('close', () => {
      clearTimeout(timer);
      waiting.delete(check);
    });
  };
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy());
    let head = '';
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n') && head.length < MAX_HEAD_BYTES) return;
      socket.removeAllListeners('data');
      if (head.length >= MAX_HEAD_BYTES && !head.includes('\r\n\r\n')) return answer(socket, head, 400);
      const line = head.slice(0, head.indexOf('\r\n'));
      const waitMs = waiting.size < MAX_WAITING ? startedWaitMs(line, state()) : 0;
      if (waitMs > 0) hold(socket, head, line, waitMs);
      else answer(socket, head, probeStatus(line, state()));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    changed: () => {
      for (const check of [...waiting]) check();
    },
    use: (next) => {
      state = next;
      for (const check of [...waiting]) check();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
