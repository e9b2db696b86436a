/**
 * The session Pod, built from the environment's `sessionTemplate` plus what the operator injects
 * (pure: no I/O, same inputs → same Pod, so a retried launch converges on the same object).
 *
 * No `sessionTemplate` means the default runner (objects/default-template.ts: `agentenv runner`
 * in the runner image).
 *
 * Injected:
 * 1. the lease-keeping sidecar as a native sidecar (first init container, `restartPolicy: Always`)
 *    whose startup probe (an exec waiting on `/started`) passes once the lease is claimed, so the main
 *    container starts after the claim; its credential and its state emptyDir are mounted into the
 *    sidecar ONLY (a template container may not mount them). The credential is the per-item
 *    Secret's `token` when the poll carried a per-item secret, else the environment key, mounted
 *    straight from the AgentEnvironment's Secret (one key, as the file `token`: no copy of the key
 *    is written per session, and a rotated key reaches running sidecars). Its readiness probe
 *    (`GET /ready`) is how it tells the operator that the main container should end now: the
 *    operator deletes the Pod when it has not ended `stopGracePeriodSeconds` later
 *    (controller/decide.ts, the enforced stop);
 * 2. the main container's environment contract (`ANTHROPIC_*`): `ANTHROPIC_BASE_URL` is the
 *    sidecar's proxy — the Pod's only door to the API — and `ANTHROPIC_WORK_SECRET` a placeholder
 *    the sidecar recognises. No real credential enters a sandbox container: not the environment
 *    key, not the API key, not the per-item token (only the sidecar mounts the per-item Secret);
 * 3. hardening: no shared process namespace and the sidecar under its own non-root UID (nothing in
 *    the main container can read the sidecar's files, its environment or its memory), no service
 *    account token, no service links, `restartPolicy: Never` (one Pod runs one work item once),
 *    and the Restricted Pod Security defaults unless `podSecurity: Custom`.
 */
import type { AgentEnvironment, AgentSession } from '../../crd/resources.ts';
import { hasItemSecret } from '../record/status.ts';
import { podName, secretName, SECRET_TOKEN_KEY, workLabels } from '../record/names.ts';
import {
  CREDENTIAL_DIR,
  DEFAULT_PROBE_PORT,
  DEFAULT_PROXY_ADDRESS,
  DEFAULT_PROXY_PORT,
  DEFAULT_STATE_DIR,
  PLACEHOLDER_WORK_SECRET,
  READY_PATH,
  SIDECAR_ENV as E,
  type CredentialKind,
} from '../../contract/sidecar.ts';
import { defaultSessionTemplate, type RunnerSettings } from './default-template.ts';
import { effectiveUid, hardenContainer, hardenPod, restrictedViolations, sidecarUid } from './pod-security.ts';
import { ownedBySession } from './work-secret.ts';
import { withWorkspace, workspaceClaimName } from './workspace.ts';
import type { Container, EnvVar, Pod, PodSpec, PodTemplate, Volume } from './pod-types.ts';

/** Name of the injected sidecar container. */
export const SIDECAR_NAME = 'agentenv-sidecar';
/** Name a template may give its main container (else the first container is the main one). */
export const MAIN_CONTAINER_NAME = 'session';
/**
 * How the project image runs the sidecar: its Node binary, interpreter only, on the bundled
 * CommonJS sidecar (src/cli/sidecar-entry.ts explains the memory this saves in every Pod). The
 * paths are the image's (Dockerfile: Node at /nodejs/bin/node, the build in /app/dist).
 */
export const SIDECAR_COMMAND = ['/nodejs/bin/node', '--no-sparkplug', '--no-maglev', '--no-turbofan', '/app/dist/sidecar.cjs'] as const;
/**
 * The sidecar's startup probe, an `exec` in the sidecar container: the image's Node on its own small
 * bundle (src/cli/wait-started-entry.ts), which waits for the claim and exits 0 at once, or 1 after
 * {@link STARTUP_WAIT_SECONDS} (src/sidecar/wait-started.ts).
 */
