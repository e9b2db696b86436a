/**
 * The session Pod, built from the environment's `sessionTemplate` plus what the operator injects
 * (pure: no I/O, same inputs → same Pod, so a retried launch converges on the same object).
 *
 * Injected:
 * 1. the lease-keeping sidecar as a native sidecar (first init container, `restartPolicy: Always`)
 *    whose startup probe (`GET /started`) passes only once the lease is claimed, so the main
 *    container starts after the claim; its credential and its state emptyDir are mounted into the
 *    sidecar ONLY (a template container may not mount them). The credential is the per-item
 *    Secret's `token` when the poll carried a per-item secret, else the environment key, mounted
 *    straight from the AgentEnvironment's Secret (one key, as the file `token`: no copy of the key
 *    is written per session, and a rotated key reaches running sidecars);
 * 2. the main container's environment contract (`ANTHROPIC_*`), with `ANTHROPIC_WORK_SECRET`
 *    through a secretKeyRef when the poll carried a per-item secret — never the environment key or
 *    the API key;
 * 3. hardening: `shareProcessNamespace` (the sidecar signals the main container), no service
 *    account token, no service links, `restartPolicy: Never` (one Pod runs one work item once),
 *    and the Restricted Pod Security defaults unless `podSecurity: Custom`.
 */
import type { AgentEnvironment, AgentSession } from '../../crd/resources.ts';
import { hasItemSecret } from '../record/status.ts';
import { podName, secretName, SECRET_TOKEN_KEY, SECRET_WORK_SECRET_KEY, workLabels } from '../record/names.ts';
import { CREDENTIAL_DIR, DEFAULT_PROBE_PORT, DEFAULT_STATE_DIR, SIDECAR_ENV as E, STARTED_PATH } from '../../contract/sidecar.ts';
import { effectiveUid, hardenContainer, hardenPod, restrictedViolations } from './pod-security.ts';
import { ownedBySession } from './work-secret.ts';
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
/** The sidecar's probe port (the sidecar contract's default, `AGENTENV_PROBE_PORT`). */
export const PROBE_PORT = DEFAULT_PROBE_PORT;
export const CREDENTIAL_VOLUME = 'agentenv-credential';
export { CREDENTIAL_DIR };
export const STATE_VOLUME = 'agentenv-state';
export const STATE_DIR = DEFAULT_STATE_DIR;
/** UID given to a Restricted session Pod whose template names none (the distroless "nonroot" user). */
export const DEFAULT_SESSION_UID = 65532;
/** Seconds the Pod's termination grace adds to `stopGracePeriodSeconds`: the sidecar's own stop call after the main container ended. */
export const TERMINATION_MARGIN_SECONDS = 15;

/** Environment variables the operator owns in the main container (a template's values are replaced). */
export const CONTRACT_ENV = ['ANTHROPIC_ENVIRONMENT_ID', 'ANTHROPIC_SESSION_ID', 'ANTHROPIC_WORK_ID', 'ANTHROPIC_BASE_URL', 'ANTHROPIC_WORK_SECRET'] as const;
/** Names that must never appear in a sandbox container's environment. */
export const FORBIDDEN_ENV = ['ANTHROPIC_ENVIRONMENT_KEY', 'ANTHROPIC_API_KEY'] as const;

export interface SidecarSettings {
  readonly image: string;
  readonly imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
}

export interface PodInputs {
  readonly session: AgentSession;
  /** The session's environment, with its spec parsed (defaults applied). */
  readonly env: AgentEnvironment;
  readonly sidecar: SidecarSettings;
  /** API base URL given to the sidecar and the main container. */
  readonly baseUrl: string;
}

export type PodBuild =
  | { readonly ok: true; readonly pod: Pod }
  /** `reason` is CamelCase for the AgentSession status; the message names fields, never values. */
  | { readonly ok: false; readonly reason: 'InvalidTemplate' | 'TemplateRefused'; readonly message: string };

