/**
 * The AgentEnvironment reconciler. Level-triggered: every pass re-reads the resource, its
 * credential and the remote environment, then runs these phases:
 *
 * 1. gather     — read the resource and parse its spec (an invalid spec is reported, not retried).
 * 2. finalizer  — through k8s/finalizer.ts: add it first and return (the update brings us back);
 *                 a resource being deleted goes to `finalize` (finalize.ts) instead of 3–7.
 * 3. children   — the sessions feature's children of a self-hosted environment (its NetworkPolicy).
 * 4. credential — resolve the organization API key (Secret or operator default).
 * 5. plan       — find the remote environment (by id or by the uid fence) and decide, purely
 *                 (plan.ts `planRemote`), the one call, its events and the conditions.
 * 6. apply      — make that call (create, or update only the fields that differ), record the
 *                 events, read the queue figures of a self-hosted environment.
 * 7. status     — write status only when it changed (deps.ts `writeStatus`, the one writer).
 */
import type { EnvironmentsClient } from '../api/client.ts';
import { ApiError, classify } from '../api/errors.ts';
import type { QueueStats } from '../api/wire.ts';
import { WARM_POOL_RESYNC_MS } from '../crd/agent-environment.ts';
import { ENVIRONMENT_FINALIZER } from '../crd/meta.ts';
import { AGENT_ENVIRONMENTS, type AgentEnvironment } from '../crd/resources.ts';
import { finalizer } from '../k8s/finalizer.ts';
import { FORGET, RESYNC, requeueAfter, TerminalError, type Outcome, type ReconcileContext, type Reconcile } from '../runtime/controller.ts';
import { reconcilerOf, recordEvents, writeStatus, type EnvironmentReconcilerDeps, type Reconciler } from './deps.ts';
import { desiredEnvironment } from './desired.ts';
import { finalize } from './finalize.ts';
import { findRemote, parseSpec, readEnvironment, resolveApiKey } from './gather.ts';
import { planApiFailure, planRemote, type RemotePlan, type RemoteReport } from './plan.ts';
import { failed, type Observation } from './status.ts';

export type { EnvironmentReconcilerDeps, SessionsHook } from './deps.ts';

export function environmentReconciler(deps: EnvironmentReconcilerDeps): Reconcile {
  const r = reconcilerOf(deps);
  return async function reconcile(key, ctx) {
    const stored = await readEnvironment(r.rest, key);
    if (!stored) return FORGET;
    const parsed = parseSpec(stored);
    if (!parsed.ok) {
      await writeStatus(r, stored, parsed.status);
      throw new TerminalError(`invalid spec: ${parsed.message}`);
    }
    return finalizer(r.rest, AGENT_ENVIRONMENTS, parsed.env, {
      name: ENVIRONMENT_FINALIZER,
      added: requeueAfter(0),
      released: FORGET,
      apply: (live) => reconcileLive(r, live, ctx),
      cleanup: (deleting) => finalize(r, deleting, ctx),
      onReleased: (gone) => void (gone.metadata?.uid && r.lastWorking.delete(gone.metadata.uid)),
    });
  };
}

/** Phases 3–7 for a live resource that carries the finalizer. */
async function reconcileLive(r: Reconciler, env: AgentEnvironment, ctx: ReconcileContext): Promise<Outcome> {
  if (env.spec.selfHosted) await r.sessions?.reconcileChildren(env, ctx.signal);
  // Every pass reads the Secret (deps.ts freshEveryPass), so a key the API refused is read again.
  const cred = await resolveApiKey(r.secrets, env, r.defaultCredential(), r.tenancy);
  if (!cred.ok) {
    ctx.logger.warn({ reason: cred.reason }, cred.message);
    r.events.record(env, 'Warning', cred.reason, cred.message);
    await writeStatus(r, env, failed(cred.reason, cred.message));
    return requeueAfter(r.credentialRetryMs);
  }
  let observation: Observation;
  try {
    observation = await converge(r, env, r.apiClient(cred.credential), ctx);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    return apiFailed(r, env, err, ctx);
  }
  if (env.metadata?.uid) r.lastWorking.set(env.metadata.uid, cred.credential);
  await writeStatus(r, env, observation);
  if (env.spec.selfHosted?.warmPool && poolNeedsPasses(env, observation)) return requeueAfter(Math.min(r.queueRefreshMs, WARM_POOL_RESYNC_MS));
  return env.spec.selfHosted ? requeueAfter(r.queueRefreshMs) : RESYNC;
}

/**
 * Whether the warm pool is kept from this pass every few seconds rather than at the queue refresh:
 * while it is sized from the queue (min/max: the figures are read in the pass), or not at its
 * target with every Pod ready (a refill or a Pod starting, which also the Pods' events bring back).
 * A full, fixed-size pool costs nothing between passes: a warm Pod that changes (bound, deleted,
 * ready or not) enqueues its environment (SessionsHook.onWarmPodChange).
 */
