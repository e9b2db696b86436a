/**
 * The versions of objects a controller's own passes wrote, so that the watch events of those
 * writes cause no pass of their own (client-go's controllers keep "expectations" for the same
 * reason). A pass that created a Pod, or wrote a status, knew the written object when it ended:
 * the event that brings the same resourceVersion back into the cache says nothing new, and a pass
 * on it would re-read the world only to decide nothing (in a burst, one read of the record, one
 * of a Secret and one API call per session).
 *
 * Rules:
 * - An event is the controller's own only when it carries exactly the resourceVersion its write
 *   returned; any other version (someone else's write, a later one) is news and causes a pass.
 * - An entry is consumed by the first event of its object, own or not, and dropped when the
 *   object is deleted: at most one entry per object, never a stale one that hides a later event.
 * - Record a write only once the pass that made it will end without asking for another pass on
 *   the same knowledge; a pass that fails is retried by the error policy, and the slow resync
 *   remains the safety net.
 */
import { keyOf } from './informer.ts';
import type { KubeObject, ResourceType } from './rest.ts';

export class OwnWrites {
  readonly #versions = new Map<string, string>();

  /** A pass of this controller wrote `written` (the write's reply, with its resourceVersion). */
  wrote(type: Pick<ResourceType, 'plural'>, written: KubeObject | undefined): void {
    const rv = written?.metadata?.resourceVersion;
    if (written && rv) this.#versions.set(`${type.plural}:${keyOf(written)}`, rv);
  }

  /**
   * Whether a watch event's object is exactly a version this controller wrote (then the event
   * needs no pass). Consumes the object's entry either way; a delete forgets it.
   */
  isOwn(type: Pick<ResourceType, 'plural'>, event: { readonly type: string; readonly object: KubeObject }): boolean {
    const key = `${type.plural}:${keyOf(event.object)}`;
    const rv = this.#versions.get(key);
    if (rv === undefined) return false;
    this.#versions.delete(key);
    return event.type !== 'delete' && rv === event.object.metadata?.resourceVersion;
  }

  /** Entries waiting for their event (observability and tests). */
  get size(): number {
    return this.#versions.size;
  }
}
