/**
 * Only the RBAC the code uses: the operator's rules (files/operator-rbac-rules.yaml, rendered into the
 * chart's ClusterRole/Roles and bound to the operator in the integration cluster) against the
 * Kubernetes requests the operator's code can make.
 *
 * Why from the code and not from an apiserver audit of an integration run: an audit only sees the
 * paths the tests happened to drive (a NetworkPolicy replaced on drift, a Pod deleted on a stop), so
 * a grant used on a rare path would look unused. The code names every request: each call of the
 * generic REST client (src/k8s/rest.ts) takes the resource type as its first argument, and the
 * generic helpers (informer, finalizer, status writers) are called with one. This test reads those
 * calls from the source of the operator process and fails when
 * - a granted verb is never called (the grant goes), or
 * - a called verb is not granted (the call would be Forbidden in a cluster), or
 * - a REST call's resource cannot be told from the source (add the helper to HELPERS below).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CORE, type ResourceType } from '../../src/k8s/rest.ts';
import { AGENT_ENVIRONMENTS, AGENT_SESSIONS } from '../../src/crd/resources.ts';
import { CHART, REPO } from './helm.ts';

/** The operator process's code: everything but dev-only parts, the other processes and tests. */
const EXCLUDED = ['src/emulator', 'src/localcluster', 'src/dev', 'src/sidecar', 'src/runner', 'src/lifecycle', 'src/cli/dev.ts', 'src/cli/kubelet.ts', 'src/cli/emulator.ts', 'src/cli/uninstall.ts', 'src/cli/sidecar.ts', 'src/cli/sidecar-entry.ts', 'src/cli/runner.ts'];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    const rel = relative(REPO, path);
    if (EXCLUDED.some((e) => rel === e || rel.startsWith(`${e}/`))) return [];
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.includes('test-support') ? [path] : [];
  });
}

/** The resource constants a call may name, by their source text. */
const RESOURCES: Record<string, ResourceType> = {
  AGENT_ENVIRONMENTS,
  AGENT_SESSIONS,
  ...Object.fromEntries(Object.entries(CORE).map(([k, v]) => [`CORE.${k}`, v])),
};
const resourceName = (t: ResourceType, sub?: string): string => `${t.group || 'core'}/${t.plural}${sub ? `/${sub}` : ''}`;

/** REST client methods and the verb each sends. */
const METHODS: Record<string, string> = { get: 'get', list: 'list', listAll: 'list', stream: 'watch', create: 'create', replace: 'update', patch: 'patch', delete: 'delete' };

/** Generic helpers that take the resource type as their second argument, and what they send for it. */
const HELPERS: Record<string, ReadonlyArray<readonly [verb: string, sub?: string]>> = {
  'new Informer': [['list'], ['watch']],
  finalizer: [['patch']],
  addFinalizer: [['patch']],
  removeFinalizer: [['patch']],
  writeStatus: [['get'], ['update', 'status']],
  writeObjectStatus: [['get'], ['update', 'status']],
  applyCondition: [['patch', 'status']],
};
/** Files whose REST calls take a resource type parameter (the helpers themselves), checked through their callers. */
const GENERIC_FILES = ['src/k8s/rest.ts', 'src/k8s/informer.ts', 'src/k8s/finalizer.ts', 'src/k8s/status.ts', 'src/sessions/record/record.ts'];

/**
 * Grants no call shows, each with the code that needs it: creating an object whose owner reference
 * has blockOwnerDeletion needs update on the owner's finalizers subresource where the apiserver
 * enforces OwnerReferencesPermissionEnforcement.
 */
const IMPLIED: Record<string, { readonly file: string; readonly shows: RegExp }> = {
  'agentenv.io/agentsessions/finalizers:update': { file: 'src/sessions/objects/work-secret.ts', shows: /kind: AGENT_SESSION\.kind[^}]*blockOwnerDeletion: true/ },
  'agentenv.io/agentenvironments/finalizers:update': { file: 'src/sessions/objects/network-policy.ts', shows: /'AgentEnvironment'[^}]*blockOwnerDeletion: true/ },
};

