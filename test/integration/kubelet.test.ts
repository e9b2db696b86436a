/**
 * The process kubelet on the real apiserver: it binds Pods to its node, runs their containers as
 * local processes (native sidecar first, gated on its startup probe, stopped after the main
 * container), reports status, delivers SIGTERM on deletion and then removes the Pod, reports image
 * pull failures, and gives each process exactly the environment and volumes its spec describes.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { isNotFound } from '../../src/k8s/errors.ts';
import { CORE, resource, type KubeObject } from '../../src/k8s/rest.ts';
import type { Container, Pod } from '../../src/localcluster/kubelet/pod-types.ts';
import { adminRest, createNamespace, waitFor, type TestNamespace } from '../support/cluster.ts';

const rest = adminRest();
let ns: TestNamespace;
/** A host directory the test's scripts write into (processes share the host's file tree). */
let hostDir: string;

beforeAll(async () => {
  ns = await createNamespace('kubelet');
  hostDir = await mkdtemp(join(tmpdir(), 'kubelet-it-'));
});

afterAll(async () => {
  await ns?.cleanup();
  if (hostDir) await rm(hostDir, { recursive: true, force: true });
});

const sh = (name: string, script: string, extra: Partial<Container> = {}): Container => ({ name, image: 'local/shell', command: ['/bin/sh', '-c', script], ...extra });

async function createPod(name: string, spec: Pod['spec'], meta: Partial<NonNullable<Pod['metadata']>> = {}): Promise<Pod> {
  // No service-account token: these Pods do not talk to the API.
  return rest.create<Pod>(CORE.pods, ns.name, { metadata: { name, namespace: ns.name, ...meta }, spec: { automountServiceAccountToken: false, ...spec } as Pod['spec'] });
}

const getPod = (name: string): Promise<Pod> => rest.get<Pod>(CORE.pods, ns.name, name);

const waitForPod = (name: string, ok: (p: Pod) => boolean, what: string, timeoutMs = 60_000): Promise<Pod> =>
  waitFor(async () => {
    const p = await getPod(name);
    return ok(p) ? p : undefined;
  }, { timeoutMs, what: `pod ${name} ${what}` });

function containerLog(pod: Pod, container: string): Promise<string> {
  const m = pod.metadata!;
  return readFile(join(inject('kubeletRootDir'), 'pods', `${m.namespace}_${m.name}_${m.uid}`, 'logs', `${container}.log`), 'utf8');
}

