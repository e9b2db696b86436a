/**
 * A container's environment, resolved the way the kubelet does it (pure: Secrets and ConfigMaps are
 * looked up beforehand and passed in).
 *
 * Order and precedence (kubelet `makeEnvironmentVariables`): `envFrom` sources first, then `env`
 * entries, later names overriding earlier ones; `$(VAR)` in a value expands to a variable defined
 * before it, `$$(VAR)` is an escaped literal, an unknown `$(VAR)` stays as written. Nothing of the
 * kubelet's own environment is inherited: a container sees only its spec plus PATH, HOSTNAME and HOME.
 */
import type { Container, KeyedData, Pod } from './pod-types.ts';

/** PATH of a typical Linux image, used when the spec sets none. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** A container cannot be configured yet (a referenced Secret/ConfigMap or key is missing): status reason CreateContainerConfigError. */
export class ContainerConfigError extends Error {
  readonly reason = 'CreateContainerConfigError';
  constructor(message: string) {
    super(message);
    this.name = 'ContainerConfigError';
  }
}

/** Secrets (values base64, as in `data`) and ConfigMaps by name, in the Pod's namespace; absent = not found. */
export interface PodObjects {
  readonly secrets: ReadonlyMap<string, KeyedData>;
  readonly configMaps: ReadonlyMap<string, KeyedData>;
}

/** Names of the Secrets and ConfigMaps a Pod refers to (env, envFrom, volumes), to fetch before resolving. */
export function referencedObjects(pod: Pod): { secrets: Set<string>; configMaps: Set<string> } {
  const secrets = new Set<string>();
  const configMaps = new Set<string>();
  for (const c of [...(pod.spec.initContainers ?? []), ...pod.spec.containers]) {
    for (const e of c.env ?? []) {
      if (e.valueFrom?.secretKeyRef) secrets.add(e.valueFrom.secretKeyRef.name);
      if (e.valueFrom?.configMapKeyRef) configMaps.add(e.valueFrom.configMapKeyRef.name);
    }
    for (const f of c.envFrom ?? []) {
      if (f.secretRef) secrets.add(f.secretRef.name);
      if (f.configMapRef) configMaps.add(f.configMapRef.name);
    }
  }
  for (const v of pod.spec.volumes ?? []) {
    if (v.secret) secrets.add(v.secret.secretName);
    if (v.configMap) configMaps.add(v.configMap.name);
    for (const s of v.projected?.sources ?? []) {
      if (s.secret) secrets.add(s.secret.name);
      if (s.configMap) configMaps.add(s.configMap.name);
    }
  }
  return { secrets, configMaps };
}

/** The value of a Secret key (decoded) or ConfigMap key; undefined when absent. */
export function keyedValue(obj: KeyedData, key: string, encoding: 'base64' | 'plain'): Buffer | undefined {
  const text = obj.data?.[key];
  if (text !== undefined) return encoding === 'base64' ? Buffer.from(text, 'base64') : Buffer.from(text, 'utf8');
  const binary = obj.binaryData?.[key];
  return binary !== undefined ? Buffer.from(binary, 'base64') : undefined;
}

/**
 * The value of a downward-API `fieldPath` (env `fieldRef` and `downwardAPI` volume items).
 * Labels and annotations as a whole are rendered `key="value"` per line, sorted, as the kubelet does.
 */
export function fieldValue(pod: Pod, fieldPath: string): string {
  const meta = pod.metadata ?? {};
  const keyed = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (keyed) return (keyed[1] === 'labels' ? meta.labels : meta.annotations)?.[keyed[2]!] ?? '';
  switch (fieldPath) {
    case 'metadata.name':
      return meta.name ?? '';
    case 'metadata.namespace':
      return meta.namespace ?? '';
    case 'metadata.uid':
      return meta.uid ?? '';
    case 'metadata.labels':
      return formatMap(meta.labels);
    case 'metadata.annotations':
      return formatMap(meta.annotations);
    case 'spec.nodeName':
      return pod.spec.nodeName ?? '';
    case 'spec.serviceAccountName':
      return pod.spec.serviceAccountName ?? '';
    case 'status.podIP':
      return pod.status?.podIP ?? '';
    case 'status.podIPs':
      return (pod.status?.podIPs ?? []).map((p) => p.ip).join(',');
    case 'status.hostIP':
      return pod.status?.hostIP ?? '';
    case 'status.hostIPs':
      return (pod.status?.hostIPs ?? []).map((p) => p.ip).join(',');
    default:
      throw new ContainerConfigError(`unsupported fieldPath ${JSON.stringify(fieldPath)}`);
  }
}

