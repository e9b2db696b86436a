/**
 * Read one key of a Secret. Credentials are read where they are used, on every reconcile, so a
 * rotated Secret takes effect without a restart; the operator needs only `get` on Secrets (it
 * cannot enumerate them).
 */
import { isForbidden, isNotFound } from './errors.ts';
import { CORE, type KubeObject, type KubeRest } from './rest.ts';

export interface Secret extends KubeObject {
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

/** Why a Secret reference could not be resolved; messages name the Secret and key, never a value. */
export class SecretRefError extends Error {
  readonly reason: 'SecretNotFound' | 'SecretKeyMissing' | 'SecretForbidden' | 'SecretEmpty' | 'SecretMalformed';
  constructor(reason: SecretRefError['reason'], message: string) {
    super(message);
    this.name = 'SecretRefError';
    this.reason = reason;
  }
}

/** A Secret key reference, as in `spec.apiKeySecretRef`. */
export interface SecretKeyRef {
  readonly name: string;
  readonly key: string;
}

/**
 * Reads one key of a Secret of a namespace. `refresh`: the value was refused by the API (401/403),
 * so a cached copy is not good enough (the cache re-reads it, rate-limited: secret-cache.ts).
 */
export type SecretReader = (namespace: string, ref: SecretKeyRef, options?: { readonly refresh?: boolean }) => Promise<string>;

export async function readSecretKey(rest: Pick<KubeRest, 'get'>, namespace: string, ref: SecretKeyRef): Promise<string> {
  return secretKeyValue(await getSecret(rest, namespace, ref.name), namespace, ref);
}

/** The Secret, or a {@link SecretRefError} when it is missing or the operator may not read it. */
export async function getSecret(rest: Pick<KubeRest, 'get'>, namespace: string, name: string): Promise<Secret> {
  try {
    return await rest.get<Secret>(CORE.secrets, namespace, name);
  } catch (err) {
    if (isNotFound(err)) throw new SecretRefError('SecretNotFound', `Secret ${namespace}/${name} not found`);
    if (isForbidden(err)) throw new SecretRefError('SecretForbidden', `the operator may not read Secret ${namespace}/${name}`);
    throw err;
  }
}

/** The credential stored under `ref.key` of `secret`, checked; a {@link SecretRefError} names what is wrong, never the value. */
export function secretKeyValue(secret: Secret, namespace: string, ref: SecretKeyRef): string {
  const where = `Secret ${namespace}/${ref.name} key ${JSON.stringify(ref.key)}`;
  const encoded = secret.data?.[ref.key];
  if (encoded === undefined) throw new SecretRefError('SecretKeyMissing', `Secret ${namespace}/${ref.name} has no key ${JSON.stringify(ref.key)}`);
  // Surrounding whitespace is dropped: `echo key | kubectl create secret --from-file` leaves a newline.
  const value = Buffer.from(encoded, 'base64').toString('utf8').trim();
  if (value === '') throw new SecretRefError('SecretEmpty', `${where} is empty`);
  // A credential travels in an HTTP header: only visible ASCII. A line break or a control byte
  // inside is refused by the HTTP client as an invalid header (which read as a connection failure,
  // retried for ever as ApiUnavailable); a space inside is sent and refused by the API. Say what is
  // wrong where it can be fixed, naming the Secret and key, never the value.
  const defect = credentialDefect(value);
  if (defect) throw new SecretRefError('SecretMalformed', `${where} is not a credential: it contains ${defect}`);
  return value;
}

/** What makes `value` unusable as a header credential, or undefined when it is visible ASCII. */
export function credentialDefect(value: string): string | undefined {
  if (/[\r\n]/.test(value)) return 'a line break';
  if (/\s/.test(value)) return 'whitespace';
  if (/[^\x21-\x7e]/.test(value)) return 'bytes that are not printable ASCII (binary data, or text that is not a key)';
  return undefined;
}
