/**
 * The pure decisions of an AgentEnvironment pass (no I/O; reconcile.ts and finalize.ts apply them):
 *
 * - {@link planRemote}: from what was found remotely and what the spec wants, the one API call to
 *   make, the events that report it and the conditions to write;
 * - {@link planApiFailure}: from an API failure, the verdict to write and how the pass is retried;
 * - {@link planDeletion}: from a deleted resource, whether to wait, orphan or apply its policy.
 */
import { AuthenticationError, classify, MalformedResponseError, PermissionDeniedError, type ApiError } from '../api/errors.ts';
import type { Environment, EnvironmentCreateParams, EnvironmentUpdateParams } from '../api/wire.ts';
import { CONDITIONS, RESERVED_METADATA_PREFIX } from '../crd/meta.ts';
import type { AgentEnvironment } from '../crd/resources.ts';
import { findCondition } from '../k8s/conditions.ts';
import type { EventType } from '../k8s/events.ts';
import { createParams, diffEnvironment, type DesiredEnvironment } from './desired.ts';
import type { RemoteLookup } from './gather.ts';
import { NO_GRANTS, owns, ownership, type Ownership, type TenancyPolicy } from './ownership.ts';
import { failed, notOk, ok, type Observation, type Verdict } from './status.ts';

/** An event a plan asks for, on the AgentEnvironment. */
export interface PlannedEvent {
  readonly type: EventType;
  readonly reason: string;
  readonly message: string;
}
const normal = (reason: string, message: string): PlannedEvent => ({ type: 'Normal', reason, message });
const warning = (reason: string, message: string): PlannedEvent => ({ type: 'Warning', reason, message });

/** What a pass reports about the remote environment once its call (if any) succeeded. */
export interface RemoteReport {
  /** The remote environment as this pass leaves it: as read, or the API's reply to the call. */
  readonly remote?: Environment;
  /** The id that was expected when no environment was found. */
  readonly environmentId?: string;
  readonly synced: Verdict;
  readonly ready: Verdict;
  /** Recorded once the call succeeded (none when it fails). */
  readonly events: readonly PlannedEvent[];
  /** A refusal's other owner (`namespace/name` from the remote tag): for the operator's log only, never status or events. */
  readonly otherOwner?: string;
}

/**
 * The one call of a pass. `events` are recorded before it (what this pass found); the report is
 * known at once when there is no call, and from the API's reply when there is one.
 */
export type RemotePlan =
  | { readonly call: 'none'; readonly events: readonly PlannedEvent[]; readonly report: RemoteReport }
  | { readonly call: 'create'; readonly params: EnvironmentCreateParams; readonly events: readonly PlannedEvent[]; readonly report: (created: Environment) => RemoteReport }
  | { readonly call: 'update'; readonly id: string; readonly params: EnvironmentUpdateParams; readonly events: readonly PlannedEvent[]; readonly report: (updated: Environment) => RemoteReport };

/**
 * Decide what to do about the remote environment. `env` carries the parsed spec and the status
 * read in this pass. Rules, in the order they are checked:
 *
 * Not found:
 * 1. ObserveOnly never creates: NotFound (with the id that was expected, if any).
 * 2. An adopted id (`spec.environmentId`) that does not exist is reported (RemoteNotFound), never replaced.
 * 3. Under Full, a managed environment is created; one deleted behind our back (an id was recorded)
 *    is recreated and reported (RemoteDeleted event, Synced reason Recreated).
 * Found (under ObserveOnly the operator's own metadata keys are left out of the comparison):
 * 0. Not this resource's and not granted (ownership.ts): AdoptionRefused or OwnedElsewhere, nothing
 *    is sent and nothing of the remote environment reaches status (a Warning once per new finding).
 * 4. Found by the uid fence: a Recovered event. Adopted and not yet in status: an Adopted event.
 * 5. A different type (cloud / self_hosted) cannot change: TypeMismatch, nothing is sent.
 * 6. Archived and differing: Archived, nothing is sent (an archived environment is read-only).
 * 7. Differing under Full: one update of the differing fields, then Updated (the spec changed) or
 *    DriftCorrected (the remote environment did).
 * 8. Differing under ObserveOnly: Drifted, with a Warning event once per new finding.
 * Ready is Archived for an archived environment, TypeMismatch on a mismatch, else Available.
 */
