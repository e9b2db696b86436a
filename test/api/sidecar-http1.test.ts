/**
 * The sidecar's hand-written HTTP/1.1 client against Node's own HTTP and HTTPS servers: framing,
 * connection reuse, `Connection: close`, deadlines, and TLS with certificate verification.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Http1Client, Http1TimeoutError } from '../../src/sidecar/http1.ts';

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

let server: Server | undefined;
let client: Http1Client | undefined;
let connections = 0;
afterEach(async () => {
  client?.close();
  client = undefined;
  if (server) {
    server.closeAllConnections();
    await new Promise((r) => server!.close(r));
  }
  server = undefined;
  connections = 0;
});

async function listen(s: Server, handler: Handler): Promise<URL> {
  server = s;
  s.on('connection', () => connections++);
  s.on('request', (req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => handler(req, body, res));
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return new URL(`${s instanceof Object && 'setSecureContext' in s ? 'https' : 'http'}://localhost:${(s.address() as AddressInfo).port}`);
}

describe('Http1Client', () => {
  it('sends method, target, headers and body, and reads a Content-Length reply', async () => {
    const url = await listen(createHttpServer(), (req, body, res) => {
      res.writeHead(201, { 'content-type': 'application/json', 'x-seen': `${req.method} ${req.url} ${req.headers['authorization']} ${body}` });
      res.end('{"ok":true}');
    });
    client = new Http1Client(url);
    const res = await client.request('POST', '/v1/x?a=1', { authorization: 'Bearer t' }, '{"force":true}', 2_000);
    expect(res.status).toBe(201);
    expect(res.headers.get('x-seen')).toBe('POST /v1/x?a=1 Bearer t {"force":true}');
    expect(JSON.parse(res.body)).toEqual({ ok: true });
  });

  it('reads a chunked reply and keeps one connection for sequential requests', async () => {
    const url = await listen(createHttpServer(), (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"a":');
      res.end('1}');
    });
    client = new Http1Client(url);
    for (let i = 0; i < 3; i++) expect((await client.request('POST', '/', {}, undefined, 2_000)).body).toBe('{"a":1}');
    expect(connections).toBe(1);
  });

  it('opens a new connection after the server said Connection: close', async () => {
    const url = await listen(createHttpServer(), (_req, _body, res) => {
      res.writeHead(200, { connection: 'close', 'content-length': '2' });
      res.end('{}');
    });
    client = new Http1Client(url);
    await client.request('POST', '/', {}, undefined, 2_000);
    await client.request('POST', '/', {}, undefined, 2_000);
    expect(connections).toBe(2);
  });

  it('gives up after its deadline, and the next request still works', async () => {
    let first = true;
    const url = await listen(createHttpServer(), (_req, _body, res) => {
      if (first) {
        first = false;
        return; // never answers
      }
      res.end('{}');
    });
    client = new Http1Client(url);
    await expect(client.request('POST', '/', {}, undefined, 200)).rejects.toBeInstanceOf(Http1TimeoutError);
    expect((await client.request('POST', '/', {}, undefined, 2_000)).status).toBe(200);
  });

  it('reports a refused connection as a connection error', async () => {
    const s = createHttpServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    await new Promise((r) => s.close(r));
    client = new Http1Client(new URL(`http://127.0.0.1:${port}`));
    await expect(client.request('POST', '/', {}, undefined, 2_000)).rejects.toMatchObject({ name: 'Http1ConnectionError', code: 'ECONNREFUSED' });
  });

  describe.skipIf(!hasOpenssl())('over TLS', () => {
    let dir: string;
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    function certificate(): { key: string; cert: string } {
      dir = mkdtempSync(join(tmpdir(), 'agentenv-tls-'));
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
      return { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
    }

    it('speaks HTTPS to a server whose certificate it trusts, reusing the connection', async () => {
      const { key, cert } = certificate();
      const url = await listen(createHttpsServer({ key, cert }), (_req, body, res) => res.end(`{"echo":${JSON.stringify(body)}}`));
      client = new Http1Client(url, { ca: cert });
      expect(JSON.parse((await client.request('POST', '/', {}, 'hi', 5_000)).body)).toEqual({ echo: 'hi' });
      expect(JSON.parse((await client.request('POST', '/', {}, 'again', 5_000)).body)).toEqual({ echo: 'again' });
      expect(connections).toBe(1);
    });

    it('refuses a server certificate it does not trust', async () => {
      const { key, cert } = certificate();
      const url = await listen(createHttpsServer({ key, cert }), (_req, _body, res) => res.end('{}'));
      client = new Http1Client(url);
      await expect(client.request('POST', '/', {}, undefined, 5_000)).rejects.toMatchObject({ name: 'Http1ConnectionError' });
    });
  });
});

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
