/**
 * A list-then-watch cache of one resource type (optionally one namespace / selector), written for
 * the failure modes that bite client-node's own informer:
 *
 * 1. List everything, remember the list's resourceVersion, reconcile the cache against it
 *    (objects that vanished while we were not watching produce delete events).
 * 2. Watch from that resourceVersion with bookmarks. Every event moves the remembered version.
 * 3. The watch ends: server timeout (normal) → watch again from the remembered version;
 *    `410 Gone` / `ERROR` event with code 410 (version too old, e.g. after an apiserver or etcd
 *    restart or compaction) → list again (1); connection refused/reset → back off with jitter and
 *    watch again; no bytes for `idleTimeoutMs` (a silently dead connection) → abort and watch again.
 *
 * Consumers register handlers and read the cache; handlers run synchronously and should only
 * enqueue work.
 */
import { createInterface } from 'node:readline';
import type { Logger } from '../telemetry/logger.ts';
import { backoffDelay, type BackoffPolicy } from '../util/backoff.ts';
import { sleepUnlessAborted } from '../util/sleep.ts';
import { jsonEqual } from './conditions.ts';
import { isGone, KubeError } from './errors.ts';
import { apiVersionOf, type KubeObject, type KubeRest, type ResourceType } from './rest.ts';

export type InformerEvent<T> =
  | { readonly type: 'add'; readonly object: T }
  | { readonly type: 'update'; readonly object: T; readonly old: T }
  | { readonly type: 'delete'; readonly object: T };

export interface InformerOptions {
  readonly namespace?: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly logger: Logger;
  /** Backoff after failed list/watch attempts. Default 200 ms doubling to 30 s. */
  readonly backoff?: BackoffPolicy;
  /** Abort a watch that delivered nothing (not even a bookmark) for this long. Default 120 s. */
  readonly idleTimeoutMs?: number;
}

export const keyOf = (o: KubeObject): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/**
 * Whether an update changed what every controller reacts to: the spec (generation), a deletion, or
 * the finalizers. A controller's own status writes change none of these, so they cause no pass.
 */
export function lifecycleChanged(old: KubeObject, current: KubeObject): boolean {
  const a = old.metadata ?? {};
  const b = current.metadata ?? {};
  return a.generation !== b.generation || a.deletionTimestamp !== b.deletionTimestamp || !jsonEqual(a.finalizers ?? [], b.finalizers ?? []);
}

export class Informer<T extends KubeObject> {
  readonly type: ResourceType;
  readonly #rest: KubeRest;
  readonly #opts: InformerOptions;
  readonly #cache = new Map<string, T>();
  /** Secondary indexes, as client-go's Indexer: index name → (value → keys of the objects with it). */
  readonly #indexes = new Map<string, { of: (o: T) => string | undefined; keys: Map<string, Set<string>> }>();
  readonly #handlers: Array<(e: InformerEvent<T>) => void> = [];
  #resourceVersion: string | undefined;
  #synced = false;
  readonly #syncWaiters: Array<() => void> = [];
  /** Number of full lists performed (observability and tests: a 410 causes a relist). */
  lists = 0;

  constructor(rest: KubeRest, type: ResourceType, opts: InformerOptions) {
    this.#rest = rest;
    this.type = type;
    this.#opts = opts;
  }

  on(handler: (e: InformerEvent<T>) => void): this {
    this.#handlers.push(handler);
    return this;
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.#cache.get(`${namespace ?? ''}/${name}`);
  }

  /**
   * Keep an index of the cache by `of(object)` (no entry when undefined), so a lookup by that value
   * ({@link byIndex}) costs what it returns instead of a scan of the whole cache. Add indexes before `run`.
   */
  addIndex(name: string, of: (o: T) => string | undefined): this {
    const keys = new Map<string, Set<string>>();
    this.#indexes.set(name, { of, keys });
    for (const [key, o] of this.#cache) this.#indexAdd(keys, of(o), key);
    return this;
  }

  /** The cached objects whose index `name` value is `value`. */
  byIndex(name: string, value: string): T[] {
    const index = this.#indexes.get(name);
    if (!index) throw new Error(`informer ${this.type.plural}: no index ${name}`);
    const out: T[] = [];
    for (const key of index.keys.get(value) ?? []) {
      const o = this.#cache.get(key);
      if (o) out.push(o);
    }
    return out;
  }

  #indexAdd(keys: Map<string, Set<string>>, value: string | undefined, key: string): void {
    if (value === undefined) return;
    let set = keys.get(value);
    if (!set) keys.set(value, (set = new Set()));
    set.add(key);
  }

