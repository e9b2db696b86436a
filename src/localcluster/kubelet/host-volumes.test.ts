import { lstat, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isHostVolume, linkHostVolume } from './host-volumes.ts';
import { removePodFiles, volumeDir } from './pod-files.ts';

describe('host volumes', () => {
  it('are hostPath and persistentVolumeClaim volumes, nothing else', () => {
    expect(isHostVolume({ name: 'a', hostPath: { path: '/x' } })).toBe(true);
    expect(isHostVolume({ name: 'b', persistentVolumeClaim: { claimName: 'c' } })).toBe(true);
    expect(isHostVolume({ name: 'c', emptyDir: {} })).toBe(false);
  });

  it('a Pod\'s volume directory links to the host directory, which outlives the Pod\'s files', async () => {
    const root = await mkdtemp(join(tmpdir(), 'host-volumes-'));
    const pod = join(root, 'pod');
    const host = join(root, 'pv', 'pvc-1');
    await mkdir(join(pod, 'volumes'), { recursive: true });
    await linkHostVolume(volumeDir(pod, 'workspace'), host);
    await linkHostVolume(volumeDir(pod, 'workspace'), host); // a resync: unchanged
    expect((await lstat(volumeDir(pod, 'workspace'))).isSymbolicLink()).toBe(true);
    await writeFile(join(volumeDir(pod, 'workspace'), 'kept.txt'), 'kept');
    await removePodFiles(pod);
    expect(await readFile(join(host, 'kept.txt'), 'utf8')).toBe('kept');
  });

  it('replaces a plain directory left at the volume\'s place by a link', async () => {
    const root = await mkdtemp(join(tmpdir(), 'host-volumes-'));
    const dir = join(root, 'volumes', 'workspace');
    await mkdir(dir, { recursive: true });
    await linkHostVolume(dir, join(root, 'host'));
    expect((await lstat(dir)).isSymbolicLink()).toBe(true);
  });
});
