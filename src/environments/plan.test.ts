import { describe, expect, it } from 'vitest';
import { ConnectionError, errorForStatus, MalformedResponseError, TimeoutError, type ApiError } from '../api/errors.ts';
import type { Environment } from '../api/wire.ts';
import type { AgentEnvironment } from '../crd/resources.ts';
import { createParams, desiredEnvironment } from './desired.ts';
import { agentEnvironment, IDENTITY, remoteOf } from './fixtures.test-support.ts';
import type { RemoteLookup } from './gather.ts';
import { NO_GRANTS, type TenancyPolicy } from './ownership.ts';
import { planApiFailure, planDeletion, planRemote, planRemoteDeletion, type PlannedEvent, type RemotePlan } from './plan.ts';

const NOW = '2026-02-01T00:00:00Z';
const events = (list: readonly PlannedEvent[]): string[] => list.map((e) => `${e.type} ${e.reason}: ${e.message}`);

/** The plan in words: its call, the events before and after it, and both conditions (after `reply`, for a call). */
function summary(plan: RemotePlan, reply: Environment) {
  const report = plan.call === 'none' ? plan.report : plan.report(reply);
  return {
    call: plan.call,
    before: events(plan.events),
    after: events(report.events),
    synced: `${report.synced.ok ? 'True' : 'False'} ${report.synced.reason}: ${report.synced.message}`,
    ready: `${report.ready.ok ? 'True' : 'False'} ${report.ready.reason}: ${report.ready.message}`,
    ...(report.environmentId ? { environmentId: report.environmentId } : {}),
  };
}

const plan = (env: AgentEnvironment, lookup: RemoteLookup, tenancy: TenancyPolicy = NO_GRANTS): RemotePlan => planRemote(lookup, desiredEnvironment(env.spec, IDENTITY), env, tenancy);
const found = (environment: Environment, via: 'id' | 'fence' = 'id'): RemoteLookup => ({ found: true, environment, via });
const notFound = (id?: string): RemoteLookup => ({ found: false, id });

const cloud = agentEnvironment();
const managed = cloud.recorded('env_1');
const observed = cloud.observeOnly().adopting('env_1').recorded('env_1');
const selfHostedRemote = remoteOf(cloud.env, { config: { type: 'self_hosted' } });
const described = managed.describedAs('new words');
const mismatch = 'False TypeMismatch: environment env_1 is self_hosted, but the spec asks for cloud; the type cannot change';
const typeMismatch = { call: 'none' as const, before: [], after: [], synced: mismatch, ready: mismatch };
/** Made in the Console: no create-fence tag. */
const consoleMade = remoteOf(cloud.env, { metadata: { team: 'x' } });
const refusal =
  "AdoptionRefused: environment env_1 was not created by an AgentEnvironment (no agentenv.io/uid tag in its metadata); adopting an environment this resource does not own needs the cluster administrator's grant: namespace team-a listed in the operator's --adoption-namespaces (chart value tenancy.adoptionNamespaces). Nothing was read into status or sent to the environment";
const grantTeamA: TenancyPolicy = { adoptionNamespaces: ['team-a'], defaultKeyNamespaces: [] };