  /** Every cache write goes through here, so the indexes follow it. */
  #store(key: string, obj: T | undefined): void {
    const old = this.#cache.get(key);
    for (const { of, keys } of this.#indexes.values()) {
      const before = old ? of(old) : undefined;
      const after = obj ? of(obj) : undefined;
      if (before === after) continue;
      if (before !== undefined) {
        const set = keys.get(before);
        set?.delete(key);
        if (set?.size === 0) keys.delete(before);
      }
      this.#indexAdd(keys, after, key);
    }
    if (obj) this.#cache.set(key, obj);
    else this.#cache.delete(key);
  }

  list(filter?: (o: T) => boolean): T[] {
    const all = [...this.#cache.values()];
    return filter ? all.filter(filter) : all;
  }

  get hasSynced(): boolean {
    return this.#synced;
  }

  /**
   * Resolves `true` once the first list has filled the cache, or `false` as soon as `signal` aborts
   * first (a caller stopped before the sync must not wait forever).
   */
  synced(signal?: AbortSignal): Promise<boolean> {
    if (this.#synced) return Promise.resolve(true);
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onAbort = (): void => resolve(false);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#syncWaiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve(true);
      });
    });
  }

  /** Run until `signal` aborts. Never throws for API failures; it retries them. */
  async run(signal: AbortSignal): Promise<void> {
    const policy = this.#opts.backoff ?? { baseMs: 200, capMs: 30_000, jitter: 0.5 };
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (this.#resourceVersion === undefined) await this.#relist();
        await this.#watch(signal);
        failures = 0;
      } catch (err) {
        if (signal.aborted) break;
        if (isGone(err)) {
          this.#opts.logger.info({ resource: this.type.plural }, 'watch version expired (410 Gone); relisting');
          this.#resourceVersion = undefined;
          continue;
        }
        const delay = backoffDelay(failures++, policy);
        this.#opts.logger.warn({ resource: this.type.plural, err, delayMs: delay }, 'list/watch failed; retrying');
        await sleepUnlessAborted(delay, signal);
      }
    }
  }

  async #relist(): Promise<void> {
    const { namespace, labelSelector, fieldSelector } = this.#opts;
    const list = await this.#rest.listAll<T>(this.type, namespace, {
      ...(labelSelector ? { labelSelector } : {}),
      ...(fieldSelector ? { fieldSelector } : {}),
    });
    this.lists++;
    const seen = new Set<string>();
    for (const item of list.items) {
      // Lists omit apiVersion/kind on items; restore them so consumers see whole objects.
      const obj = { apiVersion: apiVersionOf(this.type), kind: this.type.kind, ...item } as T;
      seen.add(keyOf(obj));
      this.#upsert(obj);
    }
    for (const [key, old] of this.#cache) {
      if (!seen.has(key)) {
        this.#store(key, undefined);
        this.#emit({ type: 'delete', object: old });
      }
    }
    this.#resourceVersion = list.metadata.resourceVersion;
    if (!this.#synced) {
      this.#synced = true;
      for (const w of this.#syncWaiters.splice(0)) w();
    }
  }

  async #watch(outer: AbortSignal): Promise<void> {
    const ctrl = new AbortController();
    const signal = AbortSignal.any([outer, ctrl.signal]);
    const idleMs = this.#opts.idleTimeoutMs ?? 120_000;
    let idle = setTimeout(() => ctrl.abort(new Error('watch idle timeout')), idleMs);
    const touch = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => ctrl.abort(new Error('watch idle timeout')), idleMs);
    };
    try {
      const res = await this.#rest.stream(this.type, this.#opts.namespace, {
        watch: 1,
        allowWatchBookmarks: true,
        resourceVersion: this.#resourceVersion,
        // Let the server end the watch now and then (spread over 5–10 min), as client-go does.
        timeoutSeconds: 300 + Math.floor(Math.random() * 300),
        labelSelector: this.#opts.labelSelector,
        fieldSelector: this.#opts.fieldSelector,
      }, signal);
      const lines = createInterface({ input: res.body, crlfDelay: Infinity });
      try {
        for await (const line of lines) {
          touch();
          if (line.trim() === '') continue;
          this.#onEvent(JSON.parse(line) as { type: string; object: T & { code?: number; message?: string } });
        }
      } finally {
        lines.close();
        res.body.destroy();
      }
    } catch (err) {
      // Our own idle abort is a normal "watch again"; the caller's abort ends the loop.
      if (ctrl.signal.aborted && !outer.aborted) return;
      throw err;
    } finally {
      clearTimeout(idle);
    }
  }

  #onEvent(ev: { type: string; object: T & { code?: number; message?: string } }): void {
    const rv = ev.object.metadata?.resourceVersion;
    switch (ev.type) {
      case 'ADDED':
      case 'MODIFIED':
        this.#upsert(ev.object);
        break;
      case 'DELETED': {
        const key = keyOf(ev.object);
        const old = this.#cache.get(key);
        this.#store(key, undefined);
        this.#emit({ type: 'delete', object: old ?? ev.object });
        break;
      }
      case 'BOOKMARK':
        break;
      case 'ERROR': {
        const code = ev.object.code ?? 0;
        throw new KubeError(code === 410 ? 'Gone' : 'ServerError', `watch ${this.type.plural}: ${ev.object.message ?? 'error event'}`, { status: code });
      }
      default:
        return;
    }
    if (rv) this.#resourceVersion = rv;
  }

  #upsert(obj: T): void {
    const key = keyOf(obj);
    const old = this.#cache.get(key);
    if (old?.metadata?.resourceVersion === obj.metadata?.resourceVersion && old) return;
    this.#store(key, obj);
    this.#emit(old ? { type: 'update', object: obj, old } : { type: 'add', object: obj });
  }

  #emit(e: InformerEvent<T>): void {
    for (const h of this.#handlers) {
      try {
        h(e);
      } catch (err) {
        this.#opts.logger.error({ err, resource: this.type.plural }, 'informer handler threw');
      }
    }
  }
}
