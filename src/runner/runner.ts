/**
 * The default runner: one work item served by the official SDK's per-item runner,
 * `EnvironmentWorker.handleItem()`, with its standard agent toolset (bash, read, write, edit,
 * glob, grep) confined to the workdir. Nothing here reimplements the protocol: heartbeats, the
 * session's event stream, tool results and the final force-stop are the SDK's.
 *
 * Flow (all the SDK's, in `lib/environments/worker.ts`):
 * 1. heartbeat the lease from `NO_HEARTBEAT` — in an agentenv Pod the sidecar answers from its
 *    virtual lease, having claimed the real one before this container started;
 * 2. read the session, download its skills, run the tools it asks for, post their results;
 * 3. end when the session has been idle `maxIdleMs`, when a heartbeat says `stopping`/`stopped`
 *    or `lease_extended: false`, or when `signal` aborts (SIGTERM);
 * 4. force-stop the item unless the lease was lost (the sidecar turns that into the real stop).
 * Ours: a termination the SDK missed while its event stream was down ends the run too
 * (termination.ts).
 *
 * Credentials: the client is built with the contract's placeholder token, never a real key; the
 * SDK then scopes every per-item call to the work secret's token (in an agentenv Pod the
 * placeholder too), and the sidecar replaces whatever credential arrives with the real one.
 */
import { Anthropic } from '@anthropic-ai/sdk';
import { sessionsTokenFromSecret } from '@anthropic-ai/sdk/lib/environments/worker';
import { PLACEHOLDER_SESSIONS_TOKEN } from '../contract/sidecar.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { RunnerOptions } from './options.ts';
import { TERMINATION_CHECK_MS, watchTermination } from './termination.ts';

/**
 * Retries of each API call (the SDK's default is 2: about 1.5 s). The rule: a transient failure —
 * 429 with Retry-After, 5xx, a reset or refused connection — must not fail the session, because a
 * failed session read or list ends the item for good (the SDK force-stops it). Two retries do not
 * outlast an API fault window of a few seconds, nor the sidecar's own restart (a kubelet restarts a
 * killed container after a back-off of 10 s and more), both of which `npm run chaos` saw end
 * sessions as `ContainerFailed` (seed 4). Eight retries with the SDK's back-off (0.5 s doubling to
 * 8 s, jittered, or the server's Retry-After) wait about 30–40 s in all; the lease is the sidecar's
 * meanwhile, so waiting costs nothing but time.
 */
export const RUNNER_MAX_RETRIES = 8;

/**
 * Serve the work item named by `options`; resolves when the SDK's runner has ended and stopped it.
 * `terminationCheckMs`: how often the session's status is read (default {@link TERMINATION_CHECK_MS}).
 */
export async function serveWorkItem(options: RunnerOptions, log: Logger, signal: AbortSignal, terminationCheckMs = TERMINATION_CHECK_MS): Promise<void> {
  const client = new Anthropic({
    baseURL: options.baseUrl,
    // A non-empty credential of its own keeps the SDK from looking for one (environment
    // variables, profile files); handleItem replaces it with the work item's token.
    authToken: PLACEHOLDER_SESSIONS_TOKEN,
    logger: sdkLogger(log.child({ component: 'sdk' })),
    // Never 'debug': the SDK's debug lines carry request and response bodies (tool inputs and
    // outputs, which may hold anything the agent read).
    logLevel: 'info',
    maxRetries: RUNNER_MAX_RETRIES,
  });
  const worker = client.beta.environments.work.worker({
    workdir: options.workdir,
    ...(options.maxIdleMs !== undefined ? { maxIdleMs: options.maxIdleMs } : {}),
  });
  // The status read authenticates as handleItem's per-item calls do: the work secret's token, else
  // the environment key (in an agentenv Pod a placeholder either way; the sidecar puts the real one in).
  const statusClient = client.withOptions({ authToken: sessionsTokenFromSecret(options.workSecret) ?? options.environmentKey ?? PLACEHOLDER_SESSIONS_TOKEN, maxRetries: 0 });
  const run = new AbortController();
  const forward = (): void => run.abort();
  signal.addEventListener('abort', forward, { once: true });
  const watching = watchTermination(
    {
      status: async () => (await statusClient.beta.sessions.retrieve(options.sessionId, {}, { signal: run.signal })).status,
      intervalMs: terminationCheckMs,
      onTerminated: () => {
        log.info({ sessionId: options.sessionId }, 'the session is terminated: ending the run (its termination event was missed)');
        run.abort();
      },
      onError: (err) => log.debug({ err }, 'could not read the session status; trying again at the next check'),
    },
    run.signal,
  );
  try {
    await worker.handleItem({
      workId: options.workId,
      environmentId: options.environmentId,
      sessionId: options.sessionId,
      ...(options.workSecret !== undefined ? { workSecret: options.workSecret } : {}),
      ...(options.environmentKey !== undefined ? { environmentKey: options.environmentKey } : {}),
      signal: run.signal,
    });
  } finally {
    signal.removeEventListener('abort', forward);
    run.abort();
    await watching;
  }
}

type SdkLogFn = (message: string, ...rest: unknown[]) => void;

/**
 * The SDK's logger interface onto pino: one JSON line per message, the SDK's details object (e.g.
 * `{ work_id, error }`) as fields, so the root logger's credential redaction applies to them.
 */
export function sdkLogger(log: Logger): { error: SdkLogFn; warn: SdkLogFn; info: SdkLogFn; debug: SdkLogFn } {
  const fields = (rest: unknown[]): Record<string, unknown> => {
    if (rest.length === 1 && rest[0] !== null && typeof rest[0] === 'object' && !Array.isArray(rest[0]) && !(rest[0] instanceof Error)) return rest[0] as Record<string, unknown>;
    if (rest.length === 1 && rest[0] instanceof Error) return { err: rest[0] };
    return rest.length ? { details: rest.map((r) => (r instanceof Error ? `${r.name}: ${r.message}` : r)) } : {};
  };
  return {
    error: (m, ...rest) => log.error(fields(rest), m),
    warn: (m, ...rest) => log.warn(fields(rest), m),
    info: (m, ...rest) => log.info(fields(rest), m),
    debug: (m, ...rest) => log.debug(fields(rest), m),
  };
}