describe('planRemote', () => {
  const rows: Array<{ rule: string; env: AgentEnvironment; lookup: RemoteLookup; tenancy?: TenancyPolicy; reply?: Environment; expect: ReturnType<typeof summary> }> = [
    {
      rule: 'ObserveOnly with nothing to observe creates nothing and says to set spec.environmentId',
      env: cloud.observeOnly().env,
      lookup: notFound(),
      expect: { call: 'none', before: [], after: [], synced: 'False NotFound: no environment to observe: set spec.environmentId', ready: 'False NotFound: no environment to observe: set spec.environmentId' },
    },
    {
      rule: 'ObserveOnly never creates: an observed id that is gone is NotFound, and the id stays in status',
      env: observed.env,
      lookup: notFound('env_1'),
      expect: { call: 'none', before: [], after: [], synced: 'False NotFound: environment env_1 not found (ObserveOnly: nothing is created)', ready: 'False NotFound: environment env_1 not found (ObserveOnly: nothing is created)', environmentId: 'env_1' },
    },
    {
      rule: 'an adopted id that does not exist is RemoteNotFound and is never replaced by a create',
      env: cloud.adopting('env_9').env,
      lookup: notFound('env_9'),
      expect: { call: 'none', before: [], after: [], synced: 'False RemoteNotFound: adopted environment env_9 does not exist', ready: 'False RemoteNotFound: adopted environment env_9 does not exist', environmentId: 'env_9' },
    },
    {
      rule: 'under Full a managed environment is created, then reported Created and Available',
      env: cloud.env,
      lookup: notFound(),
      reply: remoteOf(cloud.env, { id: 'env_new' }),
      expect: { call: 'create', before: [], after: ['Normal Created: created cloud environment env_new'], synced: 'True Created: created environment env_new', ready: 'True Available: environment env_new is available' },
    },
    {
      rule: 'under Full a managed environment deleted behind our back is recreated and reported (RemoteDeleted, Recreated)',
      env: managed.env,
      lookup: notFound('env_1'),
      reply: remoteOf(cloud.env, { id: 'env_new' }),
      expect: {
        call: 'create',
        before: ['Warning RemoteDeleted: environment env_1 was deleted outside the operator; creating a new one'],
        after: ['Normal Created: created cloud environment env_new'],
        synced: 'True Recreated: environment env_1 was deleted outside the operator; created env_new in its place',
        ready: 'True Available: environment env_new is available',
      },
    },
    {
      rule: 'a remote environment that matches the spec needs no call',
      env: managed.env,
      lookup: found(remoteOf(managed.env)),
      expect: { call: 'none', before: [], after: [], synced: 'True Synced: remote environment matches the spec', ready: 'True Available: environment env_1 is available' },
    },
    {
      rule: 'one found by the uid fence (a crash before the status write) is Recovered, not created again',
      env: cloud.env,
      lookup: found(remoteOf(cloud.env), 'fence'),
      expect: { call: 'none', before: ['Normal Recovered: found environment env_1 created earlier (uid fence)'], after: [], synced: 'True Synced: remote environment matches the spec', ready: 'True Available: environment env_1 is available' },
    },
    {
      rule: 'an adopted environment not yet in status is reported Adopted, and the spec is applied to it',
      env: cloud.adopting('env_1').describedAs('ours now').env,
      lookup: found(remoteOf(cloud.env)),
      reply: remoteOf(cloud.env, { description: 'ours now' }),
      expect: { call: 'update', before: ['Normal Adopted: adopted environment env_1'], after: ['Normal Updated: updated description'], synced: 'True Synced: remote environment matches the spec', ready: 'True Available: environment env_1 is available' },
    },
    {
      rule: 'adopting an environment this resource does not own, without a grant, is AdoptionRefused in both conditions: nothing is sent, no Adopted event, one Warning',
      env: cloud.adopting('env_1').describedAs('mine now').env,
      lookup: found(consoleMade),
      expect: { call: 'none', before: [], after: [`Warning ${refusal}`], synced: `False ${refusal}`, ready: `False ${refusal}` },
    },
    {
      rule: 'the same refusal seen again raises no second Warning',
      env: cloud.adopting('env_1').syncedSays('AdoptionRefused', refusal.slice('AdoptionRefused: '.length)).env,
      lookup: found(consoleMade),
      expect: { call: 'none', before: [], after: [], synced: `False ${refusal}`, ready: `False ${refusal}` },
    },
    {
      rule: "with the administrator's grant the adoption goes on: Adopted, and the update writes this resource's tag (from then on it owns it)",
      env: cloud.adopting('env_1').env,
      lookup: found(consoleMade),
      tenancy: grantTeamA,
      reply: remoteOf(cloud.env),
      expect: {
        call: 'update',
        before: ['Normal Adopted: adopted environment env_1'],
        after: ['Normal Updated: updated metadata.agentenv.io/uid, metadata.agentenv.io/owner, metadata.team'],
        synced: 'True Synced: remote environment matches the spec',
        ready: 'True Available: environment env_1 is available',
      },
    },
    {
      rule: 'a remote environment of the other type is TypeMismatch in both conditions, and nothing is sent',
      env: managed.describedAs('differs too').env,
      lookup: found(selfHostedRemote),
      expect: typeMismatch,
    },
    {
      rule: 'TypeMismatch holds under ObserveOnly too',
      env: observed.env,
      lookup: found(selfHostedRemote),
      expect: typeMismatch,
    },
    {
      rule: 'an archived environment is read-only: its differences are reported Archived, never sent',
      env: described.env,
      lookup: found(remoteOf(managed.env, { archived_at: NOW })),
      expect: {
        call: 'none',
        before: [],
        after: [],
        synced: 'False Archived: environment env_1 is archived (read-only); not applied: description',
        ready: `False Archived: environment env_1 was archived at ${NOW} and accepts no new sessions`,
      },
    },
    {
      rule: 'an archived environment that matches the spec is Synced but not Ready',
      env: managed.env,
      lookup: found(remoteOf(managed.env, { archived_at: NOW })),
      expect: { call: 'none', before: [], after: [], synced: 'True Synced: remote environment matches the spec', ready: `False Archived: environment env_1 was archived at ${NOW} and accepts no new sessions` },
    },
    {
      rule: 'under Full a spec edit is sent as one update and reported Updated',
      env: described.edited().env,
      lookup: found(remoteOf(managed.env)),
      reply: remoteOf(described.env),
      expect: { call: 'update', before: [], after: ['Normal Updated: updated description'], synced: 'True Synced: remote environment matches the spec', ready: 'True Available: environment env_1 is available' },
    },
    {
      rule: 'under Full a change made in the Console (same generation) is corrected and reported DriftCorrected',
      env: managed.env,
      lookup: found(remoteOf(managed.env, { name: 'renamed in the Console' })),
      reply: remoteOf(managed.env),
      expect: { call: 'update', before: [], after: ['Normal DriftCorrected: corrected drift in name'], synced: 'True Synced: remote environment matches the spec', ready: 'True Available: environment env_1 is available' },
    },
    {
      rule: 'under ObserveOnly a difference is Drifted, with a Warning event, and never sent',
      env: observed.env,
      lookup: found(remoteOf(observed.env, { name: 'renamed' })),
      expect: {
        call: 'none',
        before: ['Warning Drifted: remote environment differs from the spec in: name (ObserveOnly: not corrected)'],
        after: [],
        synced: 'False Drifted: remote environment differs from the spec in: name (ObserveOnly: not corrected)',
        ready: 'True Available: environment env_1 is available',
      },
    },
    {
      rule: 'under ObserveOnly the same drift seen again raises no second event',
      env: observed.syncedSays('Drifted', 'remote environment differs from the spec in: name (ObserveOnly: not corrected)').env,
      lookup: found(remoteOf(observed.env, { name: 'renamed' })),
      expect: {
        call: 'none',
        before: [],
        after: [],
        synced: 'False Drifted: remote environment differs from the spec in: name (ObserveOnly: not corrected)',
        ready: 'True Available: environment env_1 is available',
      },
    },
    {
      rule: "under ObserveOnly (granted) the operator's own metadata keys are not compared (an observed environment never got them)",
      env: observed.env,
      lookup: found(remoteOf(observed.env, { metadata: {} })),
      tenancy: grantTeamA,
      expect: { call: 'none', before: [], after: [], synced: 'True Synced: remote environment matches the spec (observed)', ready: 'True Available: environment env_1 is available' },
    },
  ];
  for (const row of rows) {
    it(row.rule, () => {
      expect(summary(plan(row.env, row.lookup, row.tenancy), row.reply ?? remoteOf(row.env))).toEqual(row.expect);
    });
  }

  it('a refusal keeps the remote environment out of status and names its other owner for the log only', () => {
    const refused = plan(cloud.adopting('env_1').env, found(remoteOf(cloud.env, { metadata: { 'agentenv.io/uid': 'uid-9', 'agentenv.io/owner': 'team-b/theirs' } })));
    const report = refused.call === 'none' ? refused.report : undefined;
    expect(report).toMatchObject({ otherOwner: 'team-b/theirs', synced: { reason: 'AdoptionRefused' } });
    expect(report?.remote).toBeUndefined();
    expect(report?.environmentId).toBeUndefined();
    expect(JSON.stringify([report?.synced, report?.events])).not.toContain('team-b');
  });

  it('a create sends the desired environment; an update sends only the fields that differ', () => {
    const create = plan(cloud.env, notFound());
    expect(create.call === 'create' && create.params).toEqual(createParams(desiredEnvironment(cloud.env.spec, IDENTITY)));
    const update = plan(described.env, found(remoteOf(managed.env)));
    expect(update.call === 'update' && { id: update.id, params: update.params }).toEqual({ id: 'env_1', params: { description: 'new words' } });
  });
});