/** Build the Pod that runs the session's current work item (`spec.workId`). */
export function desiredPod(inputs: PodInputs): PodBuild {
  const { session, env } = inputs;
  const selfHosted = env.spec.selfHosted;
  if (!selfHosted?.sessionTemplate) return refused('InvalidTemplate', 'the environment has no spec.selfHosted.sessionTemplate');
  const template = selfHosted.sessionTemplate as PodTemplate;
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
  const mainWithEnv: Container = { ...main, env: [...(main.env ?? []).filter((e) => !isOwnedEnv(e.name)), ...contractEnv(inputs, name)] };
  let spec: PodSpec = {
    ...tspec,
    containers: containers.map((c, i) => (i === mainIndex ? mainWithEnv : c)),
    restartPolicy: 'Never',
    shareProcessNamespace: true,
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    terminationGracePeriodSeconds: Math.max(tspec.terminationGracePeriodSeconds ?? 30, selfHosted.stopGracePeriodSeconds + TERMINATION_MARGIN_SECONDS),
  };
  const mainUser = effectiveUid(tspec, main);
  if (restricted) spec = hardenPod(spec, mainUser.uid, DEFAULT_SESSION_UID);
  // After hardening: a Restricted Pod whose template named no user now runs as the default UID.
  const sidecarUser = effectiveUid(spec, spec.containers[mainIndex]!);
  spec.initContainers = [sidecarContainer(inputs, sidecarUser), ...(spec.initContainers ?? [])];
  spec.volumes = [
    ...(spec.volumes ?? []),
    credential,
    { name: STATE_VOLUME, emptyDir: { sizeLimit: '1Mi' } },
  ];

  const labels = workLabels(session.spec.environmentRef.name, sessionObj, workId);
  return {
    ok: true,
    pod: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: session.metadata?.namespace ?? '',
        labels: { ...(template.metadata?.labels ?? {}), ...labels },
        ...(template.metadata?.annotations ? { annotations: { ...template.metadata.annotations } } : {}),
        ownerReferences: [ownedBySession(session)],
      },
      spec,
    },
  };
}

/** The sidecar, per the sidecar contract: config from the environment, credential file, state dir, probe. */
function sidecarContainer(inputs: PodInputs, user: { uid?: number; gid?: number }): Container {
  const { session, env, sidecar } = inputs;
  const sh = env.spec.selfHosted!;
  const envVars: EnvVar[] = [
    { name: E.baseUrl, value: inputs.baseUrl },
    { name: E.environmentId, value: session.spec.environmentId },
    { name: E.sessionId, value: session.spec.sessionId },
    { name: E.workId, value: session.spec.workId },
    { name: E.credentialFile, value: `${CREDENTIAL_DIR}/${SECRET_TOKEN_KEY}` },
    { name: E.stateDir, value: STATE_DIR },
    { name: E.stopGraceSeconds, value: String(sh.stopGracePeriodSeconds) },
    ...(sh.leaseTTLSeconds !== undefined ? [{ name: E.leaseTtlSeconds, value: String(sh.leaseTTLSeconds) }] : []),
    // Each Pod listens on its own IP, so probes of many Pods on one node never collide.
    { name: E.probeAddress, valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    { name: E.probePort, value: String(PROBE_PORT) },
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
    // The main container starts only once this passes, i.e. once the lease is claimed. The
    // reconciler enforces startDeadlineSeconds itself; the probe only needs to outlast it.
    startupProbe: {
      httpGet: { path: STARTED_PATH, port: PROBE_PORT },
      periodSeconds: 1,
      timeoutSeconds: 1,
      failureThreshold: sh.startDeadlineSeconds + TERMINATION_MARGIN_SECONDS,
    },
    volumeMounts: [
      { name: CREDENTIAL_VOLUME, mountPath: CREDENTIAL_DIR, readOnly: true },
      { name: STATE_VOLUME, mountPath: STATE_DIR },
    ],
    resources: { requests: { cpu: '10m', memory: '48Mi' }, limits: { memory: '128Mi' } },
    securityContext: {
      ...(user.uid !== undefined ? { runAsUser: user.uid } : {}),
      ...(user.gid !== undefined ? { runAsGroup: user.gid } : {}),
      // A main container running as root (Custom templates only) needs a root sidecar to signal it.
      runAsNonRoot: user.uid !== 0,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
  });
}

/** The main container's contract variables. The work secret comes from the per-item Secret, never inline. */
function contractEnv(inputs: PodInputs, secret: string): EnvVar[] {
  const s = inputs.session.spec;
  return [
    { name: 'ANTHROPIC_ENVIRONMENT_ID', value: s.environmentId },
    { name: 'ANTHROPIC_SESSION_ID', value: s.sessionId },
    { name: 'ANTHROPIC_WORK_ID', value: s.workId },
    { name: 'ANTHROPIC_BASE_URL', value: inputs.baseUrl },
    ...(hasItemSecret(inputs.session) ? [{ name: 'ANTHROPIC_WORK_SECRET', valueFrom: { secretKeyRef: { name: secret, key: SECRET_WORK_SECRET_KEY } } }] : []),
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
