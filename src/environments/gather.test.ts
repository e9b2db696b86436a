import { describe, expect, it } from 'vitest';
import { agentEnvironment } from './fixtures.test-support.ts';
import { parseSpec } from './gather.ts';

describe('parseSpec', () => {
  it("fills in every default the CRD declares, so no phase repeats one", () => {
    const parsed = parseSpec(agentEnvironment().raw({ selfHosted: {} }));
    expect(parsed.ok && parsed.env.spec).toMatchObject({
      deletionPolicy: 'Archive',
      managementPolicy: 'Full',
      selfHosted: { maxSessions: 10, maxPollers: 16, sessionTTLSecondsAfterFinished: 300, stopGracePeriodSeconds: 30, startDeadlineSeconds: 300, podSecurity: 'Restricted' },
    });
  });

  it("a spec the schema refuses is InvalidSpec with the schema's first complaint, and the resource is not reconciled", () => {
    const parsed = parseSpec(agentEnvironment().raw({ cloud: {}, deletionPolicy: 'Burn' }));
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    const complaint = 'Invalid option: expected one of "Delete"|"Archive"|"Orphan"';
    expect(parsed.status).toEqual({ synced: { ok: false, reason: 'InvalidSpec', message: complaint }, ready: { ok: false, reason: 'InvalidSpec', message: complaint }, clean: false });
  });
});