describe('planApiFailure', () => {
  const info = { requestId: 'req_1' };
  const rows: Array<{ rule: string; err: ApiError; reason: string; retry: 'credential' | 'terminal' | 'backoff' }> = [
    { rule: 'a refused credential (401) is CredentialsInvalid and read again after the credential period', err: errorForStatus(401, 'bad key', info), reason: 'CredentialsInvalid', retry: 'credential' },
    { rule: 'a forbidden call (403) is PermissionDenied and read again after the credential period', err: errorForStatus(403, 'no access', info), reason: 'PermissionDenied', retry: 'credential' },
    { rule: 'a reply that breaks the wire schema is MalformedApiReply and not retried until something changes', err: new MalformedResponseError('expected string', 'config.type', info), reason: 'MalformedApiReply', retry: 'terminal' },
    { rule: 'another 4xx is ApiRejected and not retried until something changes', err: errorForStatus(400, 'bad name', info), reason: 'ApiRejected', retry: 'terminal' },
    { rule: 'a 5xx is ApiUnavailable and backed off', err: errorForStatus(503, 'down', info), reason: 'ApiUnavailable', retry: 'backoff' },
    { rule: 'a 429 is ApiUnavailable and backed off (no sooner than Retry-After: the error carries it)', err: errorForStatus(429, 'slow down', { ...info, retryAfterMs: 5_000 }), reason: 'ApiUnavailable', retry: 'backoff' },
    { rule: 'a 409 (the remote state raced us) is ApiUnavailable and backed off', err: errorForStatus(409, 'conflict', info), reason: 'ApiUnavailable', retry: 'backoff' },
    { rule: 'a timeout is ApiUnavailable and backed off', err: new TimeoutError('timed out', info), reason: 'ApiUnavailable', retry: 'backoff' },
    { rule: 'a connection failure is ApiUnavailable and backed off', err: new ConnectionError('ECONNRESET', info), reason: 'ApiUnavailable', retry: 'backoff' },
  ];
  for (const row of rows) {
    it(row.rule, () => {
      const { verdict, retry } = planApiFailure(row.err);
      expect({ ok: verdict.ok, reason: verdict.reason, retry }).toEqual({ ok: false, reason: row.reason, retry: row.retry });
      expect(verdict.message).toContain(row.err.message);
      expect(verdict.message).toContain('(request-id req_1)');
    });
  }

  it('a malformed reply names the field the schema refused', () => {
    expect(planApiFailure(new MalformedResponseError('expected string', 'config.type')).verdict.message).toBe('the API returned an unexpected reply (field config.type): expected string');
  });
});

