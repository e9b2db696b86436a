import { describe, expect, it } from 'vitest';
import { tokenExpiry } from './server.ts';

const jwt = (payload: unknown): string => `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.sig`;

describe('a cached TokenReview verdict never outlives its token', () => {
  it.each([
    ['a token with exp is cached until then at most', jwt({ exp: 1_800_000_000 }), 1_800_000_000_000],
    ['a token without exp leaves the cache at its own bound', jwt({ sub: 'x' }), undefined],
    ['an unreadable token leaves the cache at its own bound', 'not-a-jwt', undefined],
  ])('%s', (_rule, token, expected) => {
    expect(tokenExpiry(token)).toBe(expected);
  });
});
