import { describe, expect, it } from 'vitest';
import { WorkQueue, type QueueClock } from './queue.ts';

/** A manual clock: timers fire only when the test advances time. */
function manualClock(): QueueClock & { advance(ms: number): void } {
  let now = 0;
  let timers: Array<{ at: number; fn: () => void; id: number }> = [];
  let seq = 0;
  return {
    now: () => now,
    setTimeout: (fn, ms) => {
      const id = ++seq;
      timers.push({ at: now + ms, fn, id });
      return id;
    },
    clearTimeout: (h) => {
      timers = timers.filter((t) => t.id !== h);
    },
    advance(ms) {
      now += ms;
      const due = timers.filter((t) => t.at <= now).sort((a, b) => a.at - b.at);
      timers = timers.filter((t) => t.at > now);
      for (const t of due) t.fn();
    },
  };
}

describe('WorkQueue', () => {
  it('de-duplicates a key added twice', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('a');
    q.add('b');
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
    expect(q.depth).toBe(0);
  });

  it('never hands out a key that is being processed; re-adds it after done', async () => {
    const q = new WorkQueue();
    q.add('a');
    const first = await q.get();
    q.add('a'); // while processing
    expect(q.depth).toBe(0);
    q.done(first!);
    expect(q.depth).toBe(1);
    expect(await q.get()).toBe('a');
  });

  it('keeps the earliest of two delayed adds', () => {
    const clock = manualClock();
    const q = new WorkQueue({ clock });
    q.addAfter('a', 1000);
    q.addAfter('a', 100);
    q.addAfter('a', 5000);
    clock.advance(100);
    expect(q.depth).toBe(1);
  });

  it('backs off exponentially per key and resets on forget', () => {
    const clock = manualClock();
    const q = new WorkQueue({ clock, backoff: { baseMs: 100, capMs: 1000, jitter: 0 } });
    expect([q.addRateLimited('a'), q.addRateLimited('a'), q.addRateLimited('a')]).toEqual([100, 200, 400]);
    expect(q.addRateLimited('b')).toBe(100);
    q.forget('a');
    expect(q.addRateLimited('a')).toBe(100);
  });

  it('honours a minimum delay longer than the backoff (Retry-After)', () => {
    const clock = manualClock();
    const q = new WorkQueue({ clock, backoff: { baseMs: 100, capMs: 1000, jitter: 0 } });
    expect(q.addRateLimited('a', 3000)).toBe(3000);
    clock.advance(2999);
    expect(q.depth).toBe(0);
    clock.advance(1);
    expect(q.depth).toBe(1);
  });

  it('wakes a waiting worker and releases waiters on shutdown', async () => {
    const q = new WorkQueue();
    const waiting = q.get();
    q.add('x');
    expect(await waiting).toBe('x');
    const idle = q.get();
    q.shutDown();
    expect(await idle).toBeUndefined();
  });
});
