/**
 * The process kubelet survives its own restart: a second kubelet process (its own node, not
 * scheduling, so it never competes with the run's kubelet) runs a Pod, is SIGKILLed, and a new
 * process on the same root dir re-adopts the container still running (same process, restart count
 * 0), records the exit code of the one that ended while no kubelet ran, and still stops the Pod
 * gracefully on deletion — with reaper and with the setsid fallback. And nothing outlives the test
 * run: when reaper's anchor dies, the containers die, even if the kubelet was SIGKILLed before.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, expect, inject, it } from 'vitest';
import { isNotFound } from '../../src/k8s/errors.ts';
import { CORE } from '../../src/k8s/rest.ts';
import { ensureControlPlaneBinaries } from '../../src/localcluster/index.ts';
import { LEASE_NAMESPACE } from '../../src/localcluster/kubelet/node.ts';
import type { Pod } from '../../src/localcluster/kubelet/pod-types.ts';
import { adminRest, createNamespace, waitFor, type TestNamespace } from '../support/cluster.ts';

const NODE = 'agentenv-restart';
const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const rest = adminRest();
let ns: TestNamespace;
let dir: string;
let kubelet: ChildProcess | undefined;

async function startKubelet(withReaper: boolean, anchorPid = process.pid): Promise<void> {
  const { reaper } = await ensureControlPlaneBinaries();
  const log = openSync(join(dir, 'kubelet.log'), 'a');
  // With reaper, anchored to this test process: containers die with the test run, not with the kubelet.
  const guard = withReaper ? ['--reaper', reaper, '--anchor-pid', String(anchorPid)] : [];
  kubelet = spawn(process.execPath, [MAIN, 'kubelet', '--kubeconfig', inject('adminKubeconfig'), '--node-name', NODE, '--root-dir', join(dir, 'root'), '--no-scheduling', ...guard], {
    stdio: ['ignore', log, log],
  });
  closeSync(log);
}

async function stopKubelet(signal: NodeJS.Signals): Promise<void> {
  const k = kubelet;
  kubelet = undefined;
  if (!k || k.exitCode !== null || k.signalCode !== null) return;
  const exited = new Promise((resolve) => k.once('exit', resolve));
  k.kill(signal);
  await exited;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const readPid = async (name: string): Promise<number> => Number((await readFile(join(dir, name), 'utf8')).trim());

beforeAll(async () => {
  ns = await createNamespace('kubelet-restart');
});

afterAll(async () => {
  await ns?.cleanup();
  await rest.delete(CORE.nodes, undefined, NODE).catch(() => {});
  await rest.delete(CORE.leases, LEASE_NAMESPACE, NODE).catch(() => {});
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kubelet-restart-'));
});

afterEach(async () => {
  await stopKubelet('SIGTERM');
  if (dir) await rm(dir, { recursive: true, force: true });
});

// Sequential: both cases run one kubelet process as the same node.
it.each([
  ['under reaper', true],
  ['under setsid (no reaper)', false],
])('a restarted kubelet (%s) re-adopts running containers, records exits it missed, and still deletes the Pod gracefully', async (_how, withReaper) => {
  const podName = withReaper ? 'survivor-reaper' : 'survivor-setsid';
  await startKubelet(withReaper);
  // `$$` is the API's escape for `$`, so the shell's `$$` is written `$$$$`.
  const steady = `echo $$$$ > ${dir}/steady.pid; trap 'echo term >> ${dir}/steady.term; exit 0' TERM; while :; do sleep 0.1; done`;
  const short = `echo $$$$ > ${dir}/short.pid; while [ ! -f ${dir}/go ]; do sleep 0.1; done; exit 7`;
  await rest.create<Pod>(CORE.pods, ns.name, {
    metadata: { name: podName, namespace: ns.name },
    spec: {
      nodeName: NODE,
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 30,
      containers: [
        { name: 'steady', image: 'local/shell', command: ['/bin/sh', '-c', steady] },
        { name: 'short', image: 'local/shell', command: ['/bin/sh', '-c', short] },
      ],
    },
  });
  const get = (): Promise<Pod> => rest.get<Pod>(CORE.pods, ns.name, podName);
  const status = (p: Pod, name: string) => p.status?.containerStatuses?.find((c) => c.name === name);
  const before = await waitFor(async () => {
    const p = await get();
    return status(p, 'steady')?.state.running && status(p, 'short')?.state.running ? p : undefined;
  }, { what: 'both containers running' });
  const steadyPid = await waitFor(() => readPid('steady.pid'), { what: 'the steady pid' });
  const shortPid = await waitFor(() => readPid('short.pid'), { what: 'the short pid' });

  await stopKubelet('SIGKILL');
  expect(alive(steadyPid)).toBe(true);
  // The short container ends while no kubelet runs.
  await writeFile(join(dir, 'go'), '');
  await waitFor(() => !alive(shortPid), { what: 'the short container to exit' });

  await startKubelet(withReaper);
  const after = await waitFor(async () => {
    const p = await get();
    return status(p, 'short')?.state.terminated ? p : undefined;
  }, { what: 'the missed exit to be recorded' });
  expect(status(after, 'short')?.state.terminated?.exitCode).toBe(7);
  expect(status(after, 'steady')).toMatchObject({ restartCount: 0, state: { running: { startedAt: status(before, 'steady')?.state.running?.startedAt } } });
  expect(alive(steadyPid)).toBe(true);
  expect(await readPid('steady.pid')).toBe(steadyPid);

  await rest.delete(CORE.pods, ns.name, podName);
  await waitFor(async () => {
    try {
      await get();
      return false;
    } catch (err) {
      return isNotFound(err);
    }
  }, { timeoutMs: 30_000, what: 'the Pod object to disappear' });
  expect((await readFile(join(dir, 'steady.term'), 'utf8')).trim()).toBe('term');
  expect(alive(steadyPid)).toBe(false);
});

it("when the anchor (the test run) dies, reaper kills the containers even though the kubelet was SIGKILLed first", async () => {
  // A stand-in for the test run: a process this test can kill.
  const anchor = spawn('sleep', ['600'], { stdio: 'ignore' });
  try {
    await startKubelet(true, anchor.pid!);
    await rest.create<Pod>(CORE.pods, ns.name, {
      metadata: { name: 'orphan', namespace: ns.name },
      spec: {
        nodeName: NODE,
        automountServiceAccountToken: false,
        containers: [{ name: 'main', image: 'local/shell', command: ['/bin/sh', '-c', `echo $$$$ > ${dir}/orphan.pid; sleep 600 & while :; do sleep 0.1; done`] }],
      },
    });
    const pid = await waitFor(() => readPid('orphan.pid'), { what: 'the container pid' });
    await stopKubelet('SIGKILL');
    expect(alive(pid)).toBe(true);
    anchor.kill('SIGKILL');
    await waitFor(() => !alive(pid), { timeoutMs: 10_000, what: 'the container to die with its anchor' });
  } finally {
    anchor.kill('SIGKILL');
    await rest.delete(CORE.pods, ns.name, 'orphan', { gracePeriodSeconds: 0 }).catch(() => {});
  }
});
