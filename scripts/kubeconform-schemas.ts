/**
 * Writes standalone, strict JSON schemas in kubeconform's layout
 * (`<kind>-<group prefix>-<version>.json`, `<kind>-<version>.json` for the core group) from
 *   - the Kubernetes OpenAPI v3 documents (`api/openapi-spec/v3/*.json`, one per group-version, as
 *     published in the k8s.io/kubernetes module), and
 *   - CustomResourceDefinition files (each served version's `openAPIV3Schema`).
 *
 * kubeconform fetches such schemas from GitHub by default, which these machines cannot reach; this
 * is the same transformation (openapi2jsonschema's "standalone-strict"), done locally from sources
 * that come through the Go module proxy:
 *   - each document's `#/components/schemas/X` references become `#/definitions/X` of the output
 *     file, which carries exactly the definitions it reaches (recursive types stay references);
 *   - strict: every object schema with `properties` and no `additionalProperties` gets
 *     `additionalProperties: false` (unless `x-kubernetes-preserve-unknown-fields`), so a misspelt
 *     field is an error as it is for a server-side dry run with field validation;
 *   - CRD extensions become JSON Schema: `x-kubernetes-int-or-string` → integer or string,
 *     `nullable` → null allowed; OpenAPI `format`s are dropped (annotations, and kubeconform's
 *     validator would reject unknown ones such as int-or-string).
 */
import { readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

type Schema = Record<string, unknown>;
const DRAFT = 'https://json-schema.org/draft/2020-12/schema';
const REF_PREFIX = '#/components/schemas/';

interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

/** kubeconform's file name for a kind (see its registry.schemaPath: first label of the group). */
export function schemaFileName(gvk: GroupVersionKind): string {
  const suffix = gvk.group ? `-${gvk.group.split('.')[0]!.toLowerCase()}-${gvk.version}` : `-${gvk.version}`;
  return `${gvk.kind.toLowerCase()}${suffix}.json`;
}

function isObject(v: unknown): v is Schema {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Convert one OpenAPI/CRD schema node (recursively) into strict JSON Schema 2020-12. */
function convert(node: unknown, refs: Set<string>): unknown {
  if (Array.isArray(node)) return node.map((n) => convert(n, refs));
  if (!isObject(node)) return node;
  const out: Schema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'format' || key === 'nullable' || key === 'x-kubernetes-int-or-string') continue;
    // Values, not schemas: copy as they are.
    if (key === 'default' || key === 'enum' || key === 'example' || key.startsWith('x-kubernetes-')) {
      out[key] = value;
      continue;
    }
    if (key === '$ref' && typeof value === 'string' && value.startsWith(REF_PREFIX)) {
      const name = value.slice(REF_PREFIX.length);
      refs.add(name);
      out[key] = `#/definitions/${name}`;
      continue;
    }
    // Property maps hold schemas keyed by field name: convert the values, keep the keys.
    if ((key === 'properties' || key === 'patternProperties' || key === 'definitions') && isObject(value)) {
      out[key] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, convert(v, refs)]));
      continue;
    }
    out[key] = convert(value, refs);
  }
  if (node['x-kubernetes-int-or-string'] === true) {
    delete out['type'];
    out['anyOf'] = [{ type: 'integer' }, { type: 'string' }];
  }
  if (node['nullable'] === true && typeof out['type'] === 'string') out['type'] = [out['type'], 'null'];
  if (isObject(out['properties']) && out['additionalProperties'] === undefined && node['x-kubernetes-preserve-unknown-fields'] !== true) {
    out['additionalProperties'] = false;
  }
  return out;
}

/** A root schema plus the transitive closure of the components it references. */
function standalone(root: Schema, components: Readonly<Record<string, unknown>>): Schema {
  const definitions: Record<string, unknown> = {};
  const pending = new Set<string>();
  const converted = convert(root, pending) as Schema;
  while (pending.size) {
    const [name] = pending;
    pending.delete(name!);
    if (name! in definitions) continue;
    const component = components[name!];
    if (component === undefined) throw new Error(`unresolved reference ${REF_PREFIX}${name}`);
    const refs = new Set<string>();
    definitions[name!] = convert(component, refs);
    for (const r of refs) if (!(r in definitions)) pending.add(r);
  }
  return { $schema: DRAFT, ...converted, ...(Object.keys(definitions).length ? { definitions } : {}) };
}

async function fromOpenApiV3(dir: string, outDir: string): Promise<number> {
  let written = 0;
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.json')).sort()) {
    const doc = JSON.parse(await readFile(join(dir, file), 'utf8')) as { components?: { schemas?: Record<string, Schema> } };
    const components = doc.components?.schemas ?? {};
    for (const schema of Object.values(components)) {
      const gvks = schema['x-kubernetes-group-version-kind'] as GroupVersionKind[] | undefined;
      // A schema served under several group-versions (DeleteOptions, WatchEvent) is not a manifest kind.
      if (!gvks || gvks.length !== 1) continue;
      const gvk = gvks[0]!;
      if (gvk.kind.endsWith('List') || !isObject(schema['properties']) || !('metadata' in schema['properties'])) continue;
      await writeFile(join(outDir, schemaFileName(gvk)), JSON.stringify(standalone(schema, components)));
      written++;
    }
  }
  return written;
}

const TYPE_META: Schema = {
  apiVersion: { type: 'string' },
  kind: { type: 'string' },
  metadata: { type: 'object' },
};

async function fromCrd(file: string, outDir: string): Promise<number> {
  let written = 0;
  for (const doc of parseAllDocuments(await readFile(file, 'utf8'))) {
    const crd = doc.toJS() as { kind?: string; spec?: { group: string; names: { kind: string }; versions: { name: string; schema?: { openAPIV3Schema?: Schema } }[] } };
    if (crd?.kind !== 'CustomResourceDefinition' || !crd.spec) continue;
    for (const v of crd.spec.versions) {
      const root = v.schema?.openAPIV3Schema;
      if (!root) continue;
      // The apiserver supplies apiVersion/kind/metadata for every custom resource; CRDs may omit them.
      const withTypeMeta = { ...root, properties: { ...TYPE_META, ...(isObject(root['properties']) ? root['properties'] : {}) } };
      const gvk = { group: crd.spec.group, version: v.name, kind: crd.spec.names.kind };
      await writeFile(join(outDir, schemaFileName(gvk)), JSON.stringify(standalone(withTypeMeta, {})));
      written++;
    }
  }
  return written;
}

/** Write every schema into `outDir`; returns how many files were written. */
export async function writeKubeconformSchemas(options: { openapiV3Dir: string; crdFiles: readonly string[]; outDir: string }): Promise<number> {
  await mkdir(options.outDir, { recursive: true });
  let written = await fromOpenApiV3(options.openapiV3Dir, options.outDir);
  for (const file of options.crdFiles) written += await fromCrd(file, options.outDir);
  if (written === 0) throw new Error(`no schemas found in ${options.openapiV3Dir}`);
  return written;
}
