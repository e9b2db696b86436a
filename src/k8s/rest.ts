/**
 * A thin, generic REST client for the Kubernetes API on top of @kubernetes/client-node's
 * KubeConfig (which handles kubeconfig files, in-cluster credentials, TLS and token refresh).
 *
 * Why not the generated API classes: one code path for every resource type (core and custom),
 * one error mapping (`errors.ts`), explicit patch types, and one hook that observes every request
 * (metrics, and the "zero writes at steady state" tests).
 */
import type { RequestOptions as HttpsRequestOptions } from 'node:https';
import { RequestContext, type HttpMethod, type KubeConfig } from '@kubernetes/client-node';
import { Agent, request, type Dispatcher } from 'undici';
import { KubeError, kubeErrorFromStatus } from './errors.ts';

/** A resource type the client can address. `group` is '' for the core API. */
export interface ResourceType {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

export const resource = (group: string, version: string, plural: string, kind: string, namespaced = true): ResourceType => ({
  group,
  version,
  plural,
  kind,
  namespaced,
});

export const CORE = {
  pods: resource('', 'v1', 'pods', 'Pod'),
  secrets: resource('', 'v1', 'secrets', 'Secret'),
  configMaps: resource('', 'v1', 'configmaps', 'ConfigMap'),
  persistentvolumeclaims: resource('', 'v1', 'persistentvolumeclaims', 'PersistentVolumeClaim'),
  persistentvolumes: resource('', 'v1', 'persistentvolumes', 'PersistentVolume', false),
  events: resource('', 'v1', 'events', 'Event'),
  namespaces: resource('', 'v1', 'namespaces', 'Namespace', false),
  nodes: resource('', 'v1', 'nodes', 'Node', false),
  serviceAccounts: resource('', 'v1', 'serviceaccounts', 'ServiceAccount'),
  leases: resource('coordination.k8s.io', 'v1', 'leases', 'Lease'),
  networkPolicies: resource('networking.k8s.io', 'v1', 'networkpolicies', 'NetworkPolicy'),
  resourceQuotas: resource('', 'v1', 'resourcequotas', 'ResourceQuota'),
  tokenReviews: resource('authentication.k8s.io', 'v1', 'tokenreviews', 'TokenReview', false),
} as const;

export const apiVersionOf = (t: ResourceType): string => (t.group ? `${t.group}/${t.version}` : t.version);

/** Minimal shape of every Kubernetes object. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface KubeList<T> {
  metadata: { resourceVersion?: string; continue?: string };
  items: T[];
}

export type PatchType = 'merge' | 'json' | 'strategic' | 'apply';
const PATCH_CONTENT_TYPE: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
};

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete';

/** Observes every request: verb, resource plural (with `/status` for the subresource), HTTP status or error. */
export type RequestObserver = (r: { verb: Verb; resource: string; code: number | string; durationMs: number }) => void;

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  resourceVersion?: string;
  limit?: number;
  continue?: string;
}

export interface DeleteOptions {
  gracePeriodSeconds?: number;
  propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
  preconditions?: { uid?: string; resourceVersion?: string };
}

export interface RawResponse {
  status: number;
  body: Dispatcher.ResponseData['body'];
  headers: Record<string, string | string[] | undefined>;
}

export class KubeRest {
  readonly kubeConfig: KubeConfig;
  readonly #server: string;
  readonly #observe: RequestObserver | undefined;
  #authHeaders: { readonly headers: Record<string, string>; readonly at: number } | undefined;
  readonly #fieldManager: string;
  /** One keep-alive connection pool for every request (see #dispatcherFor). */
  #agent: Agent | undefined;

