/**
 * `agentenv operator`: wiring only. Parse the configuration once, build the Kubernetes and API
 * clients, start the informers, and run the controllers while this replica holds the leader lease.
 */
import { readFileSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Command } from 'commander';
import { KubeConfig } from '@kubernetes/client-node';
import { EnvironmentsClient, type ApiCallRecord } from '../api/client.ts';
import type { RetryPolicy } from '../api/retry.ts';
import { proxiedPools, type Credential } from '../api/transport.ts';
import { describeIssues, OperatorConfig } from '../config/operator.ts';
import { environmentController, environmentInformers, type SessionsHook } from '../environments/controller.ts';
import { defaultKeyServes, type TenancyPolicy } from '../environments/ownership.ts';
import { freshEveryPass } from '../environments/deps.ts';
import { KubeEventRecorder } from '../k8s/events.ts';
import { KubeRest, type RequestObserver } from '../k8s/rest.ts';
import { SecretCache } from '../k8s/secret-cache.ts';
import type { AgentEnvironment } from '../crd/resources.ts';
import { LeaderElector } from '../runtime/leader-election.ts';
import { firstProblem, Reachability, serveHealth } from '../telemetry/health.ts';
import { createLogger, type Logger } from '../telemetry/logger.ts';
import { OperatorMetrics } from '../telemetry/metrics.ts';
import { startSessions, type SessionsDeps } from '../sessions/index.ts';
import type { BackoffPolicy } from '../util/backoff.ts';

interface Flags {
  kubeconfig?: string;
  namespaces?: string;
  concurrency?: string;
  resync?: string;
  logLevel?: string;
  logFormat?: string;
  metricsPort?: string;
  healthPort?: string;
  bindAddress?: string;
  leaderElect: boolean;
  leaderElectionNamespace?: string;
  leaderElectionId?: string;
  leaderElectLeaseDuration?: string;
  leaderElectRenewDeadline?: string;
  leaderElectRetryPeriod?: string;
  apiKeyFile?: string;
  adoptionNamespaces?: string;
  defaultApiKeyNamespaces?: string;
  sessionImagePullSecrets?: string;
  sidecarImage?: string;
  runnerImage?: string;
  sessionProxyAddress?: string;
  sessionPriorityClassName?: string;
  sessionDoNotDisrupt?: boolean;
  assignmentUrl?: string;
  assignmentPort?: string;
  assignmentTlsDir?: string;
}

export function command(): Command {
  return new Command('operator')
    .option('--kubeconfig <path>', 'kubeconfig file (env KUBECONFIG; in-cluster credentials when unset)')
    .option('--namespaces <list>', 'comma-separated namespaces to watch (env WATCH_NAMESPACES; all when empty)')
    .option('--concurrency <n>', 'parallel reconciles per controller (default 4)')
    .option('--resync <duration>', 'safety-net resync period, e.g. 10m (default 10m)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace (env LOG_LEVEL; default info)')
    .option('--log-format <format>', 'json|text (env LOG_FORMAT; default json)')
    .option('--metrics-port <port>', 'Prometheus /metrics port (default 8080)')
    .option('--health-port <port>', '/healthz and /readyz port (default 8081)')
    .option('--bind-address <addr>', 'address the metrics and health servers listen on (default 0.0.0.0)')
    .option('--no-leader-elect', 'run without leader election (a single replica only)')
    .option('--leader-election-namespace <ns>', 'namespace of the leader Lease (env POD_NAMESPACE; default "default")')
    .option('--leader-election-id <name>', 'name of the leader Lease, unique per release (env AGENTENV_LEADER_ELECTION_ID; default agentenv-operator)')
    .option('--leader-elect-lease-duration <duration>', 'how long a standby waits after the last renewal before taking the lead, whole seconds (default 15s)')
    .option('--leader-elect-renew-deadline <duration>', 'how long the leader keeps trying to renew before giving up the lead (default 10s)')
    .option('--leader-elect-retry-period <duration>', 'how often the leader renews and a standby retries (default 2s)')
    .option('--adoption-namespaces <list>', 'comma-separated namespaces whose AgentEnvironments may adopt an environment they do not own, * for all (env AGENTENV_ADOPTION_NAMESPACES; default none)')
    .option('--default-api-key-namespaces <list>', 'comma-separated namespaces the default API key serves; others must set spec.apiKeySecretRef (env AGENTENV_DEFAULT_API_KEY_NAMESPACES; default all)')
    .option('--session-image-pull-secrets <list>', 'comma-separated image pull Secrets added to every session Pod (env AGENTENV_SESSION_IMAGE_PULL_SECRETS)')
    .option('--api-key-file <path>', 'file holding the default organization API key (env ANTHROPIC_API_KEY_FILE); re-read when it changes')
    .option('--sidecar-image <image>', 'image of the session sidecar (env AGENTENV_SIDECAR_IMAGE)')
    .option('--runner-image <image>', 'image of the default runner, for environments without a sessionTemplate (env AGENTENV_RUNNER_IMAGE)')
    .option('--session-proxy-address <mode>', 'where session Pods\' sidecar proxy listens: loopback, or pod-ip for the process kubelet only (env AGENTENV_SESSION_PROXY_ADDRESS; default loopback)')
    .option('--session-priority-class-name <name>', 'priorityClassName of session Pods whose sessionTemplate names none (env AGENTENV_SESSION_PRIORITY_CLASS_NAME; default none)')
    .option('--session-do-not-disrupt', 'annotate session Pods as not evictable by the cluster autoscaler or Karpenter; their nodes cannot scale down while sessions run (env AGENTENV_SESSION_DO_NOT_DISRUPT=true; default false)')
    .option('--assignment-url <url>', 'https URL warm Pods reach this operator\'s assignment endpoint at; unset: no warm Pod is started (env AGENTENV_ASSIGNMENT_URL)')
    .option('--assignment-port <port>', 'port of the assignment endpoint (env AGENTENV_ASSIGNMENT_PORT; default 8443)')
    .option('--assignment-tls-dir <dir>', 'directory with the endpoint\'s tls.crt, tls.key and the CA that signed them, ca.crt (env AGENTENV_ASSIGNMENT_TLS_DIR; required with --assignment-url)')
    .action(async (flags: Flags) => run(parseConfig(flags, process.env)));
}

