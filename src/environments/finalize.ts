/**
 * The finalize phase of an AgentEnvironment being deleted (run by k8s/finalizer.ts, which removes
 * the finalizer once this reports `done`):
 *
 * 1. drain   — the sessions feature stops the environment's sessions; until none is left: Draining.
 * 2. decide  — `planDeletion` (plan.ts): ObserveOnly and Orphan leave the remote environment in place.
 * 3. credential — the resource's API key, else the one that last worked for it (its Secret may be
 *    deleted with the namespace); none: DeletionBlocked, read again after the credential retry period
 *    — unless no environment id was ever recorded or adopted: then it is released (Released event).
 * 4. apply   — only an environment this resource owns (`planRemoteDeletion`; any other is left in
 *    place and said so): delete or archive it (idempotent: already gone is done); an API
 *    failure is DeletionBlocked and retried with backoff, the finalizer staying until it succeeds.
 */
import type { EnvironmentsClient } from '../api/client.ts';
import { ApiError, NotFoundError } from '../api/errors.ts';
import type { AgentEnvironment } from '../crd/resources.ts';
import type { Cleanup } from '../k8s/finalizer.ts';
import { requeueAfter, type Outcome, type ReconcileContext } from '../runtime/controller.ts';
import { recordEvents, writeStatus, type Reconciler } from './deps.ts';
import { findRemote, resolveApiKey, type CredentialResult } from './gather.ts';
import { apiFailure, planDeletion, planRemoteDeletion } from './plan.ts';
import { failed } from './status.ts';

/** How soon a deletion waiting for its sessions to stop looks again. */
const DRAIN_RETRY_MS = 2_000;

export async function finalize(r: Reconciler, env: AgentEnvironment, ctx: ReconcileContext): Promise<Cleanup<Outcome>> {
  const drained = r.sessions ? await r.sessions.drainBeforeDeletion(env, ctx.signal) : true;
  const plan = planDeletion(env, drained);
  if (plan.step === 'wait') {
    await writeStatus(r, env, plan.status);
    return { done: false, retry: requeueAfter(DRAIN_RETRY_MS) };
  }
  if (plan.step === 'orphan') {
    recordEvents(r, env, [plan.event]);
    return { done: true };
  }
  const cred = await deletionCredential(r, env, plan.policy, ctx);
  if (!cred.ok && !env.status?.environmentId && !env.spec.environmentId) {
    // Never had an environment: no id was ever recorded, and without any credential nothing can
    // have been created through it since this process started. Waiting for a key that may never
    // come (a namespace the default key does not serve) would hold the namespace in Terminating.
    r.events.record(env, 'Normal', 'Released', `no environment was recorded and ${cred.message}: released without applying deletionPolicy ${plan.policy}`);
    return { done: true };
  }
  if (!cred.ok) {
    await blocked(r, env, `cannot apply deletionPolicy ${plan.policy}: ${cred.message}`);
    return { done: false, retry: requeueAfter(r.credentialRetryMs) };
  }
  try {
    await applyDeletionPolicy(r, env, plan.policy, r.apiClient(cred.credential), ctx);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    await blocked(r, env, `cannot apply deletionPolicy ${plan.policy}: ${apiFailure(err).message}`);
    throw err; // retried with backoff; the finalizer stays until it succeeds
  }
  return { done: true };
}

/** The resource's credential, else the one that last worked for it. */
async function deletionCredential(r: Reconciler, env: AgentEnvironment, policy: string, ctx: ReconcileContext): Promise<CredentialResult> {
  const cred = await resolveApiKey(r.secrets, env, r.defaultCredential(), r.tenancy);
  const remembered = env.metadata?.uid ? r.lastWorking.get(env.metadata.uid) : undefined;
  if (cred.ok || !remembered) return cred;
  ctx.logger.info({ reason: cred.reason }, `${cred.message}; applying deletionPolicy ${policy} with the credential that last worked`);
  return { ok: true, credential: remembered };
}

async function blocked(r: Reconciler, env: AgentEnvironment, message: string): Promise<void> {
  r.events.record(env, 'Warning', 'DeletionBlocked', message);
  await writeStatus(r, env, failed('DeletionBlocked', message));
}

async function applyDeletionPolicy(r: Reconciler, env: AgentEnvironment, policy: 'Delete' | 'Archive', api: EnvironmentsClient, ctx: ReconcileContext): Promise<void> {
  const done = policy === 'Delete' ? 'Deleted' : 'Archived';
  const lookup = await findRemote(api, env, ctx.signal);
  if (!lookup.found) {
    r.events.record(env, 'Normal', done, 'no remote environment to clean up');
    return;
  }
  const id = lookup.environment.id;
  const verdict = planRemoteDeletion(lookup.environment, env, policy);
  if (!verdict.act) {
    recordEvents(r, env, [verdict.event]);
    return;
  }
  try {
    if (policy === 'Delete') await api.deleteEnvironment(id, { signal: ctx.signal });
    else if (!lookup.environment.archived_at) await api.archiveEnvironment(id, { signal: ctx.signal });
  } catch (err) {
    // Already gone counts as done: deletion must be idempotent.
    if (!(err instanceof NotFoundError)) throw err;
  }
  r.events.record(env, 'Normal', done, `${policy === 'Delete' ? 'deleted' : 'archived'} environment ${id}`);
}
