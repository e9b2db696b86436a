/**
 * `agentenv sidecar`: the lease keeper of one session Pod and its only door to the API (see
 * `src/sidecar/sidecar.ts`).
 *
 * Wiring only: parse the environment once, read the credential file once, start, and exit after
 * SIGTERM with the code that says how the lease ended (`SIDECAR_EXIT_*`). Loaded by `main.ts` without commander and on V8's interpreter alone: the sidecar runs in
 * every sandbox Pod and loads nothing but Node built-ins and its own modules (commander alone costs
 * ~10 MB of RSS).
 */
import { ConfigError, parseSidecarConfig, type SidecarConfig } from '../sidecar/config.ts';
import { createSidecarLogger } from '../sidecar/log.ts';
import { startSidecar } from '../sidecar/sidecar.ts';
import { assigned } from '../sidecar/assignment.ts';
import { awaitBinding } from '../sidecar/warm.ts';
import type { ProbeServer } from '../sidecar/probe.ts';

const USAGE = `Usage: agentenv sidecar

Keep the lease of one work item for a session Pod, and serve the Pod's main container as its only
door to the API (a virtual lease for its own work calls, its session's calls forwarded with the real
credential, everything else refused).

Environment:
  ANTHROPIC_BASE_URL            the real API base URL (required)
  AGENTENV_ENVIRONMENT_ID       the work item's environment (required)
  AGENTENV_SESSION_ID           the work item's session (required)
  AGENTENV_WORK_ID              the work item (required)
  AGENTENV_CREDENTIAL_FILE      bearer token file (default /var/run/agentenv/credential/token)
  AGENTENV_CREDENTIAL_KIND      sessions-token|environment-key (default environment-key)
  AGENTENV_STATE_DIR            Pod-local directory for lease.json (default /var/run/agentenv/state)
  AGENTENV_LEASE_TTL_SECONDS    desired lease TTL (default: the server's)
  AGENTENV_PROBE_ADDRESS        probe address (default 0.0.0.0)
  AGENTENV_PROBE_PORT           probe port: /started, /ready, /healthz (default 8095)
  AGENTENV_PROXY_ADDRESS        the main container's API endpoint (default 127.0.0.1)
  AGENTENV_PROXY_PORT           its port (default 8096)
  HTTPS_PROXY, HTTP_PROXY, NO_PROXY   egress proxy for the sidecar's calls to the API
  AGENTENV_LOG_LEVEL            fatal|error|warn|info|debug|trace|silent (default info)
  AGENTENV_ASSIGNMENT_URL       a warm Pod: the operator's https endpoint to ask for the bound work
                                item (then no session, work id or credential file is needed)
  AGENTENV_ASSIGNMENT_TOKEN_FILE / _CA_FILE   its token and CA (default /var/run/agentenv/assignment/…)
`;

export async function run(args: readonly string[]): Promise<void> {
  // Not an ESM import of node:fs: that evaluates every export, lazy getters included.
  const { readFileSync } = process.getBuiltinModule('node:fs');
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    return;
  }
  if (args.length > 0) fail(`agentenv sidecar takes no arguments (got ${args.join(' ')}); it is configured by environment variables`);
  let config: SidecarConfig;
  try {
    config = parseSidecarConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
  let token: string;
  let probe: ProbeServer | undefined;
  if (config.assignment) {
    // A warm Pod: no session, work item or credential until the operator names them.
    const waiting = new AbortController();
    const stopWaiting = (): void => waiting.abort();
    process.once('SIGTERM', stopWaiting);
    process.once('SIGINT', stopWaiting);
    const warmLog = createSidecarLogger(config.logLevel, { process: 'sidecar', environment_id: config.environmentId, warm: true });
    const binding = await awaitBinding(config, warmLog, waiting.signal);
    process.off('SIGTERM', stopWaiting);
    process.off('SIGINT', stopWaiting);
    if (!binding) {
      warmLog.info('warm: ended before any assignment; nothing to stop');
      process.exit(0);
    }
    config = assigned(config, binding.assignment);
    token = binding.assignment.credential;
    probe = binding.probe;
  } else {
    try {
      token = readFileSync(config.credentialFile, 'utf8').trim();
    } catch (err) {
      fail(`cannot read the credential file ${config.credentialFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  if (token === '') fail(`the credential file ${config.credentialFile} is empty`);

  const log = createSidecarLogger(config.logLevel, { process: 'sidecar', environment_id: config.environmentId, session_id: config.sessionId, work_id: config.workId });
  const sidecar = await startSidecar(config, token, log, probe ? { warmProbe: probe } : {});
  const onSignal = (signal: NodeJS.Signals): void => {
    log.info('signal received', { signal });
    sidecar.terminate();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  // How the lease ended is told to the operator by the exit code (src/contract/sidecar.ts): a lost
  // lease must not be stopped by the operator either, and an API stop is no session that completed.
  const { exitCode } = await sidecar.done;
  process.exit(exitCode);
}

function fail(message: string): never {
  console.error(`agentenv sidecar: ${message}`);
  process.exit(2);
}
