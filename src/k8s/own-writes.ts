/**
 * The versions of objects a controller's own passes wrote, so that the watch events of those
 * writes cause no pass of their own (client-go's controllers keep "expectations" for the same
 * reason). A pass that created a Pod, or wrote a status, knew the written object when it ended:
 * the event that brings the same resourceVersion back into the cache says nothing new, and a pass
 * on it would re-read the world only to decide nothing (in a burst, one read of the record, one
 * of a Secret and one API call per session).
 *
 * Flow, per object: `writing` (the pass is about to write) → `wrote` (the reply, or undefined when
 * the write failed) → the object's next event is matched against the reply's resourceVersion.
 *
 * Rules:
 * - An event is the controller's own only when it carries exactly the resourceVersion its write
 *   returned; any other version (someone else's write, a later one) is news and causes a pass.
 * - An event that arrives while the write is in flight (the watch can be faster than the reply)
 *   waits for the reply: then it is dropped when it is the written version, else reacted to. A
 *   failed write reacts to whatever waited.
 * - A written version is forgotten when its event comes; a delete forgets the object. A version
 *   whose event never comes (a relist skipped it) can hide nothing: no other write has its
 *   resourceVersion.
 * - A write is recorded only by a pass that ends on it; a pass that fails is retried by the
 *   error policy, and the slow resync remains the safety net.
 */
import { keyOf } from './informer.ts';
import type { KubeObject, ResourceType } from './rest.ts';

/** Per object: versions this controller wrote whose events have not come yet, and a write in flight with the event that waits for its reply. */
interface Entry {
  readonly own: Set<string>;
  writing: boolean;
  waiting?: { readonly rv: string | undefined; readonly react: () => void } | undefined;
}

type Type = Pick<ResourceType, 'plural'>;

export class OwnWrites {
  readonly #entries = new Map<string, Entry>();

  #entry(key: string): Entry {
    let e = this.#entries.get(key);
    if (!e) this.#entries.set(key, (e = { own: new Set(), writing: false }));
    return e;
  }

  #tidy(key: string, e: Entry): void {
    if (!e.writing && !e.waiting && e.own.size === 0) this.#entries.delete(key);
  }

  /** A pass is about to write `namespace/name`: its events wait for the write's reply. */
  writing(type: Type, namespace: string, name: string): void {
    this.#entry(`${type.plural}:${namespace}/${name}`).writing = true;
  }

  /** A write of `namespace/name` returned `written` (with its resourceVersion), or failed (undefined). */
  wrote(type: Type, namespace: string, name: string, written: KubeObject | undefined): void {
    const key = `${type.plural}:${namespace}/${name}`;
    const e = this.#entry(key);
    e.writing = false;
    const rv = written?.metadata?.resourceVersion;
    if (rv) e.own.add(rv);
    const waiting = e.waiting;
    e.waiting = undefined;
    // What waited is dropped when it is a version written here, else reacted to.
    if (waiting && !(waiting.rv !== undefined && e.own.delete(waiting.rv))) waiting.react();
    this.#tidy(key, e);
  }

  /** Call `react` for a watch event unless it is a version this controller wrote (see the rules). */
  observe(type: Type, event: { readonly type: string; readonly object: KubeObject }, react: () => void): void {
    const key = `${type.plural}:${keyOf(event.object)}`;
    const e = this.#entries.get(key);
    if (!e) return react();
    const rv = event.object.metadata?.resourceVersion;
    if (event.type === 'delete') {
      this.#entries.delete(key);
      e.waiting?.react();
      return react();
    }
    if (rv !== undefined && e.own.delete(rv)) return this.#tidy(key, e);
    if (e.writing) {
      // Only the latest event can be the version in flight: an earlier one is news now.
      e.waiting?.react();
      e.waiting = { rv, react };
      return;
    }
    react();
  }

  /** Objects with an entry (observability and tests). */
  get size(): number {
    return this.#entries.size;
  }
}