const list = (value: string | undefined): string[] =>
  (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/** A boolean environment variable: `true`/`false` (any case); unset or empty is undefined, anything else is kept for the schema to refuse. */
const booleanEnv = (value: string | undefined): boolean | string | undefined => {
  const v = value?.trim().toLowerCase();
  return v ? (v === 'true' ? true : v === 'false' ? false : value) : undefined;
};

export function parseConfig(flags: Flags, env: NodeJS.ProcessEnv): OperatorConfig {
  const namespaces = list(flags.namespaces ?? env['WATCH_NAMESPACES']);
  // Proxy variables as curl and most tools read them: upper case first, then lower case.
  const proxyVar = (name: string): string | undefined => env[name] || env[name.toLowerCase()] || undefined;
  const raw = {
    kubeconfig: flags.kubeconfig ?? env['KUBECONFIG'],
    baseUrl: env['ANTHROPIC_BASE_URL'] || undefined,
    apiKey: env['ANTHROPIC_API_KEY'] || undefined,
    apiKeyFile: flags.apiKeyFile ?? (env['ANTHROPIC_API_KEY_FILE'] || undefined),
    namespaces,
    concurrency: flags.concurrency,
    resyncMs: flags.resync,
    logLevel: flags.logLevel ?? env['LOG_LEVEL'],
    logFormat: flags.logFormat ?? env['LOG_FORMAT'],
    metricsPort: flags.metricsPort,
    healthPort: flags.healthPort,
    bindAddress: flags.bindAddress,
    leaderElect: flags.leaderElect,
    leaderElectionNamespace: flags.leaderElectionNamespace ?? env['POD_NAMESPACE'],
    leaderElectionId: flags.leaderElectionId ?? (env['AGENTENV_LEADER_ELECTION_ID'] || undefined),
    leaderElectionLeaseDurationMs: flags.leaderElectLeaseDuration,
    leaderElectionRenewDeadlineMs: flags.leaderElectRenewDeadline,
    leaderElectionRetryPeriodMs: flags.leaderElectRetryPeriod,
    adoptionNamespaces: list(flags.adoptionNamespaces ?? env['AGENTENV_ADOPTION_NAMESPACES']),
    defaultApiKeyNamespaces: list(flags.defaultApiKeyNamespaces ?? env['AGENTENV_DEFAULT_API_KEY_NAMESPACES']),
    sessionImagePullSecrets: list(flags.sessionImagePullSecrets ?? env['AGENTENV_SESSION_IMAGE_PULL_SECRETS']),
    httpsProxy: proxyVar('HTTPS_PROXY'),
    httpProxy: proxyVar('HTTP_PROXY'),
    noProxy: proxyVar('NO_PROXY'),
    identity: `${env['POD_NAME'] ?? env['HOSTNAME'] ?? 'agentenv'}_${randomBytes(4).toString('hex')}`,
    sidecarImage: flags.sidecarImage ?? env['AGENTENV_SIDECAR_IMAGE'],
    sidecarImagePullPolicy: env['AGENTENV_SIDECAR_IMAGE_PULL_POLICY'] || undefined,
    runnerImage: flags.runnerImage ?? (env['AGENTENV_RUNNER_IMAGE'] || undefined),
    runnerImagePullPolicy: env['AGENTENV_RUNNER_IMAGE_PULL_POLICY'] || undefined,
    sessionProxyAddress: flags.sessionProxyAddress ?? (env['AGENTENV_SESSION_PROXY_ADDRESS'] || undefined),
    sessionPriorityClassName: flags.sessionPriorityClassName ?? (env['AGENTENV_SESSION_PRIORITY_CLASS_NAME'] || undefined),
    sessionDoNotDisrupt: flags.sessionDoNotDisrupt ?? booleanEnv(env['AGENTENV_SESSION_DO_NOT_DISRUPT']),
    assignmentUrl: flags.assignmentUrl ?? (env['AGENTENV_ASSIGNMENT_URL'] || undefined),
    assignmentPort: flags.assignmentPort ?? (env['AGENTENV_ASSIGNMENT_PORT'] || undefined),
    assignmentTlsDir: flags.assignmentTlsDir ?? (env['AGENTENV_ASSIGNMENT_TLS_DIR'] || undefined),
    assignmentCaConfigMap: env['AGENTENV_ASSIGNMENT_CA_CONFIGMAP'] || undefined,
  };
  const parsed = OperatorConfig.safeParse(Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined)));
  if (!parsed.success) {
    throw new Error(`invalid configuration:\n${describeIssues(parsed.error, { baseUrl: 'ANTHROPIC_BASE_URL', resyncMs: '--resync', sessionDoNotDisrupt: 'AGENTENV_SESSION_DO_NOT_DISRUPT', leaderElectionLeaseDurationMs: '--leader-elect-lease-duration', leaderElectionRenewDeadlineMs: '--leader-elect-renew-deadline', leaderElectionRetryPeriodMs: '--leader-elect-retry-period' })}`);
  }
  return parsed.data;
}

