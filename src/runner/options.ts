/**
 * Configuration of `agentenv runner`, parsed once at its entrypoint (flags win over the
 * environment). The `ANTHROPIC_*` variables are the session Pod's contract (objects/pod.ts, the
 * README's "Writing a runner"): the work item, its session, the base URL — in an agentenv Pod the
 * sidecar's proxy — and a work secret. A missing or malformed value fails fast, naming the
 * variable and never echoing its value.
 */
import { z } from 'zod';
import { duration } from '../config/duration.ts';
import { LOG_LEVELS } from '../config/logging.ts';

/** The default working directory: the default template mounts an emptyDir here. */
export const DEFAULT_WORKDIR = '/workspace';

const required = (name: string) => z.string({ message: `${name} is required` }).min(1, `${name} is required`);

export const RunnerOptions = z
  .object({
    baseUrl: z.url({ message: 'ANTHROPIC_BASE_URL must be a URL (in a session Pod: the sidecar, e.g. http://127.0.0.1:8096)' }),
    workId: required('ANTHROPIC_WORK_ID'),
    environmentId: required('ANTHROPIC_ENVIRONMENT_ID'),
    sessionId: required('ANTHROPIC_SESSION_ID'),
    /** The work item's secret (in an agentenv Pod a placeholder: the sidecar puts the real credential in). */
    workSecret: z.string().min(1).optional(),
    /** Only for a runner outside an agentenv Pod whose item has no work secret. */
    environmentKey: z.string().min(1).optional(),
    /** The agent's tools are confined here. Default {@link DEFAULT_WORKDIR}. */
    workdir: z.string().startsWith('/', 'the workdir must be an absolute path').default(DEFAULT_WORKDIR),
    /** The SDK's `maxIdleMs`: end after the session has been idle this long. Default: the SDK's (60 s). */
    maxIdleMs: duration.optional(),
    logLevel: z.enum(LOG_LEVELS).default('info'),
  })
  .refine((o) => o.workSecret !== undefined || o.environmentKey !== undefined, {
    message: 'ANTHROPIC_WORK_SECRET (or ANTHROPIC_ENVIRONMENT_KEY) is required: the runner never runs unauthenticated',
    path: ['workSecret'],
  });
export type RunnerOptions = z.infer<typeof RunnerOptions>;

export interface RunnerFlags {
  workdir?: string;
  idleTimeout?: string;
  logLevel?: string;
}

/** Where each option comes from, for error messages. */
const SOURCES: Record<string, string> = {
  baseUrl: 'ANTHROPIC_BASE_URL',
  workId: 'ANTHROPIC_WORK_ID',
  environmentId: 'ANTHROPIC_ENVIRONMENT_ID',
  sessionId: 'ANTHROPIC_SESSION_ID',
  workSecret: 'ANTHROPIC_WORK_SECRET',
  environmentKey: 'ANTHROPIC_ENVIRONMENT_KEY',
  workdir: '--workdir (AGENTENV_RUNNER_WORKDIR)',
  maxIdleMs: '--idle-timeout (AGENTENV_RUNNER_IDLE_TIMEOUT)',
  logLevel: '--log-level (LOG_LEVEL)',
};

export class RunnerConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunnerConfigError';
  }
}

/** Parse flags and environment; throws {@link RunnerConfigError} listing every problem by setting. */
export function parseRunnerOptions(flags: RunnerFlags, env: Readonly<Record<string, string | undefined>>): RunnerOptions {
  const get = (name: string): string | undefined => env[name] || undefined;
  const raw = {
    baseUrl: get('ANTHROPIC_BASE_URL'),
    workId: get('ANTHROPIC_WORK_ID'),
    environmentId: get('ANTHROPIC_ENVIRONMENT_ID'),
    sessionId: get('ANTHROPIC_SESSION_ID'),
    workSecret: get('ANTHROPIC_WORK_SECRET'),
    environmentKey: get('ANTHROPIC_ENVIRONMENT_KEY'),
    workdir: flags.workdir ?? get('AGENTENV_RUNNER_WORKDIR'),
    maxIdleMs: flags.idleTimeout ?? get('AGENTENV_RUNNER_IDLE_TIMEOUT'),
    logLevel: flags.logLevel ?? get('LOG_LEVEL'),
  };
  const parsed = RunnerOptions.safeParse(Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined)));
  if (parsed.success) return parsed.data;
  // zod's messages name the rule, never the input: a credential cannot leak into the error.
  const lines = parsed.error.issues.map((i) => `  ${SOURCES[String(i.path[0])] ?? i.path.join('.')}: ${i.message}`);
  throw new RunnerConfigError(`invalid configuration:\n${lines.join('\n')}`);
}
