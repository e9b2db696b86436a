/**
 * Last states of deleted session Pods, for a minute (the Pod informer's delete events): a pass
 * that runs after a Pod is gone still sees how it ended (phases.ts observePod). Pruned on each
 * delete, so it holds at most a minute of deletions.
 */
import type { Pod } from '../objects/pod-types.ts';

const DELETED_POD_MEMORY_MS = 60_000;

export class DeletedPods {
  readonly #deleted = new Map<string, { pod: Pod; at: number }>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  remember(pod: Pod): void {
    const now = this.#now();
    for (const [k, v] of this.#deleted) if (now - v.at > DELETED_POD_MEMORY_MS) this.#deleted.delete(k);
    this.#deleted.set(`${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`, { pod, at: now });
  }

  get(namespace: string, name: string): Pod | undefined {
    const e = this.#deleted.get(`${namespace}/${name}`);
    return e && this.#now() - e.at <= DELETED_POD_MEMORY_MS ? e.pod : undefined;
  }
}