/** The default API key from ANTHROPIC_API_KEY, or a mounted file re-read whenever it changes. */
function defaultCredential(config: OperatorConfig): () => Credential | undefined {
  if (config.apiKey) {
    const c: Credential = { kind: 'api-key', value: config.apiKey };
    return () => c;
  }
  const file = config.apiKeyFile;
  if (!file) return () => undefined;
  let cached: { mtimeMs: number; credential: Credential | undefined } | undefined;
  return () => {
    try {
      const { mtimeMs } = statSync(file);
      if (cached?.mtimeMs !== mtimeMs) {
        const value = readFileSync(file, 'utf8').trim();
        cached = { mtimeMs, credential: value ? { kind: 'api-key', value } : undefined };
      }
      return cached.credential;
    } catch {
      return undefined;
    }
  };
}

/** Drop the credential Secrets `env` names from the cache. */
function forgetSecrets(cache: SecretCache, env: AgentEnvironment): void {
  const namespace = env.metadata?.namespace ?? '';
  for (const ref of [env.spec?.apiKeySecretRef, env.spec?.selfHosted?.environmentKeySecretRef]) if (ref) cache.forget(namespace, ref.name);
}

function loadKubeConfig(config: OperatorConfig): KubeConfig {
  const kc = new KubeConfig();
  if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
  else if (process.env['KUBERNETES_SERVICE_HOST']) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

/** What embedders (tests, `agentenv dev`) may add to the configuration: observers and timings. */
export interface OperatorOptions {
  readonly logger?: Logger;
  readonly sessions?: SessionsHook;
  /** Sees every Kubernetes request after the metrics do (counting writes in tests). */
  readonly observeKube?: RequestObserver;
  /** Sees every Environments API attempt after the metrics do. */
  readonly onApiCall?: (record: ApiCallRecord) => void;
  /** Shorter timings for tests; production uses the defaults. */
  readonly timings?: {
    readonly backoff?: BackoffPolicy;
    readonly credentialRetryMs?: number;
    readonly queueRefreshMs?: number;
    readonly apiRetry?: RetryPolicy;
    readonly apiTimeoutMs?: number;
  };
}

export interface OperatorHandle {
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

/** Start the operator; resolves once it is serving. Used by the CLI and by tests. */
export async function startOperator(config: OperatorConfig, options: OperatorOptions = {}): Promise<OperatorHandle> {
  const logger = options.logger ?? createLogger({ level: config.logLevel, format: config.logFormat, base: { process: 'operator' } });
  const metrics = new OperatorMetrics();
  const kubeConfig = loadKubeConfig(config);
  const apiserver = new Reachability();
  // The Kubernetes client never goes through HTTPS_PROXY: the operator reaches the apiserver
  // in-cluster (its Service address), where a corporate egress proxy has no business.
  const rest = new KubeRest(kubeConfig, {
    fieldManager: 'agentenv-operator',
    observe: (r) => {
      metrics.kubeRequest(r.verb, r.resource, r.code);
      apiserver.observe(r.code);
      options.observeKube?.(r);
    },
  });
  const events = new KubeEventRecorder(rest, { component: 'agentenv-operator', logger: logger.child({ component: 'events' }) });
  const tenancy: TenancyPolicy = { adoptionNamespaces: config.adoptionNamespaces, defaultKeyNamespaces: config.defaultApiKeyNamespaces };
  const credential = defaultCredential(config);
  // One cache of credential Secrets for the process: the reconciler, the dispatchers and the session
  // reconciler of an environment ask for the same key (k8s/secret-cache.ts).
  const secretCache = new SecretCache({ rest });
  const timings = options.timings ?? {};
  // The API client's pools (short calls, long polls): through HTTPS_PROXY/HTTP_PROXY (NO_PROXY honoured) when the process has one.
  const proxy = config.httpsProxy || config.httpProxy ? proxiedPools({ ...(config.httpsProxy ? { httpsProxy: config.httpsProxy } : {}), ...(config.httpProxy ? { httpProxy: config.httpProxy } : {}), ...(config.noProxy ? { noProxy: config.noProxy } : {}) }) : undefined;
  const apiClient = (c: Credential | (() => Credential)): EnvironmentsClient =>
    new EnvironmentsClient({
      baseUrl: config.baseUrl,
      credential: c,
      ...(proxy ? { dispatcher: proxy.calls, pollDispatcher: proxy.polls } : {}),
      ...(timings.apiRetry ? { retry: timings.apiRetry } : {}),
      ...(timings.apiTimeoutMs ? { timeoutMs: timings.apiTimeoutMs } : {}),
      onCall: (r) => {
        metrics.apiCall(r.endpoint, r.outcome, r.durationMs);
        options.onApiCall?.(r);
      },
    });

  const stopping = new AbortController();
  const environments = environmentInformers(rest, config.namespaces, logger);
  // The self-hosted sessions feature (dispatchers + AgentSession controller), unless an embedder brings its own hook.
  const sessions = options.sessions
    ? undefined
    : startSessions({
        rest,
        events,
        logger,
        metrics,
        namespaces: config.namespaces,
        environments,
        apiClient,
        secrets: secretCache.readKey,
        defaultCredential: (namespace) => (defaultKeyServes(tenancy, namespace) ? credential() : undefined),
        identity: config.identity,
        baseUrl: config.baseUrl,
        sidecar: { image: config.sidecarImage, imagePullPolicy: config.sidecarImagePullPolicy, imagePullSecrets: config.sessionImagePullSecrets },
        runner: { image: config.runnerImage, imagePullPolicy: config.runnerImagePullPolicy },
        proxyAddress: config.sessionProxyAddress,
        podPolicy: { priorityClassName: config.sessionPriorityClassName, doNotDisrupt: config.sessionDoNotDisrupt },
        ...assignmentSettings(config),
        concurrency: config.concurrency,
        resyncMs: config.resyncMs,
      });
  const sessionsHook: SessionsHook | undefined = options.sessions ?? sessions?.hook;
  const envController = environmentController({
    informers: environments,
    logger,
    concurrency: config.concurrency,
    resyncMs: config.resyncMs,
    observer: metrics,
    ...(timings.backoff ? { backoff: timings.backoff } : {}),
    rest,
    events,
    apiClient,
    defaultCredential: credential,
    // Its passes are a minute apart once settled: each reads the Secret (deps.ts freshEveryPass).
    secrets: freshEveryPass(secretCache),
    tenancy,
    ...(timings.credentialRetryMs !== undefined ? { credentialRetryMs: timings.credentialRetryMs } : {}),
    ...(timings.queueRefreshMs !== undefined ? { queueRefreshMs: timings.queueRefreshMs } : {}),
    ...(sessionsHook ? { sessions: sessionsHook } : {}),
  });

  // A deleted environment's Secrets leave the cache with it.
  for (const i of environments) i.on((e) => e.type === 'delete' && forgetSecrets(secretCache, e.object));
  const informersRunning = [...environments, ...(sessions?.informers ?? [])].map((i) => i.run(stopping.signal));
  // Every replica answers warm Pods (from its caches), not only the leader.
  const assignments = await sessions?.serveAssignments();
  const elector = config.leaderElect
    ? new LeaderElector({
        rest,
        namespace: config.leaderElectionNamespace,
        name: config.leaderElectionId,
        identity: config.identity,
        leaseDurationSeconds: config.leaderElectionLeaseDurationMs / 1_000,
        renewDeadlineMs: config.leaderElectionRenewDeadlineMs,
        retryPeriodMs: config.leaderElectionRetryPeriodMs,
        logger: logger.child({ component: 'leader-election' }),
        onLeadership: (leading) => metrics.leader(leading),
      })
    : undefined;
  const synced = (): boolean => environments.every((i) => i.hasSynced) && (sessions?.informers ?? []).every((i) => i.hasSynced);
  const health = await serveHealth({
    host: config.bindAddress,
    port: config.healthPort,
    checks: { live: () => firstProblem(() => apiserver.problem(), () => elector?.health()), ready: () => (synced() ? undefined : 'caches not synced') },
  });
  const metricsServer = await serveHealth({
    host: config.bindAddress,
    port: config.metricsPort,
    registry: metrics.registry,
    checks: { live: () => undefined, ready: () => undefined },
  });
  logger.info(
    { healthPort: health.port, metricsPort: metricsServer.port, namespaces: config.namespaces, baseUrl: config.baseUrl, lease: config.leaderElect ? config.leaderElectionId : undefined, proxied: proxy !== undefined, adoptionNamespaces: config.adoptionNamespaces, defaultApiKeyNamespaces: config.defaultApiKeyNamespaces },
    'operator starting',
  );

  const lead = async (leading: AbortSignal): Promise<void> => {
    await Promise.all(environments.map((i) => i.synced(leading)));
    if (leading.aborted) return;
    await Promise.all([
      envController.run(leading).then(() => logger.debug('environment controller stopped')),
      sessions?.run(leading).then(() => logger.debug('sessions stopped')),
    ]);
  };
  const done = (async () => {
    if (elector) {
      await elector.run(stopping.signal, lead);
    } else {
      metrics.leader(true);
      await lead(stopping.signal);
      metrics.leader(false);
    }
    stopping.abort();
    await Promise.allSettled(informersRunning);
    logger.debug('informers stopped');
    await health.close();
    await metricsServer.close();
    await assignments?.close();
    await rest.close();
    await Promise.all([proxy?.calls.close(), proxy?.polls.close()]);
    logger.info('operator stopped');
  })();
  return {
    done,
    stop: async () => {
      stopping.abort();
      await done;
    },
  };
}

/**
 * The warm pools' assignment endpoint from the settings: the URL warm Pods use, the CA they trust
 * (ca.crt, copied into a ConfigMap per namespace with a pool) and this replica's serving
 * certificate. Without a URL: nothing (no warm Pod is started).
 */
function assignmentSettings(config: OperatorConfig): Partial<Pick<SessionsDeps, 'assignment' | 'assignmentServer'>> {
  if (!config.assignmentUrl) return {};
  const dir = config.assignmentTlsDir;
  if (!dir) throw new Error('invalid configuration:\n  AGENTENV_ASSIGNMENT_TLS_DIR: required with AGENTENV_ASSIGNMENT_URL (tls.crt, tls.key, ca.crt: the answer carries a credential and is only served over TLS)');
  const read = (file: string): string => {
    try {
      return readFileSync(`${dir}/${file}`, 'utf8');
    } catch (err) {
      throw new Error(`invalid configuration:\n  AGENTENV_ASSIGNMENT_TLS_DIR: cannot read ${dir}/${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
  };
  return {
    assignment: { url: config.assignmentUrl, caConfigMap: config.assignmentCaConfigMap, caPem: read('ca.crt') },
    assignmentServer: { address: config.bindAddress, port: config.assignmentPort, tls: { cert: read('tls.crt'), key: read('tls.key') } },
  };
}

async function run(config: OperatorConfig): Promise<void> {
  const handle = await startOperator(config);
  const shutdown = (): void => void handle.stop();
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  await handle.done;
}
