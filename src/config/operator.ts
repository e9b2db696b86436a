/**
 * Configuration of `agentenv operator`, parsed once at the entrypoint from flags and environment
 * variables (flags win). A bad value fails fast with a message naming the setting.
 */
import { z } from 'zod';
import { LOG_FORMATS, LOG_LEVELS } from './logging.ts';
import { duration } from './duration.ts';

export const DEFAULT_BASE_URL = 'https://api.anthropic.com';
export const DEFAULT_IMAGE = 'ghcr.io/agentenv-io/agentenv';
/** The default runner's image: the project's build with the tools the agent toolset needs (Dockerfile `--target runner`). */
export const DEFAULT_RUNNER_IMAGE = 'ghcr.io/agentenv-io/agentenv-runner';
/**
 * Where each session Pod's sidecar proxy listens (see objects/pod.ts `ProxyAddressMode`): `loopback`
 * in every real cluster; `pod-ip` only for the process kubelet, which has no per-Pod network
 * namespace (every Pod shares the host's loopback, so 127.0.0.1:8096 would collide between Pods).
 */
export const SESSION_PROXY_ADDRESSES = ['loopback', 'pod-ip'] as const;

const namespaceName = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'namespace names are lower-case DNS labels');
/** A Secret name (a DNS subdomain). */
const secretName = z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'Secret names are lower-case DNS subdomains').max(253);

