/**
 * The sidecar contract: what the operator puts into a session Pod's sidecar container and what the
 * sidecar reads back. Both sides import these names from here, so a rename cannot leave one side
 * behind (src/sessions/objects builds the env, src/sidecar/config.ts parses it; a unit test feeds a
 * built Pod's sidecar env into the sidecar's parser).
 *
 * A leaf module: it imports nothing, so the sidecar bundle pulls in no other code with it.
 */

/** The sidecar container's environment variables. */
export const SIDECAR_ENV = {
  /** The real API base URL (the sidecar's upstream). */
  baseUrl: 'ANTHROPIC_BASE_URL',
  environmentId: 'AGENTENV_ENVIRONMENT_ID',
  sessionId: 'AGENTENV_SESSION_ID',
  workId: 'AGENTENV_WORK_ID',
  credentialFile: 'AGENTENV_CREDENTIAL_FILE',
  stateDir: 'AGENTENV_STATE_DIR',
  stopGraceSeconds: 'AGENTENV_STOP_GRACE_SECONDS',
  leaseTtlSeconds: 'AGENTENV_LEASE_TTL_SECONDS',
  probeAddress: 'AGENTENV_PROBE_ADDRESS',
  probePort: 'AGENTENV_PROBE_PORT',
  logLevel: 'AGENTENV_LOG_LEVEL',
} as const;

export type SidecarEnvName = (typeof SIDECAR_ENV)[keyof typeof SIDECAR_ENV];

/** Where the sidecar's credential is mounted, and the file in it. */
export const CREDENTIAL_DIR = '/var/run/agentenv/credential';
export const CREDENTIAL_FILE_NAME = 'token';
export const DEFAULT_CREDENTIAL_FILE = `${CREDENTIAL_DIR}/${CREDENTIAL_FILE_NAME}`;
/** The sidecar's Pod-local state directory (`lease.json`). */
export const DEFAULT_STATE_DIR = '/var/run/agentenv/state';
export const DEFAULT_STOP_GRACE_SECONDS = 30;
export const DEFAULT_PROBE_ADDRESS = '0.0.0.0';
/** The sidecar's probe port: `GET /started` passes once the lease is claimed. */
export const DEFAULT_PROBE_PORT = 8095;
export const STARTED_PATH = '/started';
