import { describe, expect, it } from 'vitest';
import { OwnWrites } from './own-writes.ts';
import type { KubeObject } from './rest.ts';

const PODS = { plural: 'pods' };
const SESSIONS = { plural: 'agentsessions' };
const pod = (name: string, resourceVersion: string, namespace = 'ns'): KubeObject => ({ metadata: { name, namespace, resourceVersion } });
const ev = (type: string, object: KubeObject) => ({ type, object });

/** Whether `observe` reacted to the event. */
function reacts(own: OwnWrites, e: { type: string; object: KubeObject }, type = PODS): boolean {
  let reacted = false;
  own.observe(type, e, () => (reacted = true));
  return reacted;
}

describe('OwnWrites', () => {
  const cases: ReadonlyArray<{ rule: string; wrote: KubeObject[]; event: { type: string; object: KubeObject }; reacts: boolean; left: number }> = [
    { rule: 'the event of the version a pass wrote causes no pass', wrote: [pod('a', '5')], event: ev('add', pod('a', '5')), reacts: false, left: 0 },
    { rule: 'a later version of the same object is news', wrote: [pod('a', '5')], event: ev('update', pod('a', '6')), reacts: true, left: 1 },
    { rule: 'an object the controller never wrote is news', wrote: [], event: ev('add', pod('a', '5')), reacts: true, left: 0 },
    { rule: 'another object of the same name in another namespace is news', wrote: [pod('a', '5', 'other')], event: ev('add', pod('a', '5')), reacts: true, left: 1 },
    { rule: 'a delete is news and forgets the write', wrote: [pod('a', '5')], event: ev('delete', pod('a', '5')), reacts: true, left: 0 },
    { rule: 'every version written here is the controller own, whichever event comes first', wrote: [pod('a', '5'), pod('a', '7')], event: ev('update', pod('a', '5')), reacts: false, left: 1 },
    { rule: 'a write without a resourceVersion is not remembered', wrote: [pod('a', '')], event: ev('add', pod('a', '')), reacts: true, left: 0 },
  ];
  for (const c of cases) {
    it(c.rule, () => {
      const own = new OwnWrites();
      for (const w of c.wrote) own.wrote(PODS, w.metadata!.namespace!, w.metadata!.name!, w);
      expect(reacts(own, c.event)).toBe(c.reacts);
      expect(own.size).toBe(c.left);
    });
  }

  it('a version written earlier, whose event comes during a later write, causes no pass', () => {
    const own = new OwnWrites();
    own.wrote(SESSIONS, 'ns', 'a', pod('a', '5'));
    own.writing(SESSIONS, 'ns', 'a');
    expect(reacts(own, ev('add', pod('a', '5')), SESSIONS)).toBe(false);
    own.wrote(SESSIONS, 'ns', 'a', pod('a', '6'));
    expect(reacts(own, ev('update', pod('a', '6')), SESSIONS)).toBe(false);
    expect(own.size).toBe(0);
  });

  it('a version is consumed by its event: the same version seen again is news', () => {
    const own = new OwnWrites();
    own.wrote(PODS, 'ns', 'a', pod('a', '5'));
    expect(reacts(own, ev('add', pod('a', '5')))).toBe(false);
    expect(reacts(own, ev('update', pod('a', '5')))).toBe(true);
  });

  it('keeps resource types apart: a session write says nothing about a Pod of the same name', () => {
    const own = new OwnWrites();
    own.wrote(SESSIONS, 'ns', 'a', pod('a', '5'));
    expect(reacts(own, ev('add', pod('a', '5')))).toBe(true);
    expect(reacts(own, ev('update', pod('a', '5')), SESSIONS)).toBe(false);
  });

  describe('an event faster than the write reply waits for it', () => {
    const waiting = (): { own: OwnWrites; reacted: () => number } => {
      const own = new OwnWrites();
      let n = 0;
      own.writing(PODS, 'ns', 'a');
      own.observe(PODS, ev('add', pod('a', '5')), () => n++);
      return { own, reacted: () => n };
    };
    it('the written version is dropped when the reply names it', () => {
      const { own, reacted } = waiting();
      expect(reacted()).toBe(0);
      own.wrote(PODS, 'ns', 'a', pod('a', '5'));
      expect(reacted()).toBe(0);
      expect(own.size).toBe(0);
    });
    it('another version is reacted to once the reply names a different one', () => {
      const { own, reacted } = waiting();
      own.wrote(PODS, 'ns', 'a', pod('a', '6'));
      expect(reacted()).toBe(1);
      expect(reacts(own, ev('update', pod('a', '6')))).toBe(false);
    });
    it('a failed write reacts to what waited', () => {
      const { own, reacted } = waiting();
      own.wrote(PODS, 'ns', 'a', undefined);
      expect(reacted()).toBe(1);
    });
    it('a second event while writing makes the first news at once (only the latest can be the written one)', () => {
      const { own, reacted } = waiting();
      own.observe(PODS, ev('update', pod('a', '6')), () => undefined);
      expect(reacted()).toBe(1);
    });
    it('a delete while writing is reacted to at once, with what waited', () => {
      const { own, reacted } = waiting();
      let deleted = false;
      own.observe(PODS, ev('delete', pod('a', '5')), () => (deleted = true));
      expect([deleted, reacted()]).toEqual([true, 1]);
      expect(own.size).toBe(0);
    });
  });
});
