/**
 * `npm run k8s:down` — stops the cluster `npm run k8s:up` started and removes `.k8s/`.
 *
 * SIGTERM to the host process makes it stop the kubelet (and its Pods), kube-controller-manager,
 * kube-apiserver and etcd in that order; if it has not exited after 90 s it is SIGKILLed, which still
 * kills every cluster process (they run under reaper with a parent-death signal).
 */
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive } from '../src/localcluster/index.ts';
import { unmountUnder } from '../src/localcluster/node-host.ts';
import { K8S_DIR, readState } from './k8s-state.ts';

async function down(): Promise<void> {
  const state = readState();
  if (state && isAlive(state.hostPid)) {
    process.kill(state.hostPid, 'SIGTERM');
    const deadline = Date.now() + 90_000;
    while (isAlive(state.hostPid) && Date.now() < deadline) await sleep(200);
    if (isAlive(state.hostPid)) process.kill(state.hostPid, 'SIGKILL');
    // Component processes die with the host; wait for them so their files can be removed.
    for (const pid of Object.values(state.pids)) while (isAlive(pid) && Date.now() < deadline + 10_000) await sleep(100);
    console.log('local cluster stopped.');
  } else {
    console.log('no local cluster running.');
  }
  // A containerd node's mounts (volumes, root filesystems) if its host was killed: never remove through them.
  await unmountUnder(K8S_DIR);
  rmSync(K8S_DIR, { recursive: true, force: true });
}

down().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
