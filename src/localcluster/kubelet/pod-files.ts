/**
 * A Pod's directory under the kubelet's root dir and what lives in it:
 *
 *   <root-dir>/pods/<namespace>_<name>_<uid>/
 *     record.json             the kubelet's record of the Pod (container states, runs) — survives a restart
 *     volumes/<volume>/       emptyDir / secret / configMap / downwardAPI / projected contents;
 *                             a link to the host directory of a hostPath or persistentVolumeClaim volume
 *     containers/<container>/ run files: env (0600), pid.<n>, exit.<n>
 *     logs/<container>.log    stdout+stderr of every run, appended
 *
 * Also: fetching the Secrets/ConfigMaps a Pod refers to, and service-account tokens for projected volumes.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isNotFound } from '../../k8s/errors.ts';
import { CORE, resource, type KubeObject, type KubeRest } from '../../k8s/rest.ts';
import { referencedObjects, type PodObjects } from './env.ts';
import type { PodRecord } from './plan.ts';
import type { Container, KeyedData, Pod } from './pod-types.ts';
import type { Mount, RunRecord } from './process.ts';
import { volumeFiles, writeVolume, type ProjectedTokens } from './volumes.ts';
import { isHostVolume, linkHostVolume } from './host-volumes.ts';

export const podsDir = (rootDir: string): string => join(rootDir, 'pods');

export function podDir(rootDir: string, pod: Pod): string {
  const m = pod.metadata ?? {};
  return join(podsDir(rootDir), `${m.namespace ?? ''}_${m.name ?? ''}_${m.uid ?? ''}`);
}

export const logFile = (dir: string, container: string): string => join(dir, 'logs', `${container}.log`);
export const runDir = (dir: string, container: string): string => join(dir, 'containers', container);
export const volumeDir = (dir: string, volume: string): string => join(dir, 'volumes', volume);

/** What `record.json` holds. */
export interface PersistedPod {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly record: PodRecord;
  /** The current run of each container that has one. */
  readonly runs: Record<string, RunRecord>;
}

export async function savePod(dir: string, state: PersistedPod): Promise<void> {
  const tmp = join(dir, 'record.json.tmp');
  await writeFile(tmp, JSON.stringify(state), { mode: 0o600 });
  await rename(tmp, join(dir, 'record.json'));
}

/** Every Pod directory with its record (directories without a readable record are returned with `state: undefined`). */
export async function loadPods(rootDir: string): Promise<Array<{ dir: string; state: PersistedPod | undefined }>> {
  const entries = await readdir(podsDir(rootDir)).catch(() => [] as string[]);
  const out: Array<{ dir: string; state: PersistedPod | undefined }> = [];
  for (const entry of entries) {
    const dir = join(podsDir(rootDir), entry);
    const text = await readFile(join(dir, 'record.json'), 'utf8').catch(() => undefined);
    let state: PersistedPod | undefined;
    try {
      state = text ? (JSON.parse(text) as PersistedPod) : undefined;
    } catch {
      state = undefined;
    }
    out.push({ dir, state });
  }
  return out;
}

/** Removes what must not outlive the Pod (volumes with Secret contents, env files) and keeps the logs for inspection. */
export async function removePodFiles(dir: string): Promise<void> {
  // Host volumes are links: unlink them first, so nothing below can reach into the host directory.
  for (const entry of await readdir(join(dir, 'volumes'), { withFileTypes: true }).catch(() => [])) {
    if (entry.isSymbolicLink()) await rm(join(dir, 'volumes', entry.name), { force: true });
  }
  await rm(join(dir, 'volumes'), { recursive: true, force: true });
  await rm(join(dir, 'containers'), { recursive: true, force: true });
  await rm(join(dir, 'record.json'), { force: true });
}

export async function createPodDirs(dir: string, containers: readonly string[]): Promise<void> {
  await mkdir(join(dir, 'logs'), { recursive: true });
  await mkdir(join(dir, 'volumes'), { recursive: true });
  for (const c of containers) await mkdir(runDir(dir, c), { recursive: true, mode: 0o700 });
}

/** The Secrets and ConfigMaps the Pod refers to, as they are now (absent = not found). */
export async function fetchPodObjects(rest: KubeRest, pod: Pod): Promise<PodObjects> {
  const namespace = pod.metadata?.namespace;
  const wanted = referencedObjects(pod);
  const get = async (t: typeof CORE.secrets, name: string): Promise<[string, KeyedData] | undefined> => {
    try {
      return [name, await rest.get<KubeObject & KeyedData>(t, namespace, name)];
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  };
  const secrets = (await Promise.all([...wanted.secrets].map((n) => get(CORE.secrets, n)))).filter((e) => e !== undefined);
  const configMaps = (await Promise.all([...wanted.configMaps].map((n) => get(CORE.configMaps, n)))).filter((e) => e !== undefined);
  return { secrets: new Map(secrets), configMaps: new Map(configMaps) };
}

/** A TokenRequest bound to the Pod for each projected `serviceAccountToken` source not in `known`. */
export async function requestTokens(rest: KubeRest, pod: Pod, known: Map<string, string>): Promise<ProjectedTokens> {
  const sa = pod.spec.serviceAccountName ?? 'default';
  for (const v of pod.spec.volumes ?? []) {
    for (const s of v.projected?.sources ?? []) {
      const src = s.serviceAccountToken;
      if (!src || known.has(src.path)) continue;
      const tokenRequests = resource('', 'v1', `serviceaccounts/${encodeURIComponent(sa)}/token`, 'TokenRequest');
      const reply = await rest.create<KubeObject & { status?: { token?: string } }>(tokenRequests, pod.metadata?.namespace, {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: {
          audiences: src.audience ? [src.audience] : [],
          expirationSeconds: src.expirationSeconds ?? 3607,
          boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata?.name, uid: pod.metadata?.uid },
        },
      } as KubeObject);
      if (reply.status?.token) known.set(src.path, reply.status.token);
    }
  }
  return known;
}

/**
 * Writes every volume of the Pod into its directory (throws VolumeError while a source is missing);
 * host volumes (`hostPath`, a bound `persistentVolumeClaim`) become links to their host directory.
 */
export async function writeVolumes(dir: string, pod: Pod, objects: PodObjects, tokens: ProjectedTokens, hostPaths: ReadonlyMap<string, string> = new Map()): Promise<void> {
  await mkdir(join(dir, 'volumes'), { recursive: true });
  for (const v of pod.spec.volumes ?? []) {
    const host = hostPaths.get(v.name);
    if (host !== undefined) await linkHostVolume(volumeDir(dir, v.name), host);
    else if (!isHostVolume(v)) await writeVolume(volumeDir(dir, v.name), volumeFiles(pod, v, objects, tokens));
  }
}

/** The bind mounts of a container (its volumeMounts onto the Pod's volume directories), or why there can be none. */
export async function containerMounts(dir: string, pod: Pod, container: Container): Promise<Mount[] | string> {
  const mounts: Mount[] = [];
  for (const m of container.volumeMounts ?? []) {
    if (!(pod.spec.volumes ?? []).some((v) => v.name === m.name)) return `volume ${m.name} not found`;
    const source = volumeDir(dir, m.name) + (m.subPath ? `/${m.subPath}` : '');
    // As the kubelet does, a subPath missing from the volume is created as a directory.
    if (m.subPath && !existsSync(source)) await mkdir(source, { recursive: true });
    mounts.push({ source, target: m.mountPath, readOnly: m.readOnly ?? false });
  }
  return mounts;
}
