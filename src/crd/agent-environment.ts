/**
 * The AgentEnvironment custom resource: spec and status, as zod schemas with their descriptions
 * and admission rules. This file is the source of truth for `crds/agentenv.io_agentenvironments.yaml`
 * (run `npm run generate`), and the operator parses what it reads from the cluster with it.
 */
import { z } from 'zod';
import { METADATA_LIMITS } from '../api/wire.ts';
import {
  DEFAULT_DELETION_POLICY,
  DELETION_POLICIES,
  MANAGEMENT_POLICIES,
  REMOTE_METADATA,
  RESERVED_METADATA_KEYS,
  RESERVED_METADATA_PREFIX,
} from './meta.ts';
import { cel, Conditions, opaqueObject, SecretKeyRef, timestamp } from './schema-helpers.ts';

// RE2 (CEL) host name: optional leading wildcard label, DNS labels of 1–63 chars, lower case.
const HOST_NAME = String.raw`^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`;

const packageList = (manager: string, example: string) =>
  cel(
    z.array(z.string().max(256)).max(256),
    {
      rule: String.raw`self.all(p, size(p) > 0 && !p.matches(r'\s'))`,
      message: `${manager} package entries must be non-empty and contain no whitespace, e.g. "${example}"`,
    },
  ).describe(`${manager} packages to install, optionally with a version in that manager's syntax (e.g. "${example}").`);

export const Networking = cel(
  z
    .object({
      type: z
        .enum(['unrestricted', 'limited'])
        .describe('Network policy type: "unrestricted" (any outbound access) or "limited" (only allowedHosts and the enabled extras).'),
      allowedHosts: cel(z.array(z.string().max(253)).max(256), {
        rule: `self.all(h, h.matches(r'${HOST_NAME}'))`,
        message: 'allowedHosts entries must be lower-case DNS host names such as "api.example.com" or "*.example.com" (no scheme, port or path)',
        messageExpression: `'allowedHosts entry "' + self.filter(h, !h.matches(r'${HOST_NAME}'))[0] + '" is not a lower-case DNS host name: write it like "api.example.com" or "*.example.com" (no scheme, port or path)'`,
      }).optional()
        .describe('Host names the sandbox may reach when type is "limited", e.g. "api.example.com" or "*.example.com".'),
      allowPackageManagers: z
        .boolean()
        .optional()
        .describe('When type is "limited", also permit public package registries (PyPI, npm, …). Defaults to false.'),
      allowMcpServers: z
        .boolean()
        .optional()
        .describe('When type is "limited", also permit the MCP server endpoints configured on the agent. Defaults to false.'),
    })
    .describe('Outbound network policy of the cloud sandbox. Omit to keep the API default (unrestricted).'),
  {
    rule: `self.type == 'limited' || (!has(self.allowedHosts) && !has(self.allowPackageManagers) && !has(self.allowMcpServers))`,
    message: 'allowedHosts, allowPackageManagers and allowMcpServers apply only to networking.type "limited"',
  },
);
export type Networking = z.infer<typeof Networking>;

export const Packages = z
  .object({
    apt: packageList('Ubuntu/Debian (apt)', 'ripgrep').optional(),
    cargo: packageList('Rust (cargo)', 'serde@1.0.0').optional(),
    gem: packageList('Ruby (gem)', 'rails').optional(),
    go: packageList('Go', 'golang.org/x/tools/gopls@latest').optional(),
    npm: packageList('Node.js (npm)', 'typescript@5').optional(),
    pip: packageList('Python (pip)', 'pandas==2.2.0').optional(),
  })
  .describe('Packages installed in the cloud sandbox. You are responsible for the packages and versions existing.');
export type Packages = z.infer<typeof Packages>;

export const CloudSpec = z
  .object({
    networking: Networking.optional(),
    packages: Packages.optional(),
  })
  .describe('An Anthropic-hosted (cloud) environment. Exactly one of cloud or selfHosted must be set.');
export type CloudSpec = z.infer<typeof CloudSpec>;

