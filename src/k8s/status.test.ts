import { describe, expect, it } from 'vitest';
import type { Condition } from './conditions.ts';
import { KubeError } from './errors.ts';
import { resource, type KubeObject, type ResourceType } from './rest.ts';
import { applyCondition, STATUS_WRITE_ATTEMPTS, writeStatus } from './status.ts';

const WIDGETS = resource('example.io', 'v1', 'widgets', 'Widget');
type Widget = KubeObject & { status?: { phase?: string; seen?: string[] } };

const widget = (rv: string, status: Widget['status'], generation = 1): Widget => ({ metadata: { name: 'w', namespace: 'ns', resourceVersion: rv, generation }, ...(status ? { status } : {}) });
const conflict = () => new KubeError('Conflict', 'stale', { status: 409 });

/** An apiserver below unit level: replies scripted per call, every call recorded. */
function fakeRest(script: { replace?: (Widget | Error)[]; get?: (Widget | Error)[] }) {
  const calls: { verb: string; object?: Widget }[] = [];
  const take = <T>(q: (T | Error)[] | undefined, verb: string): T => {
    const next = q?.shift();
    if (next === undefined) throw new Error(`unscripted ${verb}`);
    if (next instanceof Error) throw next;
    return next;
  };
  return {
    calls,
    async get<T>(_t: ResourceType, _ns: string | undefined, _name: string): Promise<T> {
      calls.push({ verb: 'get' });
      return take<Widget>(script.get, 'get') as T;
    },
    async replace<T>(_t: ResourceType, _ns: string | undefined, object: T): Promise<T> {
      calls.push({ verb: 'replace', object: object as Widget });
      return take<Widget>(script.replace, 'replace') as T;
    },
  };
}

/** The decision of a pass: its phase, merged with whatever the fresh status already holds. */
const running = (current: Widget): NonNullable<Widget['status']> => ({ ...current.status, phase: 'Running' });

describe('writeStatus', () => {
  it('writes nothing when the status is unchanged', async () => {
    const rest = fakeRest({});
    const w = widget('1', { phase: 'Running' });
    expect(await writeStatus(rest, WIDGETS, w, running)).toBe(w);
    expect(rest.calls).toEqual([]);
  });

  it('replaces the status guarded by the resourceVersion it read', async () => {
    const stored = widget('2', { phase: 'Running' });
    const rest = fakeRest({ replace: [stored] });
    expect(await writeStatus(rest, WIDGETS, widget('1', { phase: 'Pending' }), running)).toBe(stored);
    expect(rest.calls).toEqual([{ verb: 'replace', object: widget('1', { phase: 'Running' }) }]);
  });

  it("merges the decision into the fresh status after a Conflict, keeping the other writer's fields", async () => {
    const fresh = widget('5', { phase: 'Pending', seen: ['dispatcher'] });
    const rest = fakeRest({ replace: [conflict(), widget('6', {})], get: [fresh] });
    await writeStatus(rest, WIDGETS, widget('1', { phase: 'Pending' }), running);
    expect(rest.calls.map((c) => c.verb)).toEqual(['replace', 'get', 'replace']);
    expect(rest.calls[2]?.object).toEqual(widget('5', { phase: 'Running', seen: ['dispatcher'] }));
  });

  it('gives way when the object read after a Conflict has a new generation', async () => {
    const rest = fakeRest({ replace: [conflict()], get: [widget('5', { phase: 'Pending' }, 2)] });
    expect(await writeStatus(rest, WIDGETS, widget('1', { phase: 'Pending' }), running)).toBeUndefined();
    expect(rest.calls.map((c) => c.verb)).toEqual(['replace', 'get']);
  });

  it('gives way when the caller says the decision no longer applies', async () => {
    const rest = fakeRest({ replace: [conflict()], get: [widget('5', { phase: 'Failed' })] });
    const stillApplies = (fresh: Widget) => fresh.status?.phase !== 'Failed';
    expect(await writeStatus(rest, WIDGETS, widget('1', { phase: 'Pending' }), running, { stillApplies })).toBeUndefined();
  });

  it('writes nothing after a Conflict when the fresh status already is the decision', async () => {
    const fresh = widget('5', { phase: 'Running' });
    const rest = fakeRest({ replace: [conflict()], get: [fresh] });
    expect(await writeStatus(rest, WIDGETS, widget('1', { phase: 'Pending' }), running)).toBe(fresh);
    expect(rest.calls.map((c) => c.verb)).toEqual(['replace', 'get']);
  });

  it(`throws the Conflict after ${STATUS_WRITE_ATTEMPTS} tries`, async () => {
    const tries = STATUS_WRITE_ATTEMPTS;
    const rest = fakeRest({
      replace: Array.from({ length: tries }, conflict),
      get: Array.from({ length: tries - 1 }, (_, i) => widget(String(i + 2), { phase: 'Pending' })),
    });
    await expect(writeStatus(rest, WIDGETS, widget('1', { phase: 'Pending' }), running)).rejects.toMatchObject({ reason: 'Conflict' });
    expect(rest.calls.filter((c) => c.verb === 'replace')).toHaveLength(tries);
  });

  it('returns undefined when the object is gone (at the write or at the re-read)', async () => {
    const gone = () => new KubeError('NotFound', 'gone', { status: 404 });
    expect(await writeStatus(fakeRest({ replace: [gone()] }), WIDGETS, widget('1', {}), running)).toBeUndefined();
    expect(await writeStatus(fakeRest({ replace: [conflict()], get: [gone()] }), WIDGETS, widget('1', {}), running)).toBeUndefined();
  });

  it('throws any other failure unchanged, without retrying it', async () => {
    const busy = new KubeError('TooManyRequests', 'slow down', { status: 429, retryAfterMs: 1_000 });
    const rest = fakeRest({ replace: [busy] });
    await expect(writeStatus(rest, WIDGETS, widget('1', {}), running)).rejects.toBe(busy);
    expect(rest.calls).toHaveLength(1);
  });
});

