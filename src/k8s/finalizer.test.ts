import { describe, expect, it } from 'vitest';
import { KubeError } from './errors.ts';
import { finalizer, type Cleanup, type FinalizerSteps } from './finalizer.ts';
import { resource, type KubeObject } from './rest.ts';

const WIDGETS = resource('example.io', 'v1', 'widgets', 'Widget');
const F = 'example.io/cleanup';

const widget = (opts: { finalizers?: string[]; deleting?: boolean }): KubeObject => ({
  metadata: { name: 'w', namespace: 'ns', resourceVersion: '7', ...(opts.finalizers ? { finalizers: opts.finalizers } : {}), ...(opts.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
});

function harness(cleanup: Cleanup<string> | Error = { done: true }, patchError?: Error) {
  const log: string[] = [];
  const patches: unknown[] = [];
  const rest = {
    async patch<T>(_t: unknown, _ns: unknown, _name: unknown, patch: unknown): Promise<T> {
      patches.push(patch);
      if (patchError) throw patchError;
      return {} as T;
    },
  };
  const steps: FinalizerSteps<KubeObject, string> = {
    name: F,
    added: 'added',
    released: 'released',
    apply: async () => (log.push('apply'), 'applied'),
    cleanup: async () => {
      log.push('cleanup');
      if (cleanup instanceof Error) throw cleanup;
      return cleanup;
    },
    onReleased: () => void log.push('onReleased'),
  };
  return { rest, steps, log, patches };
}

describe('finalizer', () => {
  it('adds the finalizer (guarded by resourceVersion, keeping the others) and returns before anything else runs', async () => {
    const h = harness();
    expect(await finalizer(h.rest, WIDGETS, widget({ finalizers: ['other'] }), h.steps)).toBe('added');
    expect(h.patches).toEqual([{ metadata: { finalizers: ['other', F], resourceVersion: '7' } }]);
    expect(h.log).toEqual([]);
  });

  it('applies a live object that carries it, and patches nothing', async () => {
    const h = harness();
    expect(await finalizer(h.rest, WIDGETS, widget({ finalizers: [F] }), h.steps)).toBe('applied');
    expect(h.log).toEqual(['apply']);
    expect(h.patches).toEqual([]);
  });

  it('removes it only after the cleanup reported done, then calls onReleased', async () => {
    const h = harness({ done: true });
    expect(await finalizer(h.rest, WIDGETS, widget({ finalizers: ['other', F], deleting: true }), h.steps)).toBe('released');
    expect(h.log).toEqual(['cleanup', 'onReleased']);
    expect(h.patches).toEqual([{ metadata: { finalizers: ['other'], resourceVersion: '7' } }]);
  });

  it('keeps it while the cleanup is not done, and returns the cleanup’s retry', async () => {
    const h = harness({ done: false, retry: 'draining' });
    expect(await finalizer(h.rest, WIDGETS, widget({ finalizers: [F], deleting: true }), h.steps)).toBe('draining');
    expect(h.patches).toEqual([]);
    expect(h.log).toEqual(['cleanup']);
  });

  it('keeps it when the cleanup throws, and throws that error', async () => {
    const boom = new Error('api down');
    const h = harness(boom);
    await expect(finalizer(h.rest, WIDGETS, widget({ finalizers: [F], deleting: true }), h.steps)).rejects.toBe(boom);
    expect(h.patches).toEqual([]);
  });

  it('never applies or cleans up a deleted object that no longer carries it', async () => {
    const h = harness();
    expect(await finalizer(h.rest, WIDGETS, widget({ finalizers: ['other'], deleting: true }), h.steps)).toBe('released');
    expect(h.log).toEqual([]);
    expect(h.patches).toEqual([]);
  });

  it('counts an object already gone at the removal as released', async () => {
    const h = harness({ done: true }, new KubeError('NotFound', 'gone', { status: 404 }));
    expect(await finalizer(h.rest, WIDGETS, widget({ finalizers: [F], deleting: true }), h.steps)).toBe('released');
    expect(h.log).toEqual(['cleanup', 'onReleased']);
  });

  it('throws a Conflict at the removal (someone changed the list): the cleanup runs again next pass', async () => {
    const h = harness({ done: true }, new KubeError('Conflict', 'stale', { status: 409 }));
    await expect(finalizer(h.rest, WIDGETS, widget({ finalizers: [F], deleting: true }), h.steps)).rejects.toMatchObject({ reason: 'Conflict' });
    expect(h.log).toEqual(['cleanup']);
  });
});
