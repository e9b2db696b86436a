import { describe, expect, it } from 'vitest';
import type { Environment } from '../api/wire.ts';
import type { AgentEnvironment } from '../crd/resources.ts';
import { agentEnvironment, IDENTITY, remoteOf } from './fixtures.test-support.ts';
import { adoptionGranted, defaultKeyServes, NO_GRANTS, ownership, owns, type TenancyPolicy } from './ownership.ts';

const cloud = agentEnvironment();
/** The remote environment with the create fence's tags of `uid` (none when undefined). */
const taggedBy = (uid: string | undefined): Environment => {
  const base = remoteOf(cloud.env);
  return { ...base, metadata: uid ? { 'agentenv.io/uid': uid, 'agentenv.io/owner': 'team-b/theirs' } : { team: 'x' } };
};
const ours = taggedBy(IDENTITY.uid);
const untagged = taggedBy(undefined);
const theirs = taggedBy('uid-other');
const granted: TenancyPolicy = { adoptionNamespaces: [IDENTITY.namespace], defaultKeyNamespaces: [] };
const grantedToAll: TenancyPolicy = { adoptionNamespaces: ['*'], defaultKeyNamespaces: [] };
const grantedElsewhere: TenancyPolicy = { adoptionNamespaces: ['team-b'], defaultKeyNamespaces: [] };

const verdict = (remote: Environment, env: AgentEnvironment, policy: TenancyPolicy): string => {
  const o = ownership(remote, env, policy);
  return o.allowed ? `allowed (${o.basis})` : o.reason;
};

describe('ownership', () => {
  it.each([
    ['an environment tagged with this resource\'s uid is owned, without any grant', ours, cloud.recorded('env_1').env, NO_GRANTS, 'allowed (owned)'],
    ['an adopted environment already tagged with this resource\'s uid is owned (a revoked grant does not un-own it)', ours, cloud.adopting('env_1').recorded('env_1').env, NO_GRANTS, 'allowed (owned)'],
    ['an untagged environment under the id the operator recorded (not adopted) is owned: the tag is Console drift', untagged, cloud.recorded('env_1').env, NO_GRANTS, 'allowed (owned)'],
    ['a recorded environment now tagged by another AgentEnvironment is OwnedElsewhere', theirs, cloud.recorded('env_1').env, NO_GRANTS, 'OwnedElsewhere'],
    ['no grant reverses a take-over of an environment this resource created', theirs, cloud.recorded('env_1').env, grantedToAll, 'OwnedElsewhere'],
    ['adopting an untagged environment (made in the Console) without a grant is refused', untagged, cloud.adopting('env_1').env, NO_GRANTS, 'AdoptionRefused'],
    ['adopting another AgentEnvironment\'s environment without a grant is refused', theirs, cloud.adopting('env_1').env, NO_GRANTS, 'AdoptionRefused'],
    ['a grant for another namespace is no grant for this one', untagged, cloud.adopting('env_1').env, grantedElsewhere, 'AdoptionRefused'],
    ['ObserveOnly adoption needs the grant too (it reads the environment into status)', untagged, cloud.observeOnly().adopting('env_1').env, NO_GRANTS, 'AdoptionRefused'],
    ['a granted namespace adopts an untagged environment', untagged, cloud.adopting('env_1').env, granted, 'allowed (granted)'],
    ['`*` grants every namespace', untagged, cloud.adopting('env_1').env, grantedToAll, 'allowed (granted)'],
    ['a granted namespace takes another AgentEnvironment\'s environment over, the first time', theirs, cloud.adopting('env_1').env, granted, 'allowed (granted)'],
    ['a granted Full adoption that had the environment and finds another tag lost it: OwnedElsewhere (no tug of war)', theirs, cloud.adopting('env_1').recorded('env_1').env, granted, 'OwnedElsewhere'],
    ['a granted ObserveOnly adoption keeps observing another\'s environment (it never writes the tag)', theirs, cloud.observeOnly().adopting('env_1').recorded('env_1').env, granted, 'allowed (granted)'],
  ])('%s', (_rule, remote, env, policy, expected) => {
    expect(verdict(remote, env, policy)).toBe(expected);
  });

  it('a refusal says why and which grant is needed, and names the other owner only for the log', () => {
    const refused = ownership(theirs, cloud.adopting('env_1').env, NO_GRANTS);
    expect(refused).toMatchObject({ allowed: false, owner: 'team-b/theirs' });
    if (refused.allowed) return;
    expect(refused.message).toContain('environment env_1 belongs to another AgentEnvironment');
    expect(refused.message).toContain(`namespace ${IDENTITY.namespace} listed in the operator's --adoption-namespaces (chart value tenancy.adoptionNamespaces)`);
    expect(refused.message).not.toContain('team-b');
    const console = ownership(untagged, cloud.adopting('env_1').env, NO_GRANTS);
    expect(console).toMatchObject({ allowed: false, owner: undefined });
    if (!console.allowed) expect(console.message).toContain('was not created by an AgentEnvironment (no agentenv.io/uid tag');
  });
});

describe('owns (what a deletion policy may touch)', () => {
  it.each([
    ['tagged with this resource\'s uid', ours, cloud.adopting('env_1').env, true],
    ['recorded and untagged, not adopted', untagged, cloud.recorded('env_1').env, true],
    ['adopted and untagged, even when granted: never tagged, never owned', untagged, cloud.adopting('env_1').recorded('env_1').env, false],
    ['tagged by another AgentEnvironment', theirs, cloud.recorded('env_1').env, false],
  ])('%s → %s', (_rule, remote, env, expected) => {
    expect(owns(remote, env)).toBe(expected);
  });
});

describe('grants', () => {
  it.each([
    ['no grant by default', NO_GRANTS, 'team-a', false],
    ['a listed namespace', granted, 'team-a', true],
    ['an unlisted namespace', granted, 'team-c', false],
    ['`*`', grantedToAll, 'anything', true],
  ])('adoption: %s', (_rule, policy, namespace, expected) => {
    expect(adoptionGranted(policy, namespace)).toBe(expected);
  });
  it.each([
    ['the default key serves every namespace when no list is set', [], 'team-a', true],
    ['a listed namespace is served', ['team-a', 'team-b'], 'team-b', true],
    ['an unlisted namespace must bring its own key', ['team-a'], 'team-c', false],
  ])('%s', (_rule, list, namespace, expected) => {
    expect(defaultKeyServes({ adoptionNamespaces: [], defaultKeyNamespaces: list }, namespace)).toBe(expected);
  });
});
