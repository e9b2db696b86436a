/**
 * The credentials a dispatcher works with, resolved from the AgentEnvironment:
 *
 * - **poll**: the environment key from `spec.selfHosted.environmentKeySecretRef` (sent as Bearer),
 *   else the organization API key (`spec.apiKeySecretRef`, else the operator's default).
 * - **sandbox**: what a session's sidecar may receive when a work item carries no per-item token:
 *   the environment key, and nothing else. Under the API-key fallback it is absent, because the
 *   organization key can create and delete environments and must never reach a sandbox Pod; such an
 *   item is then not acknowledged (see the dispatcher's `EnvironmentKeyRequired`).
 *
 * The operator may only `get` Secrets (it cannot watch them), so {@link CredentialSource} re-reads
 * the Secret every `refreshMs` (default 60 s; the dispatcher asks every 5 s while a refused or
 * missing key pauses it) and at once when the API refuses the key (401/403,
 * rate-limited to one read per `minRefreshMs`), and reports a rotation to the dispatcher. The reads
 * go through the process's Secret cache (k8s/secret-cache.ts): the session reconciler's asks for the
 * same key are served from it, and a read the apiserver throttled is not repeated by every asker.
 */
import { createHash } from 'node:crypto';
import type { Credential } from '../../api/transport.ts';
import type { AgentEnvironment } from '../../crd/resources.ts';
import { SecretRefError, type SecretReader } from '../../k8s/secrets.ts';

export interface DispatchCredentials {
  readonly poll: Credential;
  /** The environment key, when configured: the sidecar's fallback credential. */
  readonly sandbox: string | undefined;
  readonly source: 'environment-key' | 'api-key';
  /** A digest of both values: tells a rotation apart without keeping a second copy in logs or state. */
  readonly fingerprint: string;
}

export type CredentialResolution =
  | { readonly ok: true; readonly credentials: DispatchCredentials }
  | { readonly ok: false; readonly reason: 'CredentialsMissing'; readonly message: string };

/**
 * Read the dispatch credentials of `env` (at most one Secret read). `refresh`: the API refused the
 * key, a cached copy will not do. Messages name Secrets, never values.
 */
export async function resolveDispatchCredentials(
  secrets: SecretReader,
  env: AgentEnvironment,
  defaultApiKey: (namespace: string) => Credential | undefined,
  options: { readonly refresh?: boolean } = {},
): Promise<CredentialResolution> {
  const namespace = env.metadata?.namespace ?? 'default';
  const envKeyRef = env.spec.selfHosted?.environmentKeySecretRef;
  try {
    if (envKeyRef) {
      const value = await secrets(namespace, envKeyRef, options);
      return { ok: true, credentials: { poll: { kind: 'bearer', value }, sandbox: value, source: 'environment-key', fingerprint: digest(value) } };
    }
    const apiKeyRef = env.spec.apiKeySecretRef;
    const apiKey: Credential | undefined = apiKeyRef ? { kind: 'api-key', value: await secrets(namespace, apiKeyRef, options) } : defaultApiKey(namespace);
    if (!apiKey) {
      return { ok: false, reason: 'CredentialsMissing', message: 'no environment key (spec.selfHosted.environmentKeySecretRef), no spec.apiKeySecretRef and no operator default API key' };
    }
    return { ok: true, credentials: { poll: apiKey, sandbox: undefined, source: 'api-key', fingerprint: digest(apiKey.value) } };
  } catch (err) {
    if (err instanceof SecretRefError) return { ok: false, reason: 'CredentialsMissing', message: err.message };
    throw err;
  }
}

/**
 * The credential for work-item calls outside a poll (the session reconciler's read and stop): the
 * poll credential, or why there is none (the message names Secrets, never values).
 */
export async function workItemCredential(secrets: SecretReader, env: AgentEnvironment, defaultApiKey: (namespace: string) => Credential | undefined): Promise<Credential | string> {
  const r = await resolveDispatchCredentials(secrets, env, defaultApiKey);
  return r.ok ? r.credentials.poll : r.message;
}

/**
 * The organization API key of `env` (`spec.apiKeySecretRef`, else the operator's default), for
 * the session reads of the session reconciler; without one, the work-item credential.
 */
export async function organizationCredential(secrets: SecretReader, env: AgentEnvironment, defaultApiKey: (namespace: string) => Credential | undefined): Promise<Credential | string> {
  const namespace = env.metadata?.namespace ?? '';
  const ref = env.spec.apiKeySecretRef;
  if (ref) return { kind: 'api-key', value: await secrets(namespace, ref) };
  return defaultApiKey(namespace) ?? workItemCredential(secrets, env, defaultApiKey);
}

const digest = (v: string): string => createHash('sha256').update(v).digest('hex').slice(0, 16);

export interface CredentialSourceOptions {
  /** Resolve the credential; `refresh`: the API refused the last one (the Secret cache must re-read it). */
  readonly resolve: (refresh: boolean) => Promise<CredentialResolution>;
  /** Called when the resolved credential changes (rotation, or a missing Secret appeared or vanished). */
  readonly onChange: (r: CredentialResolution) => void;
  /** Periodic re-read. Default 60 s. */
  readonly refreshMs?: number;
  /** Minimum spacing of re-reads asked for by a refused key. Default 5 s. */
  readonly minRefreshMs?: number;
  readonly now?: () => number;
}

/** The current dispatch credentials of one environment, kept fresh. */
export class CredentialSource {
  readonly #opts: CredentialSourceOptions;
  #current: CredentialResolution | undefined;
  #lastRead = -Infinity;
  #reading: Promise<CredentialResolution> | undefined;

  constructor(opts: CredentialSourceOptions) {
    this.#opts = opts;
  }

  /** The last resolution, if any (synchronous: read by the API client on every call). */
  get current(): CredentialResolution | undefined {
    return this.#current;
  }

  /** Re-read when the last read is older than `refreshMs` (or `minRefreshMs` when `urgent`). */
  async refresh(urgent = false): Promise<CredentialResolution> {
    const now = (this.#opts.now ?? Date.now)();
    const age = urgent ? (this.#opts.minRefreshMs ?? 5_000) : (this.#opts.refreshMs ?? 60_000);
    if (this.#current && now - this.#lastRead < age) return this.#current;
    this.#reading ??= this.#read(now, urgent).finally(() => (this.#reading = undefined));
    return this.#reading;
  }

  async #read(now: number, urgent: boolean): Promise<CredentialResolution> {
    const next = await this.#opts.resolve(urgent);
    this.#lastRead = now;
    const before = this.#current;
    this.#current = next;
    if (before !== undefined && key(before) !== key(next)) this.#opts.onChange(next);
    return next;
  }
}

const key = (r: CredentialResolution): string => (r.ok ? `ok:${r.credentials.fingerprint}` : `missing:${r.message}`);