/** The argument texts of the call whose '(' is at `open`, split at top-level commas. */
function argumentsAt(text: string, open: number): string[] {
  const args: string[] = [];
  let depth = 0;
  let start = open + 1;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === '(' || c === '{' || c === '[') depth++;
    else if (c === ')' || c === '}' || c === ']') {
      depth--;
      if (depth === 0) {
        args.push(text.slice(start, i).trim());
        return args;
      }
    } else if (c === ',' && depth === 1) {
      args.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  throw new Error('unbalanced call');
}

const withoutComments = (text: string): string => text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');

interface Usage {
  readonly called: Map<string, string[]>;
  readonly unresolved: string[];
}

function usage(): Usage {
  const called = new Map<string, string[]>();
  const unresolved: string[] = [];
  const add = (key: string, where: string): void => void called.set(key, [...(called.get(key) ?? []), where]);
  for (const file of sources(join(REPO, 'src'))) {
    const rel = relative(REPO, file);
    const text = withoutComments(readFileSync(file, 'utf8'));
    const line = (index: number): string => `${rel}:${text.slice(0, index).split('\n').length}`;
    for (const m of text.matchAll(/([\w#.]+)\.(get|list|listAll|stream|create|replace|patch|delete)(?:<[^>()]*>)?\(/g)) {
      const args = argumentsAt(text, m.index + m[0].length - 1);
      const resource = RESOURCES[args[0] ?? ''];
      const client = /rest$/i.test(m[1]!);
      if (!resource) {
        if (client && !GENERIC_FILES.includes(rel)) unresolved.push(`${line(m.index)}: ${m[0]}${args[0]}`);
        continue;
      }
      const method = m[2]!;
      const sub = (method === 'replace' && args.includes("'status'")) || (method === 'patch' && /subresource: 'status'/.test(args.join(','))) ? 'status' : undefined;
      add(`${resourceName(resource, sub)}:${METHODS[method]}`, line(m.index));
    }
    for (const [helper, verbs] of Object.entries(HELPERS)) {
      for (const m of text.matchAll(new RegExp(`(?<![\\w.])${helper.replace(' ', '\\s+')}(?:<[^>()]*>)?\\(`, 'g'))) {
        const resource = RESOURCES[argumentsAt(text, m.index + m[0].length - 1)[1] ?? ''];
        if (!resource) continue; // a same-named function of another shape (e.g. environments/deps.ts writeStatus)
        for (const [verb, sub] of verbs) add(`${resourceName(resource, sub)}:${verb}`, line(m.index));
      }
    }
  }
  return { called, unresolved };
}

interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

function granted(): Set<string> {
  const rules = parse(readFileSync(join(CHART, 'files', 'operator-rbac-rules.yaml'), 'utf8')) as PolicyRule[];
  return new Set(rules.flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g || 'core'}/${res}:${v}`)))));
}

describe('the operator RBAC is exactly what its code uses', () => {
  const { called, unresolved } = usage();
  const grants = granted();

  it('every REST call names its resource type (or goes through a known generic helper)', () => {
    expect(unresolved).toEqual([]);
    // The scan sees the operator's main paths at all (a broken pattern would find nothing).
    expect(called.get('agentenv.io/agentenvironments:watch')).toBeDefined();
    expect(called.get('core/pods:create')).toBeDefined();
  });

  it('every called verb is granted', () => {
    const missing = [...called.keys()].filter((k) => !grants.has(k)).map((k) => `${k} (called at ${called.get(k)!.join(', ')})`);
    expect(missing).toEqual([]);
  });

  it('every granted verb is called (or implied by an owner reference the code sets)', () => {
    const unused = [...grants].filter((k) => !called.has(k) && !IMPLIED[k]);
    expect(unused).toEqual([]);
    for (const [grant, { file, shows }] of Object.entries(IMPLIED)) {
      expect(grants.has(grant), `${grant} is listed as implied but not granted`).toBe(true);
      expect(readFileSync(join(REPO, file), 'utf8'), `${grant}: ${file} no longer sets such an owner reference`).toMatch(shows);
    }
  });
});
