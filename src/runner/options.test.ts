import { describe, expect, it } from 'vitest';
import { PLACEHOLDER_WORK_SECRET } from '../contract/sidecar.ts';
import { createLogger } from '../telemetry/logger.ts';
import { DEFAULT_WORKDIR, parseRunnerOptions, RunnerConfigError } from './options.ts';
import { sdkLogger } from './runner.ts';

const contract = {
  ANTHROPIC_BASE_URL: 'http://127.0.0.1:8096',
  ANTHROPIC_WORK_ID: 'work_01',
  ANTHROPIC_ENVIRONMENT_ID: 'env_01',
  ANTHROPIC_SESSION_ID: 'sesn_01',
  ANTHROPIC_WORK_SECRET: PLACEHOLDER_WORK_SECRET,
};

describe('parseRunnerOptions', () => {
  it('reads the session Pod contract, with /workspace and the SDK\'s idle timeout by default', () => {
    expect(parseRunnerOptions({}, contract)).toEqual({
      baseUrl: 'http://127.0.0.1:8096',
      workId: 'work_01',
      environmentId: 'env_01',
      sessionId: 'sesn_01',
      workSecret: PLACEHOLDER_WORK_SECRET,
      workdir: DEFAULT_WORKDIR,
      logLevel: 'info',
    });
    expect(DEFAULT_WORKDIR).toBe('/workspace');
  });

  const cases: Array<{ rule: string; flags?: Record<string, string>; env?: Record<string, string>; expected: Record<string, unknown> }> = [
    { rule: 'the idle timeout flag becomes maxIdleMs', flags: { idleTimeout: '90s' }, expected: { maxIdleMs: 90_000 } },
    { rule: 'the idle timeout from the environment', env: { AGENTENV_RUNNER_IDLE_TIMEOUT: '2m' }, expected: { maxIdleMs: 120_000 } },
    { rule: 'a flag wins over the environment', flags: { idleTimeout: '5s', workdir: '/data' }, env: { AGENTENV_RUNNER_IDLE_TIMEOUT: '2m', AGENTENV_RUNNER_WORKDIR: '/srv' }, expected: { maxIdleMs: 5_000, workdir: '/data' } },
    { rule: 'the workdir from the environment', env: { AGENTENV_RUNNER_WORKDIR: '/srv' }, expected: { workdir: '/srv' } },
    { rule: 'an environment key stands in for a missing work secret (a runner outside agentenv)', env: { ANTHROPIC_WORK_SECRET: '', ANTHROPIC_ENVIRONMENT_KEY: 'k' }, expected: { environmentKey: 'k' } },
  ];
  it.each(cases)('$rule', ({ flags, env, expected }) => {
    expect(parseRunnerOptions(flags ?? {}, { ...contract, ...env })).toMatchObject(expected);
  });

  const refusals: Array<{ rule: string; flags?: Record<string, string>; env: Record<string, string>; names: RegExp }> = [
    { rule: 'a missing work id', env: { ANTHROPIC_WORK_ID: '' }, names: /ANTHROPIC_WORK_ID: ANTHROPIC_WORK_ID is required/ },
    { rule: 'a base URL that is not a URL', env: { ANTHROPIC_BASE_URL: 'sidecar' }, names: /ANTHROPIC_BASE_URL: .*must be a URL/ },
    { rule: 'neither a work secret nor an environment key', env: { ANTHROPIC_WORK_SECRET: '' }, names: /ANTHROPIC_WORK_SECRET: .*never runs unauthenticated/ },
    { rule: 'a relative workdir', flags: { workdir: 'work' }, env: {}, names: /--workdir .*absolute/ },
    { rule: 'an idle timeout that is not a duration', flags: { idleTimeout: 'soon' }, env: {}, names: /--idle-timeout .*not a duration/ },
  ];
  it.each(refusals)('refuses $rule, naming the setting', ({ flags, env, names }) => {
    expect(() => parseRunnerOptions(flags ?? {}, { ...contract, ...env })).toThrow(RunnerConfigError);
    expect(() => parseRunnerOptions(flags ?? {}, { ...contract, ...env })).toThrow(names);
  });

  it('never echoes a value in its error', () => {
    const env = { ...contract, ANTHROPIC_BASE_URL: 'sk-ant-oat01-looks-like-a-key', ANTHROPIC_SESSION_ID: '' };
    expect(() => parseRunnerOptions({}, env)).toThrow(RunnerConfigError);
    try {
      parseRunnerOptions({}, env);
    } catch (err) {
      expect(String(err)).not.toContain('sk-ant-oat01');
    }
  });
});

describe('sdkLogger', () => {
  it('writes the SDK\'s details as fields of one JSON line, with credentials redacted', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'debug', destination: { write: (l: string) => void lines.push(l) } });
    const sdk = sdkLogger(log);
    sdk.warn('heartbeat failed', { work_id: 'work_01', authorization: 'Bearer sk-ant-secret', error: 'x' });
    sdk.info('two things', 'a', new Error('boom'));
    const [first, second] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(first).toMatchObject({ level: 'warn', msg: 'heartbeat failed', work_id: 'work_01', authorization: '[redacted]' });
    expect(lines.join('\n')).not.toContain('sk-ant-secret');
    expect(second).toMatchObject({ msg: 'two things', details: ['a', 'Error: boom'] });
  });
});
