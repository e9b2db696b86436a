/**
 * Deterministic names and labels of a session's objects. Every name derives from the environment
 * and the work item alone, so a duplicate delivery, a second poller or a restarted operator computes
 * the same names and converges on the same objects ("AlreadyExists is success"); Kubernetes itself
 * is the ledger of what was claimed and launched.
 *
 * | object        | name                                  | bound                               |
 * |---------------|---------------------------------------|-------------------------------------|
 * | AgentSession  | `<env-name>-<hash(sessionId)>`        | ≤ 51 chars, DNS-1123 label          |
 * | Pod           | `<session-name>-<hash(workId)>`       | ≤ 62 chars, DNS-1123 label          |
 * | Secret        | `<pod-name>` (one per work item)      | same as the Pod                     |
 * | warm Pod      | `<env-name>-warm-<hash(env)>-<n>`     | ≤ 40 + 17 + digits, DNS-1123 label  |
 *
 * The environment part is cut to {@link ENV_PREFIX_MAX} characters so the Pod name (which becomes
 * the hostname) and every label value stay ≤ 63. When the cut happens the full environment name
 * joins the session hash, so two long environment names sharing a prefix never share a session name.
 */
import { createHash } from 'node:crypto';
import { LABELS, MANAGED_BY } from '../../crd/meta.ts';

/** Hex characters of each hash suffix (40 bits: collisions need ~10⁶ sessions of one environment). */
export const HASH_LENGTH = 10;
/** Longest environment-name prefix kept in a session name. */
export const ENV_PREFIX_MAX = 40;
/** Label values are at most 63 characters. */
const LABEL_VALUE_MAX = 63;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** `agentenv.io/component` value on every session object. */
export const SESSION_COMPONENT = 'session';
/** Key of the per-item Secret holding the sidecar's bearer credential. */
export const SECRET_TOKEN_KEY = 'token';
/** Key of the per-item Secret holding the raw per-item `secret` (for `ANTHROPIC_WORK_SECRET`); present only when the poll carried one. */
export const SECRET_WORK_SECRET_KEY = 'work-secret';

/** Short, stable hex digest. */
export function shortHash(input: string, length = HASH_LENGTH): string {
  return digest(input).slice(0, length);
}

/**
 * sha256 hex of names' inputs, remembered (up to {@link DIGESTS_KEPT}, then forgotten at once): a
 * session's record, Pod and Secret names are worked out again at every step of its dispatch and on
 * every pass, a share of a burst's CPU. Pure function, so forgetting costs only the recomputation.
 */
function digest(input: string): string {
  let hex = digests.get(input);
  if (hex === undefined) {
    if (digests.size >= DIGESTS_KEPT) digests.clear();
    digests.set(input, (hex = createHash('sha256').update(input).digest('hex')));
  }
  return hex;
}
const DIGESTS_KEPT = 4096;
const digests = new Map<string, string>();

/** The environment name made a DNS-1123 label prefix (lowercase, `.` → `-`), at most {@link ENV_PREFIX_MAX} characters. */
function envPrefix(envName: string): { prefix: string; cut: boolean } {
  const clean = envName.toLowerCase().replace(/[^a-z0-9-]/g, '-');
  const cut = clean.length > ENV_PREFIX_MAX || clean !== envName;
  const prefix = clean.slice(0, ENV_PREFIX_MAX).replace(/^-+|-+$/g, '') || 'env';
  return { prefix, cut };
}

/** Name of the AgentSession of `sessionId` in environment `envName`. */
export function sessionName(envName: string, sessionId: string): string {
  const { prefix, cut } = envPrefix(envName);
  return `${prefix}-${shortHash(cut ? `${envName}/${sessionId}` : sessionId)}`;
}

/** Name of the Pod that runs work item `workId` of the session named `session`. */
export function podName(session: string, workId: string): string {
  return `${session}-${shortHash(workId)}`;
}

/**
 * Name of the Pod that serves a record's current work item: the warm Pod the record is bound to
 * (late binding, `spec.warmPod`: it serves the item under its own name), else the Pod made for the
 * item ({@link podName}).
 */
export function servingPodName(session: string, spec: { readonly workId: string; readonly warmPod?: { readonly name: string } | undefined }): string {
  return spec.warmPod?.name ?? podName(session, spec.workId);
}

/** `agentenv.io/component` value of an environment's warm Pods that are not bound yet. */
export const WARM_POOL_COMPONENT = 'warm-pool';

/**
 * Name of the warm Pod in position `ordinal` of environment `envName`'s pool. The pool takes the
 * lowest ordinal no live Pod of the pool holds (a bound Pod keeps its name), so a retried create
 * converges on the same Pod; a name freed by a deleted Pod may come back, which is why a binding
 * names the Pod's uid as well as its name.
 */
export function warmPodName(envName: string, ordinal: number): string {
  return `${envPrefix(envName).prefix}-warm-${shortHash(envName, 6)}-${ordinal}`;
}

/** Label selector of an environment's warm Pods that are not bound (the scale subresource's selector). */
export function warmPoolSelector(envName: string): string {
  return `${LABELS.component}=${WARM_POOL_COMPONENT},${LABELS.warmPool}=${labelValue(envName)}`;
}

/** Name of the per-item Secret (keys {@link SECRET_TOKEN_KEY}, {@link SECRET_WORK_SECRET_KEY}): the Pod's name. */
export function secretName(session: string, workId: string): string {
  return podName(session, workId);
}

/** `value` when it is a valid label value, else a hash of it (so any id can be selected on). */
export function labelValue(value: string): string {
  return value.length <= LABEL_VALUE_MAX && LABEL_VALUE.test(value) ? value : `h-${shortHash(value, 16)}`;
}

/** Labels common to an environment's session objects (AgentSession, Pod, Secret). */
export function sessionLabels(envName: string, session: string): Record<string, string> {
  return {
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.component]: SESSION_COMPONENT,
    [LABELS.environment]: labelValue(envName),
    [LABELS.session]: session,
  };
}

/** Labels of one work item's objects (Pod, Secret): the session's plus the work id. */
export function workLabels(envName: string, session: string, workId: string): Record<string, string> {
  return { ...sessionLabels(envName, session), [LABELS.workId]: labelValue(workId) };
}

/** Label selector for every session object of one environment. */
export function environmentSelector(envName: string): string {
  return `${LABELS.component}=${SESSION_COMPONENT},${LABELS.environment}=${labelValue(envName)}`;
}
