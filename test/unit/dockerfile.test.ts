/**
 * The Dockerfile, correct by construction (there is no Docker engine here to build it):
 * - every COPY from the build context names a file that exists and that .dockerignore lets through;
 * - the runtime stage is assembled here the way the Dockerfile assembles it — `npm run build`'s
 *   compiler output as dist/, the lockfile's production dependencies only as node_modules/, and
 *   package.json — and the ENTRYPOINT's script runs in it: `--help` lists every subcommand the image
 *   serves, and each subcommand loads with production dependencies alone; the bundled sidecar
 *   (dist/sidecar.cjs) runs as session Pods start it (`SIDECAR_COMMAND`), and so does its startup
 *   probe (dist/wait-started.cjs, `WAIT_STARTED_COMMAND`);
 * - the runtime is Node 24, a numeric non-root USER, OCI labels, exec-form ENTRYPOINT;
 * - the `runner` target (the default runner's image) has the agent toolset's tools, a writable
 *   /workspace, the session Pod's default UID, and `agentenv` on PATH as the default template runs it;
 *   assembled the same way, `agentenv runner` loads with production dependencies only.
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ignoredByDocker, parseDockerfile, type Instruction } from './dockerfile-parse.ts';
import { DEFAULT_SESSION_UID, SIDECAR_COMMAND, WAIT_STARTED_COMMAND } from '../../src/sessions/objects/pod.ts';
import { defaultSessionTemplate, WORKSPACE_DIR } from '../../src/sessions/objects/default-template.ts';

const run = promisify(execFile);
const REPO = join(import.meta.dirname, '..', '..');
/** The subcommands the one image serves (ENTRYPOINT + args). */
const IMAGE_SUBCOMMANDS = ['operator', 'sidecar', 'emulator', 'runner'];

/** Files the production-dependencies stage deletes: never loaded at run time. */
const RUNTIME_PRUNED = /\.(d\.ts|d\.mts|d\.cts|map)$/;
const PRUNE_FIND = "-name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map'";

const dockerfile = parseDockerfile(await readFile(join(REPO, 'Dockerfile'), 'utf8'));
const dockerignore = await readFile(join(REPO, '.dockerignore'), 'utf8');
const finalStage = dockerfile.stages.at(-1)!;
const runnerStage = dockerfile.stages.find((s) => s.name === 'runner')!;
const flag = (i: Instruction, name: string): string | undefined => i.flags[name];

