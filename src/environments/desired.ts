/**
 * Pure translation between an AgentEnvironment spec and the remote environment (no I/O).
 *
 * Rules (documented in deploy/samples/README.md):
 * - The spec fully describes the cloud config: an omitted `networking` means the API default
 *   (unrestricted), an omitted package list means none. So removing a field from the spec reverts
 *   it remotely, and anything changed in the Console is drift.
 * - `scope` is managed only when set (the API's default depends on the organization).
 * - `description`: omitted means empty; the API's null and "" are the same.
 * - Remote metadata is the spec's metadata plus the operator's reserved keys (the uid fence and the
 *   owner); other remote keys are drift and are deleted under Full management.
 */
import {
  PACKAGE_MANAGERS,
  type Environment,
  type EnvironmentConfig,
  type EnvironmentConfigParams,
  type EnvironmentCreateParams,
  type EnvironmentUpdateParams,
  type MetadataPatch,
  type Networking,
  type Packages,
} from '../api/wire.ts';
import type { AgentEnvironmentSpec } from '../crd/agent-environment.ts';
import { REMOTE_METADATA } from '../crd/meta.ts';

export interface ResourceIdentity {
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
}

/** The remote environment as the spec wants it (normalised to what the API returns). */
export interface DesiredEnvironment {
  readonly name: string;
  readonly description: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly config: EnvironmentConfig;
  readonly scope: 'organization' | 'account' | undefined;
}

export function desiredEnvironment(spec: AgentEnvironmentSpec, id: ResourceIdentity): DesiredEnvironment {
  return {
    name: spec.name ?? id.name,
    description: spec.description ?? '',
    metadata: { ...spec.metadata, [REMOTE_METADATA.uid]: id.uid, [REMOTE_METADATA.owner]: `${id.namespace}/${id.name}` },
    config: spec.selfHosted ? { type: 'self_hosted' } : cloudConfig(spec),
    scope: spec.scope,
  };
}

function cloudConfig(spec: AgentEnvironmentSpec): EnvironmentConfig {
  const n = spec.cloud?.networking;
  const networking: Networking =
    n?.type === 'limited'
      ? {
          type: 'limited',
          allowed_hosts: [...(n.allowedHosts ?? [])],
          allow_mcp_servers: n.allowMcpServers ?? false,
          allow_package_managers: n.allowPackageManagers ?? false,
        }
      : { type: 'unrestricted' };
  const p = spec.cloud?.packages ?? {};
  const packages = Object.fromEntries(PACKAGE_MANAGERS.map((m) => [m, [...(p[m] ?? [])]])) as Omit<Packages, 'type'>;
  return { type: 'cloud', networking, packages: { type: 'packages', ...packages } };
}

/** The create request for a desired environment. */
export function createParams(d: DesiredEnvironment): EnvironmentCreateParams {
  return {
    name: d.name,
    ...(d.description ? { description: d.description } : {}),
    metadata: { ...d.metadata },
    config: configParams(d.config),
    ...(d.scope ? { scope: d.scope } : {}),
  };
}

function configParams(c: EnvironmentConfig): EnvironmentConfigParams {
  if (c.type === 'self_hosted') return { type: 'self_hosted' };
  return { type: 'cloud', networking: c.networking, packages: c.packages };
}

/** One field that differs between the remote environment and the spec. */
export interface Drift {
  readonly field: string;
}

/**
 * The smallest update that makes `remote` match `desired`, and the list of drifted fields;
 * `update` is undefined when nothing differs (then a reconcile writes nothing).
 */
export function diffEnvironment(remote: Environment, desired: DesiredEnvironment): { update?: EnvironmentUpdateParams; drift: Drift[] } {
  const update: EnvironmentUpdateParams = {};
  const drift: Drift[] = [];
  if (remote.name !== desired.name) {
    update.name = desired.name;
    drift.push({ field: 'name' });
  }
  if ((remote.description ?? '') !== desired.description) {
    update.description = desired.description;
    drift.push({ field: 'description' });
  }
  if (desired.scope !== undefined && remote.scope !== desired.scope) {
    update.scope = desired.scope;
    drift.push({ field: 'scope' });
  }
  const metadata = metadataPatch(remote.metadata, desired.metadata);
  if (metadata) {
    update.metadata = metadata;
    drift.push(...Object.keys(metadata).map((k) => ({ field: `metadata.${k}` })));
  }
  const config = configPatch(remote.config, desired.config);
  if (config) {
    update.config = config.patch;
    drift.push(...config.fields.map((f) => ({ field: `config.${f}` })));
  }
  return drift.length ? { update, drift } : { drift };
}

function metadataPatch(remote: Readonly<Record<string, string>>, desired: Readonly<Record<string, string>>): MetadataPatch | undefined {
  const patch: MetadataPatch = {};
  for (const [k, v] of Object.entries(desired)) if (remote[k] !== v) patch[k] = v;
  // null deletes the key remotely.
  for (const k of Object.keys(remote)) if (!(k in desired)) patch[k] = null;
  return Object.keys(patch).length ? patch : undefined;
}

/**
 * Config differences. Only fields that differ are sent: the API keeps omitted fields at every level
 * of `config`. The type itself cannot change (the CRD refuses a switch, the API would too).
 */
function configPatch(remote: EnvironmentConfig, desired: EnvironmentConfig): { patch: EnvironmentConfigParams; fields: string[] } | undefined {
  if (remote.type !== desired.type) {
    // Adopting an environment of the other type: report it; the caller turns this into a condition.
    return { patch: configParams(desired), fields: ['type'] };
  }
  if (remote.type !== 'cloud' || desired.type !== 'cloud') return undefined;
  const fields: string[] = [];
  const patch: EnvironmentConfigParams = { type: 'cloud' };
  if (!sameNetworking(remote.networking, desired.networking)) {
    patch.networking = desired.networking;
    fields.push('networking');
  }
  const packages: Record<string, string[]> = {};
  for (const m of PACKAGE_MANAGERS) {
    if (!sameList(remote.packages[m], desired.packages[m])) {
      packages[m] = desired.packages[m];
      fields.push(`packages.${m}`);
    }
  }
  if (Object.keys(packages).length) patch.packages = { type: 'packages', ...packages };
  return fields.length ? { patch, fields } : undefined;
}

function sameNetworking(a: Networking, b: Networking): boolean {
  if (a.type !== b.type) return false;
  if (a.type === 'unrestricted' || b.type === 'unrestricted') return true;
  return (
    a.allow_mcp_servers === b.allow_mcp_servers &&
    a.allow_package_managers === b.allow_package_managers &&
    sameList(a.allowed_hosts, b.allowed_hosts)
  );
}

const sameList = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
