/**
 * Read one key of a Secret. Credentials are read where they are used, on every reconcile, so a
 * rotated Secret takes effect without a restart; the operator needs only `get` on Secrets (it
 * cannot enumerate them).
 */
import { isForbidden, isNotFound } from './errors.ts';
import { CORE, type KubeObject, type KubeRest } from './rest.ts';

interface Secret extends KubeObject {
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

/** Why a Secret reference could not be resolved; messages name the Secret and key, never a value. */
export class SecretRefError extends Error {
  readonly reason: 'SecretNotFound' | 'SecretKeyMissing' | 'SecretForbidden' | 'SecretEmpty';
  constructor(reason: SecretRefError['reason'], message: string) {
    super(message);
    this.name = 'SecretRefError';
    this.reason = reason;
  }
}

export async function readSecretKey(rest: KubeRest, namespace: string, ref: { name: string; key: string }): Promise<string> {
  let secret: Secret;
  try {
    secret = await rest.get<Secret>(CORE.secrets, namespace, ref.name);
  } catch (err) {
    if (isNotFound(err)) throw new SecretRefError('SecretNotFound', `Secret ${namespace}/${ref.name} not found`);
    if (isForbidden(err)) throw new SecretRefError('SecretForbidden', `the operator may not read Secret ${namespace}/${ref.name}`);
    throw err;
  }
  const encoded = secret.data?.[ref.key];
  if (encoded === undefined) throw new SecretRefError('SecretKeyMissing', `Secret ${namespace}/${ref.name} has no key "${ref.key}"`);
  const value = Buffer.from(encoded, 'base64').toString('utf8').trim();
  if (value === '') throw new SecretRefError('SecretEmpty', `Secret ${namespace}/${ref.name} key "${ref.key}" is empty`);
  return value;
}
