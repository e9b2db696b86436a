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
 * - An entry is consumed by the first event of its object, own or not, and a delete always
 *   reacts and forgets it: at most one entry per object, never one that hides a later event.
 * - A write is recorded only by a pass that ends on it; a pass that fails is retried by the
 *   error policy, and the slow resync remains the safety net.
 */
import { keyOf } from './informer.ts';
import type { KubeObject, ResourceType } from './rest.ts';

type Entry =
  | { readonly state: 'writing'; waiting?: { readonly rv: string | undefined; readonly react: () => void } }
  | { readonly state: 'written'; readonly rv: string };

type Type = Pick<ResourceType, 'plural'>;

export class OwnWrites {
  readonly #entries = new Map<string, Entry>();

  /** A pass is about to write `namespace/name`: its events wait for the write's reply. */
  writing(type: Type, namespace: string, name: string): void {
    this.#entries.set(`${type.plural}:${namespace}/${name}`, { state: 'writing' });
  }

  /** The write of `namespace/name` returned `written` (with its resourceVersion), or failed (undefined). */
  wrote(type: Type, namespace: string, name: string, written: KubeObject | undefined): void {
    const key = `${type.plural}:${namespace}/${name}`;
    const entry = this.#entries.get(key);
    this.#entries.delete(key);
    const rv = written?.metadata?.resourceVersion;
    if (entry?.state === 'writing' && entry.waiting) {
      if (rv === undefined || entry.waiting.rv !== rv) entry.waiting.react();
      return;
    }
    if (rv) this.#entries.set(key, { state: 'written', rv });
  }

  /** Call `react` for a watch event unless it is the version this controller wrote (see the rules). */
  observe(type: Type, event: { readonly type: string; readonly object: KubeObject }, react: () => void): void {
    const key = `${type.plural}:${keyOf(event.object)}`;
    const entry = this.#entries.get(key);
    const rv = event.object.metadata?.resourceVersion;
    if (entry?.state === 'writing' && event.type !== 'delete') {
      // Only the latest event can be the written version: an earlier one is news now.
      if (entry.waiting && entry.waiting.rv !== rv) entry.waiting.react();
      entry.waiting = { rv, react };
      return;
    }
    if (entry) this.#entries.delete(key);
    if (entry?.state === 'writing') entry.waiting?.react();
    if (entry?.state === 'written' && event.type !== 'delete' && entry.rv === rv) return;
    react();
  }

  /** Entries open (observability and tests). */
  get size(): number {
    return this.#entries.size;
  }
}
