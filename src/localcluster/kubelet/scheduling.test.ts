import { describe, expect, it } from 'vitest';
import { pod } from './fixtures.test-support.ts';
import { allocatePodIP } from './pod-ip.ts';
import { containerArgv, ImagePullError, imageName } from './images.ts';
import { fitsNode, quantity } from './scheduling.ts';
import type { Node } from './pod-types.ts';

const node = (extra: Partial<Node> = {}): Node => ({ metadata: { name: 'n', labels: { 'kubernetes.io/os': 'linux', disk: 'ssd' } }, spec: {}, ...extra });

describe('scheduling onto this node', () => {
  it.each([
    ['no constraints', {}, true],
    ['a matching nodeSelector', { nodeSelector: { disk: 'ssd' } }, true],
    ['a nodeSelector the node lacks', { nodeSelector: { disk: 'hdd' } }, false],
    ['required node affinity In', { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'disk', operator: 'In' as const, values: ['ssd'] }] }] } } } }, true],
    ['required node affinity DoesNotExist', { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'disk', operator: 'DoesNotExist' as const }] }] } } } }, false],
  ])('%s → fits=%s', (_name, spec, fits) => {
    expect(fitsNode(pod(spec), node()).fits).toBe(fits);
  });

  it('an untolerated NoSchedule taint makes the Pod unschedulable, a toleration lets it in', () => {
    const tainted = node({ spec: { taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }] } });
    const result = fitsNode(pod(), tainted);
    expect(result).toMatchObject({ fits: false });
    expect(!result.fits && result.message).toMatch(/untolerated taint \{dedicated: gpu\}/);
    expect(fitsNode(pod({ tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' }] }), tainted).fits).toBe(true);
    expect(fitsNode(pod({ tolerations: [{ operator: 'Exists' }] }), tainted).fits).toBe(true);
  });

  it('requests larger than the node\'s allocatable make the Pod unschedulable, as kube-scheduler says it', () => {
    const sized = node({ status: { allocatable: { cpu: '2', memory: '4Gi', pods: '110' } } });
    const asking = (requests: Record<string, string>, extra: object = {}) => pod({ containers: [{ name: 'main', image: 'x', resources: { requests } }], ...extra });
    expect(fitsNode(asking({ cpu: '1500m', memory: '1Gi' }), sized).fits).toBe(true);
    const tooMuch = fitsNode(asking({ cpu: '64', memory: '1Ti' }), sized);
    expect(!tooMuch.fits && tooMuch.message).toMatch(/^0\/1 nodes are available: 1 Insufficient cpu, Insufficient memory\./);
    // A sidecar's request adds to the app containers'.
    const sidecar = { initContainers: [{ name: 'side', image: 'x', restartPolicy: 'Always', resources: { requests: { cpu: '1' } } }] };
    expect(fitsNode(asking({ cpu: '1500m' }, sidecar), sized)).toMatchObject({ fits: false, message: expect.stringContaining('Insufficient cpu') });
    // Limits without requests count as requests (the API server defaults them so).
    expect(fitsNode(pod({ containers: [{ name: 'main', image: 'x', resources: { limits: { memory: '5Gi' } } }] }), sized).fits).toBe(false);
  });

  it.each([
    ['500m', 0.5],
    ['2', 2],
    ['1.5Gi', 1.5 * 2 ** 30],
    ['128974848', 128974848],
    ['129M', 129e6],
    ['lots', Number.NaN],
  ])('the quantity %s is %s', (q, n) => {
    expect(quantity(q)).toBe(n);
  });

  it("reports the kube-scheduler's message for a selector mismatch", () => {
    const result = fitsNode(pod({ nodeSelector: { zone: 'mars' } }), node());
    expect(!result.fits && result.message).toMatch(/^0\/1 nodes are available: 1 node\(s\) didn't match Pod's node affinity\/selector/);
  });
});

describe('pod IPs', () => {
  it('are loopback addresses outside 127.0.0.0/24, stable per uid and unique', () => {
    const a = allocatePodIP('uid-a', new Set());
    expect(a).toMatch(/^127\.(\d+)\.(\d+)\.(\d+)$/);
    expect(a.startsWith('127.0.')).toBe(false);
    expect(allocatePodIP('uid-a', new Set())).toBe(a);
    const b = allocatePodIP('uid-a', new Set([a]));
    expect(b).not.toBe(a);
  });
});

describe('images', () => {
  const runtime = { projectImage: 'ghcr.io/agentenv-io/agentenv', nodeBinary: '/usr/bin/node', repoRoot: '/repo/' };
  it.each([
    ['ghcr.io/agentenv-io/agentenv:v1.2.3', 'ghcr.io/agentenv-io/agentenv'],
    ['ghcr.io/agentenv-io/agentenv@sha256:abc', 'ghcr.io/agentenv-io/agentenv'],
    ['localhost:5000/x/y:tag', 'localhost:5000/x/y'],
    ['local/shell', 'local/shell'],
  ])('%s is named %s', (image, name) => {
    expect(imageName(image)).toBe(name);
  });

  it('the project image runs the CLI with the container args (any tag)', () => {
    expect(containerArgv({ name: 'c', image: 'ghcr.io/agentenv-io/agentenv:dev', args: ['sidecar'] }, runtime)).toEqual(['/usr/bin/node', '/repo/src/cli/main.ts', 'sidecar']);
    // The session Pod's sidecar names the image's Node and its build: this machine's Node, the repository's build.
    expect(containerArgv({ name: 'c', image: 'ghcr.io/agentenv-io/agentenv:dev', command: ['/nodejs/bin/node', '--no-maglev', '/app/dist/sidecar.cjs'] }, runtime)).toEqual(['/usr/bin/node', '--no-maglev', '/repo/dist/sidecar.cjs']);
    expect(containerArgv({ name: 'c', image: 'ghcr.io/agentenv-io/agentenv', command: ['agentenv', 'operator'], args: ['--x'] }, runtime)).toEqual(['/usr/bin/node', '/repo/src/cli/main.ts', 'operator', '--x']);
  });

  it('local/shell runs command+args, or args alone as the command line', () => {
    expect(containerArgv({ name: 'c', image: 'local/shell', command: ['/bin/sh', '-c'], args: ['echo hi'] }, runtime)).toEqual(['/bin/sh', '-c', 'echo hi']);
    expect(containerArgv({ name: 'c', image: 'local/shell', args: ['sleep', '1'] }, runtime)).toEqual(['sleep', '1']);
  });

  it('any other image cannot be pulled', () => {
    expect(() => containerArgv({ name: 'c', image: 'nginx:1.27' }, runtime)).toThrow(ImagePullError);
  });
});
