/**
 * An in-process `agentenv operator` for integration tests: the real entrypoint (`startOperator`)
 * with the least-privilege operator kubeconfig, watching only the test's namespace, with its own
 * leader-election Lease, ports picked by the OS, short timings, and recorders for everything the
 * assertions need: log lines (credential leaks), Kubernetes requests and API calls (zero writes at
 * steady state, no hot loop).
 */
import { randomBytes } from 'node:crypto';
import type { ApiCallRecord } from '../../src/api/client.ts';
import { startOperator, type OperatorHandle, type OperatorOptions } from '../../src/cli/operator.ts';
import { OperatorConfig } from '../../src/config/operator.ts';
import type { RequestObserver, Verb } from '../../src/k8s/rest.ts';
import { createLogger } from '../../src/telemetry/logger.ts';

export type KubeRequest = Parameters<RequestObserver>[0];
/** An API attempt as the operator's client reported it, with the wall-clock time it ended. */
export type ApiCall = ApiCallRecord & { readonly endedAt: number };

const WRITE_VERBS: ReadonlySet<Verb> = new Set(['create', 'update', 'patch', 'delete']);

export interface TestOperatorOptions {
  /** The operator ServiceAccount's kubeconfig file (from the integration global setup). */
  readonly kubeconfig: string;
  /** The only namespace watched; also holds the leader-election Lease. */
  readonly namespace: string;
  /** The emulator's URL. */
  readonly baseUrl: string;
  /** The operator's default organization API key (ANTHROPIC_API_KEY); none when omitted. */
  readonly apiKey?: string;
  /** Safety-net resync period. Default 60 s (tests that need resyncs pass a short one). */
  readonly resyncMs?: number;
  /** Run with leader election (the default), as the Deployment does. */
  readonly leaderElect?: boolean;
  /** Leader-election Lease name. Default: unique per start. */
  readonly leaseName?: string;
  readonly timings?: OperatorOptions['timings'];
  /**
   * Namespaces granted adoption of environments they do not own. Default: the watched namespace
   * (the tests that adopt a Console-made environment are about adoption, not about the grant;
   * test/integration/tenancy.test.ts passes `[]`).
   */
  readonly adoptionNamespaces?: readonly string[];
  /** Namespaces the default API key serves. Default: all. */
  readonly defaultApiKeyNamespaces?: readonly string[];
  /** HTTP_PROXY/HTTPS_PROXY and NO_PROXY of the operator's API client. Default: none. */
  readonly proxy?: { readonly url: string; readonly noProxy?: string };
  /** Called on every API attempt (after recording it); may throw to simulate a crash at that point. */
  readonly onApiCall?: (record: ApiCallRecord) => void;
  /** The warm pools' assignment endpoint (URL, port, TLS directory); none by default (no warm Pod). */
  readonly assignment?: { readonly url: string; readonly port: number; readonly tlsDir: string };
}

export interface TestOperator {
  readonly handle: OperatorHandle;
  /** Every log line the operator wrote (raw JSON), at debug level. */
  readonly logLines: string[];
  readonly kubeRequests: KubeRequest[];
  readonly apiCalls: ApiCall[];
  /** Kubernetes writes except Lease renewals (leader election renews every few seconds by design). */
  kubeWrites(): KubeRequest[];
  /** API calls that change something remotely (create, update, archive, delete, stop…). */
  apiWrites(): ApiCall[];
  /** Forget what was recorded so far (start a counting window). */
  resetCounters(): void;
  stop(): Promise<void>;
}

/** Fast but not frantic: failures retry within a second or two, so fault tests stay short. */
export const TEST_TIMINGS: NonNullable<OperatorOptions['timings']> = {
  backoff: { baseMs: 100, capMs: 2_000, jitter: 0.5 },
  credentialRetryMs: 1_000,
  queueRefreshMs: 60_000,
  apiRetry: { maxRetries: 2, backoff: { baseMs: 50, capMs: 200, jitter: 0.5 }, maxRetryAfterMs: 3_000 },
  apiTimeoutMs: 2_000,
};

const API_WRITES: ReadonlySet<string> = new Set([
  'environments.create',
  'environments.update',
  'environments.archive',
  'environments.delete',
  'work.ack',
  'work.heartbeat',
  'work.stop',
  'work.stop_force',
  'work.update',
]);

export async function startTestOperator(o: TestOperatorOptions): Promise<TestOperator> {
  const logLines: string[] = [];
  const kubeRequests: KubeRequest[] = [];
  const apiCalls: ApiCall[] = [];
  const logger = createLogger({ level: 'debug', base: { process: 'operator' }, destination: { write: (line: string) => void logLines.push(line) } });
  const config = OperatorConfig.parse({
    kubeconfig: o.kubeconfig,
    baseUrl: o.baseUrl,
    ...(o.apiKey ? { apiKey: o.apiKey } : {}),
    namespaces: [o.namespace],
    adoptionNamespaces: o.adoptionNamespaces ?? [o.namespace],
    defaultApiKeyNamespaces: o.defaultApiKeyNamespaces ?? [],
    ...(o.proxy ? { httpProxy: o.proxy.url, httpsProxy: o.proxy.url, ...(o.proxy.noProxy ? { noProxy: o.proxy.noProxy } : {}) } : {}),
    concurrency: 4,
    resyncMs: o.resyncMs ?? 60_000,
    logLevel: 'debug',
    metricsPort: 0,
    healthPort: 0,
    bindAddress: '127.0.0.1',
    leaderElect: o.leaderElect ?? true,
    leaderElectionNamespace: o.namespace,
    leaderElectionId: o.leaseName ?? `agentenv-test-${randomBytes(4).toString('hex')}`,
    identity: `test-operator_${randomBytes(4).toString('hex')}`,
    // The process kubelet has no per-Pod network namespace: each Pod's sidecar proxy listens on the
    // Pod's own loopback IP, since 127.0.0.1:8096 would be shared by every Pod on the machine.
    sessionProxyAddress: 'pod-ip',
    ...(o.assignment ? { assignmentUrl: o.assignment.url, assignmentPort: o.assignment.port, assignmentTlsDir: o.assignment.tlsDir } : {}),
  });
  const handle = await startOperator(config, {
    logger,
    observeKube: (r) => void kubeRequests.push(r),
    onApiCall: (r) => {
      apiCalls.push({ ...r, endedAt: Date.now() });
      o.onApiCall?.(r);
    },
    timings: { ...TEST_TIMINGS, ...o.timings },
  });
  let stopped: Promise<void> | undefined;
  return {
    handle,
    logLines,
    kubeRequests,
    apiCalls,
    kubeWrites: () => kubeRequests.filter((r) => WRITE_VERBS.has(r.verb) && r.resource !== 'leases'),
    apiWrites: () => apiCalls.filter((c) => API_WRITES.has(c.endpoint)),
    resetCounters: () => {
      kubeRequests.length = 0;
      apiCalls.length = 0;
    },
    stop: () => (stopped ??= handle.stop()),
  };
}
