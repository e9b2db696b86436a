/**
 * A warm Pod of an environment's pool (pure: same inputs → same Pod): the sidecar and the default
 * runner, started before any work, holding no work item and no credential.
 *
 * What differs from a cold session Pod (objects/pod.ts), and why:
 * 1. no session, work id or credential anywhere: the sidecar has no credential volume and no
 *    `AGENTENV_{SESSION,WORK}_ID`; the main container has no `ANTHROPIC_{SESSION,WORK}_ID`. Until
 *    the Pod is bound there is nothing for the sandbox to read, and nothing to leak;
 * 2. the sidecar mounts (alone) a projected volume with a service-account token of its own audience
 *    (`ASSIGNMENT_AUDIENCE`, useless against the Kubernetes API) and the CA of the operator's
 *    assignment endpoint, and long-polls that endpoint for the work bound to its Pod
 *    (`AGENTENV_ASSIGNMENT_*`): the binding reaches it over the cluster network, with no ingress
 *    into the Pod and no Kubernetes API access in the sandbox;
 * 3. no startup probe: the runner starts at once (its Node start is most of a cold start) and waits
 *    on the sidecar (`AGENTENV_WAIT_FOR_ASSIGNMENT=1`), which answers only once it has claimed the
 *    lease of the bound item — the lease still comes before any session work;
 * 4. owned by the AgentEnvironment and labelled `agentenv.io/component=warm-pool` +
 *    `agentenv.io/warm-pool=<environment>`, so the pool is listed by selector and garbage-collected
 *    with its environment. Binding relabels it a session Pod (it then counts as that session's).
 */
import { AGENT_ENVIRONMENT, API_VERSION, LABELS, MANAGED_BY } from '../../crd/meta.ts';
import type { AgentEnvironment } from '../../crd/resources.ts';
import {
  ASSIGNMENT_AUDIENCE,
  ASSIGNMENT_CA_FILE,
  ASSIGNMENT_DIR,
  ASSIGNMENT_TOKEN_FILE,
  DEFAULT_PROXY_ADDRESS,
  PLACEHOLDER_WORK_SECRET,
  RUNNER_WAIT_FOR_ASSIGNMENT_ENV,
  SIDECAR_ENV as E,
} from '../../contract/sidecar.ts';
import { labelValue, WARM_POOL_COMPONENT, warmPodName } from '../record/names.ts';
import { defaultSessionTemplate } from './default-template.ts';
import {
  DEFAULT_RUNNER,
  DEFAULT_SESSION_UID,
  MAIN_CONTAINER_NAME,
  POD_IP_ENV,
  POD_IP_FIELD,
  PROBE_PORT,
  PROXY_PORT,
  SIDECAR_COMMAND,
  SIDECAR_NAME,
  SIDECAR_READINESS_PROBE,
  SIDECAR_RESOURCES,
  sidecarSecurityContext,
  STATE_DIR,
  STATE_VOLUME,
  TERMINATION_MARGIN_SECONDS,
  type ProxyAddressMode,
  type RunnerSettings,
  type SidecarSettings,
} from './pod.ts';
import { hardenContainer, hardenPod } from './pod-security.ts';
import type { Container, EnvVar, Pod, PodSpec } from './pod-types.ts';
import { SIDECAR_UID } from '../../contract/sidecar.ts';

/** The volume (sidecar only) holding the assignment token and the endpoint's CA. */
export const ASSIGNMENT_VOLUME = 'agentenv-assignment';
/** Seconds a projected assignment token lives; the kubelet renews it at 80 %. The API's minimum is 600. */
export const ASSIGNMENT_TOKEN_SECONDS = 3600;

/** The operator's assignment endpoint, as warm Pods reach it (operator setting `assignmentUrl`). */
export interface AssignmentEndpoint {
  /** `https://<operator service>.<namespace>.svc:<port>`: where warm sidecars long-poll. */
  readonly url: string;
  /** The ConfigMap (in the Pod's namespace) whose `ca.crt` signed the endpoint's serving certificate. */
  readonly caConfigMap: string;
  /** That CA (PEM), which the operator writes into the ConfigMap of each namespace with a pool. */
  readonly caPem: string;
}

export interface WarmPodInputs {
  /** The environment, spec parsed (defaults applied), with its uid and status.environmentId. */
  readonly env: AgentEnvironment;
  readonly ordinal: number;
  readonly sidecar: SidecarSettings;
  readonly runner?: RunnerSettings;
  readonly proxyAddress?: ProxyAddressMode;
  /** The real API base URL (the sidecar's upstream). */
  readonly baseUrl: string;
  readonly assignment: AssignmentEndpoint;
}

/** Labels of an environment's warm Pod that is not bound yet. */
export function warmPodLabels(envName: string): Record<string, string> {
  return { [LABELS.managedBy]: MANAGED_BY, [LABELS.component]: WARM_POOL_COMPONENT, [LABELS.environment]: labelValue(envName), [LABELS.warmPool]: labelValue(envName) };
}