describe('applyCondition', () => {
  const at = new Date('2026-01-01T00:00:00Z');
  const dispatching = (status: 'True' | 'False', lastTransitionTime = at.toISOString()): Condition => ({ type: 'Dispatching', status, reason: status === 'True' ? 'Polling' : 'AtCapacity', message: 'm', lastTransitionTime });
  const withConditions = (conditions: Condition[]) => ({ metadata: { name: 'e', namespace: 'ns' }, status: { conditions } });
  const recorder = () => {
    const patches: { patch: unknown; type: string; opts: unknown }[] = [];
    return { patches, patch: async <T>(_t: ResourceType, _ns: string | undefined, _n: string, patch: unknown, type: string, opts: unknown) => (patches.push({ patch, type, opts }), {} as T) };
  };

  it('writes nothing when the object already carries the condition', async () => {
    const rest = recorder();
    const { lastTransitionTime: _, ...input } = dispatching('True');
    expect(await applyCondition(rest, WIDGETS, withConditions([dispatching('True')]), input, { fieldManager: 'agentenv-dispatcher', now: new Date('2026-02-01T00:00:00Z') })).toBe(false);
    expect(rest.patches).toEqual([]);
  });

  it('applies that one condition alone, forced, under its own field manager, keeping the transition time while the status holds', async () => {
    const rest = recorder();
    const ready: Condition = { type: 'Ready', status: 'True', reason: 'Available', message: '', lastTransitionTime: at.toISOString() };
    const later = new Date('2026-02-01T00:00:00Z');
    expect(await applyCondition(rest, WIDGETS, withConditions([ready, dispatching('True')]), { type: 'Dispatching', status: 'True', reason: 'Polling', message: 'new words' }, { fieldManager: 'agentenv-dispatcher', now: later })).toBe(true);
    expect(rest.patches).toEqual([
      {
        type: 'apply',
        opts: { subresource: 'status', force: true, fieldManager: 'agentenv-dispatcher' },
        patch: { apiVersion: 'example.io/v1', kind: 'Widget', metadata: { name: 'e', namespace: 'ns' }, status: { conditions: [{ ...dispatching('True'), message: 'new words' }] } },
      },
    ]);
  });
});