const formatMap = (m: Record<string, string> | undefined): string =>
  Object.keys(m ?? {})
    .sort()
    .map((k) => `${k}=${JSON.stringify(m![k])}`)
    .join('\n');

/**
 * Kubernetes `$(VAR)` expansion (k8s.io/kubernetes third_party/forked/golang/expansion): `$(NAME)`
 * becomes the variable's value when `lookup` knows it and stays as written otherwise; `$$` is an
 * escaped `$`; any other `$` is literal.
 */
export function expand(input: string, lookup: (name: string) => string | undefined): string {
  let out = '';
  for (let i = 0; i < input.length; i++) {
    const ch = input[i]!;
    if (ch !== '$' || i + 1 >= input.length) {
      out += ch;
      continue;
    }
    const next = input[i + 1]!;
    if (next === '$') {
      out += '$';
      i++;
    } else if (next === '(') {
      const close = input.indexOf(')', i + 2);
      if (close < 0) {
        out += input.slice(i);
        break;
      }
      const name = input.slice(i + 2, close);
      out += lookup(name) ?? `$(${name})`;
      i = close;
    } else {
      out += ch;
    }
  }
  return out;
}

/** Environment variable names the kubelet accepts from `envFrom` (C identifier-ish, as the API validates). */
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/**
 * The complete environment of one container: its spec's variables plus PATH (default
 * {@link DEFAULT_PATH}), HOSTNAME (the Pod name) and HOME (`/root`) unless the spec sets them.
 * Throws {@link ContainerConfigError} for a missing non-optional Secret/ConfigMap or key.
 */
export function containerEnv(pod: Pod, container: Container, objects: PodObjects): Record<string, string> {
  const env = new Map<string, string>();
  for (const from of container.envFrom ?? []) {
    const prefix = from.prefix ?? '';
    const ref = from.secretRef ?? from.configMapRef;
    if (!ref) continue;
    const isSecret = from.secretRef !== undefined;
    const obj = (isSecret ? objects.secrets : objects.configMaps).get(ref.name);
    if (!obj) {
      if (ref.optional) continue;
      throw new ContainerConfigError(`${isSecret ? 'secret' : 'configmap'} "${ref.name}" not found`);
    }
    for (const key of Object.keys(obj.data ?? {})) {
      if (!ENV_NAME.test(prefix + key)) continue;
      env.set(prefix + key, keyedValue(obj, key, isSecret ? 'base64' : 'plain')!.toString('utf8'));
    }
  }
  for (const e of container.env ?? []) {
    const value = envValue(pod, e, objects, (name) => env.get(name));
    if (value !== undefined) env.set(e.name, value);
  }
  const result: Record<string, string> = { PATH: DEFAULT_PATH, HOSTNAME: pod.metadata?.name ?? '', HOME: '/root' };
  for (const [k, v] of env) result[k] = v;
  return result;
}

function envValue(pod: Pod, e: NonNullable<Container['env']>[number], objects: PodObjects, earlier: (name: string) => string | undefined): string | undefined {
  if (!e.valueFrom) return expand(e.value ?? '', earlier);
  const { secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef } = e.valueFrom;
  if (secretKeyRef || configMapKeyRef) {
    const ref = (secretKeyRef ?? configMapKeyRef)!;
    const kind = secretKeyRef ? 'secret' : 'configmap';
    const obj = (secretKeyRef ? objects.secrets : objects.configMaps).get(ref.name);
    if (!obj) {
      if (ref.optional) return undefined;
      throw new ContainerConfigError(`${kind} "${ref.name}" not found`);
    }
    const value = keyedValue(obj, ref.key, secretKeyRef ? 'base64' : 'plain');
    if (value === undefined) {
      if (ref.optional) return undefined;
      throw new ContainerConfigError(`couldn't find key ${ref.key} in ${kind === 'secret' ? 'Secret' : 'ConfigMap'} ${pod.metadata?.namespace}/${ref.name}`);
    }
    return value.toString('utf8');
  }
  if (fieldRef) return fieldValue(pod, fieldRef.fieldPath);
  if (resourceFieldRef) throw new ContainerConfigError(`resourceFieldRef (${resourceFieldRef.resource}) is not supported by the process kubelet`);
  return '';
}

/** The container's argv with `$(VAR)` expanded against its environment (command and args, as the kubelet does). */
export const expandArgs = (args: readonly string[], env: Record<string, string>): string[] => args.map((a) => expand(a, (n) => env[n]));
