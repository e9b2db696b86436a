/**
 * Ownership between tenants (pure, no I/O): which AgentEnvironment a remote environment belongs to,
 * and what the cluster administrator granted to whom.
 *
 * A remote environment belongs to exactly one AgentEnvironment: the one whose uid is in its
 * `agentenv.io/uid` metadata (the create fence's tag, written at create and — under Full — kept by
 * every pass). Any user who may create an AgentEnvironment may name any environment of the
 * organization in `spec.environmentId`, so naming one is not enough to own it:
 *
 * 1. Tagged with this resource's uid: owned (created here, or adopted earlier with a grant).
 * 2. Not adopted (no `spec.environmentId`), found under the id the operator recorded in status, and
 *    untagged: owned — the operator wrote that id when it created the environment (status is a
 *    subresource tenants cannot write), and a removed tag is Console drift, put back under Full.
 * 3. Not adopted, and tagged by another AgentEnvironment: it was taken over (a granted adoption
 *    elsewhere): OwnedElsewhere, left to its new owner. No grant reverses this, so two resources
 *    never fight over one environment.
 * 4. Adopted, not owned (untagged: made in the Console or by hand; or tagged by another
 *    AgentEnvironment, in this cluster or another): only with the administrator's grant for the
 *    resource's namespace (`adoptionNamespaces`), else AdoptionRefused. Under Full the first pass
 *    writes this resource's tag, so from then on rule 1 holds and revoking the grant does not
 *    un-own it. A Full adoption that had the environment (its id recorded in status) and finds
 *    another tag lost it to a later granted adoption: OwnedElsewhere (the latest grant wins once).
 *    Under ObserveOnly nothing is written, so the grant is checked on every pass.
 *
 * The grant is an operator setting (the chart's `tenancy.adoptionNamespaces`), not a namespace label
 * or a policy object: only whoever installs the chart (the cluster administrator) can change it,
 * whereas namespace labels are often editable by namespace owners in multi-tenant setups.
 *
 * Conditions a tenant reads never name the other AgentEnvironment (that would reveal another
 * tenant's namespace); the operator's log does, for the administrator.
 */
import type { Environment } from '../api/wire.ts';
import { REMOTE_METADATA } from '../crd/meta.ts';
import type { AgentEnvironment } from '../crd/resources.ts';

/** What the cluster administrator allows between tenants (operator settings, chart `tenancy.*`). */
export interface TenancyPolicy {
  /** Namespaces whose AgentEnvironments may adopt an environment they do not own; `*` for any. Default: none. */
  readonly adoptionNamespaces: readonly string[];
  /** Namespaces the operator's default API key serves; empty: every watched namespace. */
  readonly defaultKeyNamespaces: readonly string[];
}

export const NO_GRANTS: TenancyPolicy = { adoptionNamespaces: [], defaultKeyNamespaces: [] };

/** Where an administrator grants adoption, as the messages name it. */
export const ADOPTION_GRANT_SETTING = 'the operator\'s --adoption-namespaces (chart value tenancy.adoptionNamespaces)';
export const DEFAULT_KEY_SETTING = 'the operator\'s --default-api-key-namespaces (chart value tenancy.defaultApiKeyNamespaces)';

const listed = (list: readonly string[], namespace: string): boolean => list.includes('*') || list.includes(namespace);

export function adoptionGranted(policy: TenancyPolicy, namespace: string): boolean {
  return listed(policy.adoptionNamespaces, namespace);
}

/** Whether the default organization key may serve AgentEnvironments of `namespace`. */
export function defaultKeyServes(policy: TenancyPolicy, namespace: string): boolean {
  return policy.defaultKeyNamespaces.length === 0 || listed(policy.defaultKeyNamespaces, namespace);
}

export type Ownership =
  | { readonly allowed: true; readonly basis: 'owned' | 'granted' }
  | { readonly allowed: false; readonly reason: 'AdoptionRefused' | 'OwnedElsewhere'; readonly message: string; readonly owner: string | undefined };

const tagOf = (remote: Environment): string | undefined => remote.metadata[REMOTE_METADATA.uid];

/** Rules 1 and 2: does this resource own the remote environment (grants aside)? */
export function owns(remote: Environment, env: AgentEnvironment): boolean {
  const tag = tagOf(remote);
  if (tag !== undefined) return tag === env.metadata?.uid;
  return !env.spec.environmentId && env.status?.environmentId === remote.id;
}

/** May this pass act on (write to, observe, dispatch for) the remote environment? Rules 1–4 above. */
export function ownership(remote: Environment, env: AgentEnvironment, policy: TenancyPolicy): Ownership {
  if (owns(remote, env)) return { allowed: true, basis: 'owned' };
  const namespace = env.metadata?.namespace ?? '';
  const owner = tagOf(remote) !== undefined ? (remote.metadata[REMOTE_METADATA.owner] ?? 'unknown') : undefined;
  const elsewhere = (): Ownership => ({
    allowed: false,
    reason: 'OwnedElsewhere',
    message: `environment ${remote.id} now belongs to another AgentEnvironment (its agentenv.io/uid tag is not this resource's); it is left untouched. Delete this resource (nothing is deleted remotely) or adopt another environment`,
    owner,
  });
  if (!env.spec.environmentId) return elsewhere();
  const granted = adoptionGranted(policy, namespace);
  const full = env.spec.managementPolicy === 'Full';
  if (granted && full && owner !== undefined && env.status?.environmentId === remote.id) return elsewhere();
  if (granted) return { allowed: true, basis: 'granted' };
  const why =
    owner !== undefined
      ? `environment ${remote.id} belongs to another AgentEnvironment (in this cluster or another)`
      : `environment ${remote.id} was not created by an AgentEnvironment (no agentenv.io/uid tag in its metadata)`;
  return {
    allowed: false,
    reason: 'AdoptionRefused',
    message: `${why}; adopting an environment this resource does not own needs the cluster administrator's grant: namespace ${namespace} listed in ${ADOPTION_GRANT_SETTING}. Nothing was read into status or sent to the environment`,
    owner,
  };
}