describe('Dockerfile, statically', () => {
  it('copies from the build context only files that exist and that .dockerignore keeps', () => {
    const copies = dockerfile.stages.flatMap((s) => s.instructions).filter((i) => i.keyword === 'COPY' && !flag(i, 'from'));
    expect(copies.length).toBeGreaterThan(0);
    for (const c of copies) {
      for (const source of c.args.slice(0, -1)) {
        expect(existsSync(join(REPO, source)), `${source} (line ${c.line})`).toBe(true);
        expect(ignoredByDocker(dockerignore, source), `${source} is excluded by .dockerignore`).toBe(false);
      }
    }
  });

  it('keeps the build context small: no node_modules, dist, .git, tests or local cluster state', () => {
    for (const path of ['node_modules/zod/package.json', 'dist/cli/main.js', '.git/HEAD', '.k8s/kubeconfig', 'src/api/retry.test.ts', 'test/unit/dockerfile.test.ts']) {
      expect(ignoredByDocker(dockerignore, path), path).toBe(true);
    }
    expect(ignoredByDocker(dockerignore, 'src/cli/main.ts')).toBe(false);
  });

  it('copies between stages only from stages defined earlier', () => {
    dockerfile.stages.forEach((stage, index) => {
      for (const c of stage.instructions.filter((i) => i.keyword === 'COPY' && flag(i, 'from'))) {
        const earlier = dockerfile.stages.slice(0, index).map((s) => s.name);
        expect(earlier, `COPY --from=${flag(c, 'from')} (line ${c.line})`).toContain(flag(c, 'from'));
      }
    });
  });

  it('builds on Node 24 and runs on a Node 24 runtime', () => {
    expect(dockerfile.args['BUILD_IMAGE']).toMatch(/^node:24[-.]/);
    expect(dockerfile.args['RUNTIME_IMAGE']).toMatch(/nodejs24/);
    expect(finalStage.from).toBe('${RUNTIME_IMAGE}');
  });

  it('installs from the lockfile, and production dependencies only for the runtime', () => {
    const runs = dockerfile.stages.flatMap((s) => s.instructions.filter((i) => i.keyword === 'RUN').map((i) => ({ stage: s.name, text: i.raw })));
    expect(runs.some((r) => /npm install\b/.test(r.text))).toBe(false);
    const production = runs.filter((r) => r.stage === 'production-dependencies');
    expect(production.map((r) => r.text).join('\n')).toMatch(/npm ci\b.*--omit=dev/);
    // The prune the runtime-stage test below reproduces (RUNTIME_PRUNED).
    expect(production.map((r) => r.text).join('\n')).toContain(`find node_modules -type f \\( ${PRUNE_FIND} \\) -delete`);
  });

  it('runs as a numeric non-root user with an exec-form entrypoint into dist/cli/main.js', () => {
    const user = finalStage.instructions.filter((i) => i.keyword === 'USER').at(-1)!;
    const [uid, gid] = user.args[0]!.split(':');
    expect(uid).toMatch(/^[1-9][0-9]*$/);
    expect(gid).toMatch(/^[1-9][0-9]*$/);
    const entrypoint = finalStage.instructions.find((i) => i.keyword === 'ENTRYPOINT')!;
    expect(JSON.parse(entrypoint.rest)).toEqual(['/nodejs/bin/node', '/app/dist/cli/main.js']);
    // Nothing after USER may run as root or write into the image.
    const afterUser = finalStage.instructions.slice(finalStage.instructions.indexOf(user) + 1);
    expect(afterUser.map((i) => i.keyword).filter((k) => k === 'RUN' || k === 'USER')).toEqual([]);
  });

  it('carries the OCI image labels', () => {
    const labels = finalStage.instructions.filter((i) => i.keyword === 'LABEL').map((i) => i.rest).join(' ');
    for (const key of ['title', 'description', 'source', 'licenses', 'version', 'revision']) {
      expect(labels).toContain(`org.opencontainers.image.${key}=`);
    }
  });
});

