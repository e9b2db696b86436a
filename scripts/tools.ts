/**
 * Provisions the tools the chart and image checks use, from the Go module proxy only, into
 * `~/.cache/agentenv/tools/<tool>@<version>/` (override the root with AGENTENV_CACHE_DIR), and reuses
 * them when present. Nothing is downloaded from GitHub or a container registry.
 *
 *   node scripts/tools.ts            # provision everything, print the paths (CI runs this)
 *   node scripts/tools.ts helm       # one tool
 *
 * | tool              | source                                                                                 |
 * |-------------------|----------------------------------------------------------------------------------------|
 * | helm              | `go install helm.sh/helm/v3/cmd/helm@HELM_VERSION`                                     |
 * | kubeconform       | `go install github.com/yannh/kubeconform/cmd/kubeconform@KUBECONFORM_VERSION`          |
 * | dockerfile-check  | `go build` of test/tools/dockerfile-check (BuildKit's Dockerfile build checks, offline) |
 * | promql-check      | `go build` of test/tools/promql-check (Prometheus' rule file and PromQL parsers)        |
 * | kubernetes-schemas| JSON schemas for kubeconform, generated from the OpenAPI v3 spec that k8s.io/kubernetes |
 * |                   | publishes in its module (same version as the local control plane), plus the            |
 * |                   | prometheus-operator CRDs (ServiceMonitor, PrometheusRule) and this repo's crds/        |
 *
 * Every build writes into a temporary directory renamed into place, so a half-built tool never
 * exists and two concurrent callers (parallel test files) cannot corrupt the cache.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { writeKubeconformSchemas } from './kubeconform-schemas.ts';

const run = promisify(execFile);

export const HELM_VERSION = 'v3.22.0';
export const KUBECONFORM_VERSION = 'v0.8.0';
/** The prometheus-operator release whose CRDs validate the chart's ServiceMonitor and the PrometheusRule. */
export const PROMETHEUS_OPERATOR_VERSION = 'v0.90.1';

const REPO = join(import.meta.dirname, '..');
const DOCKERFILE_CHECK_MODULE = join(REPO, 'test', 'tools', 'dockerfile-check');
const PROMQL_CHECK_MODULE = join(REPO, 'test', 'tools', 'promql-check');
const CONTROL_PLANE_GO_MOD = join(REPO, 'test', 'controlplane', 'go.mod');

export function toolsCacheDir(): string {
  return join(process.env['AGENTENV_CACHE_DIR'] ?? join(homedir(), '.cache', 'agentenv'), 'tools');
}

/** Builds into `dir` (a fresh temporary directory) and returns nothing; the caller renames it. */
type Builder = (dir: string) => Promise<void>;

async function cached(key: string, build: Builder): Promise<string> {
  const root = toolsCacheDir();
  const dir = join(root, key);
  if (existsSync(join(dir, '.complete'))) return dir;
  await mkdir(root, { recursive: true });
  const tmp = await mkdtemp(join(root, `.${key}-`));
  try {
    await build(tmp);
    await run('touch', [join(tmp, '.complete')]);
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir).catch((err: NodeJS.ErrnoException) => {
      // Another process finished the same build first: its result is as good as ours.
      if (!existsSync(join(dir, '.complete'))) throw err;
    });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return dir;
}

const goEnv = (): NodeJS.ProcessEnv => ({ ...process.env, CGO_ENABLED: '0', GOFLAGS: '-buildvcs=false' });

async function goInstall(pkg: string, dir: string, ldflags: readonly string[] = []): Promise<void> {
  await run('go', ['install', `-ldflags=-s -w ${ldflags.join(' ')}`, pkg], { env: { ...goEnv(), GOBIN: join(dir, 'bin') }, maxBuffer: 64 << 20 });
}

/** Download a module through the Go module proxy (or find it in the module cache) and return its directory. */
export async function goModuleDir(module: string, version: string): Promise<string> {
  const { stdout } = await run('go', ['mod', 'download', '-json', `${module}@${version}`], { env: goEnv(), cwd: REPO, maxBuffer: 64 << 20 });
  const info = JSON.parse(stdout) as { Dir?: string; Error?: string };
  if (!info.Dir) throw new Error(`go mod download ${module}@${version}: ${info.Error ?? 'no directory'}`);
  return info.Dir;
}

/** The k8s.io/kubernetes version the local control plane pins (test/controlplane/go.mod). */
export async function kubernetesVersion(): Promise<string> {
  const goMod = await readFile(CONTROL_PLANE_GO_MOD, 'utf8');
  const m = /^\s*k8s\.io\/kubernetes\s+(v\d+\.\d+\.\d+)/m.exec(goMod);
  if (!m?.[1]) throw new Error(`${CONTROL_PLANE_GO_MOD} does not pin k8s.io/kubernetes`);
  return m[1];
}

