import { describe, expect, it } from 'vitest';
import { parseSidecarConfig } from './config.ts';
import { probeStatus } from './probe.ts';
import { parseRetryAfter } from '../util/backoff.ts';
import { codeForStatus, isTransient, WorkApiError } from './work-api.ts';

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
    expect(probeStatus('GET /started HTTP/1.1', { started: false, ready: false })).toBe(503);
    expect(probeStatus('GET /started HTTP/1.1', { started: true, ready: false })).toBe(200);
    expect(probeStatus('GET /healthz?x=1 HTTP/1.1', { started: false, ready: false })).toBe(200);
    expect(probeStatus('GET /other HTTP/1.1', { started: true, ready: true })).toBe(404);
    expect(probeStatus('garbage', { started: true, ready: true })).toBe(400);
  });

  it('answers /ready 200 only while the lease is held with no stop due', () => {
    expect(probeStatus('GET /ready HTTP/1.1', { started: true, ready: true })).toBe(200);
    expect(probeStatus('GET /ready HTTP/1.1', { started: true, ready: false })).toBe(503);
  });
});

describe('configuration', () => {
  const base = { ANTHROPIC_BASE_URL: 'https://api.example.com/', AGENTENV_ENVIRONMENT_ID: 'env', AGENTENV_SESSION_ID: 's', AGENTENV_WORK_ID: 'w' };

  it('applies the contract defaults', () => {
    const c = parseSidecarConfig(base);
    expect(c).toMatchObject({
      credentialFile: '/var/run/agentenv/credential/token',
      stateDir: '/var/run/agentenv/state',
      credentialKind: 'environment-key',
      leaseTtlSeconds: undefined,
      probeAddress: '0.0.0.0',
      probePort: 8095,
      proxyAddress: '127.0.0.1',
      proxyPort: 8096,
      egressProxy: {},
      logLevel: 'info',
    });
    expect(c.baseUrl.href).toBe('https://api.example.com/');
  });

  it('lists every problem at once', () => {
    expect(() => parseSidecarConfig({ ...base, AGENTENV_WORK_ID: '', AGENTENV_CREDENTIAL_KIND: 'password', AGENTENV_PROXY_PORT: '-1', AGENTENV_LOG_LEVEL: 'loud' })).toThrow(
      /AGENTENV_WORK_ID is required[\s\S]*AGENTENV_CREDENTIAL_KIND[\s\S]*AGENTENV_PROXY_PORT[\s\S]*AGENTENV_LOG_LEVEL/,
    );
    expect(() => parseSidecarConfig({ ...base, ANTHROPIC_BASE_URL: 'ftp://x' })).toThrow(/http\(s\) URL/);
  });

  it('reads the egress proxy settings, upper case over lower case', () => {
    const c = parseSidecarConfig({ ...base, https_proxy: 'http://lower:3128', HTTPS_PROXY: 'http://upper:3128', no_proxy: '.svc' });
    expect(c.egressProxy).toEqual({ HTTPS_PROXY: 'http://upper:3128', NO_PROXY: '.svc' });
  });
});