describe('Dockerfile, the runner target', () => {
  const text = (i: Instruction): string => i.raw;
  const last = (keyword: string): Instruction => runnerStage.instructions.filter((i) => i.keyword === keyword).at(-1)!;

  it('exists, builds on Node 24, and is not the default target', () => {
    expect(runnerStage).toBeDefined();
    expect(runnerStage.from).toBe('${BUILD_IMAGE}');
    expect(finalStage).not.toBe(runnerStage);
  });

  it('installs what the agent toolset runs: bash, tar, unzip, ripgrep, git, CA certificates', () => {
    const install = runnerStage.instructions.filter((i) => i.keyword === 'RUN').map(text).join('\n');
    const packages = /apt-get install -y --no-install-recommends ([a-z0-9 -]+?)(?: &&|$)/m.exec(install)?.[1]?.split(' ') ?? [];
    expect(packages).toEqual(expect.arrayContaining(['bash', 'tar', 'unzip', 'ripgrep', 'git', 'ca-certificates']));
    expect(install).toContain('rm -rf /var/lib/apt/lists/*');
  });

  it('runs as the session Pod\'s default UID, numeric and non-root, with /workspace its own and nothing run after USER', () => {
    const user = last('USER');
    expect(user.args[0]).toBe(`${DEFAULT_SESSION_UID}:${DEFAULT_SESSION_UID}`);
    const install = runnerStage.instructions.filter((i) => i.keyword === 'RUN').map(text).join('\n');
    expect(install).toContain(`mkdir -p ${WORKSPACE_DIR}`);
    expect(install).toContain(`chown ${DEFAULT_SESSION_UID}:${DEFAULT_SESSION_UID} ${WORKSPACE_DIR}`);
    expect(last('WORKDIR').args[0]).toBe(WORKSPACE_DIR);
    const afterUser = runnerStage.instructions.slice(runnerStage.instructions.indexOf(user) + 1);
    expect(afterUser.map((i) => i.keyword).filter((k) => k === 'RUN' || k === 'USER')).toEqual([]);
  });

  it('puts `agentenv` on PATH as the default template runs it, linked to the committed bin script', () => {
    const [command] = defaultSessionTemplate({ image: 'x', imagePullPolicy: 'IfNotPresent' }).spec!.containers![0]!.command!;
    expect(command).toBe('agentenv');
    const install = runnerStage.instructions.filter((i) => i.keyword === 'RUN').map(text).join('\n');
    expect(install).toContain('ln -s /app/bin/agentenv.js /usr/local/bin/agentenv');
    expect(JSON.parse(last('ENTRYPOINT').rest)).toEqual(['/usr/local/bin/agentenv']);
    expect(JSON.parse(last('CMD').rest)).toEqual(['runner']);
    expect(runnerStage.instructions.some((i) => i.keyword === 'COPY' && i.args[0] === 'bin/agentenv.js' && i.args[1] === './bin/agentenv.js')).toBe(true);
  });

  it('carries the same build and production dependencies as the project image', () => {
    const fromStages = (stage: typeof runnerStage): string[] => stage.instructions.filter((i) => i.keyword === 'COPY' && flag(i, 'from')).map((i) => `${flag(i, 'from')} ${i.args.join(' ')}`).sort();
    expect(fromStages(runnerStage)).toEqual(fromStages(finalStage));
    const labels = runnerStage.instructions.filter((i) => i.keyword === 'LABEL').map((i) => i.rest).join(' ');
    for (const key of ['title', 'source', 'licenses', 'version', 'revision']) expect(labels).toContain(`org.opencontainers.image.${key}=`);
  });
});

