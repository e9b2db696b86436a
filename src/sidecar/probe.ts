/**
 * The sidecar's probe endpoints:
 * - `GET /started` → 200 once the lease is claimed, 503 before. It is the native sidecar's
 *   startup probe, so the kubelet starts the main container only after the claim.
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
const REASONS: Readonly<Record<number, string>> = { 200: 'OK', 400: 'Bad Request', 404: 'Not Found', 503: 'Service Unavailable' };

export interface ProbeServer {
  readonly port: number;
  close(): Promise<void>;
}

/** What the probes report, read at each request. */
export interface ProbeState {
  /** The lease has been claimed (the main container may start). */
  readonly started: boolean;
  /** The lease is held and no stop is due. */
  readonly ready: boolean;
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

export async function startProbeServer(address: string, port: number, state: () => ProbeState): Promise<ProbeServer> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setTimeout(10_000, () => socket.destroy());
    let head = '';
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n') && head.length < MAX_HEAD_BYTES) return;
      socket.removeAllListeners('data');
      const status = head.length >= MAX_HEAD_BYTES && !head.includes('\r\n\r\n') ? 400 : probeStatus(head.slice(0, head.indexOf('\r\n')), state());
      const body = status === 200 ? 'ok\n' : status === 503 ? 'not now\n' : `${REASONS[status]!.toLowerCase()}\n`;
      const isHead = head.startsWith('HEAD ');
      socket.end(`HTTP/1.1 ${status} ${REASONS[status]}\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${isHead ? '' : body}`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