export const SessionNetworkPolicy = z
  .object({
    enabled: z.boolean().default(false).describe('Create a NetworkPolicy for this environment\'s session Pods. Defaults to false.'),
    apiEgressCIDRs: z
      .array(z.string().max(64))
      .max(64)
      .default(['0.0.0.0/0'])
      .describe('CIDRs the session Pods may reach on TCP 443 for the Anthropic API (private ranges are always excluded). Narrow this to the API\'s published ranges where you can. Defaults to ["0.0.0.0/0"].'),
    allowedEgress: z
      .array(
        z.object({
          cidr: z.string().min(1).max(64).describe('Destination CIDR, e.g. "10.20.0.0/16" or "203.0.113.7/32".'),
          ports: z.array(z.number().int().min(1).max(65535)).max(32).optional().describe('TCP ports; all ports when omitted.'),
        }),
      )
      .max(64)
      .optional()
      .describe('Additional egress destinations (including private ranges) the sandbox may reach.'),
  })
  .describe('Optional per-environment NetworkPolicy for session Pods: deny all ingress; egress only to DNS, the API and this allowlist.');

/** Seconds a workspace is kept after its session's last work item ended: 7 days. */
export const DEFAULT_RETAIN_SECONDS_AFTER_LAST_WORK = 7 * 24 * 3600;
/**
 * The default runner's idle timeout: 10 minutes. Between the SDK runner's 60 s (a Pod per reply,
 * cold for every message of a conversation) and Anthropic's chart's 30 min (a Pod held through
 * long pauses): with the workspace kept, a resume costs a Pod start, so a Pod is held only for a
 * conversation's usual back-and-forth.
 */
export const DEFAULT_IDLE_TIMEOUT_SECONDS = 600;

export const WORKSPACE_RECLAIM_POLICIES = ['Delete', 'Retain'] as const;

export const Workspace = z
  .object({
    volumeClaimTemplate: z
      .object({
        metadata: z
          .object({
            labels: z.record(z.string(), z.string()).optional().describe('Labels added to the claim.'),
            annotations: z.record(z.string(), z.string()).optional().describe('Annotations added to the claim.'),
          })
          .optional()
          .describe('Labels and annotations of the claim (the operator\'s labels win).'),
        spec: opaqueObject('A PersistentVolumeClaimSpec: accessModes, resources.requests.storage, storageClassName… ReadWriteOnce is enough: one Pod of a session runs at a time.'),
      })
      .describe('The claim made for each session (one PersistentVolumeClaim per session, named <AgentSession name>-workspace, owned by the AgentSession).'),
    reclaimPolicy: z
      .enum(WORKSPACE_RECLAIM_POLICIES)
      .default('Delete')
      .describe('"Delete" (default): the claim is deleted with its session (terminated in the API, retainSecondsAfterLastWork passed, or the AgentSession or AgentEnvironment deleted). "Retain": the claim is left behind, unowned, for forensics.'),
    retainSecondsAfterLastWork: z
      .number()
      .int()
      .min(0)
      .max(31536000)
      .default(DEFAULT_RETAIN_SECONDS_AFTER_LAST_WORK)
      .describe(`Seconds after the session's last work item ended before its workspace (and its AgentSession) is deleted, when no new work came. Defaults to ${DEFAULT_RETAIN_SECONDS_AFTER_LAST_WORK} (7 days).`),
  })
  .describe('A workspace per session: a PersistentVolumeClaim mounted at /workspace in the main container of every Pod of the session, kept across its work items. Omitted: each Pod gets an emptyDir at /workspace, gone with the Pod.');
export type Workspace = z.infer<typeof Workspace>;

/** Upper bound of a warm pool's size (and of `min`/`max`): a pool is a few ready Pods, not a fleet. */
export const WARM_POOL_MAX = 100;

/**
 * How often an environment with a warm pool is reconciled while its pool is sized from the queue
 * (min/max: the figures are read in the pass) or short of its target (a refill, Pods starting):
 * 5 s, instead of the queue refresh's 60 s. A full, fixed-size pool waits for its Pods' events.
 */
