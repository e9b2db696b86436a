/**
 * The sidecar's configuration, parsed once at its entrypoint from the environment the operator
 * gives its container (the names are the sidecar contract's, `src/contract/sidecar.ts`).
 *
 * Hand-written rather than a zod schema: the sidecar runs in every sandbox Pod and must stay close
 * to a bare Node process in memory, so it loads no third-party module at all.
 */
import { LOG_LEVELS, type LogLevel } from '../config/logging.ts';
import {
  CREDENTIAL_KINDS,
  DEFAULT_CREDENTIAL_FILE,
  DEFAULT_PROBE_ADDRESS,
  DEFAULT_PROBE_PORT,
  DEFAULT_PROXY_ADDRESS,
  DEFAULT_PROXY_PORT,
  DEFAULT_STATE_DIR,
  SIDECAR_ENV as E,
  ASSIGNMENT_CA_FILE,
  ASSIGNMENT_TOKEN_FILE,
  type CredentialKind,
} from '../contract/sidecar.ts';
import type { AssignmentSource } from './assignment.ts';

export { DEFAULT_CREDENTIAL_FILE, DEFAULT_PROBE_ADDRESS, DEFAULT_PROBE_PORT, DEFAULT_PROXY_ADDRESS, DEFAULT_PROXY_PORT, DEFAULT_STATE_DIR };

/**
 * The egress proxy settings, as Node's `proxyEnv` agent option reads them. Upper case wins over
 * lower case, as curl and undici do; only these three are read.
 */
export interface EgressProxy {
  readonly HTTPS_PROXY?: string;
  readonly HTTP_PROXY?: string;
  readonly NO_PROXY?: string;
}

export interface SidecarConfig {
  /** API base URL, without a trailing slash (`ANTHROPIC_BASE_URL`). */
  readonly baseUrl: URL;
  readonly environmentId: string;
  readonly sessionId: string;
  readonly workId: string;
  /** File holding the bearer token (`AGENTENV_CREDENTIAL_FILE`, default {@link DEFAULT_CREDENTIAL_FILE}). */
  readonly credentialFile: string;
  /** Pod-local directory for `lease.json` (`AGENTENV_STATE_DIR`, default {@link DEFAULT_STATE_DIR}). */
  readonly stateDir: string;
  /** What the credential file holds (`AGENTENV_CREDENTIAL_KIND`, default `environment-key`). */
  readonly credentialKind: CredentialKind;
  /** `desired_ttl_seconds` sent with every beat (`AGENTENV_LEASE_TTL_SECONDS`); the server's default when unset. */
  readonly leaseTtlSeconds: number | undefined;
  readonly probeAddress: string;
  /** 0 picks a free port (tests); the chosen port is logged. */
  readonly probePort: number;
  /** Where the main container's API calls arrive (`AGENTENV_PROXY_ADDRESS`, default 127.0.0.1). */
  readonly proxyAddress: string;
  /** `AGENTENV_PROXY_PORT`, default 8096; 0 picks a free port (tests). */
  readonly proxyPort: number;
  /** `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` for the sidecar's own upstream calls. */
  readonly egressProxy: EgressProxy;
  readonly logLevel: LogLevel;
  /**
   * A warm Pod's sidecar (`AGENTENV_ASSIGNMENT_URL` set): where to ask for the work item bound to
   * its Pod. `sessionId`, `workId` and `credentialKind` are then empty until the assignment names them.
   */
  readonly assignment?: AssignmentSource;
}

export class ConfigError extends Error {
  readonly issues: readonly string[];

