/**
 * Long polls and the connection pool: every poller in flight has its own connection, so one
 * environment's poll never waits for another's (docs/scaling.md: with the polls in the 256-socket
 * pool of short calls, 1,000 idle environments were polled 0.256 times a second each).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CALL_CONNECTIONS } from '../../src/api/transport.ts';
import { ConnectionError } from '../../src/api/errors.ts';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { clientFor, emulator, faultHits, selfHosted } from '../support/emulator.ts';

let emu: RunningEmulator;
beforeEach(async () => {
  emu = await emulator();
});
afterEach(() => emu.close());

/** Poll `hits` until it stops growing (or reaches `target`): how many polls reached the server. */
async function arrived(target: number): Promise<number> {
  let last = -1;
  let still = 0;
  for (;;) {
    const hits = (await faultHits(emu.url))[0]?.hits ?? 0;
    if (hits >= target) return hits;
    still = hits === last ? still + 1 : 0;
    if (still >= 50) return hits; // no new poll for 50 rounds: the rest are queued client-side
    last = hits;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('long polls and the connection pool', () => {
  it('holds the long polls of 300 environments in flight at once, beyond the short-call pool', async () => {
    const environments = 300;
    expect(environments).toBeGreaterThan(CALL_CONNECTIONS);
    const admin = clientFor(emu);
    const envs = await Promise.all(Array.from({ length: environments }, (_, i) => selfHosted(admin, `env-${i}`)));
    // Every poll is held by the server (a reply that never comes in the test's time), and counted on arrival.
    emu.admin.setFaults([{ method: 'GET', path: '/v1/environments/*/work/poll', latency_ms: 600_000 }]);
    const stop = new AbortController();
    const polls = envs.map((e) => clientFor(emu).pollWork(e.id, { blockMs: 999, workerId: `w-${e.id}` }, { signal: stop.signal }).catch((err: unknown) => err));
    expect(await arrived(environments)).toBe(environments);
    // Short calls are not stuck behind the polls either.
    expect((await admin.getEnvironment(envs[0]!.id)).id).toBe(envs[0]!.id);
    stop.abort(new ConnectionError('test over'));
    expect((await Promise.all(polls)).every((r) => r instanceof ConnectionError)).toBe(true);
  });
});
