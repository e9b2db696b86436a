/**
 * A one-binary OCI image archive (the node's pause image) written without a builder: the binary in an
 * uncompressed tar layer, an image config whose entrypoint is that binary, a manifest and an index
 * naming the image, in the OCI image layout that `ctr images import` reads.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

interface Blob {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}

/** Writes `outTar`: an OCI archive of image `name` running `/<entry>` (copied from `binary`) as UID 65535. */
export async function writeSingleBinaryImage(binary: string, entry: string, name: string, outTar: string): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'agentenv-oci-'));
  try {
    const layout = join(work, 'layout');
    await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
    const rootfs = join(work, 'rootfs');
    await mkdir(rootfs);
    await copyFile(binary, join(rootfs, entry));
    const layerFile = join(work, 'layer.tar');
    // Reproducible: fixed owner and time, so the same binary always gives the same image digest.
    await run('tar', ['--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '--mode=0755', '-cf', layerFile, '-C', rootfs, entry]);
    const layerBytes = await readFile(layerFile);
    const layer = await blob(layout, 'application/vnd.oci.image.layer.v1.tar', layerBytes);
    const config = await blob(
      layout,
      'application/vnd.oci.image.config.v1+json',
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Entrypoint: [`/${entry}`], User: '65535:65535' },
        rootfs: { type: 'layers', diff_ids: [layer.digest] },
      }),
    );
    const manifest = await blob(
      layout,
      'application/vnd.oci.image.manifest.v1+json',
      JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [layer] }),
    );
    const index = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{ ...manifest, platform: { architecture: 'amd64', os: 'linux' }, annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': name } }],
    };
    await writeFile(join(layout, 'index.json'), JSON.stringify(index));
    await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await run('tar', ['-cf', outTar, '-C', layout, '.']);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function blob(layout: string, mediaType: string, content: string | Buffer): Promise<Blob> {
  const bytes = typeof content === 'string' ? Buffer.from(content) : content;
  const hex = createHash('sha256').update(bytes).digest('hex');
  await writeFile(join(layout, 'blobs', 'sha256', hex), bytes);
  return { mediaType, digest: `sha256:${hex}`, size: bytes.length };
}
