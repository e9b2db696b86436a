/**
 * The AgentEnvironment reconciler. Level-triggered: every pass re-reads the resource, its
 * credential and the remote environment, then runs these phases:
 *
 * 1. finalize   — the resource is being deleted: drain sessions, apply the deletion policy, drop the finalizer.
 * 2. finalizer  — add it first, then return (the update brings us back).
 * 3. credential — resolve the organization API key (Secret or operator default).
 * 4. observe    — find the remote environment by id or by the uid fence.
 * 5. converge   — create it, or update only the fields that differ (Full), or report drift (ObserveOnly).
 * 6. status     — write status only when it changed.
 */
import type { EnvironmentsClient } from '../api/client.ts';
import { ApiError, AuthenticationError, classify, MalformedResponseError, NotFoundError, PermissionDeniedError } from '../api/errors.ts';
import type { Credential } from '../api/transport.ts';
import type { Environment, QueueStats } from '../api/wire.ts';
import { AgentEnvironmentSpec } from '../crd/agent-environment.ts';
import { CONDITIONS, ENVIRONMENT_FINALIZER, RESERVED_METADATA_PREFIX } from '../crd/meta.ts';
import { findCondition } from '../k8s/conditions.ts';
import { AGENT_ENVIRONMENTS, type AgentEnvironment } from '../crd/resources.ts';
import { isNotFound } from '../k8s/errors.ts';
import type { EventRecorder } from '../k8s/events.ts';
import { finalizer, type Cleanup } from '../k8s/finalizer.ts';
import type { KubeRest } from '../k8s/rest.ts';
import { writeStatus as writeObjectStatus } from '../k8s/status.ts';
import { FORGET, RESYNC, requeueAfter, TerminalError, type Outcome, type ReconcileContext } from '../runtime/controller.ts';
import { createParams, desiredEnvironment, diffEnvironment, type DesiredEnvironment } from './desired.ts';
import { findRemote, resolveApiKey } from './gather.ts';
import { nextStatus, type Observation } from './status.ts';

/** What the sessions feature tells this reconciler (wired in the CLI; absent for cloud-only use). */
export interface SessionsHook {
  /** Sessions of this environment running in this cluster. */
  activeSessions(env: AgentEnvironment): number;
  /** Stop this environment's sessions; resolves true once none is left running. */
  drainBeforeDeletion(env: AgentEnvironment, signal: AbortSignal): Promise<boolean>;
  /**
   * Bring the environment's children that the sessions feature owns (the session NetworkPolicy) in
   * line, level-triggered: called on every pass of a live self-hosted environment, before the
   * remote environment is read. A throw fails the pass (retried by the controller's error policy).
   */
  reconcileChildren(env: AgentEnvironment, signal: AbortSignal): Promise<void>;
}

export interface EnvironmentReconcilerDeps {
  readonly rest: KubeRest;
  readonly events: EventRecorder;
  readonly apiClient: (credential: Credential) => EnvironmentsClient;
  /** The operator's default organization API key, if configured. */
  readonly defaultCredential: () => Credential | undefined;
  readonly sessions?: SessionsHook;
  readonly now?: () => Date;
  /** How often a self-hosted environment's queue figures are refreshed. Default 60 s. */
  readonly queueRefreshMs?: number;
  /** Retry period while a credential is missing or refused. Default 30 s. */
  readonly credentialRetryMs?: number;
}

type Verdict = Observation['synced'];
const ok = (reason: string, message = ''): Verdict => ({ ok: true, reason, message });
const notOk = (reason: string, message: string): Verdict => ({ ok: false, reason, message });

