/**
 * Wire schemas of the part of the Sessions API that a self-hosted runner uses
 * (`anthropic-beta: managed-agents-2026-04-01`): the session object it reads, the events it lists,
 * streams and sends. Field names are the API's own, taken from the official SDK's types
 * (`resources/beta/sessions/`). The emulator validates requests and builds replies with these;
 * product code (the sidecar's live view, tests) may parse events with them.
 *
 * Request params are strict (an unknown field is a 400 naming it); events read back are loose
 * objects (newer API versions add event types and fields), strict only in `id`, `type` and
 * `processed_at`, which every consumer relies on.
 */
import { z } from 'zod';
import { Metadata, Timestamp } from './wire.ts';

// ---------------------------------------------------------------------------------------------
// Content blocks

export const TextBlock = z.strictObject({ type: z.literal('text'), text: z.string() });
export type TextBlock = z.infer<typeof TextBlock>;

/** Images and documents carry a `source` (base64, url, file, or plain text for documents). */
const SourceBlock = <T extends 'image' | 'document'>(type: T) =>
  z.looseObject({ type: z.literal(type), source: z.looseObject({ type: z.string() }) });

const SearchResultBlock = z.looseObject({
  type: z.literal('search_result'),
  source: z.string(),
  title: z.string(),
  content: z.array(TextBlock),
});

/** What a tool result may carry (`user.tool_result` / `user.custom_tool_result` content). */
export const ToolResultContent = z.array(z.discriminatedUnion('type', [TextBlock, SourceBlock('image'), SourceBlock('document'), SearchResultBlock]));

/** What a user message may carry. */
export const MessageContent = z.array(z.discriminatedUnion('type', [TextBlock, SourceBlock('image'), SourceBlock('document'), z.looseObject({ type: z.literal('redacted') })])).min(1);

// ---------------------------------------------------------------------------------------------
// Events a client sends: POST /v1/sessions/{id}/events

export const UserMessageParams = z.strictObject({ type: z.literal('user.message'), content: MessageContent });

export const UserToolResultParams = z.strictObject({
  type: z.literal('user.tool_result'),
  tool_use_id: z.string().min(1),
  content: ToolResultContent.optional(),
  is_error: z.boolean().nullable().optional(),
});

export const UserCustomToolResultParams = z.strictObject({
  type: z.literal('user.custom_tool_result'),
  custom_tool_use_id: z.string().min(1),
  content: ToolResultContent.optional(),
  is_error: z.boolean().nullable().optional(),
});

export const UserToolConfirmationParams = z
  .strictObject({
    type: z.literal('user.tool_confirmation'),
    tool_use_id: z.string().min(1),
    result: z.enum(['allow', 'deny']),
    deny_message: z.string().nullable().optional(),
  })
  // The SDK documents deny_message as "only allowed when result is 'deny'".
  .refine((e) => e.result === 'deny' || e.deny_message == null, { message: 'deny_message is only allowed when result is deny', path: ['deny_message'] });

export const UserEventParams = z.discriminatedUnion('type', [UserMessageParams, UserToolResultParams, UserCustomToolResultParams, UserToolConfirmationParams]);
export type UserEventParams = z.infer<typeof UserEventParams>;

/** Events per send request; the emulator's own bound (docs/emulator.md). */
export const MAX_EVENTS_PER_REQUEST = 100;

export const SendEventsParams = z.strictObject({ events: z.array(UserEventParams).min(1).max(MAX_EVENTS_PER_REQUEST) });
export type SendEventsParams = z.infer<typeof SendEventsParams>;

// ---------------------------------------------------------------------------------------------
// Events as the API returns them (list, stream, send reply)

export const SessionEvent = z.looseObject({ id: z.string().min(1), type: z.string().min(1), processed_at: Timestamp.nullable().optional() });
export type SessionEvent = z.infer<typeof SessionEvent> & Record<string, unknown>;

export const SessionEventsPage = z.object({ data: z.array(SessionEvent), next_page: z.string().nullable() });
export type SessionEventsPage = z.infer<typeof SessionEventsPage>;

export const SendEventsReply = z.object({ data: z.array(SessionEvent) });
export type SendEventsReply = z.infer<typeof SendEventsReply>;

/** The stop reasons of `session.status_idle`; only `requires_action` leaves the turn open. */
export const StopReason = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('end_turn') }),
  z.strictObject({ type: z.literal('requires_action'), event_ids: z.array(z.string()) }),
  z.strictObject({ type: z.literal('retries_exhausted') }),
  z.strictObject({ type: z.literal('budget_reached') }),
  z.strictObject({ type: z.literal('refusal') }),
]);
export type StopReason = z.infer<typeof StopReason>;

// ---------------------------------------------------------------------------------------------
// The session object: GET /v1/sessions/{id}

export const SESSION_STATUSES = ['rescheduling', 'running', 'idle', 'terminated'] as const;
export const SessionStatus = z.enum(SESSION_STATUSES);
export type SessionStatus = z.infer<typeof SessionStatus>;

export const SessionAgent = z.object({
  id: z.string(),
  type: z.literal('agent'),
  name: z.string(),
  description: z.string().nullable(),
  version: z.number().int(),
  model: z.looseObject({ id: z.string() }),
  system: z.string().nullable(),
  tools: z.array(z.looseObject({ type: z.string() })),
  skills: z.array(z.looseObject({ type: z.enum(['anthropic', 'custom']), skill_id: z.string(), version: z.string() })),
  mcp_servers: z.array(z.looseObject({ name: z.string() })),
  multiagent: z.looseObject({ type: z.string() }).nullable(),
  execution_identity: z.looseObject({ type: z.string() }),
});
export type SessionAgent = z.infer<typeof SessionAgent>;

export const Session = z.object({
  id: z.string(),
  type: z.literal('session'),
  agent: SessionAgent,
  environment_id: z.string(),
  status: SessionStatus,
  title: z.string().nullable(),
  metadata: Metadata,
  resources: z.array(z.looseObject({ type: z.string() })),
  vault_ids: z.array(z.string()),
  outcome_evaluations: z.array(z.looseObject({ type: z.string() })),
  budget: z.looseObject({ type: z.string() }).nullable(),
  stats: z.object({ active_seconds: z.number().optional(), duration_seconds: z.number().optional() }),
  usage: z.looseObject({ input_tokens: z.number().optional(), output_tokens: z.number().optional() }),
  archived_at: Timestamp.nullable(),
  created_at: Timestamp,
  updated_at: Timestamp,
});
export type Session = z.infer<typeof Session>;
