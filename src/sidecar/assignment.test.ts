import { describe, expect, it } from 'vitest';
import { ConfigError, parseSidecarConfig } from './config.ts';
import { parseAssignment } from './assignment.ts';
import { route } from './routes.ts';

const full = { environment_id: 'env_1', session_id: 'sesn_1', work_id: 'work_1', credential_kind: 'sessions-token', credential: 'tok' };

describe('parseAssignment: what a warm sidecar accepts from the operator', () => {
  it.each<[string, unknown, boolean]>([
    ['a complete assignment is taken', full, true],
    ['the environment key as credential is taken', { ...full, credential_kind: 'environment-key' }, true],
    ['an unknown credential kind is refused (asked again)', { ...full, credential_kind: 'api-key' }, false],
    ['an empty credential is refused', { ...full, credential: '' }, false],
    ['a missing work id is refused', { ...full, work_id: undefined }, false],
    ['a non-object is refused', 'work_1', false],
  ])('%s', (_rule, body, ok) => {
    expect(parseAssignment(body) !== undefined).toBe(ok);
  });
});

describe('parseSidecarConfig in a warm Pod', () => {
  const base = { ANTHROPIC_BASE_URL: 'https://api.example.test', AGENTENV_ENVIRONMENT_ID: 'env_1' };

  it('needs no session, work id or credential file when it has an assignment endpoint', () => {
    const c = parseSidecarConfig({ ...base, AGENTENV_ASSIGNMENT_URL: 'https://agentenv.agentenv-system.svc:8443' });
    expect(c.assignment?.url.href).toBe('https://agentenv.agentenv-system.svc:8443/');
    expect(c.assignment).toMatchObject({ tokenFile: '/var/run/agentenv/assignment/token', caFile: '/var/run/agentenv/assignment/ca.crt' });
    expect({ sessionId: c.sessionId, workId: c.workId }).toEqual({ sessionId: '', workId: '' });
  });

  it('refuses a plain-http assignment endpoint: the answer carries a credential', () => {
    expect(() => parseSidecarConfig({ ...base, AGENTENV_ASSIGNMENT_URL: 'http://agentenv:8080' })).toThrow(ConfigError);
  });

  it('still needs the session and work id without an assignment endpoint (a cold Pod)', () => {
    expect(() => parseSidecarConfig(base)).toThrow(/AGENTENV_SESSION_ID is required/);
  });
});

describe('the runner\'s assignment route', () => {
  const scope = { environmentId: 'env_1', workId: 'work_1', sessionId: 'sesn_1', credentialKind: 'sessions-token' as const };

  it('GET /agentenv/v1/assignment is the sidecar\'s own answer; any other method or path under /agentenv is refused', () => {
    expect(route('GET', '/agentenv/v1/assignment', scope)).toEqual({ kind: 'assignment' });
    expect(route('POST', '/agentenv/v1/assignment', scope).kind).toBe('refuse');
    expect(route('GET', '/agentenv/v1/other', scope).kind).toBe('refuse');
  });
});