/** The warm Pod at `ordinal`; undefined when the environment has no remote id yet or uses a sessionTemplate (served cold). */
export function desiredWarmPod(inputs: WarmPodInputs): Pod | undefined {
  const { env } = inputs;
  const sh = env.spec.selfHosted;
  const environmentId = env.status?.environmentId;
  if (!sh || sh.sessionTemplate || !environmentId) return undefined;
  const envName = env.metadata?.name ?? '';
  const template = defaultSessionTemplate(inputs.runner ?? DEFAULT_RUNNER, sh.idleTimeoutSeconds);
  const tspec = template.spec ?? { containers: [] };
  const main = (tspec.containers ?? [])[0]!;
  const mainWithEnv: Container = { ...main, name: MAIN_CONTAINER_NAME, env: mainEnv(inputs, environmentId) };
  let spec: PodSpec = {
    ...tspec,
    containers: [mainWithEnv],
    restartPolicy: 'Never',
    ...(inputs.sidecar.imagePullSecrets?.length ? { imagePullSecrets: [...new Set(inputs.sidecar.imagePullSecrets)].map((name) => ({ name })) } : {}),
    // No token of the Pod's service account is mounted; the projected assignment token below is
    // the only one, of its own audience, in the sidecar alone.
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    terminationGracePeriodSeconds: Math.max(30, sh.stopGracePeriodSeconds + TERMINATION_MARGIN_SECONDS),
  };
  // The default runner names no user: the Restricted defaults apply (also under Custom, where the
  // operator's own template is Restricted-clean anyway).
  spec = hardenPod(spec, undefined, DEFAULT_SESSION_UID);
  spec.initContainers = [sidecarContainer(inputs, environmentId)];
  spec.volumes = [
    ...(spec.volumes ?? []),
    {
      name: ASSIGNMENT_VOLUME,
      projected: {
        defaultMode: 0o444,
        sources: [
          { serviceAccountToken: { audience: ASSIGNMENT_AUDIENCE, expirationSeconds: ASSIGNMENT_TOKEN_SECONDS, path: 'token' } },
          { configMap: { name: inputs.assignment.caConfigMap, items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        ],
      },
    },
    { name: STATE_VOLUME, emptyDir: { sizeLimit: '1Mi' } },
  ];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: warmPodName(envName, inputs.ordinal),
      namespace: env.metadata?.namespace ?? '',
      labels: warmPodLabels(envName),
      ownerReferences: [{ apiVersion: API_VERSION, kind: AGENT_ENVIRONMENT.kind, name: envName, uid: env.metadata?.uid ?? '', controller: true, blockOwnerDeletion: true }],
    },
    spec,
  };
}

/** The runner's environment before binding: where the sidecar is, the placeholder, and "wait for your assignment". */
function mainEnv(inputs: WarmPodInputs, environmentId: string): EnvVar[] {
  const proxy = inputs.proxyAddress === 'pod-ip'
    ? [{ name: POD_IP_ENV, valueFrom: POD_IP_FIELD }, { name: 'ANTHROPIC_BASE_URL', value: `http://$(${POD_IP_ENV}):${PROXY_PORT}` }]
    : [{ name: 'ANTHROPIC_BASE_URL', value: `http://${DEFAULT_PROXY_ADDRESS}:${PROXY_PORT}` }];
  return [
    { name: 'ANTHROPIC_ENVIRONMENT_ID', value: environmentId },
    ...proxy,
    { name: 'ANTHROPIC_WORK_SECRET', value: PLACEHOLDER_WORK_SECRET },
    { name: RUNNER_WAIT_FOR_ASSIGNMENT_ENV, value: '1' },
  ];
}

/** The warm sidecar: the cold one's settings minus session, work and credential, plus the assignment endpoint. */
function sidecarContainer(inputs: WarmPodInputs, environmentId: string): Container {
  const sh = inputs.env.spec.selfHosted!;
  const env: EnvVar[] = [
    { name: E.baseUrl, value: inputs.baseUrl },
    { name: E.environmentId, value: environmentId },
    { name: E.stateDir, value: STATE_DIR },
    ...(sh.leaseTTLSeconds !== undefined ? [{ name: E.leaseTtlSeconds, value: String(sh.leaseTTLSeconds) }] : []),
    { name: E.probeAddress, valueFrom: POD_IP_FIELD },
    { name: E.probePort, value: String(PROBE_PORT) },
    inputs.proxyAddress === 'pod-ip' ? { name: E.proxyAddress, valueFrom: POD_IP_FIELD } : { name: E.proxyAddress, value: DEFAULT_PROXY_ADDRESS },
    { name: E.proxyPort, value: String(PROXY_PORT) },
    { name: E.assignmentUrl, value: inputs.assignment.url },
    { name: E.assignmentTokenFile, value: ASSIGNMENT_TOKEN_FILE },
    { name: E.assignmentCaFile, value: ASSIGNMENT_CA_FILE },
  ];
  return hardenContainer({
    name: SIDECAR_NAME,
    image: inputs.sidecar.image,
    imagePullPolicy: inputs.sidecar.imagePullPolicy,
    command: [...SIDECAR_COMMAND],
    restartPolicy: 'Always',
    env,
    ports: [{ name: 'probe', containerPort: PROBE_PORT, protocol: 'TCP' }],
    // Ready = waiting for an assignment and healthy (then, once bound, as a cold sidecar's).
    readinessProbe: SIDECAR_READINESS_PROBE,
    volumeMounts: [
      { name: ASSIGNMENT_VOLUME, mountPath: ASSIGNMENT_DIR, readOnly: true },
      { name: STATE_VOLUME, mountPath: STATE_DIR },
    ],
    resources: SIDECAR_RESOURCES,
    // The default runner runs as DEFAULT_SESSION_UID, never the sidecar's UID.
    securityContext: sidecarSecurityContext(SIDECAR_UID),
  });
}
