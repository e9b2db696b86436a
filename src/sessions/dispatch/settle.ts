/**
 * Settling records that were written but not acknowledged: after an operator restart (the process
 * died between "recorded" and "acknowledged"), after a 409 on our own ack, and on a cheap periodic
 * pass over the informer cache (no API call unless such a record exists).
 *
 * Facts the rules rest on:
 * - A record is *complete* when everything needed to run its item is stored: a record without a
 *   per-item secret (`spec.workSecret: false`) is complete as created; one with a per-item secret
 *   once its per-item Secret exists. The hand-off completes the record *before* it acks, and a
 *   session Pod is created only after the ack. So an item beyond `queued` whose record we never
 *   completed was acknowledged by another worker; an item beyond `starting` (its lease claimed)
 *   with no Pod of ours is held by another worker's lease.
 * - *Our Pod* is the one that serves the record's item: the warm Pod the record is bound to
 *   (`spec.warmPod`, that name AND uid: a later Pod may take a deleted one's name), else the Pod
 *   made for the item (record/names.ts `servingPodName`).
 * - Between our ack and the status write that records it, only this process knows the item is
 *   ours (controller/acknowledgements.ts): an acknowledgement *held here* settles nothing.
 * - A `starting` item whose record is complete is ambiguous: our ack may have succeeded before we died
 *   (or before a lost reply, whose retry answers 409), or the queue re-delivered it to another
 *   worker that acked it. We **adopt** it: its lease is still unclaimed, and the first heartbeat
 *   (`NO_HEARTBEAT`) is a compare-and-set, so exactly one sidecar wins it; a loser sees 412 and stops
 *   serving without stopping the item. Dropping it instead would strand our own acknowledged work
 *   until its unclaimed lease lapses back to the queue.
 *
 * | item state            | complete   | our Pod | action                                                    |
 * |-----------------------|------------|---------|-----------------------------------------------------------|
 * | (record acknowledged, or acknowledged here and not written yet) | | | none                          |
 * | gone (404)            |            |         | finish: Failed `WorkGone`                                 |
 * | queued                | yes        |         | acknowledge it now (409 → look again)                     |
 * | queued                | no         |         | release: the queue hands it out again (to us or others)   |
 * | starting              | yes        |         | adopt: record the acknowledgement                         |
 * | starting              | no         |         | release: another worker acknowledged it                   |
 * | active / stopping     |            | yes     | adopt                                                     |
 * | active / stopping     |            | no      | release: another worker holds the lease                   |
 * | stopped               |            |         | finish: Failed `NotAcknowledged`                          |
 *
 * **Release** deletes the record when it never ran work here (`status.workItems` is 0: the record
 * was never ours), removing the finalizer first because there is nothing to stop; a record with a
 * history (a returning session) is kept and marked Failed `NotAcknowledged`, without
 * `acknowledgedAt`, so nothing ever stops an item that is not ours.
 *
 * **Which reading.** The rules are applied to the record as stored, read afresh when a settle
 * begins, never to the reading the caller holds: a duplicate delivery's hand-off read the record
 * before its own ack (which answers 409 seconds later, the item meanwhile served and stopped under
 * our acknowledgement), and the informer cache lags our own status writes. Deciding on such a
 * reading finished served sessions as `NotAcknowledged` (the chaos run, docs/chaos.md). For the
 * same reason every write applies only while the record still does not acknowledge its item: one
 * acknowledged between our read and our write gives way (the write's Conflict re-reads it).
 */
import type { Work, WorkState } from '../../api/wire.ts';
import { ConflictError, NotFoundError } from '../../api/errors.ts';
import type { AgentSession } from '../../crd/resources.ts';
import { secretName, servingPodName } from '../record/names.ts';
import { writeSessionStatus, type RecordStore } from '../record/record.ts';
import { acknowledgedStatus, hasItemSecret, holdsCapacity, isAcknowledged, notAcknowledgedStatus, type StatusPatch } from '../record/status.ts';