export const WAIT_STARTED_COMMAND = ['/nodejs/bin/node', '--no-sparkplug', '--no-maglev', '--no-turbofan', '/app/dist/wait-started.cjs'] as const;
/** How long one startup-probe attempt waits for the claim. */
export const STARTUP_WAIT_SECONDS = 10;
/** The sidecar's probe port (the sidecar contract's default, `AGENTENV_PROBE_PORT`). */
export const PROBE_PORT = DEFAULT_PROBE_PORT;
export const CREDENTIAL_VOLUME = 'agentenv-credential';
export { CREDENTIAL_DIR };
export const STATE_VOLUME = 'agentenv-state';
export const STATE_DIR = DEFAULT_STATE_DIR;
/** UID given to a Restricted session Pod whose template names none (the distroless "nonroot" user, the runner image's USER). */
export const DEFAULT_SESSION_UID = 65532;
/** Seconds the Pod's termination grace adds to `stopGracePeriodSeconds`: the sidecar's own stop call after the main container ended. */
export const TERMINATION_MARGIN_SECONDS = 15;
/** The sidecar's proxy port (the sidecar contract's default, `AGENTENV_PROXY_PORT`). */
export const PROXY_PORT = DEFAULT_PROXY_PORT;
/** In `pod-ip` mode, the main container's variable holding the Pod IP, expanded into `ANTHROPIC_BASE_URL`. */
export const POD_IP_ENV = 'AGENTENV_POD_IP';

/** Environment variables the operator owns in the main container (a template's values are replaced). */
export const CONTRACT_ENV = ['ANTHROPIC_ENVIRONMENT_ID', 'ANTHROPIC_SESSION_ID', 'ANTHROPIC_WORK_ID', 'ANTHROPIC_BASE_URL', 'ANTHROPIC_WORK_SECRET', POD_IP_ENV] as const;
/**
 * Names that must never appear in a sandbox container's environment: a template's values are
 * dropped (the SDK reads each of them as a credential, and the sidecar is the one credential holder).
 */
export const FORBIDDEN_ENV = ['ANTHROPIC_ENVIRONMENT_KEY', 'ANTHROPIC_API_KEY', 'ANTHROPIC_AUTH_TOKEN'] as const;

export interface SidecarSettings {
  readonly image: string;
  readonly imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /** Pull Secrets (in the session's namespace) added to every session Pod, after the template's own: the sidecar's and runner's images may be private. */
  readonly imagePullSecrets?: readonly string[];
}
export type { RunnerSettings };

/**
 * Where the sidecar's proxy listens, as the operator setting `sessionProxyAddress`:
 * - `loopback` (default, every real cluster): `127.0.0.1` — the Pod's own network namespace, so
 *   nothing outside the Pod can reach the proxy;
 * - `pod-ip`: the Pod IP. Only for the process kubelet (dev and tests), which has no per-Pod network
 *   namespace: every Pod there shares the host's loopback, so `127.0.0.1:8096` would collide between
 *   Pods, and each Pod has a loopback address of its own as its Pod IP instead.
 */
export const PROXY_ADDRESS_MODES = ['loopback', 'pod-ip'] as const;
export type ProxyAddressMode = (typeof PROXY_ADDRESS_MODES)[number];

/**
 * Cluster-wide defaults of every session Pod's scheduling and disruption (the operator settings
 * `sessionPriorityClassName` and `sessionDoNotDisrupt`). A template's own `priorityClassName` and
 * annotations win.
 */
export interface SessionPodPolicy {
  /** `spec.priorityClassName` of session Pods whose template names none. Default none. */
  readonly priorityClassName?: string | undefined;
  /**
   * Mark session Pods as not safely evictable by voluntary disruption ({@link DO_NOT_DISRUPT}): the
   * cluster autoscaler and Karpenter then never drain a node for consolidation while a session
   * runs on it (the cost: such a node cannot scale down until its sessions end). Default false.
   */
  readonly doNotDisrupt?: boolean | undefined;
}