describe.concurrent('process kubelet', () => {
  it('runs a native sidecar before the main container, then stops it once the main container exits and the Pod Succeeded', async () => {
    const pod = await createPod('sidecar-then-main', {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 10,
      volumes: [{ name: 'shared', emptyDir: {} }],
      initContainers: [
        sh('side', "trap 'echo sidecar got SIGTERM; exit 0' TERM; touch /shared/side-started; while :; do sleep 0.1; done", {
          restartPolicy: 'Always',
          volumeMounts: [{ name: 'shared', mountPath: '/shared' }],
          startupProbe: { exec: { command: ['test', '-f', '/shared/side-started'] }, periodSeconds: 1, failureThreshold: 30 },
        }),
      ],
      containers: [sh('main', 'test -f /shared/side-started && echo sidecar was running first; sleep 1; exit 0', { volumeMounts: [{ name: 'shared', mountPath: '/shared' }] })],
    });
    expect(pod.spec.nodeName).toBeUndefined();

    const done = await waitForPod('sidecar-then-main', (p) => p.status?.phase === 'Succeeded', 'Succeeded');
    expect(done.spec.nodeName).toBe('agentenv-local');
    expect(done.status?.podIP).toMatch(/^127\./);
    expect(done.status?.podIP).not.toBe('127.0.0.1');
    expect(done.status?.conditions?.find((c) => c.type === 'PodScheduled')?.status).toBe('True');
    expect(done.status?.conditions?.find((c) => c.type === 'Initialized')?.status).toBe('True');
    expect(done.status?.containerStatuses?.[0]?.state.terminated).toMatchObject({ exitCode: 0, reason: 'Completed' });
    expect(done.status?.initContainerStatuses?.[0]).toMatchObject({ name: 'side', restartCount: 0 });
    expect(done.status?.initContainerStatuses?.[0]?.state.terminated).toBeDefined();
    expect(await containerLog(done, 'main')).toContain('sidecar was running first');
    expect(await containerLog(done, 'side')).toContain('sidecar got SIGTERM');
  });

  it('restarts a native sidecar that exits while the main container runs', async () => {
    const runs = join(hostDir, 'sidecar-runs');
    // A sidecar without a startup probe counts as started at launch, so main may run before the
    // sidecar's first line: with no file yet, main's `wc -l <` would fail and end its loop at once.
    await writeFile(runs, '');
    await createPod('sidecar-restart', {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 5,
      initContainers: [
        // The first run dies at once; the second stays up until stopped.
        sh('side', `echo run >> ${runs}; [ $(wc -l < ${runs}) -ge 2 ] || exit 1; trap 'exit 0' TERM; while :; do sleep 0.1; done`, { restartPolicy: 'Always' }),
      ],
      containers: [sh('main', `while [ $(wc -l < ${runs}) -lt 2 ]; do sleep 0.1; done; exit 0`)],
    });
    const done = await waitForPod('sidecar-restart', (p) => p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed', 'finished');
    expect(done.status?.phase).toBe('Succeeded');
    expect(done.status?.initContainerStatuses?.[0]?.restartCount).toBe(1);
    expect(done.status?.initContainerStatuses?.[0]?.lastState.terminated?.exitCode).toBe(1);
  });

  it('runs plain init containers in order and retries a failing one under OnFailure, counting its restarts', async () => {
    const order = join(hostDir, 'init-order');
    const attempts = join(hostDir, 'init-attempts');
    await createPod('init-order', {
      restartPolicy: 'OnFailure',
      initContainers: [
        // Fails on its first run, succeeds on the second.
        sh('first', `echo x >> ${attempts}; [ $(wc -l < ${attempts}) -ge 2 ] || exit 1; echo first >> ${order}`),
        sh('second', `echo second >> ${order}`),
      ],
      containers: [sh('main', `echo main >> ${order}`)],
    });
    const done = await waitForPod('init-order', (p) => p.status?.phase === 'Succeeded', 'Succeeded');
    expect((await readFile(order, 'utf8')).trim().split('\n')).toEqual(['first', 'second', 'main']);
    expect(done.status?.initContainerStatuses?.map((c) => [c.name, c.restartCount, c.state.terminated?.exitCode])).toEqual([
      ['first', 1, 0],
      ['second', 0, 0],
    ]);
  });

  it('deleting a running Pod delivers SIGTERM to every process of it, and the Pod object goes once they exited', async () => {
    const marks = join(hostDir, 'sigterm');
    const child = `sh -c 'trap "echo child >> ${marks}; exit 0" TERM; while :; do sleep 0.1; done' &`;
    await createPod('delete-me', {
      terminationGracePeriodSeconds: 60,
      containers: [sh('main', `${child} trap 'echo parent >> ${marks}; wait; exit 0' TERM; echo up; while :; do sleep 0.1; done`)],
    });
    const running = await waitForPod('delete-me', (p) => p.status?.phase === 'Running' && p.status.containerStatuses?.[0]?.ready === true, 'Running and ready');
    await waitFor(async () => (await containerLog(running, 'main')).includes('up'), { what: 'the script to be up' });

    await rest.delete(CORE.pods, ns.name, 'delete-me');
    await waitFor(async () => {
      try {
        await getPod('delete-me');
        return false;
      } catch (err) {
        return isNotFound(err);
      }
    }, { timeoutMs: 45_000, what: 'the Pod object to disappear' });
    const lines = (await readFile(marks, 'utf8')).trim().split('\n').sort();
    expect(lines).toEqual(['child', 'parent']);
  });

  it('an eviction (pods/eviction) terminates the Pod the same way: SIGTERM, then the object goes', async () => {
    const marks = join(hostDir, 'evicted');
    await createPod('evict-me', { terminationGracePeriodSeconds: 30, containers: [sh('main', `trap 'echo evicted >> ${marks}; exit 0' TERM; echo up; while :; do sleep 0.1; done`)] });
    const running = await waitForPod('evict-me', (p) => p.status?.containerStatuses?.[0]?.state.running !== undefined, 'running');
    await waitFor(async () => (await containerLog(running, 'main')).includes('up'), { what: 'the script to be up' });
    const evictions = resource('', 'v1', 'pods/evict-me/eviction', 'Eviction');
    await rest.create(evictions, ns.name, { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: 'evict-me', namespace: ns.name } });
    await waitFor(async () => {
      try {
        await getPod('evict-me');
        return false;
      } catch (err) {
        return isNotFound(err);
      }
    }, { timeoutMs: 25_000, what: 'the evicted Pod object to disappear' });
    expect((await readFile(marks, 'utf8')).trim()).toBe('evicted');
  });

  it("the project image runs the repository's CLI with the container's args", async () => {
    await createPod('project-image', { restartPolicy: 'Never', containers: [{ name: 'cli', image: 'ghcr.io/agentenv-io/agentenv:any-tag', args: ['--help'] }] });
    const done = await waitForPod('project-image', (p) => p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed', 'finished');
    expect(done.status?.phase).toBe('Succeeded');
    expect(await containerLog(done, 'cli')).toMatch(/Usage: agentenv/);
  });

  it('an image it cannot run waits with ErrImagePull, then ImagePullBackOff, and the Pod stays Pending', async () => {
    await createPod('no-such-image', { containers: [{ name: 'main', image: 'registry.example/nope:1.0' }] });
    const seen = new Set<string>();
    const pulled = await waitForPod('no-such-image', (p) => {
      const reason = p.status?.containerStatuses?.[0]?.state.waiting?.reason;
      if (reason) seen.add(reason);
      return reason === 'ImagePullBackOff';
    }, 'in ImagePullBackOff');
    expect(pulled.status?.phase).toBe('Pending');
    expect(pulled.status?.containerStatuses?.[0]?.state.waiting?.message).toContain('registry.example/nope:1.0');
    expect(seen.has('ErrImagePull') || pulled.status?.containerStatuses?.[0]?.restartCount === 0).toBe(true);
  });

  it('a Pod whose nodeSelector this node does not match stays Pending with PodScheduled=False Unschedulable', async () => {
    await createPod('unschedulable', { nodeSelector: { 'agentenv.io/no-such-label': 'x' }, containers: [sh('main', 'sleep 60')] });
    const pending = await waitForPod('unschedulable', (p) => p.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.reason === 'Unschedulable') ?? false, 'Unschedulable');
    expect(pending.spec.nodeName).toBeUndefined();
    expect(pending.status?.phase).toBe('Pending');
  });

  it("gives each process exactly its spec's environment and volumes (modes, read-only mounts, downward API) and nothing of the kubelet's own", async () => {
    await rest.create<KubeObject>(CORE.secrets, ns.name, { metadata: { name: 'creds' }, stringData: { token: 's3cret' } } as KubeObject);
    await rest.create<KubeObject>(CORE.configMaps, ns.name, { metadata: { name: 'settings' }, data: { mode: 'fast' } } as KubeObject);
    const script = [
      // `$$` is the API's escape for `$` (as in a cluster), so the shell's `$$` is written `$$$$`.
      "tr '\\0' '\\n' < /proc/$$$$/environ | sort | sed 's/^/env: /'",
      "stat -c 'mode: %a %n' /etc/creds/token /etc/settings/mode /etc/podinfo/labels",
      "echo \"labels: $(cat /etc/podinfo/labels)\"",
      "touch /etc/creds/new 2>/dev/null && echo creds writable || echo creds read-only",
      'echo hello > /scratch/file && echo "scratch: $(cat /scratch/file)"',
      'echo "cwd: $(pwd)"',
    ].join('; ');
    await createPod('env-and-volumes', {
      restartPolicy: 'Never',
      serviceAccountName: 'default',
      volumes: [
        { name: 'creds', secret: { secretName: 'creds', defaultMode: 0o400 } },
        { name: 'settings', configMap: { name: 'settings' } },
        { name: 'podinfo', downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' }, mode: 0o440 }] } },
        { name: 'scratch', emptyDir: {} },
      ],
      containers: [
        sh('main', script, {
          workingDir: '/scratch',
          env: [
            { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'creds', key: 'token' } } },
            { name: 'MODE', valueFrom: { configMapKeyRef: { name: 'settings', key: 'mode' } } },
            { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
            { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
            { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
            { name: 'SA', valueFrom: { fieldRef: { fieldPath: 'spec.serviceAccountName' } } },
            { name: 'TIER', valueFrom: { fieldRef: { fieldPath: "metadata.labels['tier']" } } },
            { name: 'GREETING', value: 'mode is $(MODE)' },
          ],
          volumeMounts: [
            { name: 'creds', mountPath: '/etc/creds', readOnly: true },
            { name: 'settings', mountPath: '/etc/settings' },
            { name: 'podinfo', mountPath: '/etc/podinfo' },
            { name: 'scratch', mountPath: '/scratch' },
          ],
        }),
      ],
    }, { labels: { tier: 'test' } });
    const done = await waitForPod('env-and-volumes', (p) => p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed', 'finished');
    expect(done.status?.phase).toBe('Succeeded');
    const log = await containerLog(done, 'main');
    const env = log.split('\n').filter((l) => l.startsWith('env: ')).map((l) => l.slice(5));
    // What a real kubelet gives every container: the apiserver's address (here its own, no Service network).
    const apiserver = new URL(rest.kubeConfig.getCurrentCluster()!.server);
    expect(env).toEqual(
      [
        'GREETING=mode is fast',
        'HOME=/root',
        'HOSTNAME=env-and-volumes',
        `KUBERNETES_SERVICE_HOST=${apiserver.hostname}`,
        `KUBERNETES_SERVICE_PORT=${apiserver.port}`,
        'MODE=fast',
        `NODE=agentenv-local`,
        `POD_IP=${done.status?.podIP}`,
        'POD_NAME=env-and-volumes',
        `POD_NAMESPACE=${ns.name}`,
        'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        'SA=default',
        'TIER=test',
        'TOKEN=s3cret',
      ].sort(),
    );
    expect(log).toContain('mode: 400 /etc/creds/token');
    expect(log).toContain('mode: 644 /etc/settings/mode');
    expect(log).toContain('mode: 440 /etc/podinfo/labels');
    expect(log).toContain('labels: tier="test"');
    expect(log).toContain('creds read-only');
    expect(log).toContain('scratch: hello');
    expect(log).toContain('cwd: /scratch');
  });

  it('serves HTTP readiness probes on the Pod IP and restarts a container whose liveness probe fails', async () => {
    const server = `require('node:http').createServer((_, res) => res.end('ok')).listen(8080, process.env.POD_IP)`;
    await createPod('probed', {
      restartPolicy: 'Always',
      containers: [
        {
          name: 'web',
          image: 'local/shell',
          command: [process.execPath, '-e', server],
          env: [{ name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }],
          ports: [{ name: 'http', containerPort: 8080 }],
          readinessProbe: { httpGet: { path: '/', port: 'http' }, periodSeconds: 1 },
        },
        sh('doomed', 'sleep 600', { livenessProbe: { exec: { command: ['false'] }, periodSeconds: 1, failureThreshold: 1 } }),
      ],
      terminationGracePeriodSeconds: 2,
    });
    const ready = await waitForPod('probed', (p) => p.status?.containerStatuses?.find((c) => c.name === 'web')?.ready === true, 'web ready');
    expect(ready.status?.phase).toBe('Running');
    const restarted = await waitForPod('probed', (p) => (p.status?.containerStatuses?.find((c) => c.name === 'doomed')?.restartCount ?? 0) >= 1, 'doomed restarted');
    expect(restarted.status?.containerStatuses?.find((c) => c.name === 'doomed')?.lastState.terminated).toBeDefined();
    await rest.delete(CORE.pods, ns.name, 'probed', { gracePeriodSeconds: 1 });
  });
});
