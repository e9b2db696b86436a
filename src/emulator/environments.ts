/**
 * Environments in the emulator: create, list, get, update, archive, delete, with the API's
 * defaults and merge rules. Choices where the reference is silent are listed in docs/emulator.md.
 */
import {
  METADATA_LIMITS,
  PACKAGE_MANAGERS,
  type Environment,
  type EnvironmentConfig,
  type EnvironmentConfigParams,
  type EnvironmentCreateParams,
  type EnvironmentUpdateParams,
  type Metadata,
  type MetadataPatch,
  type Networking,
  type NetworkingParams,
  type Packages,
  type PackagesParams,
} from '../api/wire.ts';
import { EmulatorError } from './errors.ts';
import { newId, rfc3339 } from './ids.ts';

export const DEFAULT_LIST_LIMIT = 20;
export const MAX_LIST_LIMIT = 100;

export function emptyPackages(): Packages {
  return { type: 'packages', apt: [], cargo: [], gem: [], go: [], npm: [], pip: [] };
}

/** Build a config from create params: cloud by default, every list present, booleans false. */
export function configFromParams(p: EnvironmentConfigParams | null | undefined): EnvironmentConfig {
  if (p?.type === 'self_hosted') return { type: 'self_hosted' };
  return {
    type: 'cloud',
    networking: mergeNetworking(undefined, p?.networking),
    packages: mergePackages(emptyPackages(), p?.packages),
  };
}

/** Apply update params to a config: omitted fields keep their value at every level. */
export function mergeConfig(current: EnvironmentConfig, p: EnvironmentConfigParams): EnvironmentConfig {
  if (p.type !== current.type) {
    throw new EmulatorError(400, `config.type cannot change from ${current.type} to ${p.type}`);
  }
  if (current.type !== 'cloud' || p.type !== 'cloud') return current;
  return {
    type: 'cloud',
    networking: p.networking == null ? current.networking : mergeNetworking(current.networking, p.networking),
    packages: p.packages == null ? current.packages : mergePackages(current.packages, p.packages),
  };
}

function mergeNetworking(current: Networking | undefined, p: NetworkingParams | null | undefined): Networking {
  if (!p || p.type === 'unrestricted') return p ? { type: 'unrestricted' } : (current ?? { type: 'unrestricted' });
  const base = current?.type === 'limited' ? current : { allowed_hosts: [], allow_mcp_servers: false, allow_package_managers: false };
  return {
    type: 'limited',
    allowed_hosts: p.allowed_hosts ?? base.allowed_hosts,
    allow_mcp_servers: p.allow_mcp_servers ?? base.allow_mcp_servers,
    allow_package_managers: p.allow_package_managers ?? base.allow_package_managers,
  };
}

function mergePackages(current: Packages, p: PackagesParams | null | undefined): Packages {
  const out: Packages = { ...current, type: 'packages' };
  for (const m of PACKAGE_MANAGERS) {
    const v = p?.[m];
    if (v != null) out[m] = [...v];
  }
  return out;
}

/** Enforce the metadata limits (16 keys, keys ≤ 64, values ≤ 512 characters). */
export function checkMetadata(m: Readonly<Record<string, string>>, field = 'metadata'): void {
  const keys = Object.keys(m);
  if (keys.length > METADATA_LIMITS.maxKeys) {
    throw new EmulatorError(400, `${field}: at most ${METADATA_LIMITS.maxKeys} keys are allowed (got ${keys.length})`);
  }
  for (const k of keys) {
    if (k.length === 0 || k.length > METADATA_LIMITS.maxKeyLength) {
      throw new EmulatorError(400, `${field}: keys must be 1-${METADATA_LIMITS.maxKeyLength} characters (got "${k.slice(0, 80)}")`);
    }
    if ((m[k] ?? '').length > METADATA_LIMITS.maxValueLength) {
      throw new EmulatorError(400, `${field}.${k}: values must be at most ${METADATA_LIMITS.maxValueLength} characters`);
    }
  }
}

/** Merge a metadata patch: a string upserts; null (and, when `emptyDeletes`, "") deletes the key. */
export function mergeMetadata(current: Metadata, patch: MetadataPatch, emptyDeletes: boolean): Metadata {
  const out = { ...current };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null || (emptyDeletes && v === '')) delete out[k];
    else out[k] = v;
  }
  return out;
}