export const WARM_POOL_RESYNC_MS = 5_000;

const poolBound = (what: string) => z.number().int().min(0).max(WARM_POOL_MAX).describe(what);

export const WarmPool = cel(
  z
    .object({
      size: poolBound(`Warm Pods kept ready (0-${WARM_POOL_MAX}). The field the scale subresource drives (spec.selfHosted.warmPool.size): HPA or a KEDA ScaledObject may set it. With min and max set, the operator sizes the pool itself from the queue and this is only its starting size.`),
      min: poolBound('With max: the smallest pool the operator sizes to from the queue (depth + pending). Set both or neither.').optional(),
      max: poolBound('With min: the largest pool the operator sizes to from the queue (depth + pending). Set both or neither.').optional(),
    })
    .describe('Pods of the default runner started ahead of work, holding no work item and no credential until a claimed item is bound to one (late binding). Served cold instead (the pool is then empty): environments with a sessionTemplate or a workspace; and a session that already has an AgentSession. See docs/sessions.md, "Warm pool".'),
  { rule: 'has(self.min) == has(self.max)', message: 'warmPool.min and warmPool.max go together: set both (the operator sizes the pool from the queue) or neither (the pool is warmPool.size)' },
  { rule: '!has(self.min) || self.min <= self.max', message: 'warmPool.min must be at most warmPool.max' },
  { rule: '!has(self.min) || (self.min <= self.size && self.size <= self.max)', message: 'warmPool.size must lie between warmPool.min and warmPool.max' },
);
export type WarmPool = z.infer<typeof WarmPool>;

export const SelfHostedSpec = z
  .object({
    environmentKeySecretRef: SecretKeyRef('the environment key (sk-ant-oat01-…) created in the Console')
      .optional()
      .describe('The environment key used to poll this environment\'s work queue. It stays in the operator: session Pods only ever receive a per-item token, or this key in the sidecar alone. When omitted, the organization API key is used.'),
    sessionTemplate: opaqueObject(
      'Pod template (a PodTemplateSpec) for session Pods: image, command, resources, volumes, nodeSelector, tolerations, runtimeClassName… The operator adds the sidecar (the Pod\'s only door to the API, holding the lease and the credential), the ANTHROPIC_* session variables (ANTHROPIC_BASE_URL is the sidecar) and hardening. Any runner that follows the contract works, e.g. one running `ant beta:worker run` or the SDK\'s handleItem. When omitted, sessions run the default runner: `agentenv runner` (the official SDK\'s handleItem with the bash, read, write, edit, glob and grep tools) in the operator\'s runner image, working in /workspace (the session\'s workspace, else an emptyDir).',
    ).optional(),
    maxSessions: z
      .number()
      .int()
      .min(0)
      .max(10000)
      .default(10)
      .describe('Maximum concurrent sessions this cluster runs for the environment. The operator polls only while below it, so other work stays queued for other workers. 0 pauses dispatch. Lowering it never stops running sessions. Defaults to 10.'),
    maxPollers: z
      .number()
      .int()
      .min(1)
      .max(64)
      .default(16)
      .describe('Upper bound of parallel long-pollers while a burst of work is waiting (one poller runs when idle; each poll in flight holds one of maxSessions). A burst drains at most maxPollers items per API round trip. Defaults to 16.'),
    sessionTTLSecondsAfterFinished: z
      .number()
      .int()
      .min(0)
      .max(31536000)
      .default(300)
      .describe('Seconds after a session finishes before its AgentSession, Pod and Secret are deleted. Defaults to 300.'),
    stopGracePeriodSeconds: z
      .number()
      .int()
      .min(0)
      .max(3600)
      .default(30)
      .describe('How long the session container gets to end by itself once its sidecar asks it to (a stop was requested, or the lease was lost or not extended). After that the operator deletes the Pod: the kubelet sends SIGTERM, waits the Pod\'s termination grace, then SIGKILL. Defaults to 30.'),
    startDeadlineSeconds: z
      .number()
      .int()
      .min(10)
      .max(86400)
      .default(300)
      .describe('A session Pod that has not claimed its lease within this many seconds (unschedulable, image pull failure, crash) is given up: its work item is force-stopped with the reason recorded. Defaults to 300.'),
    leaseTTLSeconds: z
      .number()
      .int()
      .min(1)
      .max(3600)
      .optional()
      .describe('Desired lease TTL sent with heartbeats (desired_ttl_seconds); the API clamps it. Omit to use the API default.'),
    podSecurity: z
      .enum(['Restricted', 'Custom'])
      .default('Restricted')
      .describe('"Restricted" (default) makes session Pods meet the Restricted Pod Security Standard, filling in secure defaults and refusing templates that conflict. "Custom" leaves the template\'s security settings to you (the sidecar stays hardened).'),
    networkPolicy: SessionNetworkPolicy.optional(),
    workspace: Workspace.optional(),
    warmPool: WarmPool.optional(),
    idleTimeoutSeconds: z
      .number()
      .int()
      .min(1)
      .max(86400)
      .default(DEFAULT_IDLE_TIMEOUT_SECONDS)
      .describe(`The default runner ends after its session has been idle this long (the SDK runner's maxIdleMs); the Pod ends Succeeded with reason Idle and the workspace stays for the next message. Defaults to ${DEFAULT_IDLE_TIMEOUT_SECONDS} (10 minutes). A sessionTemplate's own runner sets its own.`),
  })
  .describe('A self-hosted environment whose sessions run in this cluster, one Pod per session. Exactly one of cloud or selfHosted must be set.');
