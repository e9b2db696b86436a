/**
 * Wire schemas of the Environments API (`anthropic-beta: managed-agents-2026-04-01`).
 *
 * One source of truth for both sides of the wire: the client parses every reply with these
 * schemas, and the emulator validates every request and builds every reply with them.
 * Field names are the API's own (snake_case). Response objects are parsed leniently with
 * respect to *unknown* fields (newer API versions may add some) but strictly with respect to
 * the fields the protocol depends on, so a malformed reply fails with a typed error naming
 * the field (see `errors.ts`, `MalformedResponseError`).
 */
import { z } from 'zod';

// ---------------------------------------------------------------------------------------------
// Shared pieces

/** RFC 3339 timestamp as the API renders it (opaque to clients; compared only for equality). */
export const Timestamp = z.string().min(1);

/** Metadata as stored and returned: string values only. */
export const Metadata = z.record(z.string(), z.string());
export type Metadata = z.infer<typeof Metadata>;

/** A metadata patch: a string upserts a key, `null` (or "" for environments) deletes it. */
export const MetadataPatch = z.record(z.string(), z.string().nullable());
export type MetadataPatch = z.infer<typeof MetadataPatch>;

export const Scope = z.enum(['organization', 'account']);
export type Scope = z.infer<typeof Scope>;

// ---------------------------------------------------------------------------------------------
// Environment configuration (responses)

export const UnrestrictedNetwork = z.object({ type: z.literal('unrestricted') });
export type UnrestrictedNetwork = z.infer<typeof UnrestrictedNetwork>;

export const LimitedNetwork = z.object({
  type: z.literal('limited'),
  allowed_hosts: z.array(z.string()),
  allow_mcp_servers: z.boolean(),
  allow_package_managers: z.boolean(),
});
export type LimitedNetwork = z.infer<typeof LimitedNetwork>;

export const Networking = z.discriminatedUnion('type', [UnrestrictedNetwork, LimitedNetwork]);
export type Networking = z.infer<typeof Networking>;

/** The package managers the API knows, in the order the reference lists them. */
export const PACKAGE_MANAGERS = ['apt', 'cargo', 'gem', 'go', 'npm', 'pip'] as const;
export type PackageManager = (typeof PACKAGE_MANAGERS)[number];

export const Packages = z.object({
  type: z.literal('packages').optional(),
  apt: z.array(z.string()),
  cargo: z.array(z.string()),
  gem: z.array(z.string()),
  go: z.array(z.string()),
  npm: z.array(z.string()),
  pip: z.array(z.string()),
});
export type Packages = z.infer<typeof Packages>;

export const CloudConfig = z.object({
  type: z.literal('cloud'),
  networking: Networking,
  packages: Packages,
});
export type CloudConfig = z.infer<typeof CloudConfig>;

export const SelfHostedConfig = z.object({ type: z.literal('self_hosted') });
export type SelfHostedConfig = z.infer<typeof SelfHostedConfig>;

export const EnvironmentConfig = z.discriminatedUnion('type', [CloudConfig, SelfHostedConfig]);
export type EnvironmentConfig = z.infer<typeof EnvironmentConfig>;
export type EnvironmentType = EnvironmentConfig['type'];

export const Environment = z.object({
  id: z.string().min(1),
  type: z.literal('environment'),
  name: z.string(),
  description: z.string().nullable().optional(),
  metadata: Metadata,
  config: EnvironmentConfig,
  scope: Scope.nullable().optional(),
  archived_at: Timestamp.nullable(),
  created_at: Timestamp,
  updated_at: Timestamp,
});
export type Environment = z.infer<typeof Environment>;

export const EnvironmentDeleted = z.object({
  id: z.string(),
  type: z.literal('environment_deleted'),
});
export type EnvironmentDeleted = z.infer<typeof EnvironmentDeleted>;

/** A cursor page. `next_page` is null (or absent) on the last page. */
export const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({ data: z.array(item), next_page: z.string().nullable().optional() });

export const EnvironmentPage = pageOf(Environment);
export type EnvironmentPage = z.infer<typeof EnvironmentPage>;

