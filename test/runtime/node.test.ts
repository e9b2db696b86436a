/**
 * The containerd node itself: a real kubelet registered with the local apiserver, containerd as its
 * runtime, and the project's image (built from the Dockerfile) run as `kubectl run` would: the image's
 * ENTRYPOINT (the CLI) with its CMD (`--help`).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CORE, type KubeObject } from '../../src/k8s/rest.ts';
import type { Pod } from '../../src/sessions/objects/pod-types.ts';
import { adminRest, createNamespace, waitFor, type TestNamespace } from '../support/cluster.ts';
import { kubectl, unavailable } from './world.ts';

interface Node extends KubeObject {
  status?: { conditions?: Array<{ type: string; status: string }>; nodeInfo?: { containerRuntimeVersion?: string; kubeletVersion?: string }; addresses?: Array<{ type: string; address: string }> };
  spec?: { taints?: Array<{ key: string }> };
}

describe.skipIf(unavailable())('the containerd node', () => {
  let ns: TestNamespace;
  beforeAll(async () => {
    ns = await createNamespace('node');
  });
  afterAll(async () => {
    await ns?.cleanup();
  });

  it('is Ready, untainted, runs containerd 2 and the kubelet of the pinned Kubernetes version, at the node address', async () => {
    const node = await waitFor(async () => {
      const n = await adminRest().get<Node>(CORE.nodes, undefined, 'agentenv-containerd');
      const ready = n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      // The node lifecycle controller lifts the not-ready taint once the kubelet reports Ready.
      return ready && !(n.spec?.taints ?? []).length ? n : undefined;
    }, { what: 'node agentenv-containerd Ready without taints', timeoutMs: 60_000 });
    expect(node.status?.nodeInfo?.containerRuntimeVersion).toMatch(/^containerd:\/\/2\./);
    expect(node.status?.nodeInfo?.kubeletVersion).toBe('v1.36.3');
    expect(node.status?.addresses).toContainEqual({ type: 'InternalIP', address: inject('nodeAddress') });
  });

  it('runs the project image like `kubectl run`: the CLI prints its help (ENTRYPOINT + CMD), read back with `kubectl logs` through the kubelet', async () => {
    await kubectl('run', 'help', '--namespace', ns.name, `--image=${inject('projectImage')}`, '--restart=Never');
    const pod = await waitFor(async () => {
      const p = await adminRest().get<Pod>(CORE.pods, ns.name, 'help');
      return p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' ? p : undefined;
    }, { what: 'Pod help to finish', timeoutMs: 90_000 });
    expect(pod.status?.phase).toBe('Succeeded');
    const help = await kubectl('logs', '--namespace', ns.name, 'help');
    expect(help).toMatch(/^Usage: agentenv \[options\] \[command\]/);
    expect(help).toContain('operator');
    // containerd ran the image by its content digest (the imported archive; nothing was pulled).
    const status = pod.status?.containerStatuses?.[0] as { imageID?: string } | undefined;
    expect(status?.imageID).toMatch(/sha256:[0-9a-f]{64}/);
  });
});