export function poolNeedsPasses(env: AgentEnvironment, o: Observation): boolean {
  const pool = env.spec.selfHosted?.warmPool;
  if (pool?.min !== undefined || pool?.max !== undefined) return true;
  const s = o.warmPool;
  return !s || s.replicas !== s.target || s.ready !== s.target;
}

/** Phases 5–6: plan, then apply the plan and observe what it left. */
async function converge(r: Reconciler, env: AgentEnvironment, api: EnvironmentsClient, ctx: ReconcileContext): Promise<Observation> {
  const lookup = await findRemote(api, env, ctx.signal);
  const identity = { name: env.metadata?.name ?? '', namespace: env.metadata?.namespace ?? '', uid: env.metadata?.uid ?? '' };
  const plan = planRemote(lookup, desiredEnvironment(env.spec, identity), env, r.tenancy);
  const report = await applyRemote(r, env, plan, api, ctx);
  return observe(r, env, report, plan.call === 'create', api, ctx);
}

/** Phase 6a: record what was found, make the plan's one call, record what it did. */
async function applyRemote(r: Reconciler, env: AgentEnvironment, plan: RemotePlan, api: EnvironmentsClient, ctx: ReconcileContext): Promise<RemoteReport> {
  recordEvents(r, env, plan.events);
  let report: RemoteReport;
  if (plan.call === 'none') report = plan.report;
  else if (plan.call === 'update') report = plan.report(await api.updateEnvironment(plan.id, plan.params, { signal: ctx.signal }));
  else {
    const created = await api.createEnvironment(plan.params, { signal: ctx.signal });
    ctx.logger.info({ environmentId: created.id }, 'created remote environment');
    report = plan.report(created);
  }
  recordEvents(r, env, report.events);
  if (report.otherOwner) ctx.logger.info({ owner: report.otherOwner, reason: report.synced.reason }, `refused: the remote environment belongs to AgentEnvironment ${report.otherOwner}`);
  return report;
}

/**
 * Phase 6b: the observation to write — the report, plus for a self-hosted environment that exists
 * its queue figures and the sessions this cluster runs for it. Right after a create the id reaches
 * status in this pass's status write (the uid fence covers a crash before it), so queue figures are
 * best effort there: nothing may stand between the create and that write.
 */
async function observe(r: Reconciler, env: AgentEnvironment, report: RemoteReport, created: boolean, api: EnvironmentsClient, ctx: ReconcileContext): Promise<Observation> {
  const { remote } = report;
  const selfHosted = env.spec.selfHosted !== undefined && remote !== undefined;
  const queue = selfHosted && !remote.archived_at ? await queueStats(api, remote.id, ctx, created) : undefined;
  const activeSessions = r.sessions && selfHosted ? (created ? 0 : r.sessions.activeSessions(env)) : undefined;
  const warmPool = r.sessions && selfHosted && !created ? r.sessions.warmPool?.(env) : undefined;
  return {
    ...(remote ? { remote } : {}),
    ...(report.environmentId ? { environmentId: report.environmentId } : {}),
    synced: report.synced,
    ready: report.ready,
    ...(queue ? { queue } : {}),
    ...(activeSessions !== undefined ? { activeSessions } : {}),
    ...(warmPool ? { warmPool } : {}),
    clean: report.synced.ok,
  };
}

async function queueStats(api: EnvironmentsClient, id: string, ctx: ReconcileContext, bestEffort: boolean): Promise<QueueStats | undefined> {
  try {
    return await api.getQueueStats(id, { signal: ctx.signal });
  } catch (err) {
    // Queue figures are worth a retry of the pass unless the API refused them for good.
    if (err instanceof ApiError && classify(err) !== 'fatal' && !bestEffort) throw err;
    ctx.logger.warn({ err }, 'queue stats unavailable');
    return undefined;
  }
}

/** An API call of this pass failed: write the verdict, then retry as `planApiFailure` says. */
async function apiFailed(r: Reconciler, env: AgentEnvironment, err: ApiError, ctx: ReconcileContext): Promise<Outcome> {
  const { verdict, retry } = planApiFailure(err);
  r.events.record(env, 'Warning', verdict.reason, verdict.message);
  await writeStatus(r, env, failed(verdict.reason, verdict.message));
  if (retry === 'credential') {
    ctx.logger.warn({ err, reason: verdict.reason }, 'the API refused the credential; re-reading it shortly');
    return requeueAfter(r.credentialRetryMs);
  }
  if (retry === 'terminal') throw new TerminalError(verdict.message, { cause: err });
  throw err; // transient: the controller backs off (honouring Retry-After)
}