export type SelfHostedSpec = z.infer<typeof SelfHostedSpec>;

const USER_METADATA_KEYS = METADATA_LIMITS.maxKeys - RESERVED_METADATA_KEYS;

export const AgentEnvironmentSpec = cel(
  z
    .object({
      name: z
        .string()
        .min(1)
        .max(256)
        .optional()
        .describe('Human-readable name of the remote environment. Defaults to metadata.name.'),
      description: z.string().max(2048).optional().describe('Description of the remote environment.'),
      metadata: cel(
        // maxProperties bounds the CEL cost; the rule below gives the limit that applies, in words.
        z.record(z.string(), z.string()).meta({ maxProperties: METADATA_LIMITS.maxKeys }),
        {
          rule: `size(self) <= ${USER_METADATA_KEYS}`,
          message: `metadata may have at most ${USER_METADATA_KEYS} keys: the API allows ${METADATA_LIMITS.maxKeys} and the operator reserves ${RESERVED_METADATA_KEYS} (${Object.values(REMOTE_METADATA).join(', ')})`,
        },
        {
          rule: `self.all(k, size(k) >= 1 && size(k) <= ${METADATA_LIMITS.maxKeyLength} && size(self[k]) >= 1 && size(self[k]) <= ${METADATA_LIMITS.maxValueLength})`,
          message: `metadata keys must be 1-${METADATA_LIMITS.maxKeyLength} characters and values 1-${METADATA_LIMITS.maxValueLength} characters (the API's limits)`,
        },
        {
          rule: `self.all(k, !k.startsWith('${RESERVED_METADATA_PREFIX}'))`,
          message: `metadata keys starting with "${RESERVED_METADATA_PREFIX}" are reserved for the operator`,
        },
      )
        .optional()
        .describe(`Key-value metadata on the remote environment: at most ${USER_METADATA_KEYS} keys (the operator reserves ${RESERVED_METADATA_KEYS} of the API's ${METADATA_LIMITS.maxKeys}), keys up to ${METADATA_LIMITS.maxKeyLength} and values up to ${METADATA_LIMITS.maxValueLength} characters.`),
      scope: z
        .enum(['organization', 'account'])
        .optional()
        .describe('Visibility of the environment: "organization" (all accounts) or "account" (the owning account only). Omit for the API default.'),
      cloud: CloudSpec.optional(),
      selfHosted: SelfHostedSpec.optional(),
      environmentId: z
        .string()
        .regex(/^env_[A-Za-z0-9]+$/)
        .max(128)
        .optional()
        .describe('Adopt this existing remote environment (e.g. "env_011CZkZ9X2dpNyB7HsEFoRfW") instead of creating one. Can only be set at creation.'),
      deletionPolicy: z
        .enum(DELETION_POLICIES)
        .default(DEFAULT_DELETION_POLICY)
        .describe(`What happens to the remote environment when this resource is deleted: "Delete" it, "Archive" it (kept, read-only, no new sessions), or "Orphan" it (left as is). Defaults to "${DEFAULT_DELETION_POLICY}".`),
      managementPolicy: z
        .enum(MANAGEMENT_POLICIES)
        .default('Full')
        .describe('"Full" (default): create, update and correct drift. "ObserveOnly": never write to the API (no create, update, archive, delete or dispatch); only observe and report. Can be switched either way at any time.'),
      apiKeySecretRef: SecretKeyRef('the organization API key (sk-ant-api…)')
        .optional()
        .describe('Organization API key for this environment. When omitted, the operator\'s default credential is used.'),
    })
    .describe('Desired state of the remote environment.'),
  {
    rule: 'has(self.cloud) != has(self.selfHosted)',
    message: 'exactly one of spec.cloud or spec.selfHosted must be set',
  },
  {
    rule: 'has(self.cloud) == has(oldSelf.cloud)',
    message: 'an environment cannot switch between cloud and selfHosted after creation; create a new AgentEnvironment instead',
  },
  {
    rule: 'has(self.environmentId) == has(oldSelf.environmentId) && (!has(self.environmentId) || self.environmentId == oldSelf.environmentId)',
    message: 'spec.environmentId is immutable: it can only be set when the resource is created',
  },
);
export type AgentEnvironmentSpec = z.infer<typeof AgentEnvironmentSpec>;

