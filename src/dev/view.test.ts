import { describe, expect, it } from 'vitest';
import { describeToolEvent } from './view.ts';

describe('describeToolEvent', () => {
  it.each([
    { rule: 'a tool call shows the tool and its input', event: { id: 'e1', type: 'agent.tool_use', name: 'bash', input: { command: 'echo hi' } }, line: 'bash {"command":"echo hi"}' },
    { rule: 'a result shows its text on one line', event: { id: 'e2', type: 'user.tool_result', tool_use_id: 'e1', content: [{ type: 'text', text: 'hi\nthere\n' }] }, line: '→ hi there' },
    { rule: 'a failed result says so', event: { id: 'e3', type: 'user.tool_result', tool_use_id: 'e1', is_error: true, content: [{ type: 'text', text: 'exit 1' }] }, line: 'error: exit 1' },
    { rule: 'an empty result says so', event: { id: 'e4', type: 'user.tool_result', tool_use_id: 'e1', content: [] }, line: '→ (no output)' },
    { rule: 'other events are not shown', event: { id: 'e5', type: 'session.status_idle' }, line: undefined },
  ])('$rule', ({ event, line }) => {
    expect(describeToolEvent(event)).toBe(line);
  });
});
