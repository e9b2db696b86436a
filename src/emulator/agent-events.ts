/**
 * The agent side of a session, scripted through the admin API: what a test may append as if the
 * agent had produced it, and how each scripted event is completed into the event the API would
 * emit (`id`, `processed_at`, and the fields the SDK's event types require). Pure.
 */
import { z } from 'zod';
import { StopReason, TextBlock, type SessionEvent, type SessionStatus } from '../api/sessions-wire.ts';

/** A caller-chosen event id (so a `requires_action` idle can name a tool use of the same batch). */
const EventId = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'ids are 1–128 characters of [A-Za-z0-9_-]');
const Input = z.record(z.string(), z.unknown());
const ThreadId = z.string().nullable().optional();

export const AgentEventInput = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('agent.message'), id: EventId.optional(), content: z.array(TextBlock).min(1) }),
  z.strictObject({ type: z.literal('agent.thinking'), id: EventId.optional() }),
  z.strictObject({
    type: z.literal('agent.tool_use'),
    id: EventId.optional(),
    name: z.string().min(1),
    input: Input.default({}),
    evaluated_permission: z.enum(['allow', 'ask', 'deny']).optional(),
    evaluation: z.looseObject({ type: z.string() }).optional(),
    session_thread_id: ThreadId,
  }),
  z.strictObject({ type: z.literal('agent.custom_tool_use'), id: EventId.optional(), name: z.string().min(1), input: Input.default({}), session_thread_id: ThreadId }),
  z.strictObject({ type: z.literal('session.status_running'), id: EventId.optional() }),
  z.strictObject({ type: z.literal('session.status_idle'), id: EventId.optional(), stop_reason: StopReason, stop_details: z.looseObject({ type: z.string() }).nullable().default(null) }),
  z.strictObject({ type: z.literal('session.status_rescheduled'), id: EventId.optional() }),
  z.strictObject({ type: z.literal('session.status_terminated'), id: EventId.optional() }),
]);
/** A scripted event as a test writes it (defaults not yet applied). */
export type AgentEventInput = z.input<typeof AgentEventInput>;
/** A scripted event after validation. */
export type ScriptedAgentEvent = z.output<typeof AgentEventInput>;

export const AgentEventsBody = z.strictObject({ events: z.array(AgentEventInput).min(1).max(1000) });

/** The evaluation arm the API reports beside each evaluated permission (SDK `evaluation` doc). */
const EVALUATION_FOR = { allow: { type: 'always_allow' }, ask: { type: 'always_ask' } } as const;

/**
 * The event the API would emit for a scripted one. An `agent.tool_use` without a permission is
 * evaluated `allow` under `always_allow`, as a default agent's toolset is; `deny` carries no
 * evaluation (the SDK: "absent only when the server refused the call before any policy applied").
 */
export function completeAgentEvent(input: ScriptedAgentEvent, id: string, processedAt: string): SessionEvent {
  const base = { ...input, id, processed_at: processedAt };
  if (input.type !== 'agent.tool_use') return base;
  const permission = input.evaluated_permission ?? 'allow';
  const evaluation = input.evaluation ?? (permission === 'deny' ? undefined : EVALUATION_FOR[permission]);
  return { ...base, evaluated_permission: permission, ...(evaluation ? { evaluation } : {}) };
}

/** The session status a status event sets; other events leave it as it is. */
export function statusAfter(current: SessionStatus, type: string): SessionStatus {
  if (current === 'terminated') return current; // terminated is final
  switch (type) {
    case 'session.status_running':
      return 'running';
    case 'session.status_idle':
      return 'idle';
    case 'session.status_rescheduled':
      return 'rescheduling';
    case 'session.status_terminated':
    case 'session.deleted':
      return 'terminated';
    default:
      return current;
  }
}
