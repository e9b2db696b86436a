/**
 * The operator behind an egress proxy (HTTP_PROXY/HTTPS_PROXY/NO_PROXY, as the chart's `proxy.*`
 * sets them): the operator's own Environments API calls go through the proxy,
 * NO_PROXY hosts are reached directly, and the Kubernetes client never uses it.
 */
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createEnvironment, deleteAndWait, environmentFixture, waitForReady, type EnvironmentFixture } from '../support/environments.ts';

/**
 * A forward proxy recording the target host of each request: absolute-form requests (plain-HTTP
 * targets, as undici sends them) are forwarded, CONNECT requests (HTTPS targets) tunnelled.
 */
async function recordingProxy(): Promise<{ url: string; targets: string[]; server: Server }> {
  const targets: string[] = [];
  const server = createServer((req, res) => {
    const target = new URL(req.url ?? '/');
    targets.push(target.host);
    const out = request(target, { method: req.method, headers: req.headers }, (upstream) => {
      res.writeHead(upstream.statusCode ?? 502, upstream.headers);
      upstream.pipe(res);
    });
    out.on('error', () => res.writeHead(502).end());
    req.pipe(out);
  });
  server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    targets.push(req.url ?? '');
    const [host, port] = (req.url ?? '').split(':');
    const upstream = connect(Number(port), host, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, targets, server };
}

let f: EnvironmentFixture;
let proxy: Awaited<ReturnType<typeof recordingProxy>>;
beforeAll(async () => {
  proxy = await recordingProxy();
  f = await environmentFixture('proxy', { kubeconfig: inject('operatorKubeconfig'), proxy: { url: proxy.url } });
});
afterAll(async () => {
  await f?.cleanup();
  proxy?.server.closeAllConnections();
  await new Promise<void>((r) => proxy?.server.close(() => r()));
});

describe('the operator behind an egress proxy', () => {
  it('reaches the Environments API through the proxy, and the Kubernetes apiserver directly', async () => {
    await createEnvironment(f.admin, f.ns.name, 'proxied', { cloud: {} });
    await waitForReady(f.admin, f.ns.name, 'proxied');
    const api = new URL(f.emu.url).host;
    expect(proxy.targets.length).toBeGreaterThan(0);
    expect(new Set(proxy.targets)).toEqual(new Set([api]));
    await deleteAndWait(f.admin, f.ns.name, 'proxied');
  });

  it('goes direct to NO_PROXY hosts', async () => {
    await f.restartOperator({ proxy: { url: proxy.url, noProxy: '127.0.0.1,localhost' } });
    proxy.targets.length = 0;
    await createEnvironment(f.admin, f.ns.name, 'direct', { cloud: {} });
    await waitForReady(f.admin, f.ns.name, 'direct');
    expect(f.op.apiCalls.length).toBeGreaterThan(0);
    expect(proxy.targets).toEqual([]);
    await deleteAndWait(f.admin, f.ns.name, 'direct');
  });
});