describe('planDeletion', () => {
  const deletion = agentEnvironment().recorded('env_1');
  const rows: Array<{ rule: string; env: AgentEnvironment; drained: boolean; expect: unknown }> = [
    {
      rule: 'while sessions are still running the deletion waits with Draining, whatever the policy',
      env: deletion.deletionPolicy('Orphan').env,
      drained: false,
      expect: { step: 'wait', status: expect.objectContaining({ synced: { ok: false, reason: 'Draining', message: 'waiting for running sessions to stop before applying the deletion policy' }, clean: false }) },
    },
    { rule: 'the default policy archives the remote environment', env: deletion.env, drained: true, expect: { step: 'apply', policy: 'Archive' } },
    { rule: 'deletionPolicy Delete deletes it', env: deletion.deletionPolicy('Delete').env, drained: true, expect: { step: 'apply', policy: 'Delete' } },
    { rule: 'deletionPolicy Orphan leaves it in place', env: deletion.deletionPolicy('Orphan').env, drained: true, expect: { step: 'orphan', event: { type: 'Normal', reason: 'Orphaned', message: 'left environment env_1 in place' } } },
    { rule: 'ObserveOnly never writes to the API, whatever the deletion policy says', env: deletion.observeOnly().deletionPolicy('Delete').env, drained: true, expect: { step: 'orphan', event: { type: 'Normal', reason: 'Orphaned', message: 'left environment env_1 in place' } } },
    { rule: 'an orphaned resource that never had an environment says so', env: agentEnvironment().deletionPolicy('Orphan').env, drained: true, expect: { step: 'orphan', event: { type: 'Normal', reason: 'Orphaned', message: 'left environment (none) in place' } } },
  ];
  for (const row of rows) {
    it(row.rule, () => {
      expect(planDeletion(row.env, row.drained)).toEqual(row.expect);
    });
  }
});

describe('planRemoteDeletion', () => {
  const tagged = (uid: string | undefined): Environment => remoteOf(cloud.env, { metadata: uid ? { 'agentenv.io/uid': uid } : {} });
  it.each([
    ['an environment tagged with this resource\'s uid is deleted or archived', tagged(IDENTITY.uid), cloud.recorded('env_1').env, true],
    ['one this resource created (recorded id) whose tag was removed in the Console is too', tagged(undefined), cloud.recorded('env_1').env, true],
    ['an adopted environment never tagged (a refused adoption) is left in place', tagged(undefined), cloud.adopting('env_1').env, false],
    ["another AgentEnvironment's environment is left in place", tagged('uid-9'), cloud.adopting('env_1').recorded('env_1').env, false],
  ])('%s', (_rule, remote, env, act) => {
    const verdict = planRemoteDeletion(remote, env, 'Delete');
    expect(verdict.act).toBe(act);
    if (!verdict.act) expect(verdict.event).toEqual({ type: 'Normal', reason: 'Orphaned', message: 'left environment env_1 in place: this AgentEnvironment does not own it (no agentenv.io/uid tag of its own), so deletionPolicy Delete does not apply to it' });
  });
});