// ---------------------------------------------------------------------------------------------
// Environment configuration (requests). "Fields default to null; on update, omitted fields
// preserve the existing value."

export const LimitedNetworkParams = z.object({
  type: z.literal('limited'),
  allowed_hosts: z.array(z.string()).nullable().optional(),
  allow_mcp_servers: z.boolean().nullable().optional(),
  allow_package_managers: z.boolean().nullable().optional(),
});
export type LimitedNetworkParams = z.infer<typeof LimitedNetworkParams>;

export const NetworkingParams = z.discriminatedUnion('type', [UnrestrictedNetwork, LimitedNetworkParams]);
export type NetworkingParams = z.infer<typeof NetworkingParams>;

export const PackagesParams = z.object({
  type: z.literal('packages').optional(),
  apt: z.array(z.string()).nullable().optional(),
  cargo: z.array(z.string()).nullable().optional(),
  gem: z.array(z.string()).nullable().optional(),
  go: z.array(z.string()).nullable().optional(),
  npm: z.array(z.string()).nullable().optional(),
  pip: z.array(z.string()).nullable().optional(),
});
export type PackagesParams = z.infer<typeof PackagesParams>;

export const CloudConfigParams = z.object({
  type: z.literal('cloud'),
  networking: NetworkingParams.nullable().optional(),
  packages: PackagesParams.nullable().optional(),
});
export type CloudConfigParams = z.infer<typeof CloudConfigParams>;

export const EnvironmentConfigParams = z.discriminatedUnion('type', [CloudConfigParams, SelfHostedConfig]);
export type EnvironmentConfigParams = z.infer<typeof EnvironmentConfigParams>;

export const EnvironmentCreateParams = z.object({
  name: z.string().min(1),
  description: z.string().nullable().optional(),
  metadata: Metadata.nullable().optional(),
  config: EnvironmentConfigParams.nullable().optional(),
  scope: Scope.nullable().optional(),
});
export type EnvironmentCreateParams = z.infer<typeof EnvironmentCreateParams>;

export const EnvironmentUpdateParams = z.object({
  name: z.string().min(1).nullable().optional(),
  description: z.string().nullable().optional(),
  /** A value of `null` or `""` deletes the key. */
  metadata: MetadataPatch.nullable().optional(),
  config: EnvironmentConfigParams.nullable().optional(),
  scope: Scope.nullable().optional(),
});
export type EnvironmentUpdateParams = z.infer<typeof EnvironmentUpdateParams>;

export const EnvironmentListParams = z.object({
  include_archived: z.boolean().optional(),
  limit: z.number().int().positive().optional(),
  page: z.string().nullable().optional(),
});
export type EnvironmentListParams = z.infer<typeof EnvironmentListParams>;

// ---------------------------------------------------------------------------------------------
// Work

/** queued → starting (ack) → active (first heartbeat) → stopping (graceful stop) → stopped. */
export const WORK_STATES = ['queued', 'starting', 'active', 'stopping', 'stopped'] as const;
export const WorkState = z.enum(WORK_STATES);
export type WorkState = z.infer<typeof WorkState>;

export const WorkData = z.object({
  id: z.string().min(1),
  /** "session" today; other kinds may appear and are force-stopped unserved. */
  type: z.string().min(1),
});
export type WorkData = z.infer<typeof WorkData>;

export const Work = z.object({
  id: z.string().min(1),
  type: z.literal('work'),
  environment_id: z.string().min(1),
  data: WorkData,
  state: WorkState,
  metadata: Metadata,
  created_at: Timestamp,
  acknowledged_at: Timestamp.nullable().optional(),
  started_at: Timestamp.nullable().optional(),
  latest_heartbeat_at: Timestamp.nullable().optional(),
  stop_requested_at: Timestamp.nullable().optional(),
  stopped_at: Timestamp.nullable().optional(),
  /**
   * Only on poll replies from newer API versions: base64url JSON `{sessions_token, api_base_url?}`,
   * a short-lived bearer credential for this one item. Never log it.
   */
  secret: z.string().nullable().optional(),
});
export type Work = z.infer<typeof Work>;

