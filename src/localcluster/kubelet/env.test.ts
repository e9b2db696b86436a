import { describe, expect, it } from 'vitest';
import { ContainerConfigError, containerEnv, DEFAULT_PATH, expand, expandArgs, fieldValue, type PodObjects } from './env.ts';
import { pod, shell } from './fixtures.test-support.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const objects: PodObjects = {
  secrets: new Map([['creds', { data: { token: b64('s3cret'), 'not valid': b64('x') } }]]),
  configMaps: new Map([['settings', { data: { mode: 'fast', LEVEL: 'debug' } }]]),
};

describe('container environment', () => {
  it('holds only the spec variables plus PATH, HOSTNAME and HOME', () => {
    const env = containerEnv(pod(), shell('main', { env: [{ name: 'A', value: '1' }] }), objects);
    expect(env).toEqual({ PATH: DEFAULT_PATH, HOSTNAME: 'p', HOME: '/root', A: '1' });
  });

  it('a spec PATH or HOME replaces the default', () => {
    const env = containerEnv(pod(), shell('main', { env: [{ name: 'PATH', value: '/opt/bin' }, { name: 'HOME', value: '/home/x' }] }), objects);
    expect(env['PATH']).toBe('/opt/bin');
    expect(env['HOME']).toBe('/home/x');
  });

  it('resolves secretKeyRef (decoded), configMapKeyRef and fieldRef', () => {
    const env = containerEnv(
      pod(),
      shell('main', {
        env: [
          { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'creds', key: 'token' } } },
          { name: 'MODE', valueFrom: { configMapKeyRef: { name: 'settings', key: 'mode' } } },
          { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
          { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
          { name: 'SA', valueFrom: { fieldRef: { fieldPath: 'spec.serviceAccountName' } } },
          { name: 'UID', valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } },
          { name: 'APP', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
        ],
      }),
      objects,
    );
    expect(env).toMatchObject({ TOKEN: 's3cret', MODE: 'fast', IP: '127.1.2.3', NODE: 'node-a', SA: 'sa', UID: 'uid-1', APP: 'demo' });
  });

  it('a missing secret or key is a CreateContainerConfigError unless optional', () => {
    const missing = shell('main', { env: [{ name: 'T', valueFrom: { secretKeyRef: { name: 'nope', key: 'k' } } }] });
    expect(() => containerEnv(pod(), missing, objects)).toThrow(ContainerConfigError);
    const missingKey = shell('main', { env: [{ name: 'T', valueFrom: { secretKeyRef: { name: 'creds', key: 'nope' } } }] });
    expect(() => containerEnv(pod(), missingKey, objects)).toThrow(/couldn't find key nope/);
    const optional = shell('main', { env: [{ name: 'T', valueFrom: { secretKeyRef: { name: 'nope', key: 'k', optional: true } } }] });
    expect(containerEnv(pod(), optional, objects)['T']).toBeUndefined();
  });

  it('envFrom comes first with its prefix, skips invalid names, and env entries override it', () => {
    const env = containerEnv(
      pod(),
      shell('main', { envFrom: [{ configMapRef: { name: 'settings' }, prefix: 'CFG_' }, { secretRef: { name: 'creds' } }], env: [{ name: 'CFG_mode', value: 'slow' }] }),
      objects,
    );
    expect(env).toMatchObject({ CFG_mode: 'slow', CFG_LEVEL: 'debug', token: 's3cret' });
    expect(Object.keys(env)).not.toContain('not valid');
  });

  it('expands $(VAR) against variables defined earlier only', () => {
    const env = containerEnv(pod(), shell('main', { env: [{ name: 'A', value: 'x' }, { name: 'B', value: '$(A)-$(C)-$$(A)' }, { name: 'C', value: 'late' }] }), objects);
    expect(env['B']).toBe('x-$(C)-$(A)');
  });
});

describe('$(VAR) expansion', () => {
  const vars: Record<string, string> = { A: 'a', EMPTY: '' };
  it.each([
    ['$(A)', 'a'],
    ['pre$(A)post', 'preapost'],
    ['$(MISSING)', '$(MISSING)'],
    ['$$(A)', '$(A)'],
    ['$$', '$'],
    ['$(A', '$(A'],
    ['cost $5', 'cost $5'],
    ['$(EMPTY)x', 'x'],
    ['trailing $', 'trailing $'],
  ])('%s → %s', (input, want) => {
    expect(expand(input, (n) => vars[n])).toBe(want);
  });

  it('applies to command and args against the container environment', () => {
    expect(expandArgs(['echo', '$(A)', '$(B)'], { A: '1' })).toEqual(['echo', '1', '$(B)']);
  });
});

describe('downward API field values', () => {
  it('renders all labels/annotations as sorted key="value" lines', () => {
    const p = pod({}, { name: 'p', labels: { b: '2', a: '1' }, annotations: { note: 'say "hi"' } });
    expect(fieldValue(p, 'metadata.labels')).toBe('a="1"\nb="2"');
    expect(fieldValue(p, 'metadata.annotations')).toBe('note="say \\"hi\\""');
  });

  it('rejects an unsupported field path', () => {
    expect(() => fieldValue(pod(), 'spec.unknown')).toThrow(ContainerConfigError);
  });
});
