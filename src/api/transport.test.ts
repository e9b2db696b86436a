import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from 'undici';
import { EnvironmentsClient } from './client.ts';
import { proxiedDispatcher } from './transport.ts';
import { startRecordingProxy, type RecordingProxy } from '../../test/support/egress-proxy.ts';
import { ConnectionError, MalformedResponseError, ServerError, TimeoutError } from './errors.ts';

// A scripted raw HTTP server: below the unit level, to produce replies no well-behaved server sends.
type Handler = (req: IncomingMessage, res: ServerResponse) => void;
let handler: Handler = (_req, res) => res.end('{}');
let server: Server;
let baseUrl: string;
const sockets = new Set<unknown>();
const seen: IncomingMessage[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(req);
    handler(req, res);
  });
  server.on('connection', (s) => sockets.add(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const client = (extra: Partial<ConstructorParameters<typeof EnvironmentsClient>[0]> = {}) =>
  new EnvironmentsClient({
    baseUrl,
    credential: { kind: 'api-key', value: 'sk-test' },
    dispatcher: new Agent({ keepAliveTimeout: 10_000 }),
    retry: { maxRetries: 2, backoff: { baseMs: 1, capMs: 2, jitter: 0 }, maxRetryAfterMs: 100 },
    ...extra,
  });

const env = {
  id: 'env_1',
  type: 'environment',
  name: 'n',
  description: '',
  metadata: {},
  config: { type: 'self_hosted' },
  archived_at: null,
  created_at: '2026-01-01T00:00:00Z',
  updated_at: '2026-01-01T00:00:00Z',
};

describe('transport', () => {
  it('sends long polls through the long-poll pool and every other call through the call pool', async () => {
    const used: string[] = [];
    const counting = (name: string) =>
      new (class extends Agent {
        override dispatch(...args: Parameters<Agent['dispatch']>): boolean {
          used.push(`${name} ${args[0].path.split('?')[0]}`);
          return super.dispatch(...args);
        }
      })({ keepAliveTimeout: 10_000 });
    handler = (req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(req.url?.includes('/poll') ? 'null' : JSON.stringify(env));
    const api = client({ dispatcher: counting('calls'), pollDispatcher: counting('polls') });
    await api.getEnvironment('env_1');
    await api.pollWork('env_1', { blockMs: 1 });
    expect(used).toEqual(['calls /v1/environments/env_1', 'polls /v1/environments/env_1/work/poll']);
  });

  it('sends the version, beta and credential headers', async () => {
    handler = (_req, res) => res.end(JSON.stringify(env));
    seen.length = 0;
    await client().getEnvironment('env_1');
    expect(seen[0]?.headers).toMatchObject({
      'anthropic-version': '2023-06-01',
      'anthropic-beta': 'managed-agents-2026-04-01',
      'x-api-key': 'sk-test',
    });
    seen.length = 0;
    await client({ credential: { kind: 'bearer', value: 'sk-ant-oat01-k' } }).getEnvironment('env_1');
    expect(seen[0]?.headers.authorization).toBe('Bearer sk-ant-oat01-k');
    expect(seen[0]?.headers['x-api-key']).toBeUndefined();
  });

  it('turns a reply that breaks the schema into a typed error naming the field', async () => {
    handler = (_req, res) => res.end(JSON.stringify({ ...env, config: { type: 'cloud', networking: { type: 'limited' } } }));
    const err = await client().getEnvironment('env_1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MalformedResponseError);
    expect((err as MalformedResponseError).field).toMatch(/^config\./);
  });

  it('turns a non-JSON 2xx body into a malformed-response error, not an exception', async () => {
    handler = (_req, res) => res.end('<html>proxy</html>');
    await expect(client().getEnvironment('env_1')).rejects.toBeInstanceOf(MalformedResponseError);
  });

  it('keeps the status of an error reply whose body is not the API shape', async () => {
    handler = (_req, res) => {
      res.statusCode = 502;
      res.end('bad gateway');
    };
    const err = await client({ retry: { maxRetries: 0, backoff: { baseMs: 1, capMs: 1 }, maxRetryAfterMs: 0 } })
      .getEnvironment('env_1')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServerError);
    expect((err as ServerError).status).toBe(502);
  });

  it('maps a reset connection to ConnectionError and retries it on a retry-safe endpoint', async () => {
    let n = 0;
    handler = (req, res) => {
      if (n++ === 0) req.socket.destroy();
      else res.end(JSON.stringify(env));
    };
    await expect(client().getEnvironment('env_1')).resolves.toMatchObject({ id: 'env_1' });
    expect(n).toBe(2);
  });

  it('never retries create, even on a reset', async () => {
    let n = 0;
    handler = (req) => {
      n++;
      req.socket.destroy();
    };
    await expect(client().createEnvironment({ name: 'x' })).rejects.toBeInstanceOf(ConnectionError);
    expect(n).toBe(1);
  });

  it('enforces the per-request deadline as a TimeoutError', async () => {
    handler = () => undefined; // never answers
    const err = await client({ timeoutMs: 50, retry: { maxRetries: 0, backoff: { baseMs: 1, capMs: 1 }, maxRetryAfterMs: 0 } })
      .getEnvironment('env_1')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
  });

  it("rethrows the caller's abort reason unchanged", async () => {
    handler = () => undefined;
    const ctrl = new AbortController();
    const p = client().getEnvironment('env_1', { signal: ctrl.signal });
    setTimeout(() => ctrl.abort(new Error('shutting down')), 10);
    await expect(p).rejects.toThrow('shutting down');
  });

  it('reuses keep-alive connections instead of opening one per call', async () => {
    handler = (_req, res) => res.end(JSON.stringify(env));
    sockets.clear();
    const c = client();
    for (let i = 0; i < 20; i++) await c.getEnvironment('env_1');
    // The pool may open a second socket while the first is being released; it never grows per call.
    expect(sockets.size).toBeLessThanOrEqual(2);
  });
});

describe('egress proxy', () => {
  // An HTTP proxy on loopback that records which host it was asked to reach.
  let proxy: RecordingProxy;
  let proxyUrl: string;
  let tunnels: string[];
  beforeAll(async () => {
    proxy = await startRecordingProxy();
    proxyUrl = proxy.url;
    tunnels = proxy.targets;
  });
  afterAll(() => proxy.close());

  it('sends API requests through HTTP(S)_PROXY when one is configured', async () => {
    handler = (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(env));
    tunnels.length = 0;
    const got = await client({ dispatcher: proxiedDispatcher({ httpProxy: proxyUrl, httpsProxy: proxyUrl }) }).getEnvironment('env_1');
    expect(got.id).toBe('env_1');
    expect(tunnels).toEqual([new URL(baseUrl).host]);
  });

  it('goes direct to hosts on NO_PROXY, and with no proxy configured', async () => {
    handler = (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(env));
    tunnels.length = 0;
    await client({ dispatcher: proxiedDispatcher({ httpProxy: proxyUrl, noProxy: 'localhost,127.0.0.1' }) }).getEnvironment('env_1');
    await client({ dispatcher: proxiedDispatcher({}) }).getEnvironment('env_1');
    expect(tunnels).toEqual([]);
  });
});
