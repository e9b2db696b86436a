/**
 * What the emulator remembers of the leases a work item had, for the admin read that lets a chaos
 * run count "two holders of one work item". The server already refuses a second claim of a held
 * lease (412), so two holders cannot overlap at the API; what can happen is a holder that keeps
 * beating after its lease lapsed and the item moved on to a new claim. Such a beat carries a stamp
 * of an earlier lease (stamps are strictly increasing, so "earlier" is a string comparison) and is
 * counted as a stale heartbeat.
 */
export type LeaseEnd = 'lapsed' | 'stopped';

export interface LeaseEntry {
  readonly claimed_at: string;
  last_heartbeat_at: string;
  ended_at: string | null;
  end: LeaseEnd | null;
}

export interface LeaseHistory {
  readonly leases: LeaseEntry[];
  /** Heartbeats refused (412) whose expected stamp belongs to an earlier lease of the item. */
  stale_heartbeats: number;
}

export const newLeaseHistory = (): LeaseHistory => ({ leases: [], stale_heartbeats: 0 });

/** A successful heartbeat: a claim opens a lease, a renewal moves its last stamp. */
export function noteBeat(h: LeaseHistory, stamp: string, claiming: boolean): void {
  const current = h.leases.at(-1);
  if (claiming || !current || current.end !== null) h.leases.push({ claimed_at: stamp, last_heartbeat_at: stamp, ended_at: null, end: null });
  else current.last_heartbeat_at = stamp;
}

/** A refused heartbeat: count it when its stamp is from a lease before the current one. */
export function noteRefusedBeat(h: LeaseHistory, expected: string): void {
  const current = h.leases.at(-1);
  if (current && h.leases.length > 1 && expected < current.claimed_at) h.stale_heartbeats++;
}

export function noteLeaseEnd(h: LeaseHistory, at: string, end: LeaseEnd): void {
  const current = h.leases.at(-1);
  if (current && current.end === null) Object.assign(current, { ended_at: at, end });
}
