/**
 * The chaos run's stand-in for the chart's assignment Service: one loopback port that warm Pods
 * reach (the operator's `--assignment-url`), forwarding each TCP connection to one of the two
 * replicas' assignment endpoints (each replica listens on a port of its own, as two Pods behind one
 * Service would). TLS passes through untouched: the replicas serve the certificate, the warm
 * sidecars check it against the CA. Round robin, and a backend that refuses the connection (a
 * replica SIGKILLed, not yet started again) is skipped, as the Service's endpoints drop a Pod that
 * is not ready.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface AssignmentService {
  readonly port: number;
  /** Connections forwarded so far, and those no replica accepted. */
  readonly counts: { forwarded: number; refused: number };
  close(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Forward connections on a free loopback port to `backends` (ports on 127.0.0.1). */
export async function startAssignmentService(backends: readonly number[]): Promise<AssignmentService> {
  const counts = { forwarded: 0, refused: 0 };
  const sockets = new Set<Socket>();
  let next = 0;
  const track = (s: Socket): void => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  const forward = (client: Socket, tries: number): void => {
    const port = backends[next++ % backends.length]!;
    const upstream = connect({ host: '127.0.0.1', port });
    track(upstream);
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      counts.forwarded++;
      client.once('error', () => upstream.destroy());
      client.once('close', () => upstream.destroy());
      client.pipe(upstream).pipe(client);
      client.resume();
    });
    upstream.once('error', () => {
      if (!connected && tries + 1 < backends.length) return forward(client, tries + 1);
      if (!connected) counts.refused++;
      client.destroy();
    });
  };
  const server: Server = createServer({ pauseOnConnect: true }, (client) => {
    track(client);
    forward(client, 0);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    counts,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
