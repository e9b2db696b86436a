import { describe, expect, it } from 'vitest';
import { AuthenticationError, ConflictError, InvalidRequestError, MalformedResponseError, NotFoundError, PermissionDeniedError, RateLimitError, ServerError, TimeoutError } from '../../api/errors.ts';
import { classifyPollFailure, DispatchPausedError, nextTarget, pauseAfterEmpty, pollBackoffMs, pollsToStart } from './plan.ts';

describe('pollsToStart', () => {
  const base = { maxSessions: 10, maxPollers: 4, active: 0, polling: 0, target: 1 };
  it.each([
    ['one poller while idle', { ...base }, 1],
    ['no second poll while the idle one runs', { ...base, polling: 1 }, 0],
    ['up to the target while a burst waits', { ...base, target: 3, polling: 1 }, 2],
    ['never more than maxPollers', { ...base, target: 9 }, 4],
    ['never more than the free capacity (each poll holds a slot)', { ...base, target: 4, active: 8 }, 2],
    ['polls in flight count against the free capacity', { ...base, target: 4, active: 8, polling: 2 }, 0],
    ['nothing at capacity', { ...base, active: 10 }, 0],
    ['nothing above capacity (maxSessions lowered)', { ...base, active: 12 }, 0],
    ['maxSessions 0 pauses dispatch', { ...base, maxSessions: 0 }, 0],
    ['a full hand-off backlog waits (claims follow the record rate)', { ...base, target: 4, handOffs: 32 }, 0],
    ['a nearly full backlog allows only what it can take', { ...base, target: 4, handOffs: 30, polling: 1 }, 1],
    ['a custom backlog bound', { ...base, target: 4, handOffs: 1, maxHandOffs: 2 }, 1],
  ])('%s', (_name, input, expected) => {
    expect(pollsToStart(input)).toBe(expected);
  });
});

describe('nextTarget', () => {
  it.each([
    [1, 'work', 4, 2],
    [3, 'work', 4, 4],
    [4, 'work', 4, 4],
    [4, 'empty', 4, 3],
    [1, 'empty', 4, 1],
    [4, 'error', 4, 1],
    [1, 'work', 1, 1],
  ] as const)('target %i after %s (maxPollers %i) → %i', (target, outcome, max, expected) => {
    expect(nextTarget(target, outcome, max)).toBe(expected);
  });
});

describe('pollBackoffMs', () => {
  it('doubles from 1 s to a 60 s cap with jitter', () => {
    expect(pollBackoffMs(0, undefined, () => 1)).toBe(1_000);
    expect(pollBackoffMs(0, undefined, () => 0)).toBe(500);
    expect(pollBackoffMs(3, undefined, () => 1)).toBe(8_000);
    expect(pollBackoffMs(20, undefined, () => 1)).toBe(60_000);
  });
  it('never retries before the server\'s Retry-After', () => {
    for (const r of [0, 0.5, 1]) {
      expect(pollBackoffMs(0, 30_000, () => r)).toBeGreaterThanOrEqual(30_000);
      expect(pollBackoffMs(10, 2_000, () => r)).toBeGreaterThanOrEqual(2_000);
    }
    expect(pollBackoffMs(10, 2_000, () => 1)).toBeLessThanOrEqual(3_000);
  });
});

describe('pauseAfterEmpty', () => {
  it('re-polls at once after a long poll that waited', () => {
    expect(pauseAfterEmpty(999)).toBe(0);
    expect(pauseAfterEmpty(600)).toBe(0);
  });
  it('paces a poll that came back early, so the loop never runs hot', () => {
    expect(pauseAfterEmpty(0)).toBe(999);
    expect(pauseAfterEmpty(100)).toBe(899);
  });
});

describe('classifyPollFailure', () => {
  it.each([
    [new ServerError('boom', { status: 503 }), 'transient'],
    [new RateLimitError('slow down', { status: 429, retryAfterMs: 4_000 }), 'transient'],
    [new TimeoutError('timeout'), 'transient'],
    [new ConflictError('conflict', { status: 409 }), 'transient'],
    [new Error('something else'), 'transient'],
    [new AuthenticationError('bad key', { status: 401 }), 'fatal'],
    [new PermissionDeniedError('no', { status: 403 }), 'fatal'],
    [new NotFoundError('gone', { status: 404 }), 'fatal'],
    [new InvalidRequestError('bad', { status: 400 }), 'fatal'],
    [new MalformedResponseError('not JSON', '(body)', { status: 200 }), 'fatal'],
  ])('%s is %s', (err, kind) => {
    expect(classifyPollFailure(err).kind).toBe(kind);
  });
  it('gives fatal failures a condition reason and keeps Retry-After of transient ones', () => {
    expect(classifyPollFailure(new AuthenticationError('bad key', { status: 401 }))).toMatchObject({ reason: 'CredentialsInvalid', code: 'authentication_failed' });
    expect(classifyPollFailure(new NotFoundError('gone', { status: 404 }))).toMatchObject({ reason: 'EnvironmentNotFound' });
    expect(classifyPollFailure(new MalformedResponseError("reply field 'id' expected string", 'id', { status: 200 }))).toMatchObject({ reason: 'MalformedApiReply', message: expect.stringContaining('field id') });
    expect(classifyPollFailure(new DispatchPausedError('CredentialsMissing', 'Secret x not found'))).toMatchObject({ kind: 'fatal', reason: 'CredentialsMissing' });
    expect(classifyPollFailure(new RateLimitError('slow', { status: 429, retryAfterMs: 4_000 }))).toMatchObject({ retryAfterMs: 4_000 });
  });
});
