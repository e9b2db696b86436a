import { describe, expect, it } from 'vitest';
import type { PersistentVolumeClaim } from '../objects/workspace.ts';
import { sweepPlan } from './workspace-sweep.ts';

const claim = (session: string, extra: { phase?: string; retained?: boolean; deleting?: boolean } = {}): PersistentVolumeClaim => ({
  metadata: {
    name: `${session}-workspace`,
    labels: { 'agentenv.io/session': session, ...(extra.retained ? { 'agentenv.io/retained': 'true' } : {}) },
    ...(extra.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
  },
  ...(extra.phase ? { status: { phase: extra.phase } } : {}),
});

describe('sweepPlan', () => {
  const live = new Set(['alive']);
  const plan = (claims: PersistentVolumeClaim[]) => sweepPlan(claims, (s) => live.has(s));

  it('deletes a claim whose AgentSession is gone', () => {
    expect(plan([claim('gone', { phase: 'Bound' })]).orphaned.map((c) => c.metadata?.name)).toEqual(['gone-workspace']);
  });

  it('keeps a claim whose AgentSession exists', () => {
    expect(plan([claim('alive', { phase: 'Bound' })]).orphaned).toEqual([]);
  });

  it('keeps a claim retained by reclaimPolicy: Retain although its session is gone', () => {
    expect(plan([claim('gone', { phase: 'Bound', retained: true })]).orphaned).toEqual([]);
  });

  it('leaves a claim already being deleted alone, and does not count it', () => {
    const p = plan([claim('gone', { phase: 'Bound', deleting: true })]);
    expect(p).toEqual({ orphaned: [], byPhase: {} });
  });

  it('counts claims by phase, retained ones as Retained', () => {
    const p = plan([claim('alive', { phase: 'Bound' }), claim('a2'), claim('gone', { phase: 'Bound', retained: true }), claim('x', { phase: 'Lost' })]);
    expect(p.byPhase).toEqual({ Bound: 1, Pending: 1, Retained: 1, Lost: 1 });
  });
});
