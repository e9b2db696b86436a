import { describe, expect, it } from 'vitest';
import type { Workspace } from '../../crd/agent-environment.ts';
import type { AgentSessionStatus } from '../../crd/agent-session.ts';
import { agentSession, at, iso } from '../fixtures.test-support.ts';
import { claimPhase, launchGate, retention, RETENTION_RECHECK_MS, type ApiSessionFact, type WorkspaceSeen } from './workspace.ts';

const seen = (phase: WorkspaceSeen['phase'], deleting = false): WorkspaceSeen => ({ claimName: 's-workspace', phase, deleting });

describe('launchGate', () => {
  it.each([
    { rule: 'without a workspace the Pod is created at once', seen: undefined, earlier: [], gate: 'go' },
    { rule: 'a missing claim is created before the Pod', seen: seen('Missing'), earlier: [], gate: 'createClaim' },
    { rule: 'an existing claim, Pending or Bound, lets the Pod be created (a WaitForFirstConsumer claim binds only with its Pod)', seen: seen('Pending'), earlier: [], gate: 'go' },
    { rule: 'a bound claim lets the Pod be created', seen: seen('Bound'), earlier: [], gate: 'go' },
    { rule: 'a session whose earlier Pod still exists waits for it, never racing it for the volume', seen: seen('Bound'), earlier: ['s-old'], gate: 'wait' },
    { rule: 'the claim is not created while an earlier Pod is still there either', seen: seen('Missing'), earlier: ['s-old'], gate: 'wait' },
    { rule: 'a claim being deleted is waited out (a new one is made once it is gone)', seen: seen('Bound', true), earlier: [], gate: 'wait' },
  ])('$rule', ({ seen: s, earlier, gate }) => {
    expect(launchGate({ seen: s, earlierPods: earlier }).kind).toBe(gate);
  });
});

const workspace: Workspace = { volumeClaimTemplate: { spec: {} }, reclaimPolicy: 'Delete', retainSecondsAfterLastWork: 100 };
const finished: AgentSessionStatus = { phase: 'Succeeded', reason: 'Idle', finishedAt: iso(10) };

describe('retention', () => {
  it.each<{ rule: string; status: AgentSessionStatus; api: ApiSessionFact; now: number; expire: string | false; recheck?: number | undefined }>([
    { rule: 'an unfinished session keeps its workspace and is not looked at', status: { phase: 'Running' }, api: 'terminated', now: 500, expire: false, recheck: undefined },
    { rule: 'a session terminated in the API loses its workspace at once', status: finished, api: 'terminated', now: 11, expire: 'SessionTerminated' },
    { rule: 'a session deleted in the API loses its workspace at once', status: finished, api: 'gone', now: 11, expire: 'SessionTerminated' },
    { rule: 'an idle session keeps its workspace until retainSecondsAfterLastWork after its last work item', status: finished, api: 'idle', now: 109, expire: false, recheck: 1_100 },
    { rule: 'retainSecondsAfterLastWork after the last work item the workspace goes', status: finished, api: 'idle', now: 110, expire: 'RetentionExpired' },
    { rule: 'an unreadable API session does not delete a workspace before its retention ends', status: finished, api: 'unknown', now: 50, expire: false, recheck: 60_100 },
    { rule: 'a long retention is re-checked against the API every few minutes', status: { ...finished, finishedAt: iso(0) }, api: 'live', now: 1, expire: false, recheck: 99_100 },
  ])('$rule', ({ status, api, now, expire, recheck }) => {
    const session = agentSession().withStatus(status).session;
    const r = retention({ session, workspace, apiSession: api, now: at(now) });
    if (expire) expect(r).toEqual({ expire: true, reason: expire });
    else expect(r).toEqual({ expire: false, recheckMs: recheck === undefined ? undefined : Math.min(recheck, RETENTION_RECHECK_MS) });
  });
});

describe('claimPhase', () => {
  it.each([
    { rule: 'no claim is Missing', claim: undefined, phase: 'Missing' },
    { rule: 'a claim without a phase yet is Pending', claim: { metadata: { name: 'c' } }, phase: 'Pending' },
    { rule: 'a bound claim is Bound', claim: { status: { phase: 'Bound' } }, phase: 'Bound' },
    { rule: 'a claim whose volume is gone is Lost', claim: { status: { phase: 'Lost' } }, phase: 'Lost' },
  ])('$rule', ({ claim, phase }) => {
    expect(claimPhase(claim)).toBe(phase);
  });
});
