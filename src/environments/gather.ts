/**
 * Read the world an AgentEnvironment reconcile decides on: the resource with its spec parsed, the
 * credential, and the remote environment (by id, or — when no id is known yet — by the uid fence
 * in its metadata).
 */
import type { EnvironmentsClient } from '../api/client.ts';
import { NotFoundError } from '../api/errors.ts';
import type { Credential } from '../api/transport.ts';
import type { Environment } from '../api/wire.ts';
import { REMOTE_METADATA } from '../crd/meta.ts';
import { AgentEnvironmentSpec } from '../crd/agent-environment.ts';
import { AGENT_ENVIRONMENTS, type AgentEnvironment } from '../crd/resources.ts';
import { isNotFound } from '../k8s/errors.ts';
import type { KubeRest } from '../k8s/rest.ts';
import { SecretRefError, type SecretReader } from '../k8s/secrets.ts';
import { DEFAULT_KEY_SETTING, defaultKeyServes, type TenancyPolicy } from './ownership.ts';
import { failed, type Observation } from './status.ts';

/** The resource as stored, or undefined once it is gone. */
export async function readEnvironment(rest: Pick<KubeRest, 'get'>, key: string): Promise<AgentEnvironment | undefined> {
  const slash = key.indexOf('/');
  try {
    return await rest.get<AgentEnvironment>(AGENT_ENVIRONMENTS, key.slice(0, slash), key.slice(slash + 1));
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export type ParsedSpec = { readonly ok: true; readonly env: AgentEnvironment } | { readonly ok: false; readonly message: string; readonly status: Observation };

/**
 * The resource with its spec parsed by the CRD's own schema, so every default the CRD declares is
 * filled in (phases read `spec.deletionPolicy`, `spec.selfHosted.maxSessions`… and never repeat a
 * default). A spec the schema refuses (one the apiserver let through, e.g. from an older CRD) is
 * reported, not reconciled: `status` says InvalidSpec with the schema's first complaint.
 */
export function parseSpec(env: AgentEnvironment): ParsedSpec {
  const parsed = AgentEnvironmentSpec.safeParse(env.spec);
  if (parsed.success) return { ok: true, env: { ...env, spec: parsed.data } };
  return { ok: false, message: parsed.error.message, status: failed('InvalidSpec', parsed.error.issues[0]?.message ?? 'invalid spec') };
}

export type CredentialResult = { readonly ok: true; readonly credential: Credential } | { readonly ok: false; readonly reason: string; readonly message: string };

/**
 * The organization API key: the resource's Secret, else the operator's default — in the namespaces
 * the administrator lets the default key serve (`tenancy.defaultKeyNamespaces`); the others bring
 * their own.
 */
export async function resolveApiKey(
  secrets: SecretReader,
  env: AgentEnvironment,
  fallback: Credential | undefined,
  tenancy: TenancyPolicy,
): Promise<CredentialResult> {
  const ref = env.spec.apiKeySecretRef;
  const namespace = env.metadata?.namespace ?? 'default';
  if (!ref && fallback && !defaultKeyServes(tenancy, namespace)) {
    return {
      ok: false,
      reason: 'CredentialsMissing',
      message: `spec.apiKeySecretRef is not set, and the operator's default API key does not serve namespace ${namespace} (${DEFAULT_KEY_SETTING}): name a Secret of this namespace in spec.apiKeySecretRef`,
    };
  }
  if (!ref) {
    return fallback
      ? { ok: true, credential: fallback }
      : { ok: false, reason: 'CredentialsMissing', message: 'spec.apiKeySecretRef is not set and the operator has no default API key (ANTHROPIC_API_KEY)' };
  }
  try {
    const value = await secrets(namespace, ref);
    return { ok: true, credential: { kind: 'api-key', value } };
  } catch (err) {
    if (err instanceof SecretRefError) return { ok: false, reason: 'CredentialsMissing', message: err.message };
    throw err;
  }
}

/** Where the remote environment was found, if anywhere. */
export type RemoteLookup =
  | { readonly found: true; readonly environment: Environment; readonly via: 'id' | 'fence' }
  /** `id`: the environment that was expected under an id (adopted or recorded) but is gone. */
  | { readonly found: false; readonly id: string | undefined };

/**
 * Find the remote environment. With an id (adopted, or recorded in status) it is fetched directly.
 * Without one, environments are searched for the resource's uid in metadata: this is the create
 * fence that stops a crash between "created" and "status written" from creating a second one.
 */
export async function findRemote(api: EnvironmentsClient, env: AgentEnvironment, signal: AbortSignal): Promise<RemoteLookup> {
  const id = env.spec.environmentId ?? env.status?.environmentId;
  if (id) {
    try {
      return { found: true, environment: await api.getEnvironment(id, { signal }), via: 'id' };
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      // An adopted id names exactly one environment. A recorded id that is gone may have been
      // replaced already by a pass whose status write was lost: the fence must find that one too.
      if (env.spec.environmentId) return { found: false, id };
    }
  }
  const fenced = await findByUid(api, env.metadata?.uid, signal);
  return fenced ? { found: true, environment: fenced, via: 'fence' } : { found: false, id };
}

async function findByUid(api: EnvironmentsClient, uid: string | undefined, signal: AbortSignal): Promise<Environment | undefined> {
  if (!uid) return undefined;
  for await (const candidate of api.listEnvironments({ include_archived: true, limit: 100 }, { signal })) {
    if (candidate.metadata[REMOTE_METADATA.uid] === uid) return candidate;
  }
  return undefined;
}