export const OperatorConfig = z.object({
  kubeconfig: z.string().optional().describe('kubeconfig path; in-cluster credentials when unset and running in a Pod'),
  baseUrl: z.url({ message: 'ANTHROPIC_BASE_URL must be a URL such as https://api.anthropic.com' }).default(DEFAULT_BASE_URL),
  apiKey: z.string().min(1).optional(),
  apiKeyFile: z.string().min(1).optional(),
  namespaces: z.array(namespaceName).default([]),
  /**
   * Namespaces whose AgentEnvironments may adopt (spec.environmentId) an environment they do not own;
   * `*` for every namespace. Default none: only environments created by the adopting resource itself.
   */
  adoptionNamespaces: z.array(z.union([z.literal('*'), namespaceName])).default([]),
  /** Namespaces the default API key serves; empty (the default): every watched namespace. */
  defaultApiKeyNamespaces: z.array(namespaceName).default([]),
  /** Image pull Secrets (in each session's namespace) added to every session Pod. Default none. */
  sessionImagePullSecrets: z.array(secretName).default([]),
  concurrency: z.coerce.number().int().min(1).max(256).default(4),
  resyncMs: duration.default(600_000),
  logLevel: z.enum(LOG_LEVELS).default('info'),
  logFormat: z.enum(LOG_FORMATS).default('json'),
  metricsPort: z.coerce.number().int().min(0).max(65535).default(8080),
  healthPort: z.coerce.number().int().min(0).max(65535).default(8081),
  bindAddress: z.string().default('0.0.0.0'),
  leaderElect: z.boolean().default(true),
  leaderElectionNamespace: z.string().min(1).default('default'),
  leaderElectionId: z.string().min(1).default('agentenv-operator'),
  /**
   * Leader-election timings (controller-runtime's names and defaults): a standby takes over at most
   * about `leaseDuration + retryPeriod` after the leader died; the leader gives up the lead when it
   * could not renew for `renewDeadline`. Defaults 15 s / 10 s / 2 s. Shorter values fail over faster
   * and cost one Lease write per `retryPeriod`; the chaos run uses 3 s / 2 s / 500 ms.
   */
  leaderElectionLeaseDurationMs: duration.default(15_000),
  leaderElectionRenewDeadlineMs: duration.default(10_000),
  leaderElectionRetryPeriodMs: duration.default(2_000),
  identity: z.string().min(1),
  sidecarImage: z.string().min(1).default(`${DEFAULT_IMAGE}:latest`),
  sidecarImagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).default('IfNotPresent'),
  /** The default runner's image, for environments without a sessionTemplate. */
  runnerImage: z.string().min(1).default(`${DEFAULT_RUNNER_IMAGE}:latest`),
  runnerImagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).default('IfNotPresent'),
  /** `spec.priorityClassName` of session Pods whose template names none. Default none. */
  sessionPriorityClassName: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'AGENTENV_SESSION_PRIORITY_CLASS_NAME must be a PriorityClass name (a lower-case DNS subdomain)').max(253).optional(),
  /** Annotate session Pods as not safely evictable by voluntary disruption (cluster autoscaler, Karpenter). Default false. */
  sessionDoNotDisrupt: z.boolean().default(false),
  sessionProxyAddress: z.enum(SESSION_PROXY_ADDRESSES, { message: 'AGENTENV_SESSION_PROXY_ADDRESS must be loopback or pod-ip (pod-ip only for the process kubelet)' }).default('loopback'),
  /**
   * Warm pools (spec.selfHosted.warmPool): the URL warm Pods reach this operator's assignment
   * endpoint at (the chart's Service, `https://…`). Unset (the default): no warm Pod is started.
   */
  assignmentUrl: z.url({ protocol: /^https$/, message: 'AGENTENV_ASSIGNMENT_URL must be an https URL, e.g. https://agentenv-assignment.agentenv-system.svc:8443' }).optional(),
  /** Port the assignment endpoint listens on. Default 8443. */
  assignmentPort: z.coerce.number().int().min(0).max(65535).default(8443),
  /** Directory with the endpoint's serving certificate: tls.crt, tls.key and the CA that signed it, ca.crt. Required with assignmentUrl. */
  assignmentTlsDir: z.string().min(1).optional(),
  /** The ConfigMap (per namespace with a pool, written by the operator) holding that CA for warm Pods. */
  assignmentCaConfigMap: z.string().min(1).max(253).default('agentenv-assignment-ca'),
  /** Egress proxy of the operator's API client (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`); none when unset. */
  httpsProxy: z.url({ message: 'HTTPS_PROXY must be a URL such as http://proxy.example.com:3128' }).optional(),
  httpProxy: z.url({ message: 'HTTP_PROXY must be a URL such as http://proxy.example.com:3128' }).optional(),
  noProxy: z.string().optional(),
}).superRefine((c, ctx) => {
  // The Lease's leaseDurationSeconds is whole seconds; a leader must give up (renewDeadline) before
  // a standby may take over (leaseDuration), and retry more than once within its renew deadline.
  if (c.leaderElectionLeaseDurationMs < 1_000 || c.leaderElectionLeaseDurationMs % 1_000 !== 0) {
    ctx.addIssue({ code: 'custom', path: ['leaderElectionLeaseDurationMs'], message: 'the lease duration must be whole seconds, at least 1s' });
  }
  if (c.leaderElectionRenewDeadlineMs >= c.leaderElectionLeaseDurationMs) {
    ctx.addIssue({ code: 'custom', path: ['leaderElectionRenewDeadlineMs'], message: 'the renew deadline must be shorter than the lease duration' });
  }
  if (c.leaderElectionRetryPeriodMs < 100 || c.leaderElectionRetryPeriodMs * 2 > c.leaderElectionRenewDeadlineMs) {
    ctx.addIssue({ code: 'custom', path: ['leaderElectionRetryPeriodMs'], message: 'the retry period must be at least 100ms and at most half the renew deadline' });
  }
});
export type OperatorConfig = z.infer<typeof OperatorConfig>;

/** Render zod issues as "setting: problem" lines. */
export function describeIssues(error: z.ZodError, names: Readonly<Record<string, string>> = {}): string {
  return error.issues
    .map((i) => {
      const key = i.path.map(String).join('.');
      return `  ${names[key] ?? key}: ${i.message}`;
    })
    .join('\n');
}
