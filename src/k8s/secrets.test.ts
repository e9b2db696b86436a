import { describe, expect, it } from 'vitest';
import { KubeError } from './errors.ts';
import type { KubeRest } from './rest.ts';
import { readSecretKey, SecretRefError } from './secrets.ts';

/** A KubeRest that serves one Secret's `data` (below the unit: the apiserver is the integration tier's). */
const restWith = (data: Record<string, string> | KubeError): KubeRest =>
  ({
    get: async () => {
      if (data instanceof KubeError) throw data;
      return { metadata: { name: 'api-key' }, data };
    },
  }) as unknown as KubeRest;

const b64 = (v: string | Buffer): string => Buffer.from(v).toString('base64');
const SECRET_VALUE = 'sk-ant-api03-SECRETVALUE';
const read = (rest: KubeRest, key = 'key'): Promise<string> => readSecretKey(rest, 'ns', { name: 'api-key', key });

describe('readSecretKey', () => {
  it.each([
    ['a missing Secret is SecretNotFound', restWith(new KubeError('NotFound', 'nope', { status: 404 })), 'key', 'SecretNotFound', 'Secret ns/api-key not found'],
    ['a Secret the operator may not read is SecretForbidden', restWith(new KubeError('Forbidden', 'no', { status: 403 })), 'key', 'SecretForbidden', 'may not read Secret ns/api-key'],
    ['a missing key is SecretKeyMissing, naming the key', restWith({ other: b64(SECRET_VALUE) }), 'key', 'SecretKeyMissing', 'Secret ns/api-key has no key "key"'],
    ['a key name with a line break is shown escaped', restWith({ key: b64(SECRET_VALUE) }), 'key\n', 'SecretKeyMissing', 'has no key "key\\n"'],
    ['an empty value is SecretEmpty', restWith({ key: '' }), 'key', 'SecretEmpty', 'Secret ns/api-key key "key" is empty'],
    ['a value of only whitespace is SecretEmpty', restWith({ key: b64(' \n\t') }), 'key', 'SecretEmpty', 'is empty'],
    ['a line break inside the value is SecretMalformed', restWith({ key: b64(`${SECRET_VALUE}\n${SECRET_VALUE}`) }), 'key', 'SecretMalformed', 'key "key" is not a credential: it contains a line break'],
    ['a space inside the value is SecretMalformed', restWith({ key: b64(`Bearer ${SECRET_VALUE}`) }), 'key', 'SecretMalformed', 'contains whitespace'],
    ['binary bytes are SecretMalformed', restWith({ key: b64(Buffer.from([0x53, 0x00, 0xff, 0x13, 0x37, 0x80])) }), 'key', 'SecretMalformed', 'not printable ASCII'],
    ['a non-ASCII character is SecretMalformed', restWith({ key: b64(`${SECRET_VALUE}é`) }), 'key', 'SecretMalformed', 'not printable ASCII'],
  ] as const)('%s; the message names the Secret and key, never the value', async (_rule, rest, key, reason, message) => {
    const err = await read(rest, key).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SecretRefError);
    expect(err).toMatchObject({ reason });
    expect((err as Error).message).toContain(message);
    expect((err as Error).message).not.toContain('SECRETVALUE');
  });

  it('a value with a trailing newline (echo into a Secret) is read without it', async () => {
    await expect(read(restWith({ key: b64(`${SECRET_VALUE}\n`) }))).resolves.toBe(SECRET_VALUE);
  });
});