export type SettleDecision =
  | { readonly action: 'none' }
  | { readonly action: 'acknowledge' }
  | { readonly action: 'adopt'; readonly workState: WorkState }
  | { readonly action: 'release'; readonly workState: WorkState; readonly message: string }
  | { readonly action: 'finish'; readonly workState: WorkState | undefined; readonly reason: string; readonly message: string };

export interface SettleFacts {
  /** The record as stored. */
  readonly session: AgentSession;
  /** This process acknowledged the record's item and has not written the acknowledgement yet. */
  readonly acknowledgedHere: boolean;
  /** The work item as the API reports it; undefined when it is gone (404). */
  readonly work: Work | undefined;
  /** Everything needed to run the item is stored (see above). */
  readonly complete: boolean;
  /** The uid of the Pod named for the record's item (`servingPodName`), when one exists. */
  readonly podUid: string | undefined;
}

/** Whether the Pod found under the record's serving name is ours: a bound warm Pod is that uid, no other. */
export function isOurPod(session: AgentSession, podUid: string | undefined): boolean {
  if (podUid === undefined) return false;
  const warm = session.spec.warmPod;
  return !warm || warm.uid === podUid;
}

/** The table above, as a pure function. */
export function settleDecision(f: SettleFacts): SettleDecision {
  if (isAcknowledged(f.session) || f.acknowledgedHere) return { action: 'none' };
  if (!f.work) return { action: 'finish', workState: undefined, reason: 'WorkGone', message: `work item ${f.session.spec.workId} no longer exists` };
  const state = f.work.state;
  switch (state) {
    case 'queued':
      return f.complete ? { action: 'acknowledge' } : { action: 'release', workState: state, message: 'the work item was claimed but not recorded completely; the queue hands it out again' };
    case 'starting':
      return f.complete ? { action: 'adopt', workState: state } : { action: 'release', workState: state, message: 'another worker acknowledged the work item' };
    case 'active':
    case 'stopping':
      return isOurPod(f.session, f.podUid) ? { action: 'adopt', workState: state } : { action: 'release', workState: state, message: 'another worker holds the lease of the work item' };
    case 'stopped':
      return { action: 'finish', workState: state, reason: 'NotAcknowledged', message: 'the work item was stopped before this cluster acknowledged it' };
  }
}

export type SettleAction = 'none' | 'acknowledged' | 'adopted' | 'dropped' | 'finished';

export interface SettleDeps {
  readonly store: RecordStore;
  readonly api: {
    getWork(environmentId: string, workId: string, opts?: { signal?: AbortSignal }): Promise<Work>;
    ackWork(environmentId: string, workId: string, opts?: { signal?: AbortSignal }): Promise<Work>;
  };
  readonly now: () => Date;
  /** This process acknowledged `workId` for the record `key` (`namespace/name`) and has not written it yet. Default: never. */
  readonly acknowledgedHere?: (key: string, workId: string) => boolean;
}

/**
 * Settle one record that does not acknowledge its work item: read it afresh, gather the facts,
 * decide, apply. `reading` names the record (and its work item): a record gone or moved on to
 * another item since is not settled. `known` skips lookups the caller already made (the hand-off
 * knows its record is complete). Throws on API/Kubernetes failures other than the ones the table
 * interprets; the caller retries on its next pass.
 */