export function environmentReconciler(deps: EnvironmentReconcilerDeps) {
  const now = deps.now ?? (() => new Date());
  const credentialRetryMs = deps.credentialRetryMs ?? 30_000;
  /**
   * The credential that last worked for each resource (by uid), for its deletion only: deleting a
   * namespace deletes the API key Secret together with the resource, and the deletion policy must
   * still be applied rather than block the namespace forever.
   */
  const lastWorking = new Map<string, Credential>();

  return async function reconcile(key: string, ctx: ReconcileContext): Promise<Outcome> {
    const [namespace, name] = splitKey(key);
    let env: AgentEnvironment;
    try {
      env = await deps.rest.get<AgentEnvironment>(AGENT_ENVIRONMENTS, namespace, name);
    } catch (err) {
      if (isNotFound(err)) return FORGET;
      throw err;
    }
    const parsed = AgentEnvironmentSpec.safeParse(env.spec);
    if (!parsed.success) {
      await writeStatus(env, failed('InvalidSpec', parsed.error.issues[0]?.message ?? 'invalid spec'));
      throw new TerminalError(`invalid spec: ${parsed.error.message}`);
    }
    env = { ...env, spec: parsed.data };

    return finalizer(deps.rest, AGENT_ENVIRONMENTS, env, {
      name: ENVIRONMENT_FINALIZER,
      added: requeueAfter(0),
      released: FORGET,
      apply: (live) => reconcileLive(live, ctx),
      cleanup: (deleting) => finalize(deleting, ctx),
      onReleased: (gone) => void (gone.metadata?.uid && lastWorking.delete(gone.metadata.uid)),
    });
  };

  /** Phases 3–6 for a live resource that carries the finalizer. */
  async function reconcileLive(env: AgentEnvironment, ctx: ReconcileContext): Promise<Outcome> {
    if (env.spec.selfHosted) await deps.sessions?.reconcileChildren(env, ctx.signal);
    const cred = await resolveApiKey(deps.rest, env, deps.defaultCredential());
    if (!cred.ok) {
      ctx.logger.warn({ reason: cred.reason }, cred.message);
      deps.events.record(env, 'Warning', cred.reason, cred.message);
      await writeStatus(env, failed(cred.reason, cred.message));
      return requeueAfter(credentialRetryMs);
    }
    const api = deps.apiClient(cred.credential);

    let observation: Observation;
    try {
      observation = await converge(env, api, ctx);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      const verdict = apiFailure(err);
      deps.events.record(env, 'Warning', verdict.reason, verdict.message);
      await writeStatus(env, failed(verdict.reason, verdict.message));
      if (err instanceof AuthenticationError || err instanceof PermissionDeniedError) {
        ctx.logger.warn({ err, reason: verdict.reason }, 'the API refused the credential; re-reading it shortly');
        return requeueAfter(credentialRetryMs);
      }
      if (classify(err) === 'fatal') throw new TerminalError(verdict.message, { cause: err });
      throw err; // transient: the controller backs off (honouring Retry-After)
    }
    if (env.metadata?.uid) lastWorking.set(env.metadata.uid, cred.credential);
    await writeStatus(env, observation);
    return env.spec.selfHosted ? requeueAfter(deps.queueRefreshMs ?? 60_000) : RESYNC;
  }

  /** Phases 4–5: find the remote environment and bring it in line (or report). */
  async function converge(env: AgentEnvironment, api: EnvironmentsClient, ctx: ReconcileContext): Promise<Observation> {
    const spec = env.spec;
    const full = spec.managementPolicy === 'Full';
    const lookup = await findRemote(api, env, ctx.signal);
    const identity = { name: env.metadata?.name ?? '', namespace: env.metadata?.namespace ?? '', uid: env.metadata?.uid ?? '' };
    const desired = desiredEnvironment(spec, identity);

    if (!lookup.found) {
      if (!full) return absent('NotFound', lookup.id ? `environment ${lookup.id} not found (ObserveOnly: nothing is created)` : 'no environment to observe: set spec.environmentId', lookup.id);
      if (spec.environmentId) return absent('RemoteNotFound', `adopted environment ${spec.environmentId} does not exist`, spec.environmentId);
      // Rule: under Full, a managed (not adopted) environment deleted behind our back is recreated,
      // and the replacement is reported (event + Synced reason Recreated).
      if (lookup.id) deps.events.record(env, 'Warning', 'RemoteDeleted', `environment ${lookup.id} was deleted outside the operator; creating a new one`);
      const created = await api.createEnvironment(createParams(desired), { signal: ctx.signal });
      deps.events.record(env, 'Normal', 'Created', `created ${created.config.type} environment ${created.id}`);
      ctx.logger.info({ environmentId: created.id }, 'created remote environment');
      // The id reaches status in this pass's status write; the uid fence covers a crash before it.
      // Queue figures are best effort here so that nothing stands between the create and that write.
      const queue = spec.selfHosted ? await queueStats(api, created.id, ctx, { bestEffort: true }) : undefined;
      return {
        remote: created,
        ...(queue ? { queue } : {}),
        synced: lookup.id
          ? ok('Recreated', `environment ${lookup.id} was deleted outside the operator; created ${created.id} in its place`)
          : ok('Created', `created environment ${created.id}`),
        ready: ok('Available', `environment ${created.id} is available`),
        ...(deps.sessions && spec.selfHosted ? { activeSessions: 0 } : {}),
        clean: true,
      };
    }

    let remote = lookup.environment;
    if (lookup.via === 'fence') deps.events.record(env, 'Normal', 'Recovered', `found environment ${remote.id} created earlier (uid fence)`);
    if (spec.environmentId && env.status?.environmentId !== remote.id) deps.events.record(env, 'Normal', 'Adopted', `adopted environment ${remote.id}`);

    const { update, drift } = diffEnvironment(remote, full ? desired : withoutReserved(desired, remote));
    let synced: Verdict = ok('Synced', full ? 'remote environment matches the spec' : 'remote environment matches the spec (observed)');
    if (drift.some((d) => d.field === 'config.type')) {
      synced = notOk('TypeMismatch', `environment ${remote.id} is ${remote.config.type}, but the spec asks for ${desired.config.type}; the type cannot change`);
    } else if (update && remote.archived_at) {
      // Rule: archiving cannot be undone and an archived environment is read-only (the API answers
      // 409), so differences are reported, never sent. Delete the resource to release it.
      synced = notOk('Archived', `environment ${remote.id} is archived (read-only); not applied: ${drift.map((d) => d.field).join(', ')}`);
    } else if (update && full) {
      const specChanged = env.metadata?.generation !== env.status?.observedGeneration;
      remote = await api.updateEnvironment(remote.id, update, { signal: ctx.signal });
      const fields = drift.map((d) => d.field).join(', ');
      deps.events.record(env, 'Normal', specChanged ? 'Updated' : 'DriftCorrected', `${specChanged ? 'updated' : 'corrected drift in'} ${fields}`);
    } else if (update) {
      synced = notOk('Drifted', `remote environment differs from the spec in: ${drift.map((d) => d.field).join(', ')} (ObserveOnly: not corrected)`);
      // Once per new finding: a resync that sees the same drift writes nothing.
      if (findCondition(env.status?.conditions, CONDITIONS.synced)?.message !== synced.message) deps.events.record(env, 'Warning', 'Drifted', synced.message);
    }
    const ready = remote.archived_at
      ? notOk('Archived', `environment ${remote.id} was archived at ${remote.archived_at} and accepts no new sessions`)
      : synced.reason === 'TypeMismatch'
        ? notOk('TypeMismatch', synced.message)
        : ok('Available', `environment ${remote.id} is available`);
    const queue = spec.selfHosted && !remote.archived_at ? await queueStats(api, remote.id, ctx) : undefined;
    return {
      remote,
      synced,
      ready,
      ...(queue ? { queue } : {}),
      ...(deps.sessions && spec.selfHosted ? { activeSessions: deps.sessions.activeSessions(env) } : {}),
      clean: synced.ok,
    };
  }

  async function queueStats(api: EnvironmentsClient, id: string, ctx: ReconcileContext, opts: { bestEffort?: boolean } = {}): Promise<QueueStats | undefined> {
    try {
      return await api.getQueueStats(id, { signal: ctx.signal });
    } catch (err) {
      // Queue figures are worth a retry of the pass unless the API refused them for good.
      if (err instanceof ApiError && classify(err) !== 'fatal' && !opts.bestEffort) throw err;
      ctx.logger.warn({ err }, 'queue stats unavailable');
      return undefined;
    }
  }

  /** Phase 1: apply the deletion policy once sessions are drained; `done` releases the resource. */
  async function finalize(env: AgentEnvironment, ctx: ReconcileContext): Promise<Cleanup<Outcome>> {
    if (deps.sessions && !(await deps.sessions.drainBeforeDeletion(env, ctx.signal))) {
      await writeStatus(env, failed('Draining', 'waiting for running sessions to stop before applying the deletion policy'));
      return { done: false, retry: requeueAfter(2_000) };
    }
    // ObserveOnly never writes to the API, whatever the deletion policy says.
    const policy = env.spec.managementPolicy === 'ObserveOnly' ? 'Orphan' : env.spec.deletionPolicy;
    if (policy !== 'Orphan') {
      let cred = await resolveApiKey(deps.rest, env, deps.defaultCredential());
      const remembered = env.metadata?.uid ? lastWorking.get(env.metadata.uid) : undefined;
      if (!cred.ok && remembered) {
        ctx.logger.info({ reason: cred.reason }, `${cred.message}; applying deletionPolicy ${policy} with the credential that last worked`);
        cred = { ok: true, credential: remembered };
      }
      if (!cred.ok) {
        const message = `cannot apply deletionPolicy ${policy}: ${cred.message}`;
        deps.events.record(env, 'Warning', 'DeletionBlocked', message);
        await writeStatus(env, failed('DeletionBlocked', message));
        return { done: false, retry: requeueAfter(credentialRetryMs) };
      }
      try {
        await applyDeletionPolicy(env, policy, deps.apiClient(cred.credential), ctx);
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        const message = `cannot apply deletionPolicy ${policy}: ${apiFailure(err).message}`;
        deps.events.record(env, 'Warning', 'DeletionBlocked', message);
        await writeStatus(env, failed('DeletionBlocked', message));
        throw err; // retried with backoff; the finalizer stays until it succeeds
      }
    } else {
      deps.events.record(env, 'Normal', 'Orphaned', `left environment ${env.status?.environmentId ?? env.spec.environmentId ?? '(none)'} in place`);
    }
    return { done: true };
  }

  async function applyDeletionPolicy(env: AgentEnvironment, policy: 'Delete' | 'Archive', api: EnvironmentsClient, ctx: ReconcileContext): Promise<void> {
    const lookup = await findRemote(api, env, ctx.signal);
    if (!lookup.found) {
      deps.events.record(env, 'Normal', policy === 'Delete' ? 'Deleted' : 'Archived', 'no remote environment to clean up');
      return;
    }
    const id = lookup.environment.id;
    try {
      if (policy === 'Delete') await api.deleteEnvironment(id, { signal: ctx.signal });
      else if (!lookup.environment.archived_at) await api.archiveEnvironment(id, { signal: ctx.signal });
    } catch (err) {
      // Already gone counts as done: deletion must be idempotent.
      if (!(err instanceof NotFoundError)) throw err;
    }
    deps.events.record(env, 'Normal', policy === 'Delete' ? 'Deleted' : 'Archived', `${policy === 'Delete' ? 'deleted' : 'archived'} environment ${id}`);
  }

  /** Phase 6: write status only when it changed (one writer, one conflict policy: k8s/status.ts). */
  async function writeStatus(env: AgentEnvironment, o: Observation): Promise<void> {
    // On a Conflict (another writer, e.g. the dispatcher's Dispatching condition, got there first)
    // this pass's observation still holds for the same generation: it is merged into the fresh status.
    await writeObjectStatus(deps.rest, AGENT_ENVIRONMENTS, env, (current) => nextStatus(current, o, now()));
  }
}

function failed(reason: string, message: string): Observation {
  return { synced: notOk(reason, message), ready: notOk(reason, message), clean: false };
}

function absent(reason: string, message: string, id: string | undefined): Observation {
  return { ...(id ? { environmentId: id } : {}), synced: notOk(reason, message), ready: notOk(reason, message), clean: false };
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

function splitKey(key: string): [string, string] {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}
