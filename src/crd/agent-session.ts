/**
 * The AgentSession custom resource: the durable record of one session of a self-hosted
 * environment, written by the operator *before* it acknowledges a claimed work item.
 *
 * `spec` is the record (which environment, session and current work item); it is written by the
 * operator in the same request that creates the object, so a claim is recorded atomically.
 * `status` is what the operator observed since. Source of truth for
 * `crds/agentenv.io_agentsessions.yaml`.
 */
import { z } from 'zod';
import { cel, Conditions, timestamp } from './schema-helpers.ts';

export const SESSION_PHASES = ['Pending', 'Claimed', 'Starting', 'Running', 'Stopping', 'Succeeded', 'Failed'] as const;
export type SessionPhase = (typeof SESSION_PHASES)[number];
export const FINISHED_PHASES: readonly SessionPhase[] = ['Succeeded', 'Failed'];

export const AgentSessionSpec = cel(
  z
    .object({
      environmentRef: z
        .object({ name: z.string().min(1).max(253).describe('Name of the AgentEnvironment in this namespace.') })
        .describe('The AgentEnvironment this session belongs to (also its owner).'),
      environmentId: z.string().min(1).max(128).describe('Remote environment ID.'),
      sessionId: z.string().min(1).max(256).describe('Session ID from the work item (data.id).'),
      workId: z
        .string()
        .min(1)
        .max(256)
        .describe('The work item this record currently stands for. A session can come back with new work items over time; the operator moves this forward.'),
      workerId: z.string().max(256).optional().describe('Anthropic-Worker-ID of the poller that claimed the current work item.'),
      claimedAt: timestamp('When the current work item was claimed from the queue.'),
      workSecret: z
        .boolean()
        .optional()
        .describe(
          "Whether the current work item came with a per-item secret. True (or unset): a per-item Secret owned by this record holds the sidecar's token and ANTHROPIC_WORK_SECRET. False: there is no per-item Secret; the sidecar alone mounts the environment key from the AgentEnvironment's Secret.",
        ),
      warmPod: z
        .object({
          name: z.string().min(1).max(253).describe('Name of the warm Pod.'),
          uid: z.string().min(1).max(64).describe('Its uid: a later Pod of the same name is not this one.'),
        })
        .optional()
        .describe('The warm Pod the current work item was bound to (late binding, spec.selfHosted.warmPool): this Pod serves the item instead of one created for it. Absent: the item is served by a Pod created for it (cold).'),
    })
    .describe('The record of the claimed work, written by the operator. Do not edit.'),
  {
    rule: 'self.environmentId == oldSelf.environmentId && self.sessionId == oldSelf.sessionId && self.environmentRef == oldSelf.environmentRef',
    message: 'environmentRef, environmentId and sessionId of an AgentSession are immutable',
  },
);
export type AgentSessionSpec = z.infer<typeof AgentSessionSpec>;

export const LeaseStatus = z
  .object({
    claimedAt: timestamp('When the sidecar claimed the lease (first heartbeat).').optional(),
    lastHeartbeat: timestamp('Last heartbeat time as last observed by the operator (not updated on every beat).').optional(),
    ttlSeconds: z.number().int().min(0).optional().describe('Lease TTL the API applies.'),
  })
  .describe('The work lease held by the session Pod\'s sidecar.');

export const WORKSPACE_PHASES = ['Pending', 'Bound', 'Lost', 'Missing'] as const;
export type WorkspacePhase = (typeof WORKSPACE_PHASES)[number];

export const WorkspaceStatus = z
  .object({
    claimName: z.string().describe('The session\'s PersistentVolumeClaim, mounted at /workspace.'),
    phase: z.enum(WORKSPACE_PHASES).describe('Pending, Bound or Lost (the claim\'s phase), or Missing (not created yet, or deleted).'),
  })
  .describe('The session\'s workspace (spec.selfHosted.workspace of the environment).');

export const AgentSessionStatus = z
  .object({
    phase: z.enum(SESSION_PHASES).optional().describe('Pending, Claimed (recorded, not yet acknowledged), Starting, Running, Stopping, Succeeded or Failed.'),
    workId: z.string().optional().describe('The work item the rest of this status describes.'),
    workState: z.enum(['queued', 'starting', 'active', 'stopping', 'stopped']).optional().describe('State of the work item in the API, as last observed.'),
    acknowledgedAt: timestamp('When the operator acknowledged the current work item.').optional(),
    podName: z.string().optional().describe('Name of the session Pod running the current work item.'),
    lease: LeaseStatus.optional(),
    stopRequestedAt: timestamp('When a stop of the current work item was requested (by the API, a user or the operator).').optional(),
    reason: z.string().max(256).optional().describe('CamelCase reason for the current phase, e.g. ContainerExited, StoppedByApi, ImagePullFailed.'),
    message: z.string().max(4096).optional().describe('Human-readable details for the current phase.'),
    startedAt: timestamp('When the session container started.').optional(),
    finishedAt: timestamp('When the current work item finished.').optional(),
    workspace: WorkspaceStatus.optional(),
    workItems: z.number().int().min(0).optional().describe('How many work items of this session this cluster has run.'),
    observedGeneration: z.number().int().min(0).optional().describe('The .metadata.generation last reconciled.'),
    conditions: Conditions.optional(),
  })
  .describe('What the operator observed of the session.');
export type AgentSessionStatus = z.infer<typeof AgentSessionStatus>;
