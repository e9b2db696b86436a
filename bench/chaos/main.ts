/**
 * `npm run chaos [-- --small] [-- --seed N]`: drive sessions through the local cluster while faults
 * are injected at seeded random times, then print the invariants as a table; exit 1 when one fails
 * (docs/chaos.md). Loopback only, bounded in sessions and time, and every process it starts is
 * stopped on the way out — on success, on failure and on Ctrl-C (and, through reaper, even if this
 * process is SIGKILLed).
 */
import { parseArgs } from 'node:util';
import { randomInt } from 'node:crypto';
import { loadavg } from 'node:os';
import { SessionDriver } from './drive.ts';
import { Injector } from './inject.ts';
import { LEADER_TIMINGS } from './replicas.ts';
import { outcome, verdict, waitForCleanup } from './report.ts';
import { chaosPlan, describeEvent, PROFILES } from './schedule.ts';
import { SESSION_TTL_SECONDS, startWorld, WORKSPACE_RETAIN_SECONDS, type World } from './world.ts';

/**
 * After the last session settled: TTL cleanup (and the workspaces' retention, for sessions stopped
 * but not terminated) gets this long before what is left counts as leaked.
 */
const CLEANUP_MS = Math.max(SESSION_TTL_SECONDS, WORKSPACE_RETAIN_SECONDS) * 1_000 + 45_000;

const { values } = parseArgs({
  options: {
    small: { type: 'boolean', default: false },
    seed: { type: 'string' },
    sessions: { type: 'string' },
    'keep-logs': { type: 'boolean', default: false },
  },
});
const base = PROFILES[values.small ? 'small' : 'full'];
// More sessions than the profile keep its rate and its faults: the windows and the deadline grow with the count.
const scaled = (n: number): typeof base => {
  const k = Math.max(1, n / base.sessions);
  return { ...base, sessions: n, enqueueMs: Math.round(base.enqueueMs * k), windowMs: Math.round(base.windowMs * k), deadlineMs: Math.round(base.deadlineMs * k) };
};
const profile = values.sessions ? scaled(Number(values.sessions)) : base;
const seed = values.seed !== undefined ? Number(values.seed) : process.env['AGENTENV_CHAOS_SEED'] ? Number(process.env['AGENTENV_CHAOS_SEED']) : randomInt(1, 2 ** 31 - 1);
if (!Number.isInteger(seed) || !Number.isInteger(profile.sessions) || profile.sessions < 1) {
  console.error('usage: npm run chaos -- [--small] [--seed <integer>] [--sessions <n>] [--keep-logs]');
  process.exit(2);
}

const startedAt = Date.now();
const print = (line: string): void => void process.stderr.write(`[chaos ${((Date.now() - startedAt) / 1000).toFixed(1).padStart(6)}s] ${line}\n`);
const plan = chaosPlan(profile, seed);
print(`seed ${seed}, profile ${profile.name}: ${profile.sessions} sessions over ${profile.enqueueMs / 1000} s, ${plan.events.length} faults; replay with: npm run chaos -- ${profile.name === 'small' ? '--small ' : ''}--seed ${seed}`);
print(`leader election: lease ${LEADER_TIMINGS.leaseDuration}, renew deadline ${LEADER_TIMINGS.renewDeadline}, retry ${LEADER_TIMINGS.retryPeriod}`);
for (const e of plan.events) print(`  plan ${describeEvent(e)}`);

const interrupted = new AbortController();
let world: World | undefined;
const onSignal = (signal: string): void => {
  print(`${signal}: stopping and cleaning up …`);
  interrupted.abort();
};
process.once('SIGINT', () => onSignal('SIGINT'));
process.once('SIGTERM', () => onSignal('SIGTERM'));

let exitCode: number;
try {
  world = await startWorld(profile, print);
  if (interrupted.signal.aborted) throw new Error('interrupted');
  const w = world;
  const start = Date.now();
  const loadAtStart = loadavg()[0]!;
  const driver = new SessionDriver(w, print);
  const injector = new Injector(w, print);
  const chaos = new AbortController();
  interrupted.signal.addEventListener('abort', () => chaos.abort(), { once: true });
  const injecting = injector.run(plan.events, start, chaos.signal);
  const deadline = start + profile.deadlineMs;
  const timeUp = setTimeout(() => chaos.abort(), profile.deadlineMs);
  // Every planned fault is applied (the plan's window ends before the last session is enqueued).
  await Promise.all([driver.run(plan.sessions, start, deadline, interrupted.signal), injecting]);
  clearTimeout(timeUp);
  if (interrupted.signal.aborted) throw new Error('interrupted');
  const driven = Math.round((Date.now() - start) / 1000);
  // The pool's own Pods are no leak while it is sized above 0: scale it to 0, so every warm Pod left counts.
  await w.scaleWarmPool(0);
  print(`sessions done after ${driven} s; warm pool scaled to 0; waiting for the finished sessions' cleanup (TTL ${SESSION_TTL_SECONDS} s, workspaces retained ${WORKSPACE_RETAIN_SECONDS} s after a stop) …`);
  const leaks = await waitForCleanup(w, CLEANUP_MS);
  const o = outcome(w, driver);
  const result = verdict(o, leaks, injector.log, { seed, profile: profile.name, sessions: profile.sessions, seconds: driven, lives: w.replicas.lives(), load: [loadAtStart, loadavg()[0]!] });
  console.log(result.table);
  for (const f of o.forcedDetails) console.log(`force-stopped ${f}`);
  for (const f of result.failures) console.log(`FAILED ${f}`);
  if (result.failures.length > 0) console.log(`replay: npm run chaos -- ${profile.name === 'small' ? '--small ' : ''}--seed ${seed}`);
  if (result.failures.length > 0 || values['keep-logs']) {
    await w.keepLogs(`.chaos/seed-${seed}`).then(() => console.log(`logs kept in .chaos/seed-${seed}/`), (err: unknown) => print(`could not keep the logs: ${String(err)}`));
  }
  exitCode = result.failures.length > 0 ? 1 : 0;
} catch (err) {
  print(`the run failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  exitCode = interrupted.signal.aborted ? 130 : 1;
} finally {
  print('stopping the operators, the emulator and the cluster …');
  await world?.stop();
  print(`done in ${Math.round((Date.now() - startedAt) / 1000)} s`);
}
process.exit(exitCode);
