/**
 * Running the chart through the real tools (provisioned by scripts/tools.ts from the Go module proxy):
 * `helm template`/`lint`/`package` and kubeconform with the locally generated Kubernetes schemas.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { ensureTool } from '../../scripts/tools.ts';

const run = promisify(execFile);

export const REPO = join(import.meta.dirname, '..', '..');
export const CHART = join(REPO, 'deploy', 'helm', 'agentenv');
export const NAMESPACED_VALUES = join(import.meta.dirname, 'values-namespaced.yaml');
export const RELEASE_NAMESPACE = 'agentenv-system';
/** The Kubernetes version the charts render for: the local control plane's (test/controlplane/go.mod). */
export const KUBE_VERSION = '1.36.3';

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export interface HelmResult {
  readonly ok: boolean;
  readonly stdout: string;
  /** stderr without helm's notice that the crds/ symlink was followed. */
  readonly stderr: string;
}

export async function helm(args: readonly string[]): Promise<HelmResult> {
  const bin = await ensureTool('helm');
  try {
    const { stdout, stderr } = await run(bin, args, { maxBuffer: 32 << 20, env: { ...process.env, HELM_CACHE_HOME: '/tmp/agentenv-helm-cache', HELM_CONFIG_HOME: '/tmp/agentenv-helm-config' } });
    return { ok: true, stdout, stderr: quiet(stderr) };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, stdout: e.stdout ?? '', stderr: quiet(e.stderr ?? '') };
  }
}

const quiet = (stderr: string): string =>
  stderr
    .split('\n')
    .filter((l) => l && !/found symbolic link in path/.test(l))
    .join('\n');

export interface RenderOptions {
  readonly valuesFiles?: readonly string[];
  readonly set?: readonly string[];
  readonly includeCrds?: boolean;
  readonly release?: string;
  /** The release namespace. Default RELEASE_NAMESPACE. */
  readonly namespace?: string;
}

function templateArgs(o: RenderOptions): string[] {
  return [
    'template',
    o.release ?? 'agentenv',
    CHART,
    '--namespace',
    o.namespace ?? RELEASE_NAMESPACE,
    '--kube-version',
    KUBE_VERSION,
    ...(o.includeCrds ? ['--include-crds'] : []),
    ...(o.valuesFiles ?? []).flatMap((f) => ['--values', f]),
    ...(o.set ?? []).flatMap((s) => ['--set', s]),
  ];
}

/** `helm template` → the YAML text, throwing helm's message when it refuses. */
export async function renderText(o: RenderOptions = {}): Promise<string> {
  const r = await helm(templateArgs(o));
  if (!r.ok) throw new Error(`helm template failed:\n${r.stderr}`);
  return r.stdout;
}

/** `helm template` → the manifests, parsed. */
export async function render(o: RenderOptions = {}): Promise<Manifest[]> {
  return parseManifests(await renderText(o));
}

/** `helm template` expected to fail → helm's error text. */
export async function refusal(o: RenderOptions): Promise<string> {
  const r = await helm(templateArgs(o));
  if (r.ok) throw new Error(`helm template accepted ${JSON.stringify(o.set ?? o.valuesFiles)}`);
  return r.stderr;
}

export function parseManifests(text: string): Manifest[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null && typeof m === 'object');
}

export function find(manifests: readonly Manifest[], kind: string, name?: string): Manifest {
  const found = manifests.find((m) => m.kind === kind && (name === undefined || m.metadata.name === name));
  if (!found) throw new Error(`no ${kind}${name ? ` ${name}` : ''} among ${manifests.map((m) => `${m.kind}/${m.metadata.name}`).join(', ')}`);
  return found;
}

export interface KubeconformReport {
  readonly ok: boolean;
  readonly output: string;
}

/** Validate YAML text against the Kubernetes (and CRD) schemas, strictly: unknown fields are errors. */
export async function kubeconform(yamlText: string): Promise<KubeconformReport> {
  const bin = await ensureTool('kubeconform');
  const schemas = await ensureTool('kubernetes-schemas');
  const args = ['-strict', '-summary', '-output', 'text', '-schema-location', `${schemas}/{{ .ResourceKind }}{{ .KindSuffix }}.json`, '-'];
  return new Promise((resolve) => {
    const child = execFile(bin, args, { maxBuffer: 32 << 20 }, (err, stdout, stderr) => resolve({ ok: !err, output: `${stdout}${stderr}` }));
    child.stdin?.end(yamlText);
  });
}
