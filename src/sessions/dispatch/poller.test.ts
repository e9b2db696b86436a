import { afterEach, describe, expect, it } from 'vitest';
import { AuthenticationError, RateLimitError, ServerError } from '../../api/errors.ts';
import type { Work } from '../../api/wire.ts';
import { silentLogger } from '../../telemetry/logger.ts';
import { Capacity } from './capacity.ts';
import type { HandOffResult } from './hand-off.ts';
import { Poller, type DispatchClock, type DispatchState } from './poller.ts';
import type { AdmissionVerdict } from './admission.ts';

/** A clock the test advances; sleeps resolve when their time comes. */
class FakeClock implements DispatchClock {
  t = 0;
  readonly #timers: Array<{ at: number; resolve: () => void }> = [];
  now = (): number => this.t;
  sleep = (ms: number, signal: AbortSignal): Promise<void> =>
    new Promise((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      const timer = { at: this.t + ms, resolve };
      this.#timers.push(timer);
      signal.addEventListener('abort', () => {
        this.#timers.splice(this.#timers.indexOf(timer), 1);
        reject(signal.reason);
      }, { once: true });
    });
  /** Move time forward, firing due timers in order and letting the loop react to each. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      this.#timers.sort((a, b) => a.at - b.at);
      const next = this.#timers[0];
      if (!next || next.at > end) break;
      this.#timers.shift();
      this.t = next.at;
      next.resolve();
    }
    this.t = end;
    await settle();
  }
}

const settle = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
};

let n = 0;
const workItem = (): Work => ({
  id: `work_${++n}`,
  type: 'work',
  environment_id: 'env_1',
  data: { id: `session_${n}`, type: 'session' },
  state: 'queued',
  metadata: {},
  created_at: new Date(0).toISOString(),
});

interface Harness {
  dispatcher: Poller;
  clock: FakeClock;
  polls: string[];
  maxConcurrent: () => number;
  reports: DispatchState[];
  handOffs: Work[];
  stop: () => Promise<void>;
}

const running: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of running.splice(0)) await stop();
});

/**
 * A dispatcher whose poll is scripted: `queue` items are returned one per poll; an empty queue
 * holds the poll for 999 ms of fake time (a long poll) and returns null. `fail` makes polls throw.
 */
function harness(opts: { maxSessions: number; maxPollers: number; queue?: Work[]; recorded?: Set<string>; handOff?: (w: Work) => Promise<HandOffResult>; fail?: () => Error | undefined; failAfterMs?: number; maxHandOffs?: number; admission?: () => AdmissionVerdict }): Harness {
  const clock = new FakeClock();
  const polls: string[] = [];
  const reports: DispatchState[] = [];
  const handOffs: Work[] = [];
  const queue = opts.queue ?? [];
  let concurrent = 0;
  let max = 0;
  const recorded = opts.recorded ?? new Set<string>();
  const dispatcher = new Poller({
    limits: { maxSessions: opts.maxSessions, maxPollers: opts.maxPollers },
    workerIdPrefix: 'op/uid',
    capacity: new Capacity(() => recorded, { now: clock.now }),
    poll: async (workerId, signal) => {
      polls.push(workerId);
      max = Math.max(max, ++concurrent);
      try {
        if (opts.failAfterMs) await clock.sleep(opts.failAfterMs, signal);
        const err = opts.fail?.();
        if (err) throw err;
        const item = queue.shift();
        if (item) return item;
        await clock.sleep(999, signal);
        return queue.shift() ?? null;
      } finally {
        concurrent--;
      }
    },
    sessionKey: (w) => `ns/${w.data.id}`,
    handOff: async (w) => {
      handOffs.push(w);
      return opts.handOff ? opts.handOff(w) : { outcome: 'acknowledged', holdsSlot: true };
    },
    report: (s) => reports.push(s),
    metrics: { polled: () => undefined },
    logger: silentLogger,
    clock,
    random: () => 0.5,
    ...(opts.maxHandOffs ? { maxHandOffs: opts.maxHandOffs } : {}),
    ...(opts.admission ? { admission: opts.admission } : {}),
  });
  const abort = new AbortController();
  const done = dispatcher.run(abort.signal);
  const stop = async (): Promise<void> => {
    abort.abort();
    await clock.advance(0);
    await done;
  };
  running.push(stop);
  return { dispatcher, clock, polls, maxConcurrent: () => max, reports, handOffs, stop };
}

describe('Poller: the poll loop of one environment', () => {
  it('runs one poller while idle and re-polls at once after each empty long poll', async () => {
    const h = harness({ maxSessions: 10, maxPollers: 4 });
    await h.clock.advance(10 * 999);
    expect(h.maxConcurrent()).toBe(1);
    expect(new Set(h.polls)).toEqual(new Set(['op/uid/0']));
    // One poll per 999 ms of long poll, no idle sleep in between.
    expect(h.polls.length).toBeGreaterThanOrEqual(10);
    expect(h.polls.length).toBeLessThanOrEqual(11);
    expect(h.reports).toEqual([{ dispatching: true }]);
  });

  it('never claims more than its free capacity, and work it cannot run stays queued', async () => {
    const queue = Array.from({ length: 8 }, workItem);
    const h = harness({ maxSessions: 5, maxPollers: 4, queue, recorded: new Set(['ns/already-running']) });
    await h.clock.advance(5_000);
    expect(h.handOffs).toHaveLength(4); // 5 slots, one taken by a recorded session
    expect(queue).toHaveLength(4);
    expect(h.dispatcher.figures.polling).toBe(0);
  });

  it('scales up to maxPollers while a burst is waiting and back to one when polls come back empty', async () => {
    const queue = Array.from({ length: 40 }, workItem);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    // Hand-offs hold their slot until released, so the poll loop must run alongside them (the
    // backlog bound is raised above the burst: it has a test of its own below).
    const h = harness({ maxSessions: 100, maxPollers: 4, queue, maxHandOffs: 64, handOff: async () => (await gate, { outcome: 'acknowledged', holdsSlot: true }) });
    await h.clock.advance(100);
    expect(queue).toHaveLength(0);
    expect(h.handOffs).toHaveLength(40);
    release();
    await h.clock.advance(5 * 999);
    expect(h.dispatcher.figures.target).toBe(1);
    const before = h.polls.length;
    await h.clock.advance(5 * 999);
    expect(h.dispatcher.figures.polling).toBe(1);
    expect(h.polls.length - before).toBeLessThanOrEqual(6);
  });

  it('claims no faster than it records: polling waits while the hand-off backlog is full', async () => {
    const queue = Array.from({ length: 20 }, workItem);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const h = harness({ maxSessions: 100, maxPollers: 4, queue, maxHandOffs: 5, handOff: async () => (await gate, { outcome: 'acknowledged', holdsSlot: true }) });
    await h.clock.advance(3_000);
    expect(h.handOffs).toHaveLength(5);
    expect(queue).toHaveLength(15);
    release();
    await h.clock.advance(100);
    expect(queue).toHaveLength(0);
  });

  it('uses up to maxPollers parallel polls, each with its own worker id', async () => {
    const h = harness({ maxSessions: 100, maxPollers: 3, queue: Array.from({ length: 30 }, workItem) });
    await h.clock.advance(2 * 999);
    expect(new Set(h.polls)).toEqual(new Set(['op/uid/0', 'op/uid/1', 'op/uid/2']));
  });

  it('frees the slot of a hand-off that did not record the item', async () => {
    const queue = Array.from({ length: 3 }, workItem);
    const h = harness({ maxSessions: 1, maxPollers: 1, queue, handOff: async () => ({ outcome: 'notRecorded', holdsSlot: false }) });
    await h.clock.advance(100);
    expect(h.handOffs).toHaveLength(3);
  });

  it('backs off on transient errors and never polls before Retry-After', async () => {
    let errors = 2;
    const h = harness({ maxSessions: 10, maxPollers: 4, fail: () => (errors-- > 0 ? new RateLimitError('slow down', { status: 429, retryAfterMs: 7_000 }) : undefined) });
    await h.clock.advance(6_999);
    expect(h.polls).toHaveLength(1);
    await h.clock.advance(1_500);
    expect(h.polls).toHaveLength(2);
    await h.clock.advance(8_500);
    expect(h.polls.length).toBeGreaterThanOrEqual(3);
  });

  it('backs off exponentially on server errors', async () => {
    const h = harness({ maxSessions: 10, maxPollers: 4, fail: () => new ServerError('down', { status: 503 }) });
    await h.clock.advance(60_000);
    // 0.75 s, 1.5 s, 3 s, 6 s, 12 s, 24 s (jitter 0.5 at random 0.5) → 7 polls in a minute, not hundreds.
    expect(h.polls.length).toBeGreaterThanOrEqual(6);
    expect(h.polls.length).toBeLessThanOrEqual(8);
    expect(h.reports).toEqual([]);
  });

  it('stops polling on a fatal 4xx, reports Dispatching=False, retries slowly and at once after a credential change', async () => {
    let refuse = true;
    const h = harness({ maxSessions: 10, maxPollers: 4, fail: () => (refuse ? new AuthenticationError('invalid x-api-key', { status: 401 }) : undefined) });
    await h.clock.advance(59_000);
    expect(h.polls).toHaveLength(1);
    expect(h.reports).toEqual([{ dispatching: false, reason: 'CredentialsInvalid', message: expect.stringContaining('refused') }]);
    await h.clock.advance(2_000);
    expect(h.polls).toHaveLength(2); // the slow retry
    refuse = false;
    h.dispatcher.credentialsChanged();
    await h.clock.advance(10);
    expect(h.polls).toHaveLength(3);
    await h.clock.advance(1_000); // the long poll answers: the credential works again
    expect(h.reports.at(-1)).toEqual({ dispatching: true });
  });

  it('a refusal of a credential replaced while its poll was in flight polls again at once instead of pausing', async () => {
    let refuse = true;
    // The poll is answered 500 ms after it was sent; the rotation lands in between.
    const h = harness({ maxSessions: 10, maxPollers: 4, failAfterMs: 500, fail: () => (refuse ? new AuthenticationError('invalid x-api-key', { status: 401 }) : undefined) });
    await h.clock.advance(100);
    h.dispatcher.credentialsChanged();
    await h.clock.advance(500);
    refuse = false;
    await h.clock.advance(10);
    expect(h.polls).toHaveLength(2);
    expect(h.reports.some((r) => !r.dispatching)).toBe(false);
  });

  it('a status-only change of the environment does not lift a fatal pause; a spec change does', async () => {
    const h = harness({ maxSessions: 10, maxPollers: 4, fail: () => new AuthenticationError('invalid', { status: 401 }) });
    await h.clock.advance(1_000);
    expect(h.polls).toHaveLength(1);
    h.dispatcher.update({ maxSessions: 10, maxPollers: 4 }, false);
    await h.clock.advance(1_000);
    expect(h.polls).toHaveLength(1);
    h.dispatcher.update({ maxSessions: 10, maxPollers: 4 }, true);
    await h.clock.advance(10);
    expect(h.polls).toHaveLength(2);
  });

  it('pauses dispatch when maxSessions is lowered to the running count, and resumes when raised', async () => {
    const recorded = new Set(['ns/a', 'ns/b']);
    const h = harness({ maxSessions: 2, maxPollers: 4, recorded });
    await h.clock.advance(5_000);
    expect(h.polls).toHaveLength(0);
    h.dispatcher.update({ maxSessions: 3, maxPollers: 4 }, false);
    await h.clock.advance(10);
    expect(h.polls).toHaveLength(1);
  });

  it('a finished session frees capacity for the next poll', async () => {
    const recorded = new Set(['ns/a']);
    const h = harness({ maxSessions: 1, maxPollers: 1, recorded });
    await h.clock.advance(2_000);
    expect(h.polls).toHaveLength(0);
    recorded.clear();
    h.dispatcher.nudge();
    await h.clock.advance(10);
    expect(h.polls).toHaveLength(1);
  });

  it('claims nothing while the namespace admits no session Pod, says why, and polls again once it does', async () => {
    const queue = Array.from({ length: 3 }, workItem);
    let verdict: AdmissionVerdict = { open: false, reason: 'QuotaExhausted', message: 'session Pods do not fit ResourceQuota compute' };
    const h = harness({ maxSessions: 10, maxPollers: 4, queue, admission: () => verdict });
    await h.clock.advance(30_000);
    expect(h.polls).toHaveLength(0);
    expect(h.reports).toEqual([{ dispatching: false, reason: 'QuotaExhausted', message: 'session Pods do not fit ResourceQuota compute' }]);
    verdict = { open: true, room: Infinity };
    h.dispatcher.nudge();
    await h.clock.advance(10);
    expect(h.handOffs.length).toBeGreaterThan(0);
    expect(h.reports.at(-1)).toEqual({ dispatching: true });
  });

  it('holds no more polls at once than the quota has room for', async () => {
    const queue = Array.from({ length: 8 }, workItem);
    const recorded = new Set<string>();
    let room = 2;
    const h = harness({ maxSessions: 10, maxPollers: 4, queue, recorded, admission: () => ({ open: true, room }), handOff: async (w) => {
      recorded.add(`ns/${w.data.id}`);
      room--; // its Pod takes one of the quota's places
      return { outcome: 'acknowledged', holdsSlot: true };
    } });
    await h.clock.advance(5_000);
    expect(h.handOffs).toHaveLength(2);
    expect(queue).toHaveLength(6);
  });

  it('calls off a long poll in flight when the namespace stops admitting session Pods, so it claims nothing', async () => {
    const queue: Work[] = [];
    let verdict: AdmissionVerdict = { open: true, room: Infinity };
    const h = harness({ maxSessions: 10, maxPollers: 4, queue, admission: () => verdict });
    await h.clock.advance(100);
    expect(h.polls).toHaveLength(1); // a long poll is waiting
    verdict = { open: false, reason: 'LimitRangeRefused', message: 'a LimitRange refuses session Pods' };
    h.dispatcher.nudge();
    await h.clock.advance(10);
    queue.push(workItem()); // work arrives while the poll would still have been waiting
    await h.clock.advance(5_000);
    expect(h.handOffs).toEqual([]);
    expect(queue).toHaveLength(1);
    expect(h.reports.at(-1)).toMatchObject({ dispatching: false, reason: 'LimitRangeRefused' });
  });
});
