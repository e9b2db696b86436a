/**
 * The real sidecar process (`node src/cli/main.ts sidecar`) against the in-process emulator, for
 * the sidecar's API tests: an acknowledged work item, the process with its probe and proxy ports,
 * its JSON log lines, and a recording egress proxy that sees what the sidecar sends upstream.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import type { EnvironmentsClient } from '../../src/api/client.ts';
import { decodeWorkSecret } from '../../src/api/work-secret.ts';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { clientFor, selfHosted } from './emulator.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
export const LEASE_TTL_SECONDS = 4; // beats every 2 s

export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface Item {
  readonly api: EnvironmentsClient;
  readonly environmentId: string;
  readonly sessionId: string;
  readonly workId: string;
  /** The sidecar's real credential: the item's sessions token when the emulator issues secrets, else the environment key. */
  readonly token: string;
  readonly credentialKind: 'sessions-token' | 'environment-key';
  readonly environmentKey: string;
}

/** A work item polled and acknowledged (what the dispatcher does before the Pod exists). */
export async function acknowledgedItem(emu: RunningEmulator): Promise<Item> {
  const api = clientFor(emu);
  const env = await selfHosted(api);
  const { session_id, work_id } = emu.admin.createSession(env.id);
  const work = await api.pollWork(env.id);
  expect(work?.id).toBe(work_id);
  await api.ackWork(env.id, work_id);
  const environmentKey = emu.admin.mintKey(env.id);
  const sessionsToken = decodeWorkSecret(work?.secret)?.sessions_token;
  return {
    api,
    environmentId: env.id,
    sessionId: session_id,
    workId: work_id,
    token: sessionsToken ?? environmentKey,
    credentialKind: sessionsToken ? 'sessions-token' : 'environment-key',
    environmentKey,
  };
}

export class SidecarProcess {
  readonly child: ChildProcess;
  output = '';
  readonly exited: Promise<number | null>;

  /** `dir` holds the credential file and `state/` (the Pod's emptyDir, which outlives a sidecar restart). */
  constructor(item: Item, emu: RunningEmulator, dir: string, extraEnv: Record<string, string> = {}) {
    const credential = join(dir, 'token');
    const stateDir = join(dir, 'state');
    writeFileSync(credential, `${item.token}\n`);
    mkdirSync(stateDir, { recursive: true });
    this.child = spawn(process.execPath, [MAIN, 'sidecar'], {
      env: {
        PATH: process.env['PATH'] ?? '',
        ANTHROPIC_BASE_URL: emu.url,
        AGENTENV_ENVIRONMENT_ID: item.environmentId,
        AGENTENV_SESSION_ID: item.sessionId,
        AGENTENV_WORK_ID: item.workId,
        AGENTENV_CREDENTIAL_FILE: credential,
        AGENTENV_CREDENTIAL_KIND: item.credentialKind,
        AGENTENV_STATE_DIR: stateDir,
        AGENTENV_LEASE_TTL_SECONDS: String(LEASE_TTL_SECONDS),
        AGENTENV_PROBE_ADDRESS: '127.0.0.1',
        AGENTENV_PROBE_PORT: '0',
        AGENTENV_PROXY_PORT: '0',
        AGENTENV_LOG_LEVEL: 'debug',
        ...extraEnv,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (c: Buffer) => (this.output += c.toString()));
    this.child.stderr!.on('data', (c: Buffer) => (this.output += c.toString()));
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  logs(): Array<Record<string, unknown>> {
    return this.output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  async logged(msg: string): Promise<Record<string, unknown>> {
    return waitFor(`log "${msg}"`, () => this.logs().find((l) => l['msg'] === msg));
  }

  async probe(path: '/started' | '/healthz' | '/ready'): Promise<number> {
    const started = await this.logged('sidecar started');
    return (await fetch(`http://127.0.0.1:${String(started['probe_port'])}${path}`)).status;
  }

  /** The proxy's base URL: what the main container gets as `ANTHROPIC_BASE_URL`. */
  async proxyUrl(): Promise<string> {
    return `http://127.0.0.1:${String((await this.logged('sidecar started'))['proxy_port'])}`;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }
}

/** What a main container sends: the placeholder credential and the API's version headers. */
export const MAIN_HEADERS = { authorization: 'Bearer agentenv-placeholder-not-a-credential', 'anthropic-version': '2023-06-01', 'anthropic-beta': 'managed-agents-2026-04-01' };

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read a few known fields of API replies
type Json = Record<string, any>;

/** A call from the main container through the sidecar's proxy. */
export async function viaProxy(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Json }> {
  const res = await fetch(base + path, {
    method,
    headers: { ...MAIN_HEADERS, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Json) : {} };
}

export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

/**
 * A loopback forward proxy (what `HTTP_PROXY`/`HTTPS_PROXY` name): records every request's line
 * and headers, relays plain-HTTP requests to their absolute-form target, and refuses CONNECT
 * tunnels with 502 after recording them.
 */
export async function recordingProxy(): Promise<{ url: string; seen: SeenRequest[]; close(): Promise<void> }> {
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers });
    const target = new URL(req.url!);
    const up = http.request({ hostname: target.hostname, port: target.port, method: req.method, path: target.pathname + target.search, headers: req.headers }, (upRes) => {
      res.writeHead(upRes.statusCode!, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('connect', (req, socket: net.Socket) => {
    seen.push({ method: 'CONNECT', url: req.url!, headers: req.headers });
    socket.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
