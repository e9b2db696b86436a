/**
 * Two `agentenv operator` replicas as child processes with real leader election, supervised as a
 * Deployment would: a replica that exits (SIGKILLed by the chaos run, or gone after losing the
 * lead during an apiserver restart) is started again after a second, as a standby. Each life has
 * its own POD_NAME (`chaos-a-3`), so the Lease's holderIdentity names the process that leads.
 * Every process runs under reaper (PR_SET_PDEATHSIG): it dies with this process, even on SIGKILL.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startProcess, type ManagedProcess } from '../../src/localcluster/controlplane-process.ts';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
/** The run's leader-election timings (production: 15s / 10s / 2s, see docs/chaos.md). */
export const LEADER_TIMINGS = { leaseDuration: '3s', renewDeadline: '2s', retryPeriod: '500ms' } as const;
const RESTART_DELAY_MS = 1_000;

export interface ReplicaOptions {
  readonly reaper: string;
  readonly kubeconfig: string;
  readonly namespace: string;
  readonly leaseName: string;
  readonly baseUrl: string;
  readonly apiKey: string;
  readonly logDir: string;
  readonly log: (line: string) => void;
  /**
   * The warm pools' assignment endpoint: the URL warm Pods use (the run's stand-in Service,
   * assignment-service.ts), the serving certificate's directory, and one port per replica (a, b).
   */
  readonly assignment?: { readonly url: string; readonly tlsDir: string; readonly ports: readonly [number, number] };
  /** Each replica's health port (a, b): `/readyz` says whether it is up with its caches synced. */
  readonly healthPorts: readonly [number, number];
}

interface Slot {
  readonly name: 'a' | 'b';
  life: number;
  process: ManagedProcess | undefined;
}

export interface Replicas {
  /** The POD_NAME of the process a Lease holderIdentity (`<POD_NAME>_<hex>`) names, if it is one of ours and alive. */
  podOf(holderIdentity: string): string | undefined;
  /** SIGKILL the process with this POD_NAME; resolves once it is gone. Its slot starts a new life after a second. */
  kill(podName: string): Promise<void>;
  /** Lives started so far (exits and restarts included). */
  lives(): number;
  /** Whether a live replica other than `podName` answers `/readyz` (up, caches synced: a standby). */
  standbyReady(podName: string): Promise<boolean>;
  stop(): Promise<void>;
}

export function startReplicas(o: ReplicaOptions): Replicas {
  const slots: Slot[] = [
    { name: 'a', life: 0, process: undefined },
    { name: 'b', life: 0, process: undefined },
  ];
  let stopping = false;
  let started = 0;
  const podName = (s: Slot): string => `chaos-${s.name}-${s.life}`;

  const start = (slot: Slot): void => {
    slot.life++;
    started++;
    const pod = podName(slot);
    const p = startProcess(
      pod,
      process.execPath,
      [
        MAIN, 'operator',
        '--kubeconfig', o.kubeconfig,
        '--namespaces', o.namespace,
        '--adoption-namespaces', o.namespace,
        '--leader-election-namespace', o.namespace,
        '--leader-election-id', o.leaseName,
        '--leader-elect-lease-duration', LEADER_TIMINGS.leaseDuration,
        '--leader-elect-renew-deadline', LEADER_TIMINGS.renewDeadline,
        '--leader-elect-retry-period', LEADER_TIMINGS.retryPeriod,
        '--metrics-port', '0', '--health-port', String(o.healthPorts[slot.name === 'a' ? 0 : 1]), '--bind-address', '127.0.0.1',
        '--session-proxy-address', 'pod-ip',
        '--sidecar-image', 'ghcr.io/agentenv-io/agentenv:chaos',
        '--runner-image', 'ghcr.io/agentenv-io/agentenv-runner:chaos',
        '--log-level', 'info',
        ...(o.assignment ? ['--assignment-url', o.assignment.url, '--assignment-tls-dir', o.assignment.tlsDir, '--assignment-port', String(o.assignment.ports[slot.name === 'a' ? 0 : 1])] : []),
      ],
      {
        reaper: o.reaper,
        logFile: join(o.logDir, `operator-${slot.name}.log`),
        env: { ...process.env, POD_NAME: pod, ANTHROPIC_BASE_URL: o.baseUrl, ANTHROPIC_API_KEY: o.apiKey },
      },
    );
    slot.process = p;
    void p.exited.then(async (code) => {
      if (stopping || slot.process !== p) return;
      o.log(`operator ${pod} exited (${code}); a new life in ${RESTART_DELAY_MS} ms`);
      await sleep(RESTART_DELAY_MS);
      if (!stopping && slot.process === p) start(slot);
    });
  };
  for (const s of slots) start(s);

  return {
    podOf(holderIdentity) {
      const pod = holderIdentity.replace(/_[0-9a-f]+$/, '');
      return slots.some((s) => podName(s) === pod && s.process?.running()) ? pod : undefined;
    },
    async kill(pod) {
      const slot = slots.find((s) => podName(s) === pod);
      await slot?.process?.kill('SIGKILL');
    },
    lives: () => started,
    async standbyReady(pod) {
      const others = slots.filter((s) => podName(s) !== pod && s.process?.running());
      for (const s of others) {
        const port = o.healthPorts[s.name === 'a' ? 0 : 1];
        const ok = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(1_000) }).then((r) => r.ok, () => false);
        if (ok) return true;
      }
      return false;
    },
    async stop() {
      stopping = true;
      // SIGTERM: a replica releases its Lease and lets an in-flight hand-off finish.
      await Promise.all(slots.map((s) => s.process?.stop(10_000)));
    },
  };
}
