/**
 * What happens to a claimed work item behind the poll loop: record → ack → hand over.
 *
 * 1. **Vet.** A work item that is not a session is force-stopped unserved (no runner exists for it).
 *    An item with no per-item token while the environment has no environment key is not
 *    acknowledged: the only other credential is the organization API key, which never goes to a
 *    sandbox (the queue reclaims the item; the dispatcher reports `EnvironmentKeyRequired`).
 * 1b. **Bind** (late binding, `spec.selfHosted.warmPool`): take a ready warm Pod for the item — a
 *    relabel guarded by the Pod's resourceVersion, so two hand-offs can never take one Pod, and a
 *    taken Pod is spent: it serves this item or is deleted, never another. Taken BEFORE the record
 *    so the record can name it; none ready (or a session that already has a record: it resumes
 *    cold, on its workspace) → served cold as before.
 * 2. **Record.** Create (or find, by deterministic name) the AgentSession; a session returning with
 *    a new item moves `spec.workId` forward. Dispatch latency is measured to here. A record that
 *    acknowledges the item already — in its status, or held by this process until the session
 *    reconciler writes it — is a duplicate delivery: done (`alreadyAcknowledged`).
 * 3. **Secret**, only when the poll carried a per-item secret: create the per-item Secret owned by
 *    the record; AlreadyExists is success. Without one the record is complete as created (the
 *    sidecar mounts the environment key's own Secret; `spec.workSecret: false` says so).
 * 4. **Ack** — only now. 409 = the item is no longer acknowledgeable: settle the record against
 *    the item (`settle.ts`, which reads the record afresh: the ack may have taken seconds). Any other failure leaves the record claimed for the settle pass (the
 *    item stays `queued` and is acknowledged there, or re-delivered and converges here).
 *    An item that could not be recorded (1–3) is never acknowledged: the queue reclaims it after
 *    `reclaim_older_than_ms`.
 * 5. **Hand over** the acknowledged item (the ack reply) to the session reconciler, in memory. It
 *    creates the Pod and then writes the acknowledgement into the record's status together with
 *    the Pod's phase: one status write per item instead of two. Should the process die first, the
 *    record is settled as usual (`settle.ts`): its item is `starting` or later, and the record is
 *    complete, so it is adopted.
 *
 * A hand-off never throws; its result tells the dispatcher whether a record now holds the slot.
 * The credential is never logged (only Secret names are).
 */
import { ConflictError } from '../../api/errors.ts';
import type { Work } from '../../api/wire.ts';
import { decodeWorkSecret } from '../../api/work-secret.ts';
import type { AgentEnvironment, AgentSession } from '../../crd/resources.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { DispatchCredentials } from './credentials.ts';
import { ensureWorkSecret, NotRecordableError, recordClaim, type RecordStore } from '../record/record.ts';
import { isAcknowledged } from '../record/status.ts';
import { settleSession, type SettleAction, type SettleDeps } from './settle.ts';

export type HandOffOutcome =
  | 'acknowledged'
  | 'alreadyAcknowledged'
  | 'unsupported'
  | 'noSandboxCredential'
  | 'notRecorded'
  | 'ackFailed'
  | `settled:${SettleAction}`;

export interface HandOffResult {
  readonly outcome: HandOffOutcome;
  /** A record of this item exists and is not finished (it holds a session slot). */
  readonly holdsSlot: boolean;
}

/** The narrow recorder the hand-off reports to (prom-client stays in telemetry). */
export interface HandOffRecorder {
  dispatched(latencyMs: number): void;
  acknowledged(): void;
  settled(action: string): void;
}

export interface HandOffDeps extends SettleDeps {
  readonly api: SettleDeps['api'] & {
    stopWork(environmentId: string, workId: string, stop: { force?: boolean }): Promise<Work>;
  };
  readonly store: RecordStore;
  readonly metrics: HandOffRecorder;
  readonly logger: Logger;
  /** Milliseconds on a monotonic clock (for latency). Default `performance.now`. */
  readonly monotonic?: () => number;
  /** Hands an acknowledged item (the ack reply) to the session reconciler, which creates its Pod and records the acknowledgement. */
  readonly onAcknowledged: (namespace: string, name: string, acknowledged: Work, record: AgentSession) => void;
  /** The warm pool; absent: every item is served cold. */
  readonly warm?: WarmBinder;
}

/** The warm pool, as the hand-off sees it (implemented by pool/, wired in sessions/index.ts). */
export interface WarmBinder {
  /** Take a ready warm Pod of `env` for this item; undefined: serve it cold. Never throws. */
  take(env: AgentEnvironment, sessionId: string, workId: string): Promise<WarmPodRef | undefined>;
  /** A taken Pod that will not serve its item: delete it (a taken Pod never returns to the pool). Never throws. */
  spend(env: AgentEnvironment, pod: WarmPodRef): Promise<void>;
}
export interface WarmPodRef {
  readonly name: string;
  readonly uid: string;
}

