import { describe, expect, it } from 'vitest';
import { Capacity, RecordedSessions } from './capacity.ts';
import { dispatchRecord as record } from '../fixtures.test-support.ts';

describe('RecordedSessions and Capacity', () => {
  it('count unfinished records per environment from informer events', () => {
    const index = new RecordedSessions();
    const changed: string[] = [];
    index.onChange((k) => changed.push(k));
    index.apply({ type: 'add', object: record({ name: 'a' }) });
    index.apply({ type: 'add', object: record({ name: 'b', env: 'other' }) });
    expect(index.unfinished('ns/prod').size).toBe(1);
    const done = record({ name: 'a', status: { workId: 'work_2', phase: 'Succeeded' } });
    index.apply({ type: 'update', object: done, old: record({ name: 'a' }) });
    expect(index.unfinished('ns/prod').size).toBe(0);
    index.apply({ type: 'delete', object: record({ name: 'b', env: 'other' }) });
    expect(index.unfinished('ns/other').size).toBe(0);
    expect(changed).toContain('ns/prod');
  });

  it('a hand-off holds its slot until the cache shows its record, then it is counted once', () => {
    const recorded = new Set<string>();
    let t = 0;
    const c = new Capacity(() => recorded, { now: () => t, graceMs: 1_000 });
    c.begin('ns/a');
    expect(c.active()).toBe(1);
    c.end('ns/a', true);
    expect(c.active()).toBe(1); // the cache has not caught up yet
    recorded.add('ns/a');
    expect(c.active()).toBe(1); // counted once
    recorded.delete('ns/a');
    expect(c.active()).toBe(0);
    c.begin('ns/b');
    c.end('ns/b', false);
    expect(c.active()).toBe(0);
    c.begin('ns/c');
    c.end('ns/c', true);
    t = 2_000;
    expect(c.active()).toBe(0); // grace lapsed without the record ever appearing
  });
});