/** The annotations the cluster autoscaler and Karpenter honour: do not evict this Pod to scale a node down. */
export const DO_NOT_DISRUPT: Readonly<Record<string, string>> = {
  'cluster-autoscaler.kubernetes.io/safe-to-evict': 'false',
  'karpenter.sh/do-not-disrupt': 'true',
};

export interface PodInputs {
  readonly session: AgentSession;
  /** The session's environment, with its spec parsed (defaults applied). */
  readonly env: AgentEnvironment;
  readonly sidecar: SidecarSettings;
  /** The default runner's image, used when the environment has no `sessionTemplate`. Default: {@link DEFAULT_RUNNER}. */
  readonly runner?: RunnerSettings;
  /** Where the sidecar's proxy listens. Default `loopback`. */
  readonly proxyAddress?: ProxyAddressMode;
  /** The real API base URL: the sidecar's upstream (the main container gets the sidecar's proxy instead). */
  readonly baseUrl: string;
  /** Priority and disruption defaults. Default: none. */
  readonly podPolicy?: SessionPodPolicy;
}

export type PodBuild =
  | { readonly ok: true; readonly pod: Pod }
  /** `reason` is CamelCase for the AgentSession status; the message names fields, never values. */
  | { readonly ok: false; readonly reason: 'InvalidTemplate' | 'TemplateRefused'; readonly message: string };

/** Build the Pod that runs the session's current work item (`spec.workId`). */
export function desiredPod(inputs: PodInputs): PodBuild {
  const { session, env } = inputs;
  const selfHosted = env.spec.selfHosted;
  if (!selfHosted) return refused('InvalidTemplate', 'the environment is not self-hosted');
  const template = (selfHosted.sessionTemplate as PodTemplate | undefined) ?? defaultSessionTemplate(inputs.runner ?? DEFAULT_RUNNER, selfHosted.idleTimeoutSeconds);
  const tspec = template.spec ?? {};
  const containers = tspec.containers ?? [];
  if (!Array.isArray(containers) || containers.length === 0) return refused('InvalidTemplate', 'sessionTemplate.spec.containers is empty');
  const mainIndex = Math.max(0, containers.findIndex((c) => c.name === MAIN_CONTAINER_NAME));
  const reserved = [...(tspec.initContainers ?? []), ...containers].find((c) => c.name === SIDECAR_NAME);
  if (reserved) return refused('InvalidTemplate', `the container name ${SIDECAR_NAME} is reserved for the operator's sidecar`);
  const volumeClash = (tspec.volumes ?? []).find((v) => v.name === CREDENTIAL_VOLUME || v.name === STATE_VOLUME);
  if (volumeClash) return refused('InvalidTemplate', `the volume name ${volumeClash.name} is reserved for the operator`);
  // The injected volumes belong to the sidecar: a template container mounting one by name would
  // read the sidecar's credential.
  const mountClash = [...(tspec.initContainers ?? []), ...containers].find((c) => (c.volumeMounts ?? []).some((m) => m.name === CREDENTIAL_VOLUME || m.name === STATE_VOLUME));
  if (mountClash) return refused('TemplateRefused', `container ${mountClash.name} mounts a volume reserved for the operator's sidecar (${CREDENTIAL_VOLUME}, ${STATE_VOLUME})`);
  const credential = credentialVolume(session, env);
  if (!credential) return refused('InvalidTemplate', 'the work item has no per-item secret and the environment has no spec.selfHosted.environmentKeySecretRef for the sidecar');

  const exposed = credentialExposure(tspec, protectedSecrets(env));
  if (exposed.length) return refused('TemplateRefused', `the template would expose a credential to the sandbox: ${exposed.join('; ')}`);
  const restricted = selfHosted.podSecurity !== 'Custom';
  if (restricted) {
    const violations = restrictedViolations(tspec);
    if (violations.length) {
      return refused('TemplateRefused', `the template breaks the Restricted Pod Security Standard (set spec.selfHosted.podSecurity: Custom to opt out): ${violations.join('; ')}`);
    }
  }

  const workId = session.spec.workId;
  const sessionObj = session.metadata?.name ?? '';
  const name = podName(sessionObj, workId);
  const main = containers[mainIndex]!;
  const sidecarUser = sidecarUid(tspec);
  if (sidecarUser === undefined) return refused('TemplateRefused', 'the template\'s containers run as both UIDs reserved for the sidecar (65533, 65531): the sidecar must run as a user of its own');
  // The session's workspace claim replaces the `workspace` volume and is mounted at /workspace.
  const workspace = selfHosted.workspace ? withWorkspace(tspec.volumes ?? [], main, workspaceClaimName(sessionObj)) : { volumes: tspec.volumes, main };
  const mainWithEnv: Container = { ...workspace.main, env: [...(main.env ?? []).filter((e) => !isOwnedEnv(e.name)), ...contractEnv(inputs)] };
  // No shareProcessNamespace (a template's `true` included): with it, /proc/<sidecar pid>/root
  // would show the main container the sidecar's mounted credential.
  const { shareProcessNamespace: _shared, ...templateSpec } = tspec;
  const priorityClassName = tspec.priorityClassName || inputs.podPolicy?.priorityClassName;
  let spec: PodSpec = {
    ...templateSpec,
    ...(priorityClassName ? { priorityClassName } : {}),
    ...(workspace.volumes ? { volumes: workspace.volumes } : {}),
    containers: containers.map((c, i) => (i === mainIndex ? mainWithEnv : c)),
    restartPolicy: 'Never',
    ...pullSecrets(tspec.imagePullSecrets, inputs.sidecar.imagePullSecrets),
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    terminationGracePeriodSeconds: Math.max(tspec.terminationGracePeriodSeconds ?? 30, selfHosted.stopGracePeriodSeconds + TERMINATION_MARGIN_SECONDS),
  };
  const mainUser = effectiveUid(tspec, main);
  if (restricted) spec = hardenPod(spec, mainUser.uid, DEFAULT_SESSION_UID);
  spec.initContainers = [sidecarContainer(inputs, sidecarUser), ...(spec.initContainers ?? [])];
  spec.volumes = [
    ...(spec.volumes ?? []),
    credential,
    { name: STATE_VOLUME, emptyDir: { sizeLimit: '1Mi' } },
  ];

  const labels = workLabels(session.spec.environmentRef.name, sessionObj, workId);
  const annotations = { ...(inputs.podPolicy?.doNotDisrupt ? DO_NOT_DISRUPT : {}), ...(template.metadata?.annotations ?? {}) };
  return {
    ok: true,
    pod: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: session.metadata?.namespace ?? '',
        labels: { ...(template.metadata?.labels ?? {}), ...labels },
        ...(Object.keys(annotations).length ? { annotations } : {}),
        ownerReferences: [ownedBySession(session)],
      },
      spec,
    },
  };
}

