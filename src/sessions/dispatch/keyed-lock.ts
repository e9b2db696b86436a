/**
 * A lock per session key: a hand-off and a settle of the same record never overlap, while work on
 * different records runs in parallel. A failed task does not poison the key (the next one runs).
 */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<unknown>>();
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return next;
  }
}
