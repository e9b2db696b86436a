import { describe, expect, it } from 'vitest';
import { watchTermination } from './termination.ts';

function watch(statuses: Array<string | Error>, signal = new AbortController().signal) {
  const seen = { reads: 0, terminated: 0, errors: 0 };
  const done = watchTermination(
    {
      status: async () => {
        const s = statuses[Math.min(seen.reads++, statuses.length - 1)]!;
        if (s instanceof Error) throw s;
        return s;
      },
      intervalMs: 1,
      onTerminated: () => void seen.terminated++,
      onError: () => void seen.errors++,
    },
    signal,
  );
  return { seen, done };
}

describe('the runner\'s termination watch', () => {
  it('a session seen terminated ends the run once, and the watch stops reading', async () => {
    const { seen, done } = watch(['running', 'idle', 'terminated']);
    await done;
    expect(seen).toEqual({ reads: 3, terminated: 1, errors: 0 });
  });

  it('a failed read is reported and retried at the next interval, never taken for a termination', async () => {
    const { seen, done } = watch([new Error('503'), new Error('reset'), 'terminated']);
    await done;
    expect(seen).toEqual({ reads: 3, terminated: 1, errors: 2 });
  });

  it('an aborted run stops the watch without reading again', async () => {
    const stop = new AbortController();
    const { seen, done } = watch(['running'], stop.signal);
    await new Promise((r) => setTimeout(r, 20));
    stop.abort();
    await done;
    const reads = seen.reads;
    await new Promise((r) => setTimeout(r, 20));
    expect(seen.reads).toBe(reads);
    expect(seen.terminated).toBe(0);
  });
});