export interface ClaimedWork {
  readonly work: Work;
  readonly env: AgentEnvironment;
  readonly credentials: DispatchCredentials | undefined;
  readonly workerId: string;
  /** When the poll returned the item, on the `monotonic` clock. */
  readonly seenAt: number;
}

export async function handOff(deps: HandOffDeps, claimed: ClaimedWork): Promise<HandOffResult> {
  const { work, env } = claimed;
  // The item's logger is made when a line is written (rarely: failures, debug): a child logger's
  // bindings go through the redaction of credential keys, a share of a burst's CPU.
  let itemLog: Logger | undefined;
  const log = (): Logger => (itemLog ??= deps.logger.child({ workId: work.id, sessionId: work.data.id }));
  const monotonic = deps.monotonic ?? (() => performance.now());

  // 1. Vet.
  if (work.data.type !== 'session') {
    log().warn({ workType: work.data.type }, 'work item is not a session; force-stopping it unserved');
    await deps.api.stopWork(work.environment_id, work.id, { force: true }).catch((err: unknown) => {
      if (!(err instanceof ConflictError)) log().warn({ err }, 'force-stop of an unsupported work item failed');
    });
    return { outcome: 'unsupported', holdsSlot: false };
  }
  const workSecret = decodeWorkSecret(work.secret);
  const itemToken = workSecret?.sessions_token;
  if (!itemToken && !claimed.credentials?.sandbox) return { outcome: 'noSandboxCredential', holdsSlot: false };

  // 1b. Bind.
  const warmPod = await deps.warm?.take(env, work.data.id, work.id);

  // 2. Record.
  let recorded;
  try {
    recorded = await recordClaim(deps.store, env, {
      sessionId: work.data.id,
      workId: work.id,
      environmentId: work.environment_id,
      workerId: claimed.workerId,
      claimedAt: deps.now(),
      workSecret: Boolean(itemToken),
      ...(warmPod ? { warmPod } : {}),
    });
  } catch (err) {
    if (warmPod) await deps.warm?.spend(env, warmPod);
    log().warn({ err, reason: err instanceof NotRecordableError ? err.reason : undefined }, 'could not record the claimed work item; not acknowledging it (the queue reclaims it)');
    return { outcome: 'notRecorded', holdsSlot: false };
  }
  // A record that existed already does not name the Pod just taken: spend it.
  if (warmPod && recorded.session.spec.warmPod?.uid !== warmPod.uid) await deps.warm?.spend(env, warmPod);
  const recordedAt = monotonic();
  deps.metrics.dispatched(recordedAt - claimed.seenAt);
  const session = recorded.session;
  const name = session.metadata?.name ?? '';
  const namespace = session.metadata?.namespace ?? '';
  // A duplicate delivery of an item we acknowledged: the record shows it, or (until the session
  // reconciler writes it) this process holds it. Acking again would answer 409 and settle a
  // reading of the record taken before the item was served.
  if (isAcknowledged(session) || deps.acknowledgedHere?.(`${namespace}/${name}`, work.id)) return { outcome: 'alreadyAcknowledged', holdsSlot: true };

  // 3. Secret.
  if (itemToken && work.secret) {
    try {
      await ensureWorkSecret(deps.store, session, { token: itemToken, workSecret: work.secret });
    } catch (err) {
      log().warn({ err, session: name }, 'could not write the per-item Secret; not acknowledging (the settle pass or a re-delivery finishes the record)');
      return { outcome: 'notRecorded', holdsSlot: true };
    }
  }

  // 4. Ack.
  const securedAt = monotonic();
  let acked: Work;
  try {
    acked = await deps.api.ackWork(work.environment_id, work.id);
  } catch (err) {
    if (err instanceof ConflictError) {
      try {
        const action = await settleSession(deps, session, { complete: true });
        deps.metrics.settled(action);
        log().info({ session: name, action }, 'work item was no longer acknowledgeable; settled the record');
        return { outcome: `settled:${action}`, holdsSlot: action === 'adopted' || action === 'acknowledged' || action === 'none' };
      } catch (settleErr) {
        log().warn({ err: settleErr, session: name }, 'could not settle the record after a 409 on ack; the settle pass retries');
        return { outcome: 'ackFailed', holdsSlot: true };
      }
    }
    log().warn({ err, session: name }, 'ack failed; the settle pass retries it');
    return { outcome: 'ackFailed', holdsSlot: true };
  }
  deps.metrics.acknowledged();

  // 5. Hand over.
  deps.onAcknowledged(namespace, name, acked, session);
  const ms = (a: number, b: number): number => Math.round((b - a) * 10) / 10;
  if (deps.logger.isLevelEnabled('debug')) log().debug({ session: name, record: recorded.outcome, recordMs: ms(claimed.seenAt, recordedAt), secretMs: ms(recordedAt, securedAt), ackMs: ms(securedAt, monotonic()) }, 'work item recorded and acknowledged');
  return { outcome: 'acknowledged', holdsSlot: true };
}
