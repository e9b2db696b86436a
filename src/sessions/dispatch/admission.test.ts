import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../telemetry/logger.ts';
import type { PodRefusal } from '../objects/pod-refusal.ts';
import { admissionVerdict, type AdmissionFacts } from './admission.ts';
import { probeLoop } from './loops.ts';

const facts = (over: Partial<AdmissionFacts> = {}): AdmissionFacts => ({ namespace: 'team-a', held: undefined, fit: undefined, pending: 0, ...over });

describe('admissionVerdict', () => {
  it.each([
    ['no quota and nothing held: claims without limit', facts(), { open: true, room: Infinity }],
    ['a quota with room for three and one claim whose Pod is not created yet: room for two', facts({ fit: { fits: 3 }, pending: 1 }), { open: true, room: 2 }],
    ['room taken by claims not started yet: no poll, and nothing reported (their Pods fill the quota next)', facts({ fit: { fits: 1 }, pending: 2 }), { open: true, room: 0 }],
    [
      'a full quota closes dispatch, naming the quota and what is used up',
      facts({ fit: { fits: 0, quota: 'compute', resource: 'pods', used: '2', hard: '2', needs: '1' } }),
      { open: false, reason: 'QuotaExhausted', message: 'session Pods do not fit ResourceQuota compute in namespace team-a: pods: 2 of 2 used, a session Pod needs 1; no work is claimed meanwhile: dispatch resumes on its own when one fits' },
    ],
    [
      'a held refusal closes dispatch whatever the quota says, in the refusal\'s words',
      facts({ held: { kind: 'webhook', reason: 'AdmissionDenied', message: 'admission webhook budget.example.com denied the session Pod: over budget' }, fit: { fits: 5 } }),
      { open: false, reason: 'AdmissionDenied', message: 'admission webhook budget.example.com denied the session Pod: over budget; no work is claimed meanwhile: dispatch resumes on its own once a session Pod is admitted again (a dry-run create every 10 s)' },
    ],
  ])('%s', (_rule, f, want) => {
    expect(admissionVerdict(f)).toEqual(want);
  });
});

describe('probeLoop', () => {
  it('probes only while a refusal is held, keeps the hold on a refusal or a failed probe, and lifts it once the next Pod is admitted', async () => {
    const refusal: PodRefusal = { kind: 'limitRange', reason: 'LimitRangeRefused', message: 'a LimitRange refuses session Pods' };
    let held: PodRefusal | undefined;
    const answers: Array<() => Promise<PodRefusal | undefined>> = [async () => refusal, async () => Promise.reject(new Error('apiserver unavailable')), async () => undefined];
    let probes = 0;
    let ticks = 0;
    const abort = new AbortController();
    await probeLoop(
      {
        held: () => held,
        probe: () => answers[probes++]!(),
        lift: (still) => void (held = still),
        clock: {
          now: () => 0,
          sleep: async () => {
            ticks++;
            if (ticks === 3) held = refusal; // two idle ticks, then a refusal is held
            if (ticks === 7) abort.abort();
          },
        },
        intervalMs: 10_000,
        logger: silentLogger,
      },
      abort.signal,
    );
    expect(probes).toBe(3); // held from the third tick: refused, failed, admitted; nothing after
    expect(held).toBeUndefined();
  });
});