function pullSecrets(template: PodSpec['imagePullSecrets'], operator: readonly string[] = []): { imagePullSecrets?: Array<{ name: string }> } {
  const names = [...(template ?? []).map((s) => s.name), ...operator].filter((n): n is string => !!n);
  return names.length ? { imagePullSecrets: [...new Set(names)].map((name) => ({ name })) } : {};
}

/** The default runner image when the operator passes none (it always passes its `runnerImage` setting). */
export const DEFAULT_RUNNER: RunnerSettings = { image: 'ghcr.io/agentenv-io/agentenv-runner:latest', imagePullPolicy: 'IfNotPresent' };

/** The Pod IP, by fieldRef: where the probes (and in `pod-ip` mode the proxy) listen. */
export const POD_IP_FIELD = { fieldRef: { fieldPath: 'status.podIP' } };

/** The sidecar, per the sidecar contract: config from the environment, credential file, state dir, probe, proxy. */
function sidecarContainer(inputs: PodInputs, uid: number): Container {
  const { session, env, sidecar } = inputs;
  const sh = env.spec.selfHosted!;
  const credentialKind: CredentialKind = hasItemSecret(session) ? 'sessions-token' : 'environment-key';
  const envVars: EnvVar[] = [
    { name: E.baseUrl, value: inputs.baseUrl },
    { name: E.environmentId, value: session.spec.environmentId },
    { name: E.sessionId, value: session.spec.sessionId },
    { name: E.workId, value: session.spec.workId },
    { name: E.credentialFile, value: `${CREDENTIAL_DIR}/${SECRET_TOKEN_KEY}` },
    { name: E.credentialKind, value: credentialKind },
    { name: E.stateDir, value: STATE_DIR },
    ...(sh.leaseTTLSeconds !== undefined ? [{ name: E.leaseTtlSeconds, value: String(sh.leaseTTLSeconds) }] : []),
    // Each Pod's probes listen on its own IP, so probes of many Pods on one node never collide.
    { name: E.probeAddress, valueFrom: POD_IP_FIELD },
    { name: E.probePort, value: String(PROBE_PORT) },
    inputs.proxyAddress === 'pod-ip' ? { name: E.proxyAddress, valueFrom: POD_IP_FIELD } : { name: E.proxyAddress, value: DEFAULT_PROXY_ADDRESS },
    { name: E.proxyPort, value: String(PROXY_PORT) },
  ];
  return hardenContainer({
    name: SIDECAR_NAME,
    image: sidecar.image,
    imagePullPolicy: sidecar.imagePullPolicy,
    command: [...SIDECAR_COMMAND],
    // A native sidecar: started before the main container, kept running beside it, stopped after it.
    restartPolicy: 'Always',
    env: envVars,
    ports: [{ name: 'probe', containerPort: PROBE_PORT, protocol: 'TCP' }],
    // The main container starts only once this passes, i.e. once the lease is claimed. Each
    // attempt WAITS for the claim (a long poll of /started) instead of asking once: asked once, the
    // first attempt comes before the sidecar listens and the next a period later, so the gate cost a
    // second where the claim takes a tenth. The waiter ends before timeoutSeconds, so a failure is
    // its own "not claimed" and not the kubelet's kill. The reconciler enforces startDeadlineSeconds
    // itself; the probe only needs to outlast it, and every failed attempt lasts the whole wait.
    startupProbe: {
      exec: { command: [...WAIT_STARTED_COMMAND, String(STARTUP_WAIT_SECONDS)] },
      periodSeconds: 1,
      timeoutSeconds: STARTUP_WAIT_SECONDS + 5,
      failureThreshold: Math.ceil((sh.startDeadlineSeconds + TERMINATION_MARGIN_SECONDS) / STARTUP_WAIT_SECONDS),
    },
    // Not ready = "the main container should end now" (a stop is due, or the lease is lost): one
    // failed probe flips it, so the enforced stop's clock (the Pod's ContainersReady transition)
    // starts within a second of the sidecar's decision.
    readinessProbe: SIDECAR_READINESS_PROBE,
    volumeMounts: [
      { name: CREDENTIAL_VOLUME, mountPath: CREDENTIAL_DIR, readOnly: true },
      { name: STATE_VOLUME, mountPath: STATE_DIR },
    ],
    resources: SIDECAR_RESOURCES,
    securityContext: sidecarSecurityContext(uid),
  });
}

