/**
 * Pod volumes as per-Pod directories: which files a `secret`, `configMap`, `downwardAPI` or
 * `projected` volume holds (pure: {@link volumeFiles}) and writing them (`writeVolume`).
 *
 * File modes follow the API: an item's `mode` wins over the volume's `defaultMode`, which defaults
 * to 0644. A missing Secret/ConfigMap or item key blocks the Pod (the kubelet's FailedMount) unless
 * the source is `optional`.
 */
import { chmod, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, normalize, relative } from 'node:path';
import { ContainerConfigError, fieldValue, keyedValue, type PodObjects } from './env.ts';
import type { KeyedData, KeyToPath, Pod, Volume, VolumeProjection } from './pod-types.ts';

/** The API's default for `defaultMode`. */
export const DEFAULT_FILE_MODE = 0o644;

export interface VolumeFile {
  /** Relative to the volume's root. */
  readonly path: string;
  readonly content: Buffer;
  readonly mode: number;
}

/** A volume cannot be populated yet (kubelet event FailedMount). */
export class VolumeError extends ContainerConfigError {}

/** Service-account tokens for `projected.serviceAccountToken` sources, by the source's `path`. */
export type ProjectedTokens = ReadonlyMap<string, string>;

/** `undefined` for a plain directory volume (emptyDir), else the files of the volume. */
export function volumeFiles(pod: Pod, volume: Volume, objects: PodObjects, tokens: ProjectedTokens = new Map()): VolumeFile[] | undefined {
  if (volume.emptyDir) return undefined;
  if (volume.secret) {
    const s = volume.secret;
    return keyedFiles(objects.secrets.get(s.secretName), 'secret', s.secretName, s.items, s.defaultMode ?? DEFAULT_FILE_MODE, s.optional);
  }
  if (volume.configMap) {
    const c = volume.configMap;
    return keyedFiles(objects.configMaps.get(c.name), 'configmap', c.name, c.items, c.defaultMode ?? DEFAULT_FILE_MODE, c.optional);
  }
  if (volume.downwardAPI) return downwardFiles(pod, volume.downwardAPI.items ?? [], volume.downwardAPI.defaultMode ?? DEFAULT_FILE_MODE);
  if (volume.projected) {
    const mode = volume.projected.defaultMode ?? DEFAULT_FILE_MODE;
    return (volume.projected.sources ?? []).flatMap((source) => projectedFiles(pod, source, objects, tokens, mode));
  }
  throw new VolumeError(`volume ${volume.name}: only emptyDir, secret, configMap, downwardAPI and projected volumes are supported by the process kubelet`);
}

function projectedFiles(pod: Pod, source: VolumeProjection, objects: PodObjects, tokens: ProjectedTokens, mode: number): VolumeFile[] {
  if (source.secret) return keyedFiles(objects.secrets.get(source.secret.name), 'secret', source.secret.name, source.secret.items, mode, source.secret.optional);
  if (source.configMap) return keyedFiles(objects.configMaps.get(source.configMap.name), 'configmap', source.configMap.name, source.configMap.items, mode, source.configMap.optional);
  if (source.downwardAPI) return downwardFiles(pod, source.downwardAPI.items ?? [], mode);
  if (source.serviceAccountToken) {
    const token = tokens.get(source.serviceAccountToken.path);
    if (token === undefined) throw new VolumeError(`no service account token for ${source.serviceAccountToken.path}`);
    // The kubelet writes tokens 0600 unless a mode was asked for (here: the projected defaultMode).
    return [{ path: checkedPath(source.serviceAccountToken.path), content: Buffer.from(token), mode }];
  }
  return [];
}

function keyedFiles(obj: KeyedData | undefined, kind: 'secret' | 'configmap', name: string, items: KeyToPath[] | undefined, mode: number, optional: boolean | undefined): VolumeFile[] {
  if (!obj) {
    if (optional) return [];
    throw new VolumeError(`${kind} "${name}" not found`);
  }
  const encoding = kind === 'secret' ? 'base64' : 'plain';
  const selected = items ?? [...Object.keys(obj.data ?? {}), ...Object.keys(obj.binaryData ?? {})].sort().map((key) => ({ key, path: key }) as KeyToPath);
  const files: VolumeFile[] = [];
  for (const item of selected) {
    const content = keyedValue(obj, item.key, encoding);
    if (content === undefined) {
      if (optional) continue;
      throw new VolumeError(`configmap/secret "${name}": key ${item.key} not found`);
    }
    files.push({ path: checkedPath(item.path), content, mode: item.mode ?? mode });
  }
  return files;
}

function downwardFiles(pod: Pod, items: NonNullable<NonNullable<Volume['downwardAPI']>['items']>, mode: number): VolumeFile[] {
  return items.map((item) => {
    if (!item.fieldRef) throw new VolumeError(`downwardAPI ${item.path}: only fieldRef items are supported by the process kubelet`);
    return { path: checkedPath(item.path), content: Buffer.from(fieldValue(pod, item.fieldRef.fieldPath)), mode: item.mode ?? mode };
  });
}

/** Item paths are relative and may not climb out of the volume (the API validates the same). */
function checkedPath(p: string): string {
  const n = normalize(p);
  if (n.startsWith('/') || n === '..' || n.startsWith('../')) throw new VolumeError(`invalid volume item path ${JSON.stringify(p)}`);
  return n;
}

/**
 * Makes directory `dir` hold exactly `files` (emptyDir: just creates it). Rewrites a file only when
 * its content or mode changed, so programs reading the volume see stable files.
 */
export async function writeVolume(dir: string, files: readonly VolumeFile[] | undefined): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  if (!files) return;
  const wanted = new Set<string>();
  for (const f of files) {
    const target = join(dir, f.path);
    wanted.add(f.path);
    await mkdir(dirname(target), { recursive: true, mode: 0o755 });
    const current = await readFile(target).catch(() => undefined);
    if (!current || !current.equals(f.content)) await writeFile(target, f.content, { mode: f.mode });
    // writeFile's mode is filtered by the umask and ignored for an existing file.
    if (((await stat(target)).mode & 0o7777) !== f.mode) await chmod(target, f.mode);
  }
  for (const existing of await listFiles(dir)) {
    if (!wanted.has(existing)) await rm(join(dir, existing), { force: true });
  }
}

async function listFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(root, join(e.parentPath, e.name)));
}