export function planRemote(lookup: RemoteLookup, desired: DesiredEnvironment, env: AgentEnvironment, tenancy: TenancyPolicy = NO_GRANTS): RemotePlan {
  if (!lookup.found) return planAbsent(lookup.id, desired, env);
  const own = ownership(lookup.environment, env, tenancy);
  return own.allowed ? planFound(lookup.environment, lookup.via, desired, env) : refused(own, env);
}

/** Rule 0: the verdict says why and what grant is needed; status keeps no remote detail. */
function refused(own: Extract<Ownership, { allowed: false }>, env: AgentEnvironment): RemotePlan {
  const verdict = notOk(own.reason, own.message);
  const events = findCondition(env.status?.conditions, CONDITIONS.synced)?.message === own.message ? [] : [warning(own.reason, own.message)];
  return reportOnly([], { synced: verdict, ready: verdict, events, ...(own.owner ? { otherOwner: own.owner } : {}) });
}

function planAbsent(id: string | undefined, desired: DesiredEnvironment, env: AgentEnvironment): RemotePlan {
  const spec = env.spec;
  if (spec.managementPolicy !== 'Full') {
    return reportOnly([], absent('NotFound', id ? `environment ${id} not found (ObserveOnly: nothing is created)` : 'no environment to observe: set spec.environmentId', id));
  }
  if (spec.environmentId) return reportOnly([], absent('RemoteNotFound', `adopted environment ${spec.environmentId} does not exist`, spec.environmentId));
  return {
    call: 'create',
    params: createParams(desired),
    events: id ? [warning('RemoteDeleted', `environment ${id} was deleted outside the operator; creating a new one`)] : [],
    report: (created) => ({
      remote: created,
      synced: id ? ok('Recreated', `environment ${id} was deleted outside the operator; created ${created.id} in its place`) : ok('Created', `created environment ${created.id}`),
      ready: ok('Available', `environment ${created.id} is available`),
      events: [normal('Created', `created ${created.config.type} environment ${created.id}`)],
    }),
  };
}

function planFound(remote: Environment, via: 'id' | 'fence', desired: DesiredEnvironment, env: AgentEnvironment): RemotePlan {
  const full = env.spec.managementPolicy === 'Full';
  const events: PlannedEvent[] = [];
  if (via === 'fence') events.push(normal('Recovered', `found environment ${remote.id} created earlier (uid fence)`));
  if (env.spec.environmentId && env.status?.environmentId !== remote.id) events.push(normal('Adopted', `adopted environment ${remote.id}`));

  const { update, drift } = diffEnvironment(remote, full ? desired : withoutReserved(desired, remote));
  const fields = drift.map((d) => d.field).join(', ');
  const found = (synced: Verdict): RemotePlan => reportOnly(events, { remote, synced, ready: readiness(remote, synced), events: [] });
  if (drift.some((d) => d.field === 'config.type')) {
    return found(notOk('TypeMismatch', `environment ${remote.id} is ${remote.config.type}, but the spec asks for ${desired.config.type}; the type cannot change`));
  }
  // Rule: archiving cannot be undone and an archived environment is read-only (the API answers
  // 409), so differences are reported, never sent. Delete the resource to release it.
  if (update && remote.archived_at) return found(notOk('Archived', `environment ${remote.id} is archived (read-only); not applied: ${fields}`));
  if (update && full) {
    const specChanged = env.metadata?.generation !== env.status?.observedGeneration;
    const synced = ok('Synced', 'remote environment matches the spec');
    return {
      call: 'update',
      id: remote.id,
      params: update,
      events,
      report: (updated) => ({
        remote: updated,
        synced,
        ready: readiness(updated, synced),
        events: [normal(specChanged ? 'Updated' : 'DriftCorrected', `${specChanged ? 'updated' : 'corrected drift in'} ${fields}`)],
      }),
    };
  }
  if (update) {
    const synced = notOk('Drifted', `remote environment differs from the spec in: ${fields} (ObserveOnly: not corrected)`);
    // Once per new finding: a resync that sees the same drift writes nothing.
    if (findCondition(env.status?.conditions, CONDITIONS.synced)?.message !== synced.message) events.push(warning('Drifted', synced.message));
    return found(synced);
  }
  return found(ok('Synced', full ? 'remote environment matches the spec' : 'remote environment matches the spec (observed)'));
}

const reportOnly = (events: readonly PlannedEvent[], report: RemoteReport): RemotePlan => ({ call: 'none', events, report });

function absent(reason: string, message: string, id: string | undefined): RemoteReport {
  return { ...(id ? { environmentId: id } : {}), synced: notOk(reason, message), ready: notOk(reason, message), events: [] };
}

