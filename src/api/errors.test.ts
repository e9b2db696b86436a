import { describe, expect, it } from 'vitest';
import {
  ConflictError,
  ConnectionError,
  InvalidRequestError,
  MalformedResponseError,
  NotFoundError,
  PreconditionFailedError,
  RateLimitError,
  ServerError,
  TimeoutError,
  classify,
  errorForStatus,
  isFatal,
  isTransient,
  parseRetryAfter,
} from './errors.ts';

const headers = (h: Record<string, string>) => ({ get: (n: string) => h[n] });

describe('error taxonomy', () => {
  it.each([
    [400, InvalidRequestError, 'invalid_request'],
    [404, NotFoundError, 'not_found'],
    [409, ConflictError, 'conflict'],
    [412, PreconditionFailedError, 'precondition_failed'],
    [429, RateLimitError, 'rate_limited'],
    [503, ServerError, 'server_error'],
    [529, ServerError, 'server_error'],
  ])('maps HTTP %i to %o with a stable code', (status, cls, code) => {
    const err = errorForStatus(status, 'm', { requestId: 'req_1' });
    expect(err).toBeInstanceOf(cls);
    expect(err.code).toBe(code);
    expect(err.status).toBe(status);
    expect(err.requestId).toBe('req_1');
  });

  it('treats connection errors, timeouts, 408, 429 and 5xx as transient and nothing else', () => {
    for (const s of [408, 429, 500, 502, 503, 529]) expect(isTransient(errorForStatus(s, 'm', {}))).toBe(true);
    expect(isTransient(new ConnectionError('reset'))).toBe(true);
    expect(isTransient(new TimeoutError('slow'))).toBe(true);
    for (const s of [400, 401, 403, 404, 409, 412, 422]) expect(isTransient(errorForStatus(s, 'm', {}))).toBe(false);
    expect(isTransient(new MalformedResponseError('bad', 'id'))).toBe(false);
  });

  it('leaves a 409 to its caller: neither transient nor fatal', () => {
    const err = errorForStatus(409, 'already stopped', {});
    expect(isTransient(err)).toBe(false);
    expect(isFatal(err)).toBe(false);
    expect(isFatal(errorForStatus(401, 'bad key', {}))).toBe(true);
  });

  it.each([
    ['a connection error is transient', new ConnectionError('reset'), 'transient'],
    ['our own timeout is transient', new TimeoutError('slow'), 'transient'],
    ['408 is transient', errorForStatus(408, 'm', {}), 'transient'],
    ['429 is transient', errorForStatus(429, 'm', { retryAfterMs: 1_000 }), 'transient'],
    ['500 is transient', errorForStatus(500, 'm', {}), 'transient'],
    ['529 overloaded is transient', errorForStatus(529, 'm', {}), 'transient'],
    ['409 is a conflict its caller interprets (on stop: already stopped)', errorForStatus(409, 'm', {}), 'conflict'],
    ['412 is fatal (on heartbeat: the lease is lost)', errorForStatus(412, 'm', {}), 'fatal'],
    ['400 is fatal', errorForStatus(400, 'm', {}), 'fatal'],
    ['401 is fatal', errorForStatus(401, 'm', {}), 'fatal'],
    ['403 is fatal', errorForStatus(403, 'm', {}), 'fatal'],
    ['404 is fatal', errorForStatus(404, 'm', {}), 'fatal'],
    ['422 is fatal', errorForStatus(422, 'm', {}), 'fatal'],
    ['another 4xx is fatal', errorForStatus(418, 'm', {}), 'fatal'],
    ['a malformed reply is fatal', new MalformedResponseError('bad', 'id'), 'fatal'],
    ['a failure outside the API (a bug) is transient: backed off, never a verdict', new Error('bug'), 'transient'],
  ])('classify: %s', (_rule, err, expected) => {
    expect(classify(err)).toBe(expected);
  });

  it('reads the server lease from a 412 body', () => {
    const err = errorForStatus(412, 'mismatch', {
      details: { current_state: { state: 'active', ttl_seconds: 90, last_heartbeat: '2026-01-01T00:00:00.000001Z' } },
    });
    expect((err as PreconditionFailedError).leaseState).toEqual({
      state: 'active',
      ttl_seconds: 90,
      last_heartbeat: '2026-01-01T00:00:00.000001Z',
    });
  });

  it('serialises to a log-safe object without bodies', () => {
    expect(JSON.parse(JSON.stringify(errorForStatus(401, 'invalid x-api-key', { requestId: 'r' })))).toEqual({
      name: 'AuthenticationError',
      code: 'authentication_failed',
      message: 'invalid x-api-key',
      status: 401,
      requestId: 'r',
    });
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-11-22T12:00:00Z');
  it('reads delta-seconds, HTTP dates and retry-after-ms', () => {
    expect(parseRetryAfter(headers({ 'retry-after': '3' }), now)).toBe(3000);
    expect(parseRetryAfter(headers({ 'retry-after': '0.5' }), now)).toBe(500);
    expect(parseRetryAfter(headers({ 'retry-after': 'Sun, 22 Nov 2026 12:00:07 GMT' }), now)).toBe(7000);
    expect(parseRetryAfter(headers({ 'retry-after-ms': '250', 'retry-after': '9' }), now)).toBe(250);
  });
  it('ignores garbage and never goes negative', () => {
    expect(parseRetryAfter(headers({ 'retry-after': 'soon' }), now)).toBeUndefined();
    expect(parseRetryAfter(headers({ 'retry-after': '-4' }), now)).toBeUndefined();
    expect(parseRetryAfter(headers({ 'retry-after': 'Sun, 22 Nov 2026 11:00:00 GMT' }), now)).toBe(0);
    expect(parseRetryAfter(headers({}), now)).toBeUndefined();
  });
});
