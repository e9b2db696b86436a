import { describe, expect, it } from 'vitest';
import type { Work } from '../../api/wire.ts';
import type { AgentSessionStatus } from '../../crd/agent-session.ts';
import { decideFinalize, ttlRemainingMs, type FinalizeFacts } from './finalize.ts';
import { agentSession, sidecarNotReady, WORK_ID } from '../fixtures.test-support.ts';
import type { PodStatus } from '../objects/pod-types.ts';

const T0 = Date.parse('2026-01-01T00:10:00.000Z');
const at = (s: number) => new Date(T0 + s * 1000);
const work = (state: Work['state']): FinalizeFacts['work'] => ({
  kind: 'found',
  work: { id: WORK_ID, type: 'work', environment_id: 'env_1', data: { id: 'sesn_01', type: 'session' }, state, metadata: {}, created_at: 't' },
});
const acked: AgentSessionStatus = { phase: 'Running', workId: WORK_ID, acknowledgedAt: 't' };
const settings = { startDeadlineSeconds: 60, stopGracePeriodSeconds: 10, leaseTTLSeconds: undefined, sessionTTLSecondsAfterFinished: 300, observeOnly: false };
const runningPod: PodStatus = { phase: 'Running', containerStatuses: [{ name: 'session', started: true, state: { running: { startedAt: 't' } } }] };
const pendingPod: PodStatus = { phase: 'Pending' };
const donePod: PodStatus = { phase: 'Succeeded', containerStatuses: [{ name: 'session', state: { terminated: { exitCode: 0 } } }] };

interface Case {
  rule: string;
  status?: AgentSessionStatus;
  work: FinalizeFacts['work'];
  pods: PodStatus[];
  now?: number;
  envGone?: boolean;
  observeOnly?: boolean;
  actions: string[];
  done: boolean;
}

const cases: Case[] = [
  { rule: 'a record never acknowledged here stops nothing and is released', status: { phase: 'Claimed' }, work: work('active'), pods: [], actions: ['deletePods', 'removeFinalizer'], done: true },
  { rule: 'an active item is stopped gracefully first', work: work('active'), pods: [runningPod], actions: ['stopWork:graceful'], done: false },
  { rule: 'a stopping item is left to drain', work: work('stopping'), pods: [runningPod], actions: [], done: false },
  { rule: 'a starting item has nothing to drain: force-stopped, its idle Pod deleted', work: work('starting'), pods: [pendingPod], actions: ['stopWork:force', 'deletePods'], done: false },
  // The fixtures count from the claim, 600 s before this file's deletion time.
  { rule: 'a Pod whose sidecar has asked its main container to end for stopGracePeriodSeconds is deleted (the enforced stop)', work: work('stopping'), pods: [sidecarNotReady(600 + 2)], now: 12, actions: ['deletePods'], done: false },
  { rule: 'the enforced stop waits the whole grace', work: work('stopping'), pods: [sidecarNotReady(600 + 2)], now: 11.9, actions: [], done: false },
  { rule: 'past the grace period plus margin the item is force-stopped and the Pod deleted', work: work('stopping'), pods: [runningPod], now: 10 + 45, actions: ['stopWork:force', 'deletePods'], done: false },
  { rule: 'once the Pod ended, a still-stopping item is confirmed and everything removed', work: work('stopping'), pods: [donePod], actions: ['stopWork:force', 'deletePods', 'removeFinalizer'], done: true },
  { rule: 'a stopped item with an ended Pod is cleaned up', work: work('stopped'), pods: [donePod], actions: ['deletePods', 'removeFinalizer'], done: true },
  { rule: 'a gone item with no Pod is cleaned up', work: { kind: 'gone' }, pods: [], actions: ['deletePods', 'removeFinalizer'], done: true },
  { rule: 'an unreachable item: the Pod is deleted and its sidecar stops the item', work: { kind: 'unknown', message: 'no credential' }, pods: [runningPod], actions: ['deletePods'], done: false },
  { rule: 'the environment gone: the same', work: { kind: 'unknown', message: 'env gone' }, envGone: true, pods: [runningPod], actions: ['deletePods'], done: false },
  { rule: 'ObserveOnly writes nothing to the API: the Pod is deleted', work: work('active'), observeOnly: true, pods: [runningPod], actions: ['deletePods'], done: false },
  { rule: 'ObserveOnly with nothing running is cleaned up', work: work('active'), observeOnly: true, pods: [], actions: ['deletePods', 'removeFinalizer'], done: true },
];

describe('decideFinalize', () => {
  it.each(cases)('$rule', (c) => {
    const d = decideFinalize({
      session: agentSession().withStatus(c.status ?? acked).deleting(at(0)).session,
      settings: c.envGone ? undefined : { ...settings, observeOnly: c.observeOnly ?? false },
      work: c.work,
      pods: c.pods.map((s) => agentSession().withPod(s).podView!),
      now: at(c.now ?? 1),
    });
    expect(d.actions.map((a) => (a.kind === 'stopWork' ? `stopWork:${a.force ? 'force' : 'graceful'}` : a.kind))).toEqual(c.actions);
    expect(d.requeueAfterMs === undefined).toBe(c.done);
  });
});

describe('ttlRemainingMs', () => {
  const finished = (phase: AgentSessionStatus['phase'], finishedAt?: string, workId = WORK_ID) => agentSession().withStatus({ phase, workId, ...(finishedAt ? { finishedAt } : {}) }).session;
  it.each([
    ['a running session is not expiring', finished('Running', at(0).toISOString()), 10, undefined],
    ['a finished session expires TTL after it finished', finished('Succeeded', at(0).toISOString()), 10, 9_000],
    ['a failed session past its TTL is due', finished('Failed', at(-20).toISOString()), 10, -11_000],
    ['a finished status about an earlier work item does not count', finished('Succeeded', at(0).toISOString(), 'work_00'), 10, undefined],
    ['without finishedAt nothing expires', finished('Succeeded'), 10, undefined],
  ] as const)('%s', (_rule, session, ttl, expected) => {
    expect(ttlRemainingMs(session, ttl, at(1))).toBe(expected);
  });
});
