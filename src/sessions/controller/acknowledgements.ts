/**
 * Acknowledged work items on their way from the dispatcher to the session reconciler, held in
 * memory until the reconciler has written the acknowledgement into the record's status — together
 * with the Pod it created, in one status write instead of two (one for the acknowledgement, one for
 * the Pod).
 *
 * Rules:
 * - Only this process's own acknowledgements are held, keyed by record and work id: a record that
 *   moved on to another work item, or is gone, drops its entry.
 * - While an entry is held, the reconciler treats the record as acknowledged (the item *is*
 *   acknowledged: the ack reply came back), and the settle pass leaves the record alone.
 * - Entries are lost with the process, by design: a record whose acknowledgement was never written
 *   is settled against the API (`dispatch/settle.ts`): its item is `starting` or later and the record is
 *   complete, so it is adopted, Pod or no Pod yet.
 */
import type { Work } from '../../api/wire.ts';
import type { AgentSession } from '../../crd/resources.ts';
import { acknowledgedStatus, applyStatusPatch, isAcknowledged } from '../record/status.ts';

export interface Acknowledgement {
  /** The ack reply: a fresh reading of the item (state `starting`). */
  readonly work: Work;
  readonly at: Date;
  /** The record as the dispatcher wrote it (the create's reply), for the first pass only. */
  record?: AgentSession | undefined;
}

export class Acknowledgements {
  readonly #held = new Map<string, Acknowledgement>();

  add(key: string, work: Work, at: Date, record?: AgentSession): void {
    this.#held.set(key, { work, at, record });
  }

  /**
   * The record the dispatcher just wrote, once: the first pass after the hand-over decides on it
   * instead of reading it back (one read per session less in a burst). Later passes read afresh.
   * Nothing is lost if it is stale by then: every write the pass makes is guarded by its
   * resourceVersion, and a Conflict re-reads.
   */
  takeRecord(key: string): AgentSession | undefined {
    const held = this.#held.get(key);
    const record = held?.record;
    if (held) held.record = undefined;
    return record;
  }

  /**
   * Whether this process acknowledged `workId` for this record and the acknowledgement waits to be
   * written: a duplicate delivery of the item, or a settle pass over a record that does not show
   * it yet, is ours and must not be acknowledged or settled again.
   */
  holds(key: string, workId: string): boolean {
    return this.#held.get(key)?.work.id === workId;
  }

  /**
   * The acknowledgement still to be written for `session`'s current work item, if this process
   * holds one. An entry about another work item, or one the record already shows, is dropped.
   */
  pending(key: string, session: AgentSession): Acknowledgement | undefined {
    const held = this.#held.get(key);
    if (!held) return undefined;
    if (held.work.id !== session.spec.workId || isAcknowledged(session)) {
      this.#held.delete(key);
      return undefined;
    }
    return held;
  }

  /** The record now shows the acknowledgement (or is gone). */
  delete(key: string): void {
    this.#held.delete(key);
  }
}

/** `session` as it reads once the acknowledgement is written (for deciding; the write comes later). */
export function withAcknowledgement(session: AgentSession, ack: Acknowledgement): AgentSession {
  return { ...session, status: applyStatusPatch(session.status ?? {}, acknowledgedStatus(session, ack.at)) };
}
