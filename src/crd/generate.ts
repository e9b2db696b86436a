/**
 * Turn the resources' zod schemas into CustomResourceDefinitions (pure; `scripts/generate-crds.ts`
 * writes them to `crds/`). zod's OpenAPI 3.0 export is close to a Kubernetes *structural* schema;
 * `structural()` removes what the apiserver refuses or does not need.
 */
import { z } from 'zod';
import { AgentEnvironmentSpec, AgentEnvironmentStatus } from './agent-environment.ts';
import { AgentSessionSpec, AgentSessionStatus } from './agent-session.ts';
import { AGENT_ENVIRONMENT, AGENT_SESSION, GROUP, VERSION } from './meta.ts';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** Make a zod-exported JSON schema structural (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema). */
export function structural(node: Json): Json {
  if (Array.isArray(node)) return node.map(structural);
  if (node === null || typeof node !== 'object') return node;
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === '$schema' || k === 'id') continue;
    // Unknown fields are pruned by the apiserver; "false" is not allowed next to properties.
    if (k === 'additionalProperties' && (v === false || (node['x-kubernetes-preserve-unknown-fields'] === true))) continue;
    // zod bounds every integer by MAX_SAFE_INTEGER; that is noise in a CRD.
    if ((k === 'maximum' && v === MAX_SAFE) || (k === 'minimum' && v === -MAX_SAFE)) continue;
    out[k] = structural(v);
  }
  if (out['type'] === 'integer' && out['format'] === undefined) out['format'] = 'int64';
  return out;
}

export function openApiSchema(schema: z.ZodType): JsonObject {
  return structural(z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', unrepresentable: 'throw' }) as Json) as JsonObject;
}

interface PrinterColumn {
  readonly name: string;
  readonly type: 'string' | 'integer' | 'date' | 'boolean';
  readonly jsonPath: string;
  readonly description: string;
  readonly priority?: number;
}

interface ResourceDefinition {
  readonly names: { kind: string; plural: string; singular: string; shortNames: readonly string[]; listKind: string };
  readonly description: string;
  readonly spec: z.ZodType;
  readonly status: z.ZodType;
  readonly columns: readonly PrinterColumn[];
  readonly categories: readonly string[];
  /** The `scale` subresource, for HPA and KEDA (`kubectl scale` too). */
  readonly scale?: { readonly specReplicasPath: string; readonly statusReplicasPath: string; readonly labelSelectorPath: string };
}

const condition = (type: string) => `.status.conditions[?(@.type=="${type}")].status`;

export const RESOURCES: readonly ResourceDefinition[] = [
  {
    names: AGENT_ENVIRONMENT,
    description:
      'AgentEnvironment is an Anthropic Managed Agents environment (cloud or self-hosted) kept in sync by the agentenv operator. For self-hosted environments the operator also runs each session in its own Pod.',
    spec: AgentEnvironmentSpec,
    status: AgentEnvironmentStatus,
    categories: ['agentenv'],
    // HPA and KEDA size the warm pool through /scale: they write spec.selfHosted.warmPool.size and
    // read the unbound warm Pods back (docs/sessions.md, "Warm pool").
    scale: { specReplicasPath: '.spec.selfHosted.warmPool.size', statusReplicasPath: '.status.warmPool.replicas', labelSelectorPath: '.status.warmPool.selector' },
    columns: [
      { name: 'Environment', type: 'string', jsonPath: '.status.environmentId', description: 'Remote environment ID' },
      { name: 'Type', type: 'string', jsonPath: '.status.type', description: 'cloud or self_hosted' },
      { name: 'Ready', type: 'string', jsonPath: condition('Ready'), description: 'Ready condition' },
      { name: 'Synced', type: 'string', jsonPath: condition('Synced'), description: 'Synced condition' },
      { name: 'Sessions', type: 'integer', jsonPath: '.status.activeSessions', description: 'Active sessions (self-hosted)' },
      { name: 'Warm', type: 'integer', jsonPath: '.status.warmPool.ready', description: 'Warm Pods ready to be bound (self-hosted)', priority: 1 },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'Age' },
    ],
  },
  {
    names: AGENT_SESSION,
    description:
      'AgentSession records one session of a self-hosted AgentEnvironment claimed by this cluster: written before its work item is acknowledged, it owns the session Pod.',
    spec: AgentSessionSpec,
    status: AgentSessionStatus,
    categories: ['agentenv'],
    columns: [
      { name: 'Environment', type: 'string', jsonPath: '.spec.environmentRef.name', description: 'AgentEnvironment' },
      { name: 'Session', type: 'string', jsonPath: '.spec.sessionId', description: 'Session ID' },
      { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Session phase' },
      { name: 'Workspace', type: 'string', jsonPath: '.status.workspace.claimName', description: 'Workspace claim' },
      { name: 'Volume', type: 'string', jsonPath: '.status.workspace.phase', description: 'Workspace claim phase' },
      { name: 'Items', type: 'integer', jsonPath: '.status.workItems', description: 'Work items served' },
      { name: 'Work', type: 'string', jsonPath: '.status.workState', description: 'Work item state' },
      { name: 'Pod', type: 'string', jsonPath: '.status.podName', description: 'Session Pod' },
      { name: 'Reason', type: 'string', jsonPath: '.status.reason', description: 'Reason', priority: 1 },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'Age' },
    ],
  },
];

/** Build one CustomResourceDefinition object. */
export function customResourceDefinition(r: ResourceDefinition): JsonObject {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${r.names.plural}.${GROUP}`,
      labels: { 'app.kubernetes.io/name': 'agentenv', 'app.kubernetes.io/part-of': 'agentenv' },
    },
    spec: {
      group: GROUP,
      scope: 'Namespaced',
      names: {
        kind: r.names.kind,
        listKind: r.names.listKind,
        plural: r.names.plural,
        singular: r.names.singular,
        shortNames: [...r.names.shortNames],
        categories: [...r.categories],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: r.scale ? { status: {}, scale: { ...r.scale } } : { status: {} },
          additionalPrinterColumns: r.columns.map((c) => ({ ...c })) as Json,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: r.description,
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string', description: 'APIVersion of this object: agentenv.io/v1alpha1.' },
                kind: { type: 'string', description: `Kind of this object: ${r.names.kind}.` },
                metadata: { type: 'object' },
                spec: openApiSchema(r.spec),
                status: openApiSchema(r.status),
              },
            },
          },
        },
      ],
    },
  };
}