export async function settleSession(deps: SettleDeps, reading: AgentSession, known: { complete?: boolean; work?: Work } = {}, signal?: AbortSignal): Promise<SettleAction> {
  const ns = reading.metadata?.namespace ?? '';
  const name = reading.metadata?.name ?? '';
  const session = await deps.store.getSession(ns, name);
  const movedOn = !session || (reading.metadata?.uid !== undefined && session.metadata?.uid !== reading.metadata.uid) || session.spec.workId !== reading.spec.workId;
  if (!session || movedOn) return 'none';
  const acknowledgedHere = deps.acknowledgedHere?.(`${ns}/${name}`, session.spec.workId) ?? false;
  if (isAcknowledged(session) || acknowledgedHere) return 'none';
  const opts = signal ? { signal } : {};
  let work = known.work ?? (await getWork(deps, session, opts));
  let complete = known.complete ?? (hasItemSecret(session) ? undefined : true);
  for (let round = 0; round < 3; round++) {
    const needsSecret = work?.state === 'queued' || work?.state === 'starting';
    const needsPod = work?.state === 'active' || work?.state === 'stopping';
    if (needsSecret && complete === undefined) complete = await deps.store.secretExists(ns, secretName(name, session.spec.workId));
    const podUid = needsPod ? await deps.store.podUid(ns, servingPodName(name, session.spec)) : undefined;
    const decision = settleDecision({ session, acknowledgedHere, work, complete: complete ?? false, podUid });
    switch (decision.action) {
      case 'none':
        return 'none';
      case 'acknowledge':
        try {
          await deps.api.ackWork(session.spec.environmentId, session.spec.workId, opts);
        } catch (err) {
          // 409: no longer acknowledgeable (or our own earlier ack landed): look at the item again.
          if (!(err instanceof ConflictError)) throw err;
          work = await getWork(deps, session, opts);
          continue;
        }
        await writeUnacknowledged(deps, session, acknowledgedStatus(session, deps.now()));
        return 'acknowledged';
      case 'adopt':
        return (await writeUnacknowledged(deps, session, { ...acknowledgedStatus(session, deps.now()), workState: decision.workState })) ? 'adopted' : 'none';
      case 'release':
        if ((session.status?.workItems ?? 0) === 0) {
          // Guarded by the resourceVersion read above: a record written since is not dropped (Conflict; the next pass looks again).
          await deps.store.dropSession(ns, session);
          return 'dropped';
        }
        return (await writeUnacknowledged(deps, session, notAcknowledgedStatus(session, decision.workState, 'NotAcknowledged', decision.message, deps.now()))) ? 'finished' : 'none';
      case 'finish':
        return (await writeUnacknowledged(deps, session, notAcknowledgedStatus(session, decision.workState, decision.reason, decision.message, deps.now()))) ? 'finished' : 'none';
    }
  }
  return 'none'; // the item keeps changing under us; the next pass looks again
}

/**
 * Write a settle decision: only while the record still stands for the same item and does not
 * acknowledge it. A record acknowledged meanwhile (our reconciler wrote the acknowledgement of our
 * own ack) is left to it: false.
 */
async function writeUnacknowledged(deps: SettleDeps, session: AgentSession, patch: StatusPatch): Promise<boolean> {
  const written = await writeSessionStatus(deps.store, session, patch, (fresh) => fresh.spec.workId === session.spec.workId && !isAcknowledged(fresh));
  return written !== undefined;
}

async function getWork(deps: SettleDeps, s: AgentSession, opts: { signal?: AbortSignal }): Promise<Work | undefined> {
  try {
    return await deps.api.getWork(s.spec.environmentId, s.spec.workId, opts);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/**
 * Which records a settle pass looks at: unfinished, not acknowledged, not `busy` in this process
 * (a hand-off in flight, or an acknowledgement held here), and claimed at least `graceMs` ago (a
 * hand-off of a previous leader may still be finishing). Returns them and when the next pass is
 * due for the ones still in their grace period.
 */
export function settleCandidates(
  records: readonly AgentSession[],
  busy: (key: string, session: AgentSession) => boolean,
  nowMs: number,
  graceMs: number,
): { due: AgentSession[]; nextDueMs: number | undefined } {
  const due: AgentSession[] = [];
  let nextDueMs: number | undefined;
  for (const s of records) {
    if (isAcknowledged(s) || !holdsCapacity(s) || s.metadata?.deletionTimestamp) continue;
    if (busy(`${s.metadata?.namespace ?? ''}/${s.metadata?.name ?? ''}`, s)) continue;
    const claimed = Date.parse(s.spec.claimedAt);
    const dueAt = (Number.isNaN(claimed) ? 0 : claimed) + graceMs;
    if (dueAt <= nowMs) due.push(s);
    else nextDueMs = Math.min(nextDueMs ?? Infinity, dueAt);
  }
  return { due, nextDueMs };
}