function readiness(remote: Environment, synced: Verdict): Verdict {
  if (remote.archived_at) return notOk('Archived', `environment ${remote.id} was archived at ${remote.archived_at} and accepts no new sessions`);
  if (synced.reason === 'TypeMismatch') return notOk('TypeMismatch', synced.message);
  return ok('Available', `environment ${remote.id} is available`);
}

/** Under ObserveOnly the operator's own metadata keys are not part of the comparison. */
function withoutReserved(d: DesiredEnvironment, remote: Environment): DesiredEnvironment {
  const metadata = Object.fromEntries(Object.entries(d.metadata).filter(([k]) => !k.startsWith(RESERVED_METADATA_PREFIX)));
  for (const [k, v] of Object.entries(remote.metadata)) if (k.startsWith(RESERVED_METADATA_PREFIX)) metadata[k] = v;
  return { ...d, metadata };
}

/** A condition reason and message for an API failure (never includes a credential). */
export function apiFailure(err: ApiError): Verdict {
  const reqId = err.requestId ? ` (request-id ${err.requestId})` : '';
  if (err instanceof AuthenticationError) return notOk('CredentialsInvalid', `the API refused the credential: ${err.message}${reqId}`);
  if (err instanceof PermissionDeniedError) return notOk('PermissionDenied', `${err.message}${reqId}`);
  if (err instanceof MalformedResponseError) return notOk('MalformedApiReply', `the API returned an unexpected reply (field ${err.field}): ${err.message}${reqId}`);
  if (classify(err) === 'fatal') return notOk('ApiRejected', `${err.message}${reqId}`);
  return notOk('ApiUnavailable', `${err.message}${reqId}; retrying`);
}

/**
 * How a pass whose API call failed is retried, besides writing the verdict:
 * - `credential`: the API refused the credential (401/403): read it again after the credential
 *   retry period (a rotated Secret takes effect without a change to the resource);
 * - `terminal`: retrying gets the same answer until the spec changes (other 4xx, a malformed reply);
 * - `backoff`: transient or a conflict: the controller's error policy backs off, honouring Retry-After.
 */
export function planApiFailure(err: ApiError): { readonly verdict: Verdict; readonly retry: 'credential' | 'terminal' | 'backoff' } {
  const verdict = apiFailure(err);
  if (err instanceof AuthenticationError || err instanceof PermissionDeniedError) return { verdict, retry: 'credential' };
  return { verdict, retry: classify(err) === 'fatal' ? 'terminal' : 'backoff' };
}

/** What the deletion of an AgentEnvironment does in this pass. */
export type DeletionPlan =
  /** Sessions are still running: write `status`, come back shortly; the finalizer stays. */
  | { readonly step: 'wait'; readonly status: Observation }
  /** Leave the remote environment in place and release the resource. */
  | { readonly step: 'orphan'; readonly event: PlannedEvent }
  /** Delete or archive the remote environment (it needs a credential), then release the resource. */
  | { readonly step: 'apply'; readonly policy: 'Delete' | 'Archive' };

/**
 * Rules: the deletion policy is applied only once the environment's sessions are drained
 * (`drained`); ObserveOnly never writes to the API, whatever the deletion policy says.
 */
export function planDeletion(env: AgentEnvironment, drained: boolean): DeletionPlan {
  if (!drained) return { step: 'wait', status: failed('Draining', 'waiting for running sessions to stop before applying the deletion policy') };
  const policy = env.spec.managementPolicy === 'ObserveOnly' ? 'Orphan' : env.spec.deletionPolicy;
  if (policy === 'Orphan') {
    return { step: 'orphan', event: normal('Orphaned', `left environment ${env.status?.environmentId ?? env.spec.environmentId ?? '(none)'} in place`) };
  }
  return { step: 'apply', policy };
}

/**
 * The deletion policy touches only an environment this resource owns (ownership.ts rules 1–2): an
 * adopted one never tagged with its uid (a refused adoption, or one granted but never written)
 * and one taken over since are left in place, and said so.
 */
export function planRemoteDeletion(remote: Environment, env: AgentEnvironment, policy: 'Delete' | 'Archive'): { readonly act: true } | { readonly act: false; readonly event: PlannedEvent } {
  if (owns(remote, env)) return { act: true };
  return { act: false, event: normal('Orphaned', `left environment ${remote.id} in place: this AgentEnvironment does not own it (no agentenv.io/uid tag of its own), so deletionPolicy ${policy} does not apply to it`) };
}