/** A poll reply: a work item, or `null` when the queue had nothing within `block_ms`. */
export const PollReply = Work.nullable();

export const WorkPage = pageOf(Work);
export type WorkPage = z.infer<typeof WorkPage>;

/** The literal that claims an unclaimed lease on the first heartbeat. */
export const NO_HEARTBEAT = 'NO_HEARTBEAT';

export const HeartbeatReply = z.object({
  type: z.literal('work_heartbeat'),
  last_heartbeat: Timestamp,
  lease_extended: z.boolean(),
  state: WorkState,
  ttl_seconds: z.number().nonnegative(),
});
export type HeartbeatReply = z.infer<typeof HeartbeatReply>;

/** The server's lease, carried by a 412 heartbeat reply under `error.details.current_state`. */
export const LeaseState = z.object({
  state: WorkState,
  ttl_seconds: z.number().nonnegative().nullable().optional(),
  last_heartbeat: Timestamp.nullable().optional(),
});
export type LeaseState = z.infer<typeof LeaseState>;

export const QueueStats = z.object({
  type: z.literal('work_queue_stats'),
  depth: z.number().int().nonnegative(),
  pending: z.number().int().nonnegative(),
  oldest_queued_at: Timestamp.nullable().optional(),
  workers_polling: z.number().int().nonnegative(),
});
export type QueueStats = z.infer<typeof QueueStats>;

export const WorkPollParams = z.object({
  /** 1–999; omitted means "return at once". */
  block_ms: z.number().int().min(1).max(999).optional(),
  /** Re-deliver items delivered but not acknowledged for longer than this (default 5000). */
  reclaim_older_than_ms: z.number().int().nonnegative().optional(),
});
export type WorkPollParams = z.infer<typeof WorkPollParams>;

export const WorkHeartbeatParams = z.object({
  /** `NO_HEARTBEAT` to claim; afterwards the server's previous `last_heartbeat`, echoed exactly. */
  expected_last_heartbeat: z.string().min(1),
  desired_ttl_seconds: z.number().int().positive().optional(),
});
export type WorkHeartbeatParams = z.infer<typeof WorkHeartbeatParams>;

export const WorkStopParams = z.object({ force: z.boolean().optional() });
export type WorkStopParams = z.infer<typeof WorkStopParams>;

export const WorkUpdateParams = z.object({ metadata: MetadataPatch.optional() });
export type WorkUpdateParams = z.infer<typeof WorkUpdateParams>;

export const WorkListParams = z.object({
  limit: z.number().int().positive().optional(),
  page: z.string().nullable().optional(),
});
export type WorkListParams = z.infer<typeof WorkListParams>;

/** Decoded per-item `secret`. */
export const WorkSecret = z.object({
  sessions_token: z.string().min(1),
  api_base_url: z.string().optional(),
});
export type WorkSecret = z.infer<typeof WorkSecret>;

// ---------------------------------------------------------------------------------------------
// Errors

/** The Anthropic error envelope: `{"type":"error","error":{"type":"…","message":"…"}}`. */
export const ErrorBody = z.object({
  type: z.literal('error'),
  error: z
    .object({
      type: z.string(),
      message: z.string(),
      details: z.record(z.string(), z.unknown()).nullable().optional(),
    })
    .loose(),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

/** Error `type`s the API uses, by HTTP status. */
export const ERROR_TYPE_BY_STATUS: Readonly<Record<number, string>> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  408: 'timeout_error',
  409: 'conflict_error',
  412: 'precondition_failed_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  503: 'overloaded_error',
  529: 'overloaded_error',
};

// ---------------------------------------------------------------------------------------------
// Protocol constants

export const ANTHROPIC_VERSION = '2023-06-01';
export const ANTHROPIC_BETA = 'managed-agents-2026-04-01';
export const WORKER_ID_HEADER = 'anthropic-worker-id';
export const REQUEST_ID_HEADER = 'request-id';

/** Metadata limits (the reference is silent; these follow the Anthropic API's metadata rules). */
export const METADATA_LIMITS = { maxKeys: 16, maxKeyLength: 64, maxValueLength: 512 } as const;
