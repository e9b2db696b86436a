/**
 * The two timer loops of an environment's dispatch, beside its poll loop (poller.ts): the settle
 * pass and the credential refresh. Each runs until its signal aborts and never throws (a failed
 * round is logged and tried again on the next tick).
 */
import type { AgentSession } from '../../crd/resources.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { CredentialSource } from './credentials.ts';
import type { KeyedLock } from './keyed-lock.ts';
import type { PodRefusal } from '../objects/pod-refusal.ts';
import type { DispatchClock, DispatchState } from './poller.ts';
import { settleCandidates, type SettleAction } from './settle.ts';

/** Dispatch pauses a new credential can lift, and how often the Secret is re-read meanwhile. */
const CREDENTIAL_REASONS: ReadonlySet<string> = new Set(['CredentialsInvalid', 'PermissionDenied', 'CredentialsMissing']);
export const CREDENTIAL_PAUSED_REFRESH_MS = 5_000;

/** Whether dispatch is paused for a reason a new credential can lift (the Secret is then re-read every 5 s). */
export function credentialPaused(state: DispatchState | undefined): boolean {
  return state !== undefined && !state.dispatching && CREDENTIAL_REASONS.has(state.reason);
}

export interface CredentialLoop {
  readonly credentials: CredentialSource;
  /** The last state reported for the `Dispatching` condition. */
  readonly state: () => DispatchState | undefined;
  readonly clock: DispatchClock;
  /** Default 60 s. */
  readonly refreshMs: number;
  readonly logger: Logger;
}

/**
 * Re-read the dispatch credential every `refreshMs` (60 s), and every 5 s while dispatch is paused
 * because the credential was refused or missing: the operator may not watch Secrets, and a person
 * who just put the right key in the Secret should not wait a minute for it to count.
 */
export async function credentialLoop(o: CredentialLoop, signal: AbortSignal): Promise<void> {
  // Tick at the short period; `refresh` reads the Secret only when the last read is older than
  // the period that applies (60 s, or 5 s while paused), so a tick that has nothing to do is free.
  const tick = Math.min(o.refreshMs, CREDENTIAL_PAUSED_REFRESH_MS);
  while (!signal.aborted) {
    try {
      await o.credentials.refresh(credentialPaused(o.state()));
    } catch (err) {
      o.logger.warn({ err }, 'credential re-read failed; keeping the last one');
    }
    await o.clock.sleep(tick, signal).catch(() => undefined);
  }
}

export interface ProbeLoop {
  /** The refusal held now, if any. */
  readonly held: () => PodRefusal | undefined;
  /** Dry-run the next session Pod: undefined when admitted, the refusal when refused; throws when the probe itself failed. */
  readonly probe: () => Promise<PodRefusal | undefined>;
  /** The probe's answer: undefined lifts the hold, a refusal keeps it (with its latest words). */
  readonly lift: (still: PodRefusal | undefined) => void;
  readonly clock: DispatchClock;
  /** Default 10 s (admission.ts `PROBE_INTERVAL_MS`). */
  readonly intervalMs: number;
  readonly logger: Logger;
}

/**
 * While a capacity refusal is held, dry-run the next session Pod every `intervalMs` (admission.ts,
 * step 3). Idle otherwise: a tick with nothing held makes no request. A probe that fails (the
 * apiserver unavailable, a webhook that could not be called) keeps the hold: nothing says a Pod
 * would be admitted.
 */
export async function probeLoop(o: ProbeLoop, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    await o.clock.sleep(o.intervalMs, signal).catch(() => undefined);
    if (signal.aborted || !o.held()) continue;
    try {
      o.lift(await o.probe());
    } catch (err) {
      o.logger.warn({ err }, 'the admission probe failed; dispatch stays held');
    }
  }
}

export interface SettleLoop {
  readonly namespace: string;
  /** The environment's AgentSessions from the informer cache. */
  readonly records: () => AgentSession[];
  /** A hand-off of this record runs in this process. */
  readonly inFlight: (key: string) => boolean;
  /** This process acknowledged the work item of this record and the acknowledgement waits in memory to be written. */
  readonly acknowledgedHere: (key: string, workId: string) => boolean;
  readonly locks: KeyedLock;
  readonly settle: (session: AgentSession, signal: AbortSignal) => Promise<SettleAction>;
  readonly settled: (action: SettleAction) => void;
  readonly clock: DispatchClock;
  /** Default 30 s. */
  readonly intervalMs: number;
  /** A record claimed less than this long ago is left to its hand-off. Default 5 s. */
  readonly graceMs: number;
  readonly logger: Logger;
}

/** Settle records written but not acknowledged: at start, then every interval (cache scan; API calls only for such records). */
export async function settleLoop(o: SettleLoop, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    const now = o.clock.now();
    const { due, nextDueMs } = settleCandidates(o.records(), (k, s) => o.inFlight(k) || o.acknowledgedHere(k, s.spec.workId), now, o.graceMs);
    for (const s of due) {
      if (signal.aborted) break;
      await settleOne(o, s, signal);
    }
    const wait = Math.max(100, Math.min(o.intervalMs, (nextDueMs ?? Infinity) - o.clock.now()));
    await o.clock.sleep(wait, signal).catch(() => undefined);
  }
}

async function settleOne(o: SettleLoop, s: AgentSession, signal: AbortSignal): Promise<void> {
  const key = `${o.namespace}/${s.metadata?.name ?? ''}`;
  try {
    const action = await o.locks.run(key, async () => {
      // Inside the lock a hand-off may just have finished this record: settling reads it afresh
      // (the cache may not show that hand-off's acknowledgement yet) and leaves one held here alone.
      return o.settle(s, signal);
    });
    if (action !== 'none') {
      o.settled(action);
      o.logger.info({ session: s.metadata?.name, workId: s.spec.workId, action }, 'settled a record that was not acknowledged');
    }
  } catch (err) {
    if (signal.aborted) return;
    o.logger.warn({ err, session: s.metadata?.name }, 'settling a record failed; retrying on the next pass');
  }
}