describe('Dockerfile, the runtime stage assembled from what the build produces', () => {
  let root: string;
  let app: string;
  let runnerApp: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'agentenv-image-'));
    app = join(root, 'app');
    runnerApp = join(root, 'runner-app');
    await mkdir(app, { recursive: true });
    await mkdir(runnerApp, { recursive: true });
    const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    // `npm run build` in the build stage: the same compiler invocation, into a scratch outDir.
    expect(pkg.scripts['build']).toBe('tsc -p tsconfig.build.json && npm run -s build:sidecar');
    await run(join(REPO, 'node_modules', '.bin', 'tsc'), ['-p', join(REPO, 'tsconfig.build.json'), '--outDir', join(root, 'build-dist')], { cwd: REPO });
    // …and the sidecar's bundles (the sidecar, its startup probe), with the script's own arguments, into the same scratch dist/.
    for (const command of pkg.scripts['build:sidecar']!.split(' && ')) {
      const [bundler, ...bundleArgs] = command.split(' ');
      expect(bundler).toBe('esbuild');
      await run(join(REPO, 'node_modules', '.bin', 'esbuild'), bundleArgs.map((a) => a.replace(/^--outfile=dist\//, `--outfile=${join(root, 'build-dist')}/`)), { cwd: REPO });
    }
    for (const [stage, into] of [[finalStage, app], [runnerStage, runnerApp]] as const) {
      for (const copy of stage.instructions.filter((i) => i.keyword === 'COPY')) {
        const [source, destination] = copy.args as [string, string];
        const target = join(into, destination === './' ? source : destination);
        const from = flag(copy, 'from');
        if (!from) await cp(join(REPO, source), target);
        else if (from === 'build' && source === '/src/dist') await cp(join(root, 'build-dist'), target, { recursive: true });
        else if (from === 'production-dependencies' && source === '/src/node_modules') await copyProductionDependencies(target);
        else throw new Error(`the test does not know how to reproduce COPY --from=${from} ${source} (line ${copy.line})`);
      }
    }
    // tsc alone: ~10 s on an idle machine, minutes on a loaded one.
  }, 600_000);
  afterAll(() => rm(root, { recursive: true, force: true }));

  const cli = (args: string[]) => run(process.execPath, [join(app, 'dist', 'cli', 'main.js'), ...args], { cwd: app, env: { PATH: process.env['PATH'] ?? '', NODE_ENV: 'production' } });

  it('has the ENTRYPOINT script at the path the image names', async () => {
    expect((await stat(join(app, 'dist', 'cli', 'main.js'))).isFile()).toBe(true);
  });

  it('runs the sidecar as session Pods do: the image\'s Node on the bundled dist/sidecar.cjs', async () => {
    const entrypoint = JSON.parse(finalStage.instructions.find((i) => i.keyword === 'ENTRYPOINT')!.rest) as string[];
    const [node, ...nodeArgs] = SIDECAR_COMMAND;
    expect(node).toBe(entrypoint[0]);
    const script = nodeArgs.at(-1)!;
    expect(script).toBe('/app/dist/sidecar.cjs');
    const { stdout } = await run(process.execPath, [...nodeArgs.slice(0, -1), join(app, script.slice('/app/'.length)), '--help'], { cwd: app, env: { PATH: process.env['PATH'] ?? '', NODE_ENV: 'production' } });
    expect(stdout).toContain('Usage: agentenv sidecar');
  }, 30_000);

  it('runs the sidecar\'s startup probe as session Pods do: the image\'s Node on the bundled dist/wait-started.cjs', async () => {
    const [node, ...nodeArgs] = WAIT_STARTED_COMMAND;
    expect(node).toBe(SIDECAR_COMMAND[0]);
    const script = nodeArgs.at(-1)!;
    expect(script).toBe('/app/dist/wait-started.cjs');
    // Bad use answers at once with its usage (exit 2): the bundle loads and runs on its own.
    const failed = await run(process.execPath, [...nodeArgs.slice(0, -1), join(app, script.slice('/app/'.length))], { cwd: app, env: { PATH: process.env['PATH'] ?? '' } }).then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    );
    expect(failed?.code).toBe(2);
    expect(failed?.stderr).toContain('usage: wait-started <seconds>');
  }, 30_000);

  it('lists every subcommand the image serves', async () => {
    const { stdout } = await cli(['--help']);
    for (const sub of IMAGE_SUBCOMMANDS) expect(stdout).toMatch(new RegExp(`^\\s+${sub}\\b`, 'm'));
  }, 30_000);

  it.each(IMAGE_SUBCOMMANDS)('loads `%s` with production dependencies only', async (sub) => {
    const { stdout } = await cli([sub, '--help']);
    expect(stdout).toContain(`Usage: agentenv ${sub}`);
  }, 30_000);

  it('runs `agentenv runner` in the runner image through its bin script, with production dependencies only (the SDK among them)', async () => {
    const { stdout } = await run(process.execPath, [join(runnerApp, 'bin', 'agentenv.js'), 'runner', '--help'], { cwd: runnerApp, env: { PATH: process.env['PATH'] ?? '', NODE_ENV: 'production' } });
    expect(stdout).toContain('Usage: agentenv runner');
    expect(existsSync(join(runnerApp, 'node_modules', '@anthropic-ai', 'sdk', 'package.json'))).toBe(true);
  }, 30_000);
});

/**
 * What `npm ci --omit=dev` installs: every lockfile package not marked dev, copied from the local
 * install (nested node_modules are their own lockfile entries, copied on their own).
 */
async function copyProductionDependencies(target: string): Promise<void> {
  const lock = JSON.parse(await readFile(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; optional?: boolean }> };
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (!path.startsWith('node_modules/') || entry.dev) continue;
    const source = join(REPO, path);
    if (!existsSync(source)) {
      if (entry.optional) continue; // another platform's optional binary
      throw new Error(`${path} is a production dependency but is not installed`);
    }
    await cp(source, join(target, path.slice('node_modules/'.length)), {
      recursive: true,
      filter: (src) => !src.slice(source.length).includes('/node_modules') && !RUNTIME_PRUNED.test(src),
    });
  }
}