async function hashFiles(dir: string, names: readonly string[]): Promise<string> {
  const h = createHash('sha256');
  for (const n of names) h.update(n).update(await readFile(join(dir, n)));
  return h.digest('hex').slice(0, 12);
}

async function crdsHash(): Promise<string> {
  const files = (await readdir(join(REPO, 'crds'))).filter((f) => f.endsWith('.yaml')).sort();
  return hashFiles(join(REPO, 'crds'), files);
}

/**
 * What helm's Makefile stamps into a release build: its version, and the Kubernetes version that
 * `helm template` and `helm lint` assume without a cluster (the client-go minor it is built with;
 * a plain `go install` would leave it at 1.20 and fail the chart's kubeVersion constraint).
 */
const HELM_LDFLAGS = [
  `-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}`,
  ...['pkg/chartutil', 'pkg/lint/rules'].flatMap((p) => [`-X helm.sh/helm/v3/${p}.k8sVersionMajor=1`, `-X helm.sh/helm/v3/${p}.k8sVersionMinor=37`]),
];

/** Build a command kept in this repository as its own Go module; the key is a hash of its files. */
async function goBuild(name: string, module: string): Promise<string> {
  const key = await hashFiles(module, ['go.mod', 'go.sum', 'main.go']);
  const dir = await cached(`${name}@${key}`, async (d) => {
    await run('go', ['build', '-ldflags=-s -w', '-o', join(d, 'bin', name), '.'], { cwd: module, env: goEnv(), maxBuffer: 64 << 20 });
  });
  return join(dir, 'bin', name);
}

export const TOOLS = {
  helm: async (): Promise<string> =>
    join(await cached(`helm@${HELM_VERSION}+k8s1.37`, (d) => goInstall(`helm.sh/helm/v3/cmd/helm@${HELM_VERSION}`, d, HELM_LDFLAGS)), 'bin', 'helm'),
  kubeconform: async (): Promise<string> =>
    join(
      await cached(`kubeconform@${KUBECONFORM_VERSION}`, (d) => goInstall(`github.com/yannh/kubeconform/cmd/kubeconform@${KUBECONFORM_VERSION}`, d)),
      'bin',
      'kubeconform',
    ),
  'dockerfile-check': () => goBuild('dockerfile-check', DOCKERFILE_CHECK_MODULE),
  'promql-check': () => goBuild('promql-check', PROMQL_CHECK_MODULE),
  /** A directory laid out for kubeconform's `{{ .ResourceKind }}{{ .KindSuffix }}.json` template. */
  'kubernetes-schemas': async (): Promise<string> => {
    const k8s = await kubernetesVersion();
    const key = `kubernetes-schemas@${k8s}-po${PROMETHEUS_OPERATOR_VERSION}-crds${await crdsHash()}`;
    return cached(key, async (d) => {
      const kubernetes = await goModuleDir('k8s.io/kubernetes', k8s);
      const prometheusOperator = await goModuleDir('github.com/prometheus-operator/prometheus-operator', PROMETHEUS_OPERATOR_VERSION);
      await writeKubeconformSchemas({
        openapiV3Dir: join(kubernetes, 'api', 'openapi-spec', 'v3'),
        crdFiles: [
          join(prometheusOperator, 'example', 'prometheus-operator-crd', 'monitoring.coreos.com_servicemonitors.yaml'),
          join(prometheusOperator, 'example', 'prometheus-operator-crd', 'monitoring.coreos.com_prometheusrules.yaml'),
          join(REPO, 'crds', 'agentenv.io_agentenvironments.yaml'),
          join(REPO, 'crds', 'agentenv.io_agentsessions.yaml'),
        ],
        outDir: d,
      });
    });
  },
} as const satisfies Record<string, () => Promise<string>>;

export type ToolName = keyof typeof TOOLS;

/** The path of a provisioned tool (building it on first use). */
export function ensureTool(name: ToolName): Promise<string> {
  return TOOLS[name]();
}

if (import.meta.main) {
  const wanted = process.argv.slice(2);
  const names = (wanted.length ? wanted : Object.keys(TOOLS)) as ToolName[];
  for (const name of names) {
    if (!(name in TOOLS)) {
      console.error(`unknown tool ${name}; known: ${Object.keys(TOOLS).join(', ')}`);
      process.exit(2);
    }
    const started = Date.now();
    const path = await ensureTool(name);
    console.log(`${name}: ${path} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
  }
}
