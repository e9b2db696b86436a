import { describe, expect, it } from 'vitest';
import { parseSidecarConfig } from './config.ts';
import { decodeChunked, parseHead } from './http1.ts';
import { probeStatus } from './probe.ts';
import { parseRetryAfter } from '../util/backoff.ts';
import { codeForStatus, isTransient, WorkApiError } from './work-api.ts';

describe('HTTP/1.1 responses', () => {
  it('waits for the whole head, then parses status and lower-cased headers', () => {
    expect(parseHead(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n'))).toBeUndefined();
    const head = parseHead(Buffer.from('HTTP/1.1 412 Precondition Failed\r\nContent-Length: 2\r\nRetry-After: 3\r\n\r\n{}'))!;
    expect(head.status).toBe(412);
    expect(head.headers.get('content-length')).toBe('2');
    expect(head.headers.get('retry-after')).toBe('3');
  });

  it('decodes a chunked body, with or without trailers, once it is complete', () => {
    const body = Buffer.from('4\r\n{"a"\r\n3;ext=1\r\n:1}\r\n0\r\n\r\n');
    expect(decodeChunked(body.subarray(0, 10), 0)).toBeUndefined();
    expect(decodeChunked(body, 0)).toEqual({ body: Buffer.from('{"a":1}'), end: body.length });
    const trailed = Buffer.from('2\r\n{}\r\n0\r\nx-trailer: 1\r\n\r\n');
    expect(decodeChunked(trailed, 0)).toEqual({ body: Buffer.from('{}'), end: trailed.length });
  });
});

describe('error taxonomy', () => {
  it.each([
    [408, 'request_timeout', true],
    [429, 'rate_limited', true],
    [500, 'server_error', true],
    [529, 'server_error', true],
    [409, 'conflict', false],
    [412, 'precondition_failed', false],
    [401, 'rejected', false],
    [404, 'rejected', false],
  ] as const)('maps %i to %s (transient: %s)', (status, code, transient) => {
    expect(codeForStatus(status)).toBe(code);
    expect(isTransient(new WorkApiError(code, 'x'))).toBe(transient);
  });

  it('reads retry-after-ms, then retry-after in seconds or as a date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter(new Map([['retry-after-ms', '250'], ['retry-after', '9']]), now)).toBe(250);
    expect(parseRetryAfter(new Map([['retry-after', '2']]), now)).toBe(2_000);
    expect(parseRetryAfter(new Map([['retry-after', 'Thu, 01 Jan 2026 00:00:05 GMT']]), now)).toBe(5_000);
    expect(parseRetryAfter(new Map(), now)).toBeUndefined();
  });
});

describe('probe', () => {
  it('answers /started 503 before the claim and 200 after; /healthz always 200', () => {
    expect(probeStatus('GET /started HTTP/1.1', false)).toBe(503);
    expect(probeStatus('GET /started HTTP/1.1', true)).toBe(200);
    expect(probeStatus('GET /healthz?x=1 HTTP/1.1', false)).toBe(200);
    expect(probeStatus('GET /other HTTP/1.1', true)).toBe(404);
    expect(probeStatus('garbage', true)).toBe(400);
  });
});

describe('configuration', () => {
  const base = { ANTHROPIC_BASE_URL: 'https://api.example.com/', AGENTENV_ENVIRONMENT_ID: 'env', AGENTENV_SESSION_ID: 's', AGENTENV_WORK_ID: 'w' };

  it('applies the contract defaults', () => {
    const c = parseSidecarConfig(base);
    expect(c).toMatchObject({
      credentialFile: '/var/run/agentenv/credential/token',
      stateDir: '/var/run/agentenv/state',
      stopGraceSeconds: 30,
      leaseTtlSeconds: undefined,
      probeAddress: '0.0.0.0',
      probePort: 8095,
      logLevel: 'info',
    });
    expect(c.baseUrl.href).toBe('https://api.example.com/');
  });

  it('lists every problem at once', () => {
    expect(() => parseSidecarConfig({ ...base, AGENTENV_WORK_ID: '', AGENTENV_STOP_GRACE_SECONDS: '-1', AGENTENV_LOG_LEVEL: 'loud' })).toThrow(
      /AGENTENV_WORK_ID is required[\s\S]*AGENTENV_STOP_GRACE_SECONDS[\s\S]*AGENTENV_LOG_LEVEL/,
    );
    expect(() => parseSidecarConfig({ ...base, ANTHROPIC_BASE_URL: 'ftp://x' })).toThrow(/http\(s\) URL/);
  });
});
