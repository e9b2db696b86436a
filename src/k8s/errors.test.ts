import { describe, expect, it } from 'vitest';
import { classify, KubeError, kubeErrorFromStatus } from './errors.ts';

const status = (code: number, reason?: string, details?: object) => ({ kind: 'Status', code, ...(reason ? { reason } : {}), message: 'm', ...(details ? { details } : {}) });

describe('Kubernetes error policy', () => {
  it.each([
    ['429 TooManyRequests is transient', kubeErrorFromStatus(429, status(429, 'TooManyRequests'), 'get x'), 'transient'],
    ['500 is transient', kubeErrorFromStatus(500, status(500, 'InternalError'), 'get x'), 'transient'],
    ['503 is transient', kubeErrorFromStatus(503, undefined, 'get x'), 'transient'],
    ['a connection failure is transient', new KubeError('Unavailable', 'connection refused'), 'transient'],
    ['409 Conflict (stale resourceVersion) is a conflict: re-read and decide again', kubeErrorFromStatus(409, status(409, 'Conflict'), 'update x'), 'conflict'],
    ['409 AlreadyExists is a conflict: for a deterministic name it is success', kubeErrorFromStatus(409, status(409, 'AlreadyExists'), 'create x'), 'conflict'],
    ['404 is fatal', kubeErrorFromStatus(404, status(404, 'NotFound'), 'get x'), 'fatal'],
    ['410 Gone is fatal', kubeErrorFromStatus(410, status(410, 'Expired'), 'list x'), 'fatal'],
    ['403 is fatal', kubeErrorFromStatus(403, status(403, 'Forbidden'), 'get x'), 'fatal'],
    ['401 is fatal', kubeErrorFromStatus(401, undefined, 'get x'), 'fatal'],
    ['422 Invalid is fatal', kubeErrorFromStatus(422, status(422, 'Invalid'), 'create x'), 'fatal'],
    ['400 is fatal', kubeErrorFromStatus(400, status(400, 'BadRequest'), 'patch x'), 'fatal'],
    ['a failure outside the boundary (a bug) is transient: backed off, never a verdict', new Error('bug'), 'transient'],
  ])('classify: %s', (_rule, err, expected) => {
    expect(classify(err)).toBe(expected);
  });

  it.each([
    ['a Retry-After of delta-seconds', status(429, 'TooManyRequests'), '3', 3_000],
    ["the Status body's retryAfterSeconds", status(429, 'TooManyRequests', { retryAfterSeconds: 2 }), undefined, 2_000],
    ['the body over the header when both are present', status(429, 'TooManyRequests', { retryAfterSeconds: 5 }), '1', 5_000],
    ['nothing when neither is present', status(429, 'TooManyRequests'), undefined, undefined],
    ['nothing for a zero Retry-After', status(503), '0', undefined],
  ])('retryAfterMs carries %s', (_rule, body, header, expected) => {
    expect(kubeErrorFromStatus(429, body, 'get x', header).retryAfterMs).toBe(expected);
  });
});
