import { describe, expect, it } from 'vitest';
import { completeAgentEvent, statusAfter, type ScriptedAgentEvent } from './agent-events.ts';
import type { SessionStatus } from '../api/sessions-wire.ts';

describe('statusAfter: the session status follows the status events', () => {
  it.each<[string, SessionStatus, string, SessionStatus]>([
    ['running starts a turn', 'idle', 'session.status_running', 'running'],
    ['idle ends it', 'running', 'session.status_idle', 'idle'],
    ['rescheduled is rescheduling', 'running', 'session.status_rescheduled', 'rescheduling'],
    ['terminated ends the session', 'running', 'session.status_terminated', 'terminated'],
    ['a deleted session is terminated', 'idle', 'session.deleted', 'terminated'],
    ['a tool use does not change the status by itself', 'idle', 'agent.tool_use', 'idle'],
    ['a user message does not change the status by itself (the emulator has no agent)', 'idle', 'user.message', 'idle'],
    ['terminated is final', 'terminated', 'session.status_running', 'terminated'],
  ])('%s', (_, current, type, next) => {
    expect(statusAfter(current, type)).toBe(next);
  });
});

describe('completeAgentEvent: a scripted event becomes the event the API would emit', () => {
  const toolUse = (extra: Partial<Extract<ScriptedAgentEvent, { type: 'agent.tool_use' }>> = {}): ScriptedAgentEvent => ({ type: 'agent.tool_use', name: 'bash', input: {}, ...extra });
  it.each<[string, ScriptedAgentEvent, Record<string, unknown>]>([
    ['a tool use without a permission is allowed under always_allow', toolUse(), { evaluated_permission: 'allow', evaluation: { type: 'always_allow' } }],
    ['an ask is evaluated under always_ask', toolUse({ evaluated_permission: 'ask' }), { evaluated_permission: 'ask', evaluation: { type: 'always_ask' } }],
    ['a deny carries no evaluation (refused before any policy)', toolUse({ evaluated_permission: 'deny' }), { evaluated_permission: 'deny' }],
    ['a given evaluation is kept', toolUse({ evaluated_permission: 'allow', evaluation: { type: 'auto' } }), { evaluation: { type: 'auto' } }],
    ['other events only get id and processed_at', { type: 'agent.thinking' }, { type: 'agent.thinking' }],
  ])('%s', (_, input, expected) => {
    const event = completeAgentEvent(input, 'sevt_1', '2026-01-01T00:00:00.000Z');
    expect(event).toMatchObject({ id: 'sevt_1', processed_at: '2026-01-01T00:00:00.000Z', ...expected });
    if (!('evaluation' in expected) && input.type === 'agent.tool_use') expect(event).not.toHaveProperty('evaluation');
  });
});