  constructor(kubeConfig: KubeConfig, options: { observe?: RequestObserver; fieldManager?: string } = {}) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    this.kubeConfig = kubeConfig;
    this.#server = cluster.server.replace(/\/+$/, '');
    this.#observe = options.observe;
    this.#fieldManager = options.fieldManager ?? 'agentenv';
  }

  path(t: ResourceType, namespace?: string, name?: string, subresource?: string): string {
    let p = t.group ? `/apis/${t.group}/${t.version}` : `/api/${t.version}`;
    if (t.namespaced && namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
    p += `/${t.plural}`;
    if (name) p += `/${encodeURIComponent(name)}`;
    if (subresource) p += `/${subresource}`;
    return p;
  }

  async get<T extends KubeObject>(t: ResourceType, namespace: string | undefined, name: string): Promise<T> {
    return this.#json<T>('get', t, 'GET', this.path(t, namespace, name));
  }

  async list<T extends KubeObject>(t: ResourceType, namespace?: string, opts: ListOptions = {}): Promise<KubeList<T>> {
    return this.#json<KubeList<T>>('list', t, 'GET', this.path(t, namespace), { query: { ...opts } });
  }

  /** Every object (follows `continue` tokens). */
  async listAll<T extends KubeObject>(t: ResourceType, namespace?: string, opts: Omit<ListOptions, 'continue'> = {}): Promise<KubeList<T>> {
    const items: T[] = [];
    let cont: string | undefined;
    let resourceVersion: string | undefined;
    do {
      const page: KubeList<T> = await this.list<T>(t, namespace, { limit: 500, ...opts, ...(cont ? { continue: cont } : {}) });
      items.push(...page.items);
      cont = page.metadata.continue || undefined;
      resourceVersion = page.metadata.resourceVersion;
    } while (cont);
    return { metadata: { ...(resourceVersion ? { resourceVersion } : {}) }, items };
  }

  /**
   * POST. `dryRun`: the apiserver runs the whole admission chain (quota, LimitRange, webhooks) and
   * stores nothing — the same RBAC as a create, and what a real create would answer.
   */
  async create<T extends KubeObject>(t: ResourceType, namespace: string | undefined, obj: T, opts: { dryRun?: boolean } = {}): Promise<T> {
    return this.#json<T>('create', t, 'POST', this.path(t, namespace), {
      body: { apiVersion: apiVersionOf(t), kind: t.kind, ...obj },
      query: { fieldManager: this.#fieldManager, ...(opts.dryRun ? { dryRun: 'All' } : {}) },
    });
  }

  /** PUT with the object's resourceVersion as an optimistic lock (Conflict when stale). */
  async replace<T extends KubeObject>(t: ResourceType, namespace: string | undefined, obj: T, subresource?: 'status'): Promise<T> {
    const name = obj.metadata?.name;
    if (!name) throw new Error(`replace ${t.kind}: metadata.name is required`);
    return this.#json<T>('update', t, 'PUT', this.path(t, namespace, name, subresource), {
      body: { apiVersion: apiVersionOf(t), kind: t.kind, ...obj },
      query: { fieldManager: this.#fieldManager },
      subresource,
    });
  }

  async patch<T extends KubeObject>(
    t: ResourceType,
    namespace: string | undefined,
    name: string,
    patch: unknown,
    type: PatchType,
    opts: { subresource?: 'status'; force?: boolean; fieldManager?: string } = {},
  ): Promise<T> {
    // A server-side apply by a loop that owns different fields names its own manager (`fieldManager`).
    const query: Record<string, string | boolean> = { fieldManager: opts.fieldManager ?? this.#fieldManager };
    if (type === 'apply' && opts.force) query['force'] = true;
    return this.#json<T>('patch', t, 'PATCH', this.path(t, namespace, name, opts.subresource), {
      body: patch,
      contentType: PATCH_CONTENT_TYPE[type],
      query,
      subresource: opts.subresource,
    });
  }

  async delete(t: ResourceType, namespace: string | undefined, name: string, opts: DeleteOptions = {}): Promise<void> {
    const body = { apiVersion: 'v1', kind: 'DeleteOptions', ...opts };
    await this.#json('delete', t, 'DELETE', this.path(t, namespace, name), { body });
  }

  /**
   * Open a streaming request (watches). The caller consumes and destroys `body`.
   * Throws a KubeError for a non-2xx reply.
   */
  async stream(t: ResourceType, namespace: string | undefined, query: Record<string, string | number | boolean | undefined>, signal: AbortSignal): Promise<RawResponse> {
    const started = performance.now();
    try {
      const res = await this.#send('GET', this.path(t, namespace), { query, signal });
      if (res.status >= 300) {
        const text = await res.body.text();
        throw kubeErrorFromStatus(res.status, parseJson(text), `watch ${t.plural}`);
      }
      this.#record('watch', t.plural, res.status, started);
      return res;
    } catch (err) {
      this.#record('watch', t.plural, err instanceof KubeError ? (err.status ?? err.reason) : 'connection_error', started);
      throw err;
    }
  }

  async #json<T>(
    verb: Verb,
    t: ResourceType,
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    path: string,
    opts: { body?: unknown; query?: Record<string, unknown>; contentType?: string; subresource?: string | undefined } = {},
  ): Promise<T> {
    const started = performance.now();
    const what = `${verb} ${t.plural}${opts.subresource ? `/${opts.subresource}` : ''}`;
    const label = `${t.plural}${opts.subresource ? `/${opts.subresource}` : ''}`;
    let res: RawResponse;
    try {
      res = await this.#send(method, path, opts);
    } catch (err) {
      this.#record(verb, label, 'connection_error', started);
      throw new KubeError('Unavailable', `${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const text = await res.body.text();
    this.#record(verb, label, res.status, started);
    if (res.status >= 300) {
      const retryAfter = res.headers['retry-after'];
      throw kubeErrorFromStatus(res.status, parseJson(text), what, Array.isArray(retryAfter) ? retryAfter[0] : retryAfter);
    }
    return parseJson(text) as T;
  }

  async #send(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    path: string,
    opts: { body?: unknown; query?: Record<string, unknown>; contentType?: string; signal?: AbortSignal },
  ): Promise<RawResponse> {
    const url = new URL(this.#server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined && v !== '') url.searchParams.set(k, String(v));
    const { headers: authHeaders, dispatcher } = await this.#authenticate(url, method);
    const headers: Record<string, string> = { ...authHeaders, accept: 'application/json' };
    if (opts.body !== undefined) headers['content-type'] = opts.contentType ?? 'application/json';
    const res = await request(url, {
      method,
      headers,
      body: opts.body === undefined ? null : JSON.stringify(opts.body),
      ...(dispatcher ? { dispatcher } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return { status: res.statusCode, body: res.body, headers: res.headers };
  }

  /**
   * Credentials for one request, worked out again at most once a second (tokens from files and exec plugins rotate),
   * and the connection pool to send it on.
   *
   * Why not client-node's own per-request dispatcher: @kubernetes/client-node 2.0 builds a new
   * undici Agent for every request, so each call paid a TLS handshake and left a connection behind,
   * and undici 8 negotiates HTTP/2, where aborting a watch stream could stall the next request on the
   * shared session for a minute (seen on shutdown). One HTTP/1.1 keep-alive pool per client, built
   * from the kubeconfig's TLS material on first use, avoids both. Proxied clusters keep client-node's path.
   */
  async #authenticate(url: URL, method: string): Promise<{ headers: Record<string, string>; dispatcher: Dispatcher | undefined }> {
    if (this.kubeConfig.getCurrentCluster()?.proxyUrl) {
      const ctx = new RequestContext(url.toString(), method as HttpMethod);
      await this.kubeConfig.applySecurityAuthentication(ctx);
      return { headers: ctx.getHeaders(), dispatcher: ctx.getDispatcher() };
    }
    // The credential headers are worked out again at most once a second: client-node re-reads a
    // token file (or runs an exec plugin's cache check) on every call, a measurable share of a
    // burst, while a rotated token is picked up within that second.
    const cached = this.#authHeaders;
    if (cached && this.#agent && performance.now() - cached.at < AUTH_REFRESH_MS) return { headers: cached.headers, dispatcher: this.#agent };
    const options: HttpsRequestOptions = {};
    await this.kubeConfig.applyToHTTPSOptions(options);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(options.headers ?? {})) if (v !== undefined) headers[k] = String(v);
    if (options.auth) headers['authorization'] = `Basic ${Buffer.from(options.auth).toString('base64')}`;
    this.#authHeaders = { headers, at: performance.now() };
    this.#agent ??= new Agent({
      allowH2: false,
      connect: {
        ...(options.ca ? { ca: options.ca } : {}),
        ...(options.cert ? { cert: options.cert } : {}),
        ...(options.key ? { key: options.key } : {}),
        ...(options.pfx ? { pfx: options.pfx } : {}),
        ...(options.passphrase ? { passphrase: options.passphrase } : {}),
        ...(options.rejectUnauthorized !== undefined ? { rejectUnauthorized: options.rejectUnauthorized } : {}),
        ...(options.servername ? { servername: options.servername } : {}),
        keepAlive: true,
        keepAliveInitialDelay: 30_000,
      },
    });
    return { headers, dispatcher: this.#agent };
  }

  /** Close the connection pool (after every watch and request of this client has ended). */
  async close(): Promise<void> {
    const agent = this.#agent;
    this.#agent = undefined;
    await agent?.close();
  }

  #record(verb: Verb, resource: string, code: number | string, started: number): void {
    this.#observe?.({ verb, resource, code, durationMs: performance.now() - started });
  }
}

/** How long worked-out credential headers are reused (see `#authenticate`). */
const AUTH_REFRESH_MS = 1_000;

function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}
