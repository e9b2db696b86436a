import { describe, expect, it } from 'vitest';
import { ENVIRONMENT_FINALIZER, SESSION_FINALIZER } from '../crd/meta.ts';
import { planUninstall, type Held, type UninstallPolicy } from './uninstall.ts';

const env = (name: string, more: Partial<Held> = {}): Held => ({ kind: 'AgentEnvironment', namespace: 'team-a', name, finalizers: [ENVIRONMENT_FINALIZER], deleting: false, resourceVersion: '7', environmentId: `env_${name}`, ...more });
const session = (name: string, more: Partial<Held> = {}): Held => ({ kind: 'AgentSession', namespace: 'team-a', name, finalizers: [SESSION_FINALIZER], deleting: false, resourceVersion: '9', ...more });

const ROWS: readonly { rule: string; policy: UninstallPolicy; held: Held[]; verdict: string; steps?: string[]; says?: RegExp }[] = [
  { rule: 'refuse lets the release go when no AgentEnvironment exists', policy: 'refuse', held: [], verdict: 'done' },
  { rule: 'refuse names every AgentEnvironment and both ways on', policy: 'refuse', held: [env('data'), env('web', { namespace: 'team-b' })], verdict: 'refuse', says: /2 AgentEnvironment\(s\).*team-a\/data, team-b\/web.*uninstall\.policy=delete.*uninstall\.policy=orphan/ },
  { rule: 'refuse ignores AgentSessions left without an environment', policy: 'refuse', held: [session('s1')], verdict: 'done' },
  { rule: 'delete deletes each AgentEnvironment not yet deleting', policy: 'delete', held: [env('data'), env('web', { deleting: true })], verdict: 'wait', steps: ['delete team-a/data'] },
  { rule: 'delete waits while the operator applies the deletion policies', policy: 'delete', held: [env('web', { deleting: true })], verdict: 'wait', steps: [] },
  { rule: 'delete is done once no AgentEnvironment is left', policy: 'delete', held: [], verdict: 'done' },
  { rule: 'orphan removes only the operator finalizers, keeping everyone else\'s', policy: 'orphan', held: [env('data', { finalizers: [ENVIRONMENT_FINALIZER, 'example.com/backup'] }), session('s1')], verdict: 'wait', steps: ['unfinalize team-a/data keep example.com/backup', 'unfinalize team-a/s1 keep '] },
  { rule: 'orphan is done when no object holds an operator finalizer, even if objects remain', policy: 'orphan', held: [env('data', { finalizers: [] }), session('s1', { finalizers: ['example.com/x'] })], verdict: 'done' },
];

describe('planUninstall', () => {
  it.each(ROWS)('$rule', ({ policy, held, verdict, steps, says }) => {
    const plan = planUninstall(policy, held);
    expect(plan.verdict).toBe(verdict);
    if (says) expect(plan.message).toMatch(says);
    if (steps) {
      expect(plan.verdict).toBe('wait');
      if (plan.verdict !== 'wait') return;
      expect(plan.steps.map((s) => (s.do === 'delete' ? `delete ${s.target.namespace}/${s.target.name}` : `unfinalize ${s.target.namespace}/${s.target.name} keep ${s.keep.join(',')}`))).toEqual(steps);
    }
  });
});
