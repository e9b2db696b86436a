/**
 * The sidecar's configuration, parsed once at its entrypoint from the environment the operator
 * gives its container (the names are the sidecar contract's, `src/contract/sidecar.ts`).
 *
 * Hand-written rather than a zod schema: the sidecar runs in every sandbox Pod and must stay close
 * to a bare Node process in memory, so it loads no third-party module at all.
 */
import { LOG_LEVELS, type LogLevel } from '../config/logging.ts';
import {
  DEFAULT_CREDENTIAL_FILE,
  DEFAULT_PROBE_ADDRESS,
  DEFAULT_PROBE_PORT,
  DEFAULT_STATE_DIR,
  DEFAULT_STOP_GRACE_SECONDS,
  SIDECAR_ENV as E,
} from '../contract/sidecar.ts';

export { DEFAULT_CREDENTIAL_FILE, DEFAULT_PROBE_ADDRESS, DEFAULT_PROBE_PORT, DEFAULT_STATE_DIR, DEFAULT_STOP_GRACE_SECONDS };

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
  /** SIGTERM → SIGKILL grace for the main container (`AGENTENV_STOP_GRACE_SECONDS`, default 30). */
  readonly stopGraceSeconds: number;
  /** `desired_ttl_seconds` sent with every beat (`AGENTENV_LEASE_TTL_SECONDS`); the server's default when unset. */
  readonly leaseTtlSeconds: number | undefined;
  readonly probeAddress: string;
  /** 0 picks a free port (tests); the chosen port is logged. */
  readonly probePort: number;
  readonly logLevel: LogLevel;
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
  const sessionId = required(E.sessionId);
  const workId = required(E.workId);
  const stopGraceSeconds = integer(E.stopGraceSeconds, DEFAULT_STOP_GRACE_SECONDS, 0, 86_400)!;
  const leaseTtlSeconds = integer(E.leaseTtlSeconds, undefined, 1, 86_400);
  const probePort = integer(E.probePort, DEFAULT_PROBE_PORT, 0, 65_535)!;
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
    stopGraceSeconds,
    leaseTtlSeconds,
    probeAddress: value(E.probeAddress) ?? DEFAULT_PROBE_ADDRESS,
    probePort,
    logLevel: level as LogLevel,
  };
}
