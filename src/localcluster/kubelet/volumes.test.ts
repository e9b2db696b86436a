import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { PodObjects } from './env.ts';
import { pod } from './fixtures.test-support.ts';
import { VolumeError, volumeFiles, writeVolume, type VolumeFile } from './volumes.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const objects: PodObjects = {
  secrets: new Map([['creds', { data: { token: b64('s3cret'), ca: b64('CA') } }]]),
  configMaps: new Map([['settings', { data: { mode: 'fast' }, binaryData: { blob: b64('\u0001') } }]]),
};
const show = (files: VolumeFile[] | undefined) => files?.map((f) => [f.path, f.content.toString(), f.mode.toString(8)]);

describe('volume files', () => {
  it('an emptyDir is a plain directory', () => {
    expect(volumeFiles(pod(), { name: 'v', emptyDir: {} }, objects)).toBeUndefined();
  });

  it('a secret volume holds every key, decoded, with mode 0644 by default', () => {
    expect(show(volumeFiles(pod(), { name: 'v', secret: { secretName: 'creds' } }, objects))).toEqual([
      ['ca', 'CA', '644'],
      ['token', 's3cret', '644'],
    ]);
  });

  it('items select keys and paths; an item mode beats defaultMode', () => {
    const files = volumeFiles(pod(), { name: 'v', secret: { secretName: 'creds', defaultMode: 0o400, items: [{ key: 'token', path: 'dir/t' }, { key: 'ca', path: 'ca.crt', mode: 0o444 }] } }, objects);
    expect(show(files)).toEqual([
      ['dir/t', 's3cret', '400'],
      ['ca.crt', 'CA', '444'],
    ]);
  });

  it('a configMap volume includes binaryData', () => {
    expect(show(volumeFiles(pod(), { name: 'v', configMap: { name: 'settings' } }, objects))).toEqual([
      ['blob', '\u0001', '644'],
      ['mode', 'fast', '644'],
    ]);
  });

  it('a missing source blocks the Pod unless optional', () => {
    expect(() => volumeFiles(pod(), { name: 'v', secret: { secretName: 'nope' } }, objects)).toThrow(VolumeError);
    expect(volumeFiles(pod(), { name: 'v', secret: { secretName: 'nope', optional: true } }, objects)).toEqual([]);
    expect(() => volumeFiles(pod(), { name: 'v', configMap: { name: 'settings', items: [{ key: 'nope', path: 'x' }] } }, objects)).toThrow(/key nope/);
  });

  it('downwardAPI items render field values with their modes', () => {
    const files = volumeFiles(pod(), { name: 'v', downwardAPI: { defaultMode: 0o440, items: [{ path: 'name', fieldRef: { fieldPath: 'metadata.name' } }, { path: 'labels', fieldRef: { fieldPath: 'metadata.labels' }, mode: 0o400 }] } }, objects);
    expect(show(files)).toEqual([
      ['name', 'p', '440'],
      ['labels', 'app="demo"', '400'],
    ]);
  });

  it('projected volumes combine sources, including a service-account token', () => {
    const files = volumeFiles(
      pod(),
      { name: 'v', projected: { defaultMode: 0o420, sources: [{ serviceAccountToken: { path: 'token' } }, { configMap: { name: 'settings', items: [{ key: 'mode', path: 'mode' }] } }, { downwardAPI: { items: [{ path: 'namespace', fieldRef: { fieldPath: 'metadata.namespace' } }] } }] } },
      objects,
      new Map([['token', 'jwt']]),
    );
    expect(show(files)).toEqual([
      ['token', 'jwt', '420'],
      ['mode', 'fast', '420'],
      ['namespace', 'ns', '420'],
    ]);
  });

  it('item paths may not leave the volume', () => {
    expect(() => volumeFiles(pod(), { name: 'v', secret: { secretName: 'creds', items: [{ key: 'token', path: '../escape' }] } }, objects)).toThrow(VolumeError);
  });
});

describe('writing a volume', () => {
  let dir = '';
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('writes files with their exact modes and removes files no longer projected', async () => {
    dir = await mkdtemp(join(tmpdir(), 'kubelet-volume-'));
    await writeFile(join(dir, 'stale'), 'old');
    await writeVolume(dir, [
      { path: 'token', content: Buffer.from('s3cret'), mode: 0o400 },
      { path: 'sub/ca', content: Buffer.from('CA'), mode: 0o644 },
    ]);
    expect(await readFile(join(dir, 'token'), 'utf8')).toBe('s3cret');
    expect((await stat(join(dir, 'token'))).mode & 0o777).toBe(0o400);
    expect(await readFile(join(dir, 'sub/ca'), 'utf8')).toBe('CA');
    await expect(stat(join(dir, 'stale'))).rejects.toThrow();
    await writeVolume(dir, [{ path: 'token', content: Buffer.from('rotated'), mode: 0o440 }]);
    expect(await readFile(join(dir, 'token'), 'utf8')).toBe('rotated');
    expect((await stat(join(dir, 'token'))).mode & 0o777).toBe(0o440);
    await expect(stat(join(dir, 'sub/ca'))).rejects.toThrow();
  });
});