export class EnvironmentStore {
  readonly #byId = new Map<string, Environment>();
  readonly #now: () => number;

  constructor(now: () => number) {
    this.#now = now;
  }

  all(): Environment[] {
    return [...this.#byId.values()];
  }

  get(id: string): Environment {
    const env = this.#byId.get(id);
    if (!env) throw new EmulatorError(404, `environment ${id} not found`);
    return env;
  }

  has(id: string): boolean {
    return this.#byId.has(id);
  }

  create(p: EnvironmentCreateParams): Environment {
    const metadata = { ...(p.metadata ?? {}) };
    checkMetadata(metadata);
    const at = rfc3339(this.#now());
    const env: Environment = {
      id: newId('env'),
      type: 'environment',
      name: p.name,
      description: p.description ?? '',
      metadata,
      config: configFromParams(p.config),
      scope: p.scope ?? 'organization',
      archived_at: null,
      created_at: at,
      updated_at: at,
    };
    this.#byId.set(env.id, env);
    return env;
  }

  update(id: string, p: EnvironmentUpdateParams): Environment {
    const env = this.get(id);
    if (env.archived_at) throw new EmulatorError(409, `environment ${id} is archived and cannot be updated`);
    const next: Environment = { ...env };
    if (p.name != null) next.name = p.name;
    if (p.description !== undefined) next.description = p.description ?? '';
    if (p.scope != null) next.scope = p.scope;
    if (p.metadata != null) {
      next.metadata = mergeMetadata(env.metadata, p.metadata, true);
      checkMetadata(next.metadata);
    }
    if (p.config != null) next.config = mergeConfig(env.config, p.config);
    next.updated_at = rfc3339(this.#now());
    this.#byId.set(id, next);
    return next;
  }

  archive(id: string): Environment {
    const env = this.get(id);
    if (env.archived_at) return env; // archiving twice is a no-op
    const at = rfc3339(this.#now());
    const next = { ...env, archived_at: at, updated_at: at };
    this.#byId.set(id, next);
    return next;
  }

  delete(id: string): void {
    this.get(id);
    this.#byId.delete(id);
  }

  /** Newest first; the cursor names the last item of the previous page. */
  list(opts: { limit?: number; includeArchived?: boolean; page?: string }): { data: Environment[]; next_page: string | null } {
    const limit = opts.limit ?? DEFAULT_LIST_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
      throw new EmulatorError(400, `limit must be an integer between 1 and ${MAX_LIST_LIMIT}`);
    }
    const sorted = this.all()
      .filter((e) => opts.includeArchived || !e.archived_at)
      .sort((a, b) => (a.created_at === b.created_at ? (a.id < b.id ? 1 : -1) : a.created_at < b.created_at ? 1 : -1));
    return pageAfter(sorted, opts.page, limit, (e) => [e.created_at, e.id], true);
  }
}

/**
 * A page of `items` (already sorted) after the cursor. The cursor is opaque to clients:
 * base64url of the sort key of the previous page's last item, so deletions between pages are safe.
 */
export function pageAfter<T>(items: T[], page: string | undefined, limit: number, key: (t: T) => [string, string], descending: boolean): { data: T[]; next_page: string | null } {
  let start = 0;
  if (page) {
    let cursor: [string, string];
    try {
      cursor = JSON.parse(Buffer.from(page.replace(/^page_/, ''), 'base64url').toString('utf8')) as [string, string];
      if (!Array.isArray(cursor) || cursor.length !== 2) throw new Error('bad cursor');
    } catch {
      throw new EmulatorError(400, 'page: invalid cursor');
    }
    const after = (t: T): boolean => {
      const [a, b] = key(t);
      const cmp = a === cursor[0] ? (b === cursor[1] ? 0 : b > cursor[1] ? 1 : -1) : a > cursor[0] ? 1 : -1;
      return descending ? cmp < 0 : cmp > 0;
    };
    start = items.findIndex(after);
    if (start < 0) start = items.length;
  }
  const data = items.slice(start, start + limit);
  const last = data[data.length - 1];
  const more = start + limit < items.length;
  return { data, next_page: more && last ? `page_${Buffer.from(JSON.stringify(key(last))).toString('base64url')}` : null };
}
