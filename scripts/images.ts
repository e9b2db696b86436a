/**
 * `npm run images` — builds the project's images from the Dockerfile with buildah (no Docker engine,
 * no registry; see src/localcluster/image-build.ts and docs/runtime.md), or finds them in
 * ~/.cache/agentenv/images, and prints their names, sizes and OCI archives. `npm run k8s:up --
 * --runtime containerd` and the `runtime` test tier import these archives into the containerd node.
 * AGENTENV_CACHE_DIR overrides the cache root.
 */
import { defaultCacheDir, ensureProjectImages, formatBytes } from '../src/localcluster/index.ts';
import { REPO } from './k8s-state.ts';

const started = performance.now();
const elapsed = (): string => `${((performance.now() - started) / 1000).toFixed(1)}s`;
try {
  const images = await ensureProjectImages({ repo: REPO, cacheDir: process.env.AGENTENV_CACHE_DIR || defaultCacheDir(), log: (line) => console.log(`[images ${elapsed()}] ${line}`) });
  for (const image of images) console.log(`${image.name}${image.target ? ` (--target ${image.target})` : ''}: ${image.size} uncompressed, ${formatBytes(image.archiveBytes)} compressed: ${image.archive}`);
  console.log(`images ready after ${elapsed()}`);
} catch (err) {
  console.error(`cannot build the images: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
