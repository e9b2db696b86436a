/** Where `npm run k8s:up` keeps the running local cluster's state (all under the git-ignored `.k8s/`). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../', import.meta.url));
export const K8S_DIR = join(REPO, '.k8s');
export const STATE = join(K8S_DIR, 'state.json');
export const HOST_LOG = join(K8S_DIR, 'cluster.log');

export interface ClusterState {
  /** The detached host process; every cluster process dies with it. */
  hostPid: number;
  server: string;
  kubeconfig: string;
  operatorKubeconfig: string;
  /** `process` (the process kubelet) or `containerd` (a real kubelet on containerd; `--runtime containerd`). */
  runtime?: 'process' | 'containerd';
  /** Component pids (informational: stopping the host stops them). */
  pids: Record<string, number>;
  startedAt: string;
}

export function readState(): ClusterState | undefined {
  try {
    return JSON.parse(readFileSync(STATE, 'utf8')) as ClusterState;
  } catch {
    return undefined;
  }
}
