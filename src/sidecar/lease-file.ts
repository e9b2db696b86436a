/**
 * `lease.json` in the Pod-local state directory (an emptyDir): the lease survives a restart of the
 * sidecar container, so the restarted sidecar echoes the stamp it last saw instead of re-claiming
 * with `NO_HEARTBEAT` (which would answer 412 and read as a lost lease).
 *
 * Written atomically (temporary file + rename) so a sidecar killed mid-write leaves the previous
 * record, never a torn one. Not fsynced, on purpose: a container restart keeps the page cache, and
 * the only event that loses unsynced data — the node crashing — also loses the Pod and its
 * emptyDir. An fsync per beat would buy nothing and cost a disk flush every few seconds per Pod.
 */
import { join } from 'node:path';
import type { EndReason, LeaseRecord, WorkState } from './lease.ts';

// Through getBuiltinModule rather than an ESM import, which evaluates every export.
// Synchronous on purpose: a write of a hundred bytes to an emptyDir every few seconds costs less
// than the libuv thread pool the async API would start.
const { readFileSync, renameSync, writeFileSync } = process.getBuiltinModule('node:fs');

const FILE = 'lease.json';
const WORK_STATES: ReadonlySet<string> = new Set<WorkState>(['queued', 'starting', 'active', 'stopping', 'stopped']);
const END_REASONS: ReadonlySet<string> = new Set<EndReason>(['stop-requested', 'lease-lost', 'lease-expired', 'heartbeat-rejected', 'session-ended', 'terminated']);

export class LeaseFile {
  readonly path: string;
  readonly #tmp: string;
  #last = '';

  constructor(stateDir: string) {
    this.path = join(stateDir, FILE);
    this.#tmp = join(stateDir, `.${FILE}.tmp`);
  }

  /**
   * The record a previous life of this sidecar left for `workId`, or undefined when there is none,
   * it is unreadable, or it belongs to another work item (a reused directory is never trusted).
   */
  load(workId: string): LeaseRecord | undefined {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return undefined;
    }
    const record = parseLeaseRecord(text);
    return record?.work_id === workId ? record : undefined;
  }

  /** Replace the record (skipped when nothing changed since the last write). */
  save(record: LeaseRecord): void {
    const text = `${JSON.stringify(record)}\n`;
    if (text === this.#last) return;
    writeFileSync(this.#tmp, text, { mode: 0o600 });
    renameSync(this.#tmp, this.path);
    this.#last = text;
  }
}

/** Parse `lease.json`; undefined when malformed. */
export function parseLeaseRecord(text: string): LeaseRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const r = v as Record<string, unknown>;
  if (typeof r['work_id'] !== 'string' || typeof r['last_heartbeat'] !== 'string' || r['last_heartbeat'] === '') return undefined;
  if (typeof r['ttl_seconds'] !== 'number' || !(r['ttl_seconds'] > 0)) return undefined;
  const ended = typeof r['ended'] === 'string' && END_REASONS.has(r['ended']) ? (r['ended'] as EndReason) : undefined;
  return {
    work_id: r['work_id'],
    last_heartbeat: r['last_heartbeat'],
    ttl_seconds: r['ttl_seconds'],
    ...(ended ? { ended } : {}),
    ...(r['stopped'] === true ? { stopped: true } : {}),
    ...(r['lost'] === true ? { lost: true } : {}),
    ...(typeof r['state'] === 'string' && WORK_STATES.has(r['state']) ? { state: r['state'] as WorkState } : {}),
    ...(typeof r['lease_extended'] === 'boolean' ? { lease_extended: r['lease_extended'] } : {}),
    ...(typeof r['virtual_last_heartbeat'] === 'string' && r['virtual_last_heartbeat'] !== '' ? { virtual_last_heartbeat: r['virtual_last_heartbeat'] } : {}),
  };
}
