import { describe, expect, it } from 'vitest';
import { decodeWorkSecret, encodeWorkSecret } from './work-secret.ts';

describe('work secrets', () => {
  it('round-trips base64url JSON', () => {
    const s = encodeWorkSecret({ sessions_token: 'sk-ant-req-1', api_base_url: 'http://127.0.0.1:1' });
    expect(s).not.toMatch(/[+/=]/);
    expect(decodeWorkSecret(s)).toEqual({ sessions_token: 'sk-ant-req-1', api_base_url: 'http://127.0.0.1:1' });
  });

  it('accepts padded standard base64 too', () => {
    const s = Buffer.from(JSON.stringify({ sessions_token: 't?>' })).toString('base64');
    expect(decodeWorkSecret(s)?.sessions_token).toBe('t?>');
  });

  it.each([undefined, null, '', '!!!', Buffer.from('[1]').toString('base64url'), Buffer.from('{"sessions_token":""}').toString('base64url')])(
    'returns undefined for an unusable secret (%s)',
    (s) => expect(decodeWorkSecret(s)).toBeUndefined(),
  );
});