/** The sidecar's readiness probe (cold and warm Pods): one failure flips it. */
export const SIDECAR_READINESS_PROBE = {
  httpGet: { path: READY_PATH, port: PROBE_PORT },
  periodSeconds: 1,
  timeoutSeconds: 1,
  failureThreshold: 1,
  successThreshold: 1,
} as const;

export const SIDECAR_RESOURCES = { requests: { cpu: '10m', memory: '48Mi' }, limits: { memory: '128Mi' } } as const;

/**
 * The sidecar's security context: its own user and group, never the main container's (also under
 * podSecurity: Custom, and also beside a root main container): no signal, ptrace or /proc access
 * across the two.
 */
export function sidecarSecurityContext(uid: number): NonNullable<Container['securityContext']> {
  return {
    runAsUser: uid,
    runAsGroup: uid,
    runAsNonRoot: true,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/**
 * The main container's contract variables: what `handleItem` (or `ant beta:worker run`) reads.
 * `ANTHROPIC_BASE_URL` is the sidecar's proxy, and `ANTHROPIC_WORK_SECRET` the non-secret
 * placeholder: the official runner needs a work secret (or an environment key) to start at all,
 * and the sidecar replaces whatever credential arrives with the real one. In `pod-ip` mode the
 * base URL names the Pod IP through `$(AGENTENV_POD_IP)`, which the kubelet expands (a variable
 * defined before it in the same list).
 */
function contractEnv(inputs: PodInputs): EnvVar[] {
  const s = inputs.session.spec;
  const proxy = inputs.proxyAddress === 'pod-ip'
    ? [{ name: POD_IP_ENV, valueFrom: POD_IP_FIELD }, { name: 'ANTHROPIC_BASE_URL', value: `http://$(${POD_IP_ENV}):${PROXY_PORT}` }]
    : [{ name: 'ANTHROPIC_BASE_URL', value: `http://${DEFAULT_PROXY_ADDRESS}:${PROXY_PORT}` }];
  return [
    { name: 'ANTHROPIC_ENVIRONMENT_ID', value: s.environmentId },
    { name: 'ANTHROPIC_SESSION_ID', value: s.sessionId },
    { name: 'ANTHROPIC_WORK_ID', value: s.workId },
    ...proxy,
    { name: 'ANTHROPIC_WORK_SECRET', value: PLACEHOLDER_WORK_SECRET },
  ];
}

/**
 * The sidecar's credential volume: the file `token` from the per-item Secret, or from the
 * environment key's Secret when the item has no per-item secret. Files readable by the sidecar's
 * (non-root) user; only the sidecar mounts this volume. Undefined: no credential to give.
 */
function credentialVolume(session: AgentSession, env: AgentEnvironment): Volume | undefined {
  const source = hasItemSecret(session)
    ? { secretName: secretName(session.metadata?.name ?? '', session.spec.workId), key: SECRET_TOKEN_KEY }
    : env.spec.selfHosted?.environmentKeySecretRef && { secretName: env.spec.selfHosted.environmentKeySecretRef.name, key: env.spec.selfHosted.environmentKeySecretRef.key };
  if (!source) return undefined;
  return { name: CREDENTIAL_VOLUME, secret: { secretName: source.secretName, items: [{ key: source.key, path: SECRET_TOKEN_KEY }], defaultMode: 0o444 } };
}

const isOwnedEnv = (name: string): boolean => (CONTRACT_ENV as readonly string[]).includes(name) || (FORBIDDEN_ENV as readonly string[]).includes(name);

/** Secrets holding the environment key or the API key: no sandbox container may read them. */
function protectedSecrets(env: AgentEnvironment): Set<string> {
  const names = new Set<string>();
  if (env.spec.selfHosted?.environmentKeySecretRef) names.add(env.spec.selfHosted.environmentKeySecretRef.name);
  if (env.spec.apiKeySecretRef) names.add(env.spec.apiKeySecretRef.name);
  return names;
}

/** Every place a template would hand a protected Secret to a container. */
function credentialExposure(spec: Partial<PodSpec>, secrets: Set<string>): string[] {
  if (secrets.size === 0) return [];
  const out: string[] = [];
  for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
    for (const e of c.env ?? []) {
      const ref = e.valueFrom?.secretKeyRef?.name;
      if (ref && secrets.has(ref)) out.push(`container ${c.name} env ${e.name} reads Secret ${ref}`);
    }
    for (const f of c.envFrom ?? []) if (f.secretRef && secrets.has(f.secretRef.name)) out.push(`container ${c.name} envFrom reads Secret ${f.secretRef.name}`);
  }
  for (const v of (spec.volumes ?? []) as Volume[]) {
    if (v.secret && secrets.has(v.secret.secretName)) out.push(`volume ${v.name} mounts Secret ${v.secret.secretName}`);
    for (const src of v.projected?.sources ?? []) if (src.secret && secrets.has(src.secret.name)) out.push(`volume ${v.name} projects Secret ${src.secret.name}`);
  }
  return out;
}

function refused(reason: 'InvalidTemplate' | 'TemplateRefused', message: string): PodBuild {
  return { ok: false, reason, message };
}
