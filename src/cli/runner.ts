/**
 * `agentenv runner`: the default runner of a session Pod (src/runner/runner.ts). Wiring only:
 * parse the configuration once, log as JSON, turn SIGTERM/SIGINT into an abort, exit 0 when the
 * SDK's runner has ended normally or as asked, 1 when it failed (the error logged, without its
 * request details), 2 on a configuration error.
 */
import { Command } from 'commander';
import { parseRunnerOptions, RunnerConfigError, type RunnerFlags } from '../runner/options.ts';
import { serveWorkItem } from '../runner/runner.ts';
import { waitForRunnerAssignment } from '../runner/assignment.ts';
import { RUNNER_WAIT_FOR_ASSIGNMENT_ENV } from '../contract/sidecar.ts';
import { createLogger } from '../telemetry/logger.ts';

export function command(): Command {
  return new Command('runner')
    .option('--workdir <dir>', 'working directory the agent\'s tools are confined to (env AGENTENV_RUNNER_WORKDIR; default /workspace)')
    .option('--idle-timeout <duration>', 'end once the session has been idle this long, e.g. 60s, 10m (env AGENTENV_RUNNER_IDLE_TIMEOUT; default the SDK\'s 60s)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (env LOG_LEVEL; default info)')
    .addHelpText('after', `
Environment (the session Pod's contract, set by the operator):
  ANTHROPIC_BASE_URL         the API, in a session Pod the sidecar (required)
  ANTHROPIC_WORK_ID          the work item (required)
  ANTHROPIC_ENVIRONMENT_ID   its environment (required)
  ANTHROPIC_SESSION_ID       its session (required)
  ANTHROPIC_WORK_SECRET      the work item's secret (in a session Pod a placeholder)`)
    .action(async (flags: RunnerFlags) => run(flags));
}

async function run(flags: RunnerFlags): Promise<void> {
  let env: Readonly<Record<string, string | undefined>> = process.env;
  const stopping = new AbortController();
  if (env[RUNNER_WAIT_FOR_ASSIGNMENT_ENV] === '1') {
    // A warm Pod: started before any work; the sidecar names the item once bound and claimed.
    const waitStop = (): void => stopping.abort();
    process.once('SIGTERM', waitStop);
    process.once('SIGINT', waitStop);
    const a = await waitForRunnerAssignment(env['ANTHROPIC_BASE_URL'] ?? '', stopping.signal);
    process.off('SIGTERM', waitStop);
    process.off('SIGINT', waitStop);
    if (!a) return; // ended before any assignment: nothing was served
    env = { ...env, ANTHROPIC_ENVIRONMENT_ID: a.environmentId, ANTHROPIC_SESSION_ID: a.sessionId, ANTHROPIC_WORK_ID: a.workId };
  }
  let options;
  try {
    options = parseRunnerOptions(flags, env);
  } catch (err) {
    if (!(err instanceof RunnerConfigError)) throw err;
    console.error(`agentenv runner: ${err.message}`);
    process.exit(2);
  }
  const log = createLogger({ level: options.logLevel, base: { process: 'runner' } }).child({ workId: options.workId, sessionId: options.sessionId });
  const stop = (signal: NodeJS.Signals): void => {
    log.info({ signal }, 'asked to end: the session run is aborted and the work item stopped');
    stopping.abort();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  log.info({ workdir: options.workdir, baseUrl: options.baseUrl, maxIdleMs: options.maxIdleMs }, 'serving the work item');
  try {
    await serveWorkItem(options, log, stopping.signal);
    log.info('the session run ended');
  } catch (err) {
    // Aborted because we were asked to end: the SDK has stopped the item; that is a normal end.
    if (stopping.signal.aborted) {
      log.info({ error: errorText(err) }, 'the session run ended on request');
      return;
    }
    log.error({ error: errorText(err) }, 'the session run failed');
    process.exitCode = 1;
  }
}

/** An error's name and message only: an SDK error's other fields carry request details. */
const errorText = (err: unknown): string => (err instanceof Error ? `${err.name}: ${err.message}` : String(err));
