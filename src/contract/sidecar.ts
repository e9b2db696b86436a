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
  leaseTtlSeconds: 'AGENTENV_LEASE_TTL_SECONDS',
  probeAddress: 'AGENTENV_PROBE_ADDRESS',
  probePort: 'AGENTENV_PROBE_PORT',
  /** Where the sidecar serves the main container's API calls (the Pod's loopback by default). */
  proxyAddress: 'AGENTENV_PROXY_ADDRESS',
  proxyPort: 'AGENTENV_PROXY_PORT',
  /**
   * What the credential file holds: {@link CREDENTIAL_KINDS}. The memory-store endpoints accept
   * a per-item sessions token only, so the proxy serves them only when it holds one.
   */
  credentialKind: 'AGENTENV_CREDENTIAL_KIND',
  logLevel: 'AGENTENV_LOG_LEVEL',
  /**
   * A warm Pod's sidecar (no session, work item or credential yet): the operator's assignment
   * endpoint it long-polls for the work bound to its Pod (`https://…`), the projected
   * service-account token it authenticates with (audience {@link ASSIGNMENT_AUDIENCE}), and the CA
   * that signed the endpoint's serving certificate. Set only in warm Pods; a cold Pod has none.
   */
  assignmentUrl: 'AGENTENV_ASSIGNMENT_URL',
  assignmentTokenFile: 'AGENTENV_ASSIGNMENT_TOKEN_FILE',
  assignmentCaFile: 'AGENTENV_ASSIGNMENT_CA_FILE',
} as const;

/** `sessions-token`: the per-item token from the poll's secret; `environment-key`: the environment key. */
export const CREDENTIAL_KINDS = ['sessions-token', 'environment-key'] as const;
export type CredentialKind = (typeof CREDENTIAL_KINDS)[number];

export type SidecarEnvName = (typeof SIDECAR_ENV)[keyof typeof SIDECAR_ENV];

/** Where the sidecar's credential is mounted, and the file in it. */
export const CREDENTIAL_DIR = '/var/run/agentenv/credential';
export const CREDENTIAL_FILE_NAME = 'token';
export const DEFAULT_CREDENTIAL_FILE = `${CREDENTIAL_DIR}/${CREDENTIAL_FILE_NAME}`;
/** The sidecar's Pod-local state directory (`lease.json`). */
export const DEFAULT_STATE_DIR = '/var/run/agentenv/state';
export const DEFAULT_PROBE_ADDRESS = '0.0.0.0';
/** The sidecar's probe port: `GET /started` passes once the lease is claimed. */
export const DEFAULT_PROBE_PORT = 8095;
export const STARTED_PATH = '/started';
/**
 * The sidecar's readiness: 200 while it holds the lease and no stop is pending; 503 from the
 * moment a stop is due (the API said `stopping`/`stopped` or `lease_extended: false`, the lease was
 * lost, the main container asked to stop). The operator reads the sidecar's `ready: false` in the
 * Pod status as "the main container should end now" and deletes the Pod once it has not ended
 * `stopGracePeriodSeconds` later: the sidecar has no Kubernetes API access and no signal reaches
 * across containers without a shared process namespace.
 */
export const READY_PATH = '/ready';

/**
 * The sidecar's exit code tells the operator how the lease ended (the first reason wins, as in
 * `src/sidecar/lease.ts`), in the Pod status it already watches: the sidecar has no Kubernetes API
 * access, and the code costs no API call. It survives a sidecar restart (the reason is kept in
 * `lease.json`). The sidecar is a native sidecar (an init container with `restartPolicy: Always`),
 * whose exit code never counts in the Pod's phase: the kubelet computes it from the main container.
 * - 0: the session ended it: the main container asked for the stop (the runner's final stop), or
 *   ended and the sidecar stopped the item on SIGTERM (also a Pod deleted while the item ran, and a
 *   beat the API refused for good);
 * - {@link SIDECAR_EXIT_STOPPED_BY_API}: the API said `stopping`/`stopped` (or `lease_extended:
 *   false`) first: a remote stop, graceful or forced;
 * - {@link SIDECAR_EXIT_LEASE_LOST}: the lease was lost (a heartbeat 412, or no beat within the
 *   TTL), whatever ended it first: the item belongs to the queue or another worker, so nobody in
 *   this cluster may stop it, and the operator does not force-stop the item of a Pod that ended
 *   while the API still shows it active;
 * - 2: a configuration error (the sidecar never ran). Any other code: it was killed or crashed.
 */
export const SIDECAR_EXIT_LEASE_LOST = 3;
/** The sidecar's exit code when the API ordered the stop before the session ended the lease (see above). */
export const SIDECAR_EXIT_STOPPED_BY_API = 4;

/** The sidecar's proxy: the main container's `ANTHROPIC_BASE_URL` is `http://<address>:<port>`. */
export const DEFAULT_PROXY_ADDRESS = '127.0.0.1';
export const DEFAULT_PROXY_PORT = 8096;

/**
 * The user the sidecar runs as: its own non-root UID, never the main container's, so nothing in
 * the main container can read the sidecar's files or signal it. When a template's main container
 * runs as this UID, {@link SIDECAR_FALLBACK_UID} is used instead.
 */
export const SIDECAR_UID = 65533;
export const SIDECAR_FALLBACK_UID = 65531;

/**
 * The placeholder the main container receives as its sessions token. Not a credential: the
 * sidecar removes whatever credential the main container sends and puts in the real one. The
 * official runner's `handleItem` needs either an environment key or a work secret that yields a
 * sessions token to start at all; this gives it the latter without handing it anything real.
 */
export const PLACEHOLDER_SESSIONS_TOKEN = 'agentenv-placeholder-not-a-credential';

/** `ANTHROPIC_WORK_SECRET` for the main container: base64url JSON carrying the placeholder token. */
export const PLACEHOLDER_WORK_SECRET = Buffer.from(JSON.stringify({ version: 1, sessions_token: PLACEHOLDER_SESSIONS_TOKEN }), 'utf8').toString('base64url');

/**
 * Warm Pods (docs/sessions.md, "Warm pool"). The audience of the projected service-account token a
 * warm sidecar presents to the operator's assignment endpoint: a token of its own audience is
 * useless against the Kubernetes API and any other service, and the operator's TokenReview asks
 * for exactly this audience.
 */
export const ASSIGNMENT_AUDIENCE = 'assignment.agentenv.io';
/** Where a warm sidecar's assignment token and the endpoint's CA are mounted (the sidecar alone mounts them). */
export const ASSIGNMENT_DIR = '/var/run/agentenv/assignment';
export const ASSIGNMENT_TOKEN_FILE = `${ASSIGNMENT_DIR}/token`;
export const ASSIGNMENT_CA_FILE = `${ASSIGNMENT_DIR}/ca.crt`;
/**
 * The runner of a warm Pod starts without a session: `AGENTENV_WAIT_FOR_ASSIGNMENT=1` in its
 * environment tells it to ask the sidecar's proxy `GET {@link RUNNER_ASSIGNMENT_PATH}` (held until
 * the sidecar has its assignment and has claimed the lease) for `{environment_id, session_id,
 * work_id}`, then serve exactly as a cold Pod's runner does with those values.
 */
export const RUNNER_WAIT_FOR_ASSIGNMENT_ENV = 'AGENTENV_WAIT_FOR_ASSIGNMENT';
export const RUNNER_ASSIGNMENT_PATH = '/agentenv/v1/assignment';
