/**
 * The Restricted Pod Security Standard applied to a user's session template (pure).
 *
 * Under `podSecurity: Restricted` (the default) the operator *fills in* what the template leaves
 * unset (runAsNonRoot, allowPrivilegeEscalation false, capabilities drop ALL, seccomp
 * RuntimeDefault) and *refuses* what it sets against the standard (privileged, host namespaces,
 * hostPath…): silently overriding an explicit choice would hide a misconfiguration, and a Pod the
 * namespace's admission would reject anyway is better refused with a reason on the AgentSession.
 * Under `Custom` the template's security settings are left as written.
 *
 * Reference: https://kubernetes.io/docs/concepts/security/pod-security-standards/ (Restricted).
 */
import { SIDECAR_FALLBACK_UID, SIDECAR_UID } from '../../contract/sidecar.ts';
import type { Container, PodSpec, SecurityContext } from './pod-types.ts';

/** Volume sources the Restricted standard allows. */
const RESTRICTED_VOLUME_SOURCES = new Set(['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret']);
/** The one capability a Restricted container may add. */
const ALLOWED_ADDED_CAPABILITY = 'NET_BIND_SERVICE';
const ALLOWED_SECCOMP = new Set(['RuntimeDefault', 'Localhost']);

/** Why a template breaks the Restricted standard: one line per violation, naming the field. */
export function restrictedViolations(spec: Partial<PodSpec>): string[] {
  const out: string[] = [];
  for (const field of ['hostNetwork', 'hostPID', 'hostIPC'] as const) if (spec[field] === true) out.push(`spec.${field} is true`);
  if (spec.hostUsers === true) out.push('spec.hostUsers is true');
  const podSc = spec.securityContext ?? {};
  if (podSc.runAsNonRoot === false) out.push('spec.securityContext.runAsNonRoot is false');
  if (podSc.runAsUser === 0) out.push('spec.securityContext.runAsUser is 0 (root)');
  if (podSc.seccompProfile && !ALLOWED_SECCOMP.has(podSc.seccompProfile.type)) out.push(`spec.securityContext.seccompProfile.type is ${podSc.seccompProfile.type}`);
  for (const v of spec.volumes ?? []) {
    const source = Object.keys(v).find((k) => k !== 'name');
    if (source && !RESTRICTED_VOLUME_SOURCES.has(source)) out.push(`volume ${v.name} uses ${source}`);
  }
  const containers = [...(spec.initContainers ?? []).map((c) => ['initContainers', c] as const), ...(spec.containers ?? []).map((c) => ['containers', c] as const)];
  for (const [list, c] of containers) {
    const where = `spec.${list}[${c.name}]`;
    const sc = c.securityContext ?? {};
    if (sc.privileged === true) out.push(`${where}.securityContext.privileged is true`);
    if (sc.allowPrivilegeEscalation === true) out.push(`${where}.securityContext.allowPrivilegeEscalation is true`);
    if (sc.runAsNonRoot === false) out.push(`${where}.securityContext.runAsNonRoot is false`);
    if (sc.runAsUser === 0) out.push(`${where}.securityContext.runAsUser is 0 (root)`);
    if (sc.procMount !== undefined && sc.procMount !== 'Default') out.push(`${where}.securityContext.procMount is ${sc.procMount}`);
    if (sc.seccompProfile && !ALLOWED_SECCOMP.has(sc.seccompProfile.type)) out.push(`${where}.securityContext.seccompProfile.type is ${sc.seccompProfile.type}`);
    const added = (sc.capabilities?.add ?? []).filter((cap) => cap !== ALLOWED_ADDED_CAPABILITY);
    if (added.length) out.push(`${where}.securityContext.capabilities.add has ${added.join(', ')}`);
    for (const p of c.ports ?? []) if (p.hostPort) out.push(`${where} uses hostPort ${p.hostPort}`);
  }
  return out;
}

/**
 * The Restricted defaults filled into one container's securityContext: no privilege escalation,
 * every capability dropped (an explicit NET_BIND_SERVICE add stays), non-root.
 */
export function hardenContainer(c: Container): Container {
  const sc: SecurityContext = { ...(c.securityContext ?? {}) };
  sc.allowPrivilegeEscalation = false;
  sc.runAsNonRoot ??= true;
  const drop = sc.capabilities?.drop ?? [];
  sc.capabilities = { ...(sc.capabilities ?? {}), drop: drop.includes('ALL') ? drop : [...drop, 'ALL'] };
  return { ...c, securityContext: sc };
}

/**
 * The Pod-level Restricted defaults: non-root and the runtime's default seccomp profile. When the
 * template names no user for its main container, the numeric `defaultUid` is set: `runAsNonRoot`
 * can be verified by the kubelet only for a numeric user, and an image whose USER is a name (or
 * root) would otherwise fail to start with a config error instead of running.
 */
export function hardenPod(spec: PodSpec, mainUid: number | undefined, defaultUid: number): PodSpec {
  const sc = { ...(spec.securityContext ?? {}) };
  sc.runAsNonRoot ??= true;
  sc.seccompProfile ??= { type: 'RuntimeDefault' };
  if (mainUid === undefined) {
    sc.runAsUser = defaultUid;
    sc.runAsGroup ??= defaultUid;
  }
  return {
    ...spec,
    securityContext: sc,
    containers: spec.containers.map(hardenContainer),
    ...(spec.initContainers ? { initContainers: spec.initContainers.map(hardenContainer) } : {}),
  };
}

/** The user a container runs as when the Pod spec says so (container level first), else undefined (the image's user). */
export function effectiveUid(spec: Partial<PodSpec>, c: Container): { uid?: number; gid?: number } {
  const uid = c.securityContext?.runAsUser ?? spec.securityContext?.runAsUser;
  const gid = c.securityContext?.runAsGroup ?? spec.securityContext?.runAsGroup;
  return { ...(uid !== undefined ? { uid } : {}), ...(gid !== undefined ? { gid } : {}) };
}

/**
 * The sidecar's own UID: {@link SIDECAR_UID}, or {@link SIDECAR_FALLBACK_UID} when a template
 * container runs as that (as far as the spec says; an image's own USER is not known here).
 * Undefined when the template uses both: the sidecar never shares a UID with a sandbox container,
 * since a process of the same UID may read its `/proc/<pid>/environ` and memory, and signal it.
 */
export function sidecarUid(spec: Partial<PodSpec>): number | undefined {
  const used = new Set([...(spec.initContainers ?? []), ...(spec.containers ?? [])].map((c) => effectiveUid(spec, c).uid));
  return [SIDECAR_UID, SIDECAR_FALLBACK_UID].find((uid) => !used.has(uid));
}
