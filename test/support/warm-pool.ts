/**
 * What the warm-pool integration files share: an assignment endpoint for the test operator (a free
 * loopback port and a serving certificate, kept across operator lives) and the pool as the admin
 * sees it (live Pods labelled `agentenv.io/warm-pool=<environment>` and unbound).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CORE, type KubeRest } from '../../src/k8s/rest.ts';
import { writeServingCertificate } from '../../src/localcluster/serving-cert.ts';
import type { Pod } from '../../src/sessions/objects/pod-types.ts';
import { warmPoolSelector } from '../../src/sessions/record/names.ts';
import { waitFor } from './cluster.ts';
import { freePort } from '../../src/localcluster/controlplane-process.ts';

export interface AssignmentEndpointOptions {
  readonly url: string;
  readonly port: number;
  readonly tlsDir: string;
}


/** A loopback assignment endpoint (port and certificate) for `startTestOperator({ assignment })`. */
export async function assignmentEndpoint(): Promise<AssignmentEndpointOptions> {
  const port = await freePort();
  return { url: `https://127.0.0.1:${port}`, port, tlsDir: writeServingCertificate(mkdtempSync(join(tmpdir(), 'agentenv-assignment-'))) };
}

export const isReadyPod = (p: Pod): boolean => !!p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');

/** The environment's unbound warm Pods that are not being deleted. */
export async function listWarm(admin: KubeRest, namespace: string, envName: string): Promise<Pod[]> {
  return (await admin.list<Pod>(CORE.pods, namespace, { labelSelector: warmPoolSelector(envName) })).items.filter((p) => !p.metadata?.deletionTimestamp);
}

/** Wait until the pool holds exactly `size` ready warm Pods; returns them. */
export function waitForReadyPool(admin: KubeRest, namespace: string, envName: string, size = 2, what = `${size} ready warm Pods`): Promise<Pod[]> {
  return waitFor(async () => {
    const pods = await listWarm(admin, namespace, envName);
    return pods.length === size && pods.every(isReadyPod) ? pods : undefined;
  }, { what, timeoutMs: 90_000 });
}
