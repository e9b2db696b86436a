import { describe, expect, it } from 'vitest';
import { silentLogger } from '../telemetry/logger.ts';
import { KubeEventRecorder } from './events.ts';
import type { KubeObject, KubeRest } from './rest.ts';

/** A KubeRest whose creates wait until released, counting how many run at once. */
function slowRest() {
  const created: KubeObject[] = [];
  const waiting: Array<() => void> = [];
  let active = 0;
  let maxActive = 0;
  const rest = {
    create: async (_type: unknown, _ns: string, obj: KubeObject) => {
      maxActive = Math.max(maxActive, ++active);
      await new Promise<void>((r) => waiting.push(r));
      active--;
      created.push(obj);
      return obj;
    },
  } as unknown as KubeRest;
  const releaseAll = async (): Promise<void> => {
    while (waiting.length > 0) {
      for (const r of waiting.splice(0)) r();
      await new Promise((r) => setTimeout(r, 1));
    }
  };
  return { rest, created, releaseAll, maxActive: () => maxActive };
}

const pod = (name: string): KubeObject => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'ns', uid: `uid-${name}` } });

describe('KubeEventRecorder', () => {
  it('writes behind the work: bounded writes in flight, a bounded backlog, the overflow dropped and counted', async () => {
    const r = slowRest();
    const events = new KubeEventRecorder(r.rest, { component: 'test', logger: silentLogger, maxInFlight: 2, maxPending: 5 });
    for (let i = 0; i < 10; i++) events.record(pod(`p${i}`), 'Normal', 'Created', `created p${i}`);
    await r.releaseAll();
    expect(r.maxActive()).toBe(2);
    expect(events.dropped).toBe(3);
    expect(r.created.map((e) => (e as { message?: string }).message)).toEqual(['created p0', 'created p1', 'created p2', 'created p3', 'created p4', 'created p5', 'created p6']);
  });

  it('rate-limits Normal events across objects (a bucket refilled over time) and never Warning events', async () => {
    const r = slowRest();
    let now = 0;
    const events = new KubeEventRecorder(r.rest, { component: 'test', logger: silentLogger, normalBurst: 3, normalPerSecond: 2, now: () => now });
    for (let i = 0; i < 5; i++) events.record(pod(`n${i}`), 'Normal', 'PodCreated', `created n${i}`);
    for (let i = 0; i < 5; i++) events.record(pod(`w${i}`), 'Warning', 'Failed', `failed w${i}`);
    now = 1_000; // two more tokens
    for (let i = 5; i < 9; i++) events.record(pod(`n${i}`), 'Normal', 'PodCreated', `created n${i}`);
    await r.releaseAll();
    const messages = r.created.map((e) => (e as { message?: string }).message);
    expect(messages.filter((m) => m?.startsWith('created'))).toEqual(['created n0', 'created n1', 'created n2', 'created n5', 'created n6']);
    expect(messages.filter((m) => m?.startsWith('failed'))).toHaveLength(5);
    expect(events.limited).toBe(4);
  });
});