export const QueueStatus = z
  .object({
    depth: z.number().int().min(0).describe('Work items waiting to be picked up.'),
    pending: z.number().int().min(0).describe('Work items delivered to a worker but not yet acknowledged.'),
    workersPolling: z.number().int().min(0).describe('Workers (from any cluster) that polled in the last 30 seconds.'),
    oldestQueuedAt: timestamp('Creation time of the oldest queued or pending item.').optional(),
  })
  .describe('Work queue figures from the API\'s stats endpoint (self-hosted only).');

export const WarmPoolStatus = z
  .object({
    replicas: z.number().int().min(0).describe('Warm Pods that exist and are not bound to a work item (the scale subresource\'s status replicas).'),
    ready: z.number().int().min(0).describe('Of those, the ones ready to be bound.'),
    target: z.number().int().min(0).describe('The pool size the operator keeps: spec.selfHosted.warmPool.size, or with min and max the size it derived from the queue.'),
    selector: z.string().describe('Label selector of the warm Pods (the scale subresource\'s selector).'),
  })
  .describe('The warm pool (spec.selfHosted.warmPool) as last observed.');
export type WarmPoolStatus = z.infer<typeof WarmPoolStatus>;

export const AgentEnvironmentStatus = z
  .object({
    environmentId: z.string().optional().describe('ID of the remote environment this resource manages or observes.'),
    type: z.enum(['cloud', 'self_hosted']).optional().describe('Type of the remote environment.'),
    archivedAt: timestamp('When the remote environment was archived, if it is.').optional(),
    observedGeneration: z.number().int().min(0).optional().describe('The .metadata.generation last reconciled cleanly.'),
    lastSyncTime: timestamp('Last time the remote environment was successfully read and reconciled.').optional(),
    conditions: Conditions.optional(),
    queue: QueueStatus.optional(),
    activeSessions: z.number().int().min(0).optional().describe('Sessions of this environment currently running in this cluster (self-hosted).'),
    warmPool: WarmPoolStatus.optional(),
  })
  .describe('Observed state of the remote environment.');
export type AgentEnvironmentStatus = z.infer<typeof AgentEnvironmentStatus>;
