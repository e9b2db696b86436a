import { describe, expect, it } from 'vitest';
import { OwnWrites } from './own-writes.ts';
import type { KubeObject } from './rest.ts';

const PODS = { plural: 'pods' };
const SESSIONS = { plural: 'agentsessions' };
const pod = (name: string, resourceVersion: string, namespace = 'ns'): KubeObject => ({ metadata: { name, namespace, resourceVersion } });

describe('OwnWrites', () => {
  const cases: ReadonlyArray<{ rule: string; wrote: KubeObject[]; event: { type: string; object: KubeObject }; own: boolean; left: number }> = [
    { rule: 'the event of the version a pass wrote is the controller own', wrote: [pod('a', '5')], event: { type: 'add', object: pod('a', '5') }, own: true, left: 0 },
    { rule: 'a later version of the same object is news', wrote: [pod('a', '5')], event: { type: 'update', object: pod('a', '6') }, own: false, left: 0 },
    { rule: 'an object the controller never wrote is news', wrote: [], event: { type: 'add', object: pod('a', '5') }, own: false, left: 0 },
    { rule: 'another object of the same name in another namespace is news', wrote: [pod('a', '5', 'other')], event: { type: 'add', object: pod('a', '5') }, own: false, left: 1 },
    { rule: 'a delete is news and forgets the write', wrote: [pod('a', '5')], event: { type: 'delete', object: pod('a', '5') }, own: false, left: 0 },
    { rule: 'only the latest write of an object counts', wrote: [pod('a', '5'), pod('a', '7')], event: { type: 'update', object: pod('a', '5') }, own: false, left: 0 },
    { rule: 'a write without a resourceVersion is not remembered', wrote: [pod('a', '')], event: { type: 'add', object: pod('a', '') }, own: false, left: 0 },
  ];
  for (const c of cases) {
    it(c.rule, () => {
      const own = new OwnWrites();
      for (const w of c.wrote) own.wrote(PODS, w);
      expect(own.isOwn(PODS, c.event)).toBe(c.own);
      expect(own.size).toBe(c.left);
    });
  }

  it('an entry is consumed by the first event: the same version seen again is news', () => {
    const own = new OwnWrites();
    own.wrote(PODS, pod('a', '5'));
    expect(own.isOwn(PODS, { type: 'add', object: pod('a', '5') })).toBe(true);
    expect(own.isOwn(PODS, { type: 'update', object: pod('a', '5') })).toBe(false);
  });

  it('keeps resource types apart: a session write says nothing about a Pod of the same name', () => {
    const own = new OwnWrites();
    own.wrote(SESSIONS, pod('a', '5'));
    expect(own.isOwn(PODS, { type: 'add', object: pod('a', '5') })).toBe(false);
    expect(own.isOwn(SESSIONS, { type: 'update', object: pod('a', '5') })).toBe(true);
  });
});