  constructor(issues: readonly string[]) {
    super(`invalid sidecar configuration:\n${issues.map((i) => `  - ${i}`).join('\n')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/** Parse the sidecar's environment; throws a {@link ConfigError} listing every problem at once. */
export function parseSidecarConfig(env: Env): SidecarConfig {
  const issues: string[] = [];
  const value = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v === '' ? undefined : v;
  };
  const required = (name: string): string => {
    const v = value(name);
    if (v === undefined) issues.push(`${name} is required`);
    return v ?? '';
  };
  const integer = (name: string, fallback: number | undefined, min: number, max: number): number | undefined => {
    const raw = value(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < min || n > max) {
      issues.push(`${name} must be an integer from ${min} to ${max} (got ${JSON.stringify(raw)})`);
      return fallback;
    }
    return n;
  };

  let baseUrl: URL | undefined;
  const rawUrl = required(E.baseUrl);
  if (rawUrl) {
    try {
      baseUrl = new URL(rawUrl.replace(/\/+$/, ''));
      if (baseUrl.protocol !== 'http:' && baseUrl.protocol !== 'https:') {
        issues.push(`${E.baseUrl} must be an http(s) URL (got ${JSON.stringify(rawUrl)})`);
      }
    } catch {
      issues.push(`${E.baseUrl} is not a URL (got ${JSON.stringify(rawUrl)})`);
    }
  }
  const environmentId = required(E.environmentId);
  const assignment = assignmentSource(value, issues);
  // A warm sidecar learns its session and work item from its assignment.
  const sessionId = assignment ? '' : required(E.sessionId);
  const workId = assignment ? '' : required(E.workId);
  const kind = value(E.credentialKind) ?? 'environment-key';
  if (!(CREDENTIAL_KINDS as readonly string[]).includes(kind)) issues.push(`${E.credentialKind} must be one of ${CREDENTIAL_KINDS.join(', ')} (got ${JSON.stringify(kind)})`);
  const leaseTtlSeconds = integer(E.leaseTtlSeconds, undefined, 1, 86_400);
  const probePort = integer(E.probePort, DEFAULT_PROBE_PORT, 0, 65_535)!;
  const proxyPort = integer(E.proxyPort, DEFAULT_PROXY_PORT, 0, 65_535)!;
  const egressProxy: Record<string, string> = {};
  for (const name of ['HTTPS_PROXY', 'HTTP_PROXY', 'NO_PROXY'] as const) {
    const v = value(name) ?? value(name.toLowerCase());
    if (v !== undefined) egressProxy[name] = v;
  }
  const level = value(E.logLevel) ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) issues.push(`${E.logLevel} must be one of ${LOG_LEVELS.join(', ')} (got ${JSON.stringify(level)})`);

  if (issues.length > 0 || !baseUrl) throw new ConfigError(issues);
  return {
    baseUrl,
    environmentId,
    sessionId,
    workId,
    credentialFile: value(E.credentialFile) ?? DEFAULT_CREDENTIAL_FILE,
    stateDir: value(E.stateDir) ?? DEFAULT_STATE_DIR,
    credentialKind: kind as CredentialKind,
    leaseTtlSeconds,
    probeAddress: value(E.probeAddress) ?? DEFAULT_PROBE_ADDRESS,
    probePort,
    proxyAddress: value(E.proxyAddress) ?? DEFAULT_PROXY_ADDRESS,
    proxyPort,
    egressProxy,
    logLevel: level as LogLevel,
    ...(assignment ? { assignment } : {}),
  };
}

/** The warm sidecar's assignment endpoint, token and CA, all three or none. */
function assignmentSource(value: (name: string) => string | undefined, issues: string[]): AssignmentSource | undefined {
  const raw = value(E.assignmentUrl);
  if (raw === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(raw);
    // The answer carries a credential: only over TLS.
    if (url.protocol !== 'https:') issues.push(`${E.assignmentUrl} must be an https URL (got ${JSON.stringify(raw)})`);
  } catch {
    issues.push(`${E.assignmentUrl} is not a URL (got ${JSON.stringify(raw)})`);
  }
  const tokenFile = value(E.assignmentTokenFile) ?? ASSIGNMENT_TOKEN_FILE;
  const caFile = value(E.assignmentCaFile) ?? ASSIGNMENT_CA_FILE;
  return url ? { url, tokenFile, caFile } : undefined;
}
