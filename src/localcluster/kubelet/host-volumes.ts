/**
 * Volumes that are directories of this machine: `hostPath`, and `persistentVolumeClaim` whose
 * bound PersistentVolume is a `hostPath` or `local` volume — what the local cluster's provisioner
 * (src/localcluster/provisioner.ts) makes. The Pod's volume directory becomes a symlink to the host
 * directory, so the container's bind mount (process.ts) mounts the host directory itself, and what a
 * Pod writes there outlives the Pod.
 *
 * Like the kubelet, a claim that does not exist or is not `Bound` yet keeps the Pod's containers in
 * `ContainerCreating` (a VolumeError, retried). Not modelled: attach/detach, ReadWriteOnce enforcement
 * across nodes, fsGroup ownership changes, subPathExpr, `readOnly` claims other than through the mount.
 */
import { lstat, mkdir, readlink, rm, symlink } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { isNotFound } from '../../k8s/errors.ts';
import { CORE, type KubeObject, type KubeRest } from '../../k8s/rest.ts';
import type { Pod, Volume } from './pod-types.ts';
import { VolumeError } from './volumes.ts';

interface Claim extends KubeObject {
  spec?: { volumeName?: string };
  status?: { phase?: string };
}

interface PersistentVolume extends KubeObject {
  spec?: { hostPath?: { path?: string }; local?: { path?: string } };
}

/** Whether the volume is a host directory (handled here, not by volumes.ts). */
export const isHostVolume = (v: Volume): boolean => Boolean(v.hostPath || v.persistentVolumeClaim);

/** Volume name → host directory, for every host volume of the Pod; throws VolumeError while a claim is missing or unbound. */
export async function resolveHostPaths(rest: KubeRest, pod: Pod): Promise<Map<string, string>> {
  const paths = new Map<string, string>();
  for (const v of pod.spec.volumes ?? []) {
    if (v.hostPath) paths.set(v.name, checked(v.name, v.hostPath.path));
    if (v.persistentVolumeClaim) paths.set(v.name, await claimPath(rest, pod.metadata?.namespace ?? '', v.persistentVolumeClaim.claimName));
  }
  return paths;
}

async function claimPath(rest: KubeRest, namespace: string, claimName: string): Promise<string> {
  const claim = await getOrUndefined<Claim>(rest, CORE.persistentvolumeclaims, namespace, claimName);
  if (!claim) throw new VolumeError(`persistentvolumeclaim "${claimName}" not found`);
  if (claim.metadata?.deletionTimestamp) throw new VolumeError(`persistentvolumeclaim "${claimName}" is being deleted`);
  if (claim.status?.phase !== 'Bound' || !claim.spec?.volumeName) throw new VolumeError(`persistentvolumeclaim "${claimName}" is not bound`);
  const pv = await getOrUndefined<PersistentVolume>(rest, CORE.persistentvolumes, undefined, claim.spec.volumeName);
  const path = pv?.spec?.hostPath?.path ?? pv?.spec?.local?.path;
  if (!path) throw new VolumeError(`persistentvolume "${claim.spec.volumeName}" of claim "${claimName}" is not a hostPath or local volume (the process kubelet mounts only those)`);
  return checked(claimName, path);
}

function checked(name: string, path: string): string {
  if (!isAbsolute(path)) throw new VolumeError(`volume ${name}: host path ${JSON.stringify(path)} is not absolute`);
  return path;
}

async function getOrUndefined<T extends KubeObject>(rest: KubeRest, t: typeof CORE.persistentvolumes, namespace: string | undefined, name: string): Promise<T | undefined> {
  try {
    return await rest.get<T>(t, namespace, name);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Make `dir` (the Pod's volume directory) a symlink to `target`, creating the target directory as `DirectoryOrCreate` does. */
export async function linkHostVolume(dir: string, target: string): Promise<void> {
  await mkdir(target, { recursive: true });
  const current = await lstat(dir).catch(() => undefined);
  if (current?.isSymbolicLink() && (await readlink(dir)) === target) return;
  // Only a link is ever replaced here: removing `dir` never follows it into the host directory.
  if (current) await rm(dir, { recursive: true, force: true });
  await symlink(target, dir, 'dir');
}
