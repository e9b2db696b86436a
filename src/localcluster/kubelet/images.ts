/**
 * The images the process kubelet can "run" and what each runs (pure).
 *
 * - The project image (any tag or digest): its ENTRYPOINT is the `agentenv` CLI, so it runs
 *   `<node> <repo>/src/cli/main.ts <args>`; a `command` replaces the entrypoint as in a container,
 *   and a command starting with `agentenv` maps to the CLI. A command naming the image's Node
 *   (`/nodejs/bin/node`, as the session Pod's sidecar does) runs this machine's Node, with the
 *   image's `/app/` (the built project) mapped to the repository: `/app/dist/sidecar.cjs` is the
 *   repository's `dist/sidecar.cjs`, which `npm run build` (and the integration tests' setup) builds.
 * - The runner image (`<project image>-runner`, any tag or digest; the Dockerfile's `runner` target):
 *   its ENTRYPOINT is the `agentenv` CLI too (`/usr/local/bin/agentenv`, CMD `runner`), so it maps
 *   the same way — no command runs `agentenv runner`, a command `agentenv …` or the entrypoint's
 *   path maps to the CLI, any other command runs as written (on this machine: bash, git, rg…).
 * - `local/shell`: an image with no entrypoint and CMD `/bin/sh`, so `command`+`args` run directly
 *   (`/bin/sh -c …` when the command says so) and `args` alone are the whole command line.
 * - Anything else cannot be pulled: the container waits with ErrImagePull, then ImagePullBackOff.
 */
import { realpathSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Container } from './pod-types.ts';

export const DEFAULT_PROJECT_IMAGE = 'ghcr.io/agentenv-io/agentenv';
/** The runner image is named after the project image (see the Dockerfile's `runner` target). */
export const RUNNER_IMAGE_SUFFIX = '-runner';
/** The runner image's ENTRYPOINT: a link to the `agentenv` CLI. */
const RUNNER_ENTRYPOINT = '/usr/local/bin/agentenv';
export const SHELL_IMAGE = 'local/shell';
/** Where the project image keeps Node and the built project (see the Dockerfile). */
const IMAGE_NODE = '/nodejs/bin/node';
const IMAGE_APP = '/app/';
/** The repository root (this file is src/localcluster/kubelet/images.ts). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export class ImagePullError extends Error {
  constructor(image: string) {
    super(`Failed to pull image "${image}": the process kubelet runs only its project image, the runner image and ${SHELL_IMAGE}`);
    this.name = 'ImagePullError';
  }
}

/** `registry:5000/repo/name:tag@sha256:…` → `registry:5000/repo/name`. */
export function imageName(image: string): string {
  const withoutDigest = image.split('@')[0]!;
  const lastSlash = withoutDigest.lastIndexOf('/');
  const colon = withoutDigest.indexOf(':', lastSlash + 1);
  return colon < 0 ? withoutDigest : withoutDigest.slice(0, colon);
}

export interface ImageRuntime {
  readonly projectImage: string;
  /** The Node binary that runs the project's CLI. Default: this process's. */
  readonly nodeBinary: string;
  readonly repoRoot: string;
}

/** The argv (before `$(VAR)` expansion) a container runs; throws {@link ImagePullError} for an unknown image. */
export function containerArgv(container: Container, runtime: ImageRuntime): string[] {
  const image = container.image ?? '';
  const name = imageName(image);
  const command = container.command ?? [];
  const args = container.args ?? [];
  if (name === imageName(runtime.projectImage)) {
    const cli = [runtime.nodeBinary, `${runtime.repoRoot}src/cli/main.ts`];
    if (command.length === 0) return [...cli, ...(container.args ?? ['--help'])];
    if (command[0] === 'agentenv') return [...cli, ...command.slice(1), ...args];
    if (command[0] === IMAGE_NODE) {
      return [runtime.nodeBinary, ...[...command.slice(1), ...args].map((a) => (a.startsWith(IMAGE_APP) ? runtime.repoRoot + a.slice(IMAGE_APP.length) : a))];
    }
    return [...command, ...args];
  }
  if (name === imageName(runtime.projectImage) + RUNNER_IMAGE_SUFFIX) {
    const cli = [runtime.nodeBinary, `${runtime.repoRoot}src/cli/main.ts`];
    if (command.length === 0) return [...cli, ...(container.args ?? ['runner'])];
    if (command[0] === 'agentenv' || command[0] === RUNNER_ENTRYPOINT) return [...cli, ...command.slice(1), ...args];
    return [...command, ...args];
  }
  if (name === SHELL_IMAGE) {
    if (command.length > 0) return [...command, ...args];
    return args.length > 0 ? [...args] : ['/bin/sh'];
  }
  throw new ImagePullError(image);
}

/**
 * The host directories that stand in for the images' files (the repository for `/app`, Node's
 * installation for `/nodejs`): a container must still see them when a volume is mounted over one
 * of their parents (an emptyDir at /tmp with the repository under /tmp).
 */
export function imageHostPaths(runtime: ImageRuntime): string[] {
  const node = realpathSync(runtime.nodeBinary);
  return [runtime.repoRoot, dirname(dirname(node))];
}
