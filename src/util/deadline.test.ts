import { describe, expect, it, vi } from 'vitest';
import { deadline } from './deadline.ts';

describe('deadline', () => {
  it('aborts with a TimeoutError when the time runs out, and says so', () => {
    vi.useFakeTimers();
    try {
      const d = deadline(100);
      vi.advanceTimersByTime(99);
      expect(d.signal.aborted).toBe(false);
      vi.advanceTimersByTime(1);
      expect(d.signal.aborted).toBe(true);
      expect((d.signal.reason as DOMException).name).toBe('TimeoutError');
      expect(d.timedOut()).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it("aborts with the caller's reason when a caller's signal aborts, not as a timeout", () => {
    const caller = new AbortController();
    const d = deadline(60_000, undefined, caller.signal);
    caller.abort(new Error('shutting down'));
    expect(d.signal.aborted).toBe(true);
    expect((d.signal.reason as Error).message).toBe('shutting down');
    expect(d.timedOut()).toBe(false);
    d.release();
  });

  it('is aborted from the start when a caller signal already is', () => {
    const d = deadline(60_000, AbortSignal.abort('gone'));
    expect(d.signal.aborted).toBe(true);
    expect(d.signal.reason).toBe('gone');
    d.release();
  });

  it('after release, neither the timer nor the caller reaches it, and the caller keeps no listener', () => {
    vi.useFakeTimers();
    try {
      const caller = new AbortController();
      const add = vi.spyOn(caller.signal, 'addEventListener');
      const remove = vi.spyOn(caller.signal, 'removeEventListener');
      const d = deadline(100, caller.signal);
      d.release();
      expect(remove).toHaveBeenCalledWith('abort', add.mock.calls[0]![1]);
      vi.advanceTimersByTime(1_000);
      caller.abort();
      expect(d.signal.aborted).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });
});
