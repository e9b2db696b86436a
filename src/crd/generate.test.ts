import { describe, expect, it } from 'vitest';
import { customResourceDefinition, RESOURCES } from './generate.ts';

type Node = Record<string, unknown>;

/** Walk every schema node below `node`, with its path. */
function* walk(node: Node, path: string): Generator<[string, Node]> {
  yield [path, node];
  for (const [name, child] of Object.entries((node['properties'] as Record<string, Node> | undefined) ?? {})) {
    yield* walk(child, `${path}.${name}`);
  }
  if (node['items']) yield* walk(node['items'] as Node, `${path}[]`);
  const ap = node['additionalProperties'];
  if (ap && typeof ap === 'object') yield* walk(ap as Node, `${path}{}`);
}

const schemaOf = (i: number): Node => {
  const crd = customResourceDefinition(RESOURCES[i]!) as { spec: { versions: [{ schema: { openAPIV3Schema: Node } }] } };
  return crd.spec.versions[0].schema.openAPIV3Schema;
};

describe.each(RESOURCES.map((r, i) => [r.names.kind, i] as const))('the %s CRD', (_kind, i) => {
  const root = schemaOf(i);

  it('describes every spec and status field (kubectl explain)', () => {
    const props = root['properties'] as Record<string, Node>;
    const missing = [...walk(props['spec']!, 'spec'), ...walk(props['status']!, 'status')]
      .filter(([path, n]) => !path.endsWith('[]') && !path.endsWith('{}') && typeof n['description'] !== 'string')
      .map(([path]) => path);
    expect(missing).toEqual([]);
  });

  it('is structural: every node has a type and no additionalProperties:false', () => {
    for (const [path, n] of walk(root, '')) {
      expect(n['type'], path).toBeTypeOf('string');
      expect(n['additionalProperties'], path).not.toBe(false);
      expect(n['anyOf'] ?? n['oneOf'] ?? n['allOf'], path).toBeUndefined();
    }
  });
});

describe('the AgentEnvironment scale subresource', () => {
  const crd = customResourceDefinition(RESOURCES[0]!) as { spec: { versions: [{ subresources: { scale?: Record<string, string> }; schema: { openAPIV3Schema: Node } }] } };
  const version = crd.spec.versions[0];
  const has = (path: string): boolean => {
    let node: Node | undefined = version.schema.openAPIV3Schema;
    for (const part of path.split('.').slice(1)) node = (node?.['properties'] as Record<string, Node> | undefined)?.[part];
    return node !== undefined;
  };

  it('drives the warm pool size and reads the unbound warm Pods back (HPA and KEDA need all three paths)', () => {
    const scale = version.subresources.scale;
    expect(scale).toEqual({ specReplicasPath: '.spec.selfHosted.warmPool.size', statusReplicasPath: '.status.warmPool.replicas', labelSelectorPath: '.status.warmPool.selector' });
    for (const path of Object.values(scale!)) expect(has(path), path).toBe(true);
  });
});
