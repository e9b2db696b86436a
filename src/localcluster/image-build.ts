/**
 * The project's images built from the repository's Dockerfile itself with buildah (daemonless, no
 * registry): its `BUILD_IMAGE` and `RUNTIME_IMAGE` arguments name the locally assembled base images
 * (image-base.ts), `--pull=false` forbids any registry, and `RUN` steps reach only the npm registry
 * (npm ci) and Debian's packages (the runner target's apt-get). Each image is exported as an OCI
 * archive under the name the Helm chart uses by default, which the containerd node imports.
 *
 * The archives are cached under `<cacheDir>/images/<key>/`, keyed by everything the build reads (the
 * Dockerfile, the files .dockerignore lets in, the base images); a present archive is reused without
 * running buildah at all.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parse } from 'yaml';
import { ensureBaseImages } from './image-base.ts';
import { runCommand, step, type Log } from './image-steps.ts';

export interface ProjectImage {
  /** `ghcr.io/agentenv-io/agentenv:0.1.0` */
  readonly name: string;
  /** Dockerfile stage, or undefined for the default (last) one. */
  readonly target?: string;
  readonly archive: string;
  /** Size of the image in buildah's storage (uncompressed layers: what it takes on a node), as buildah prints it. */
  readonly size: string;
  /** Size of the OCI archive (gzip-compressed layers: about what a registry push transfers). */
  readonly archiveBytes: number;
}

export interface ImageBuildOptions {
  readonly repo: string;
  readonly cacheDir: string;
  readonly log: Log;
}

interface ImageSpec {
  readonly repository: string;
  readonly target?: string;
}

/** The images the chart runs by default, by Dockerfile stage: the project image and, when the Dockerfile has it, the runner. */
async function imageSpecs(repo: string): Promise<ImageSpec[]> {
  const dockerfile = await readFile(join(repo, 'Dockerfile'), 'utf8');
  const values = parse(await readFile(join(repo, 'deploy/helm/agentenv/values.yaml'), 'utf8')) as { image?: { repository?: string }; runner?: { image?: { repository?: string } } };
  const specs: ImageSpec[] = [{ repository: values.image?.repository ?? 'ghcr.io/agentenv-io/agentenv' }];
  if (/^FROM\s+\S+\s+AS\s+runner\s*$/im.test(dockerfile)) specs.push({ repository: values.runner?.image?.repository ?? 'ghcr.io/agentenv-io/agentenv-runner', target: 'runner' });
  return specs;
}

async function chartAppVersion(repo: string): Promise<string> {
  const chart = parse(await readFile(join(repo, 'deploy/helm/agentenv/Chart.yaml'), 'utf8')) as { appVersion?: string };
  if (!chart.appVersion) throw new Error('deploy/helm/agentenv/Chart.yaml has no appVersion: it is the default image tag');
  return String(chart.appVersion);
}

/** Builds (or finds in the cache) every image the chart uses by default. */
export async function ensureProjectImages(options: ImageBuildOptions): Promise<ProjectImage[]> {
  const { repo, cacheDir, log } = options;
  const tag = await chartAppVersion(repo);
  const specs = await imageSpecs(repo);
  const key = await contextKey(repo);
  const dir = join(cacheDir, 'images', `project-${key}`);
  const manifest = join(dir, 'images.json');
  if (existsSync(manifest)) {
    const cached = JSON.parse(await readFile(manifest, 'utf8')) as ProjectImage[];
    if (cached.every((image) => existsSync(image.archive))) {
      log(`project images: cached (${cached.map((i) => i.name).join(', ')})`);
      return cached;
    }
  }
  const base = await ensureBaseImages(repo, cacheDir, log);
  await mkdir(dir, { recursive: true });
  const built: ProjectImage[] = [];
  for (const spec of specs) {
    const name = `${spec.repository}:${tag}`;
    const archive = join(dir, `${spec.target ?? 'default'}.oci.tar`);
    await step(`buildah build ${spec.target ? `--target ${spec.target}` : '(default target)'} -t ${name}`, log, async () => {
      await runCommand(
        'buildah',
        [
          'build',
          '--layers',
          '--pull=false',
          // RUN steps use the machine's network (npm ci, apt-get): the npm registry and Debian's packages.
          '--network=host',
          '--build-arg', `BUILD_IMAGE=${base.build}`,
          '--build-arg', `RUNTIME_IMAGE=${base.runtime}`,
          '--build-arg', `VERSION=${tag}`,
          '--build-arg', `REVISION=${key}`,
          ...(spec.target ? ['--target', spec.target] : []),
          '-f', join(repo, 'Dockerfile'),
          '-t', name,
          repo,
        ],
        log,
        { echo: (line) => /^(STEP|COMMIT|Successfully)/.test(line) },
      );
      const tmp = `${archive}.tmp-${process.pid}`;
      await rm(tmp, { force: true });
      await runCommand('buildah', ['push', '--quiet', name, `oci-archive:${tmp}:${name}`], log);
      await rename(tmp, archive);
    });
    const size = (await runCommand('buildah', ['images', '--format', '{{.Size}}', name], log)).trim();
    const archiveBytes = (await stat(archive)).size;
    built.push({ name, ...(spec.target ? { target: spec.target } : {}), archive, size, archiveBytes });
    log(`image ${name}: ${size} uncompressed, ${formatBytes(archiveBytes)} as a compressed OCI archive`);
  }
  await writeFile(manifest, JSON.stringify(built, null, 2) + '\n');
  return built;
}

export function formatBytes(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(1)} MB`;
}

/**
 * A hash of what the build reads: the Dockerfile, .dockerignore, and every file of the context that
 * .dockerignore lets in (its allowlist form: `*`, then `!path` entries and `pattern` exclusions).
 */
async function contextKey(repo: string): Promise<string> {
  const hash = createHash('sha256');
  const ignore = await readFile(join(repo, '.dockerignore'), 'utf8').catch(() => '');
  hash.update(await readFile(join(repo, 'Dockerfile'))).update(ignore);
  const lines = ignore.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const included = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1));
  const excluded = lines.filter((l) => !l.startsWith('!') && l !== '*').map((l) => new RegExp(`^${l.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*\//g, '(?:.*/)?').replace(/\*/g, '[^/]*')}$`));
  for (const path of included.sort()) {
    for (const file of await filesUnder(repo, path)) {
      if (excluded.some((re) => re.test(file))) continue;
      hash.update(file).update('\0').update(await readFile(join(repo, file))).update('\0');
    }
  }
  return hash.digest('hex').slice(0, 12);
}

async function filesUnder(repo: string, path: string): Promise<string[]> {
  const full = join(repo, path);
  if (!existsSync(full)) return [];
  if (!(await stat(full)).isDirectory()) return [path];
  const entries = await readdir(full, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(repo, join(e.parentPath, e.name))).sort();
}
