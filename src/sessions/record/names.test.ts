import { describe, expect, it } from 'vitest';
import { ENV_PREFIX_MAX, labelValue, podName, secretName, servingPodName, sessionLabels, sessionName, workLabels } from './names.ts';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

describe('session names', () => {
  it('are deterministic: the same session id always names the same AgentSession', () => {
    expect(sessionName('prod', 'sesn_011CZkZ9X2dpNyB7HsEFoRfW')).toBe(sessionName('prod', 'sesn_011CZkZ9X2dpNyB7HsEFoRfW'));
    expect(sessionName('prod', 'sesn_a')).not.toBe(sessionName('prod', 'sesn_b'));
    expect(sessionName('prod', 'sesn_a')).not.toBe(sessionName('staging', 'sesn_a'));
  });

  it('start with the environment name and stay DNS-1123 labels of at most 63 characters', () => {
    const s = sessionName('prod', 'sesn_x');
    expect(s).toMatch(/^prod-[0-9a-f]{10}$/);
    const long = 'a'.repeat(200) + '.example';
    for (const env of ['prod', long, 'my.env.with.dots', '-weird-', 'UPPER']) {
      const session = sessionName(env, 'sesn_011CZkZ9X2dpNyB7HsEFoRfW');
      const pod = podName(session, 'work_011CZkZ9X2dpNyB7HsEFoRfW');
      expect(session).toMatch(DNS_LABEL);
      expect(pod).toMatch(DNS_LABEL);
      expect(pod.length).toBeLessThanOrEqual(63);
      expect(session.length).toBeLessThanOrEqual(ENV_PREFIX_MAX + 11);
    }
  });

  it('two long environment names sharing a prefix do not share session names', () => {
    const a = 'x'.repeat(ENV_PREFIX_MAX) + '-alpha';
    const b = 'x'.repeat(ENV_PREFIX_MAX) + '-beta';
    expect(sessionName(a, 'sesn_1')).not.toBe(sessionName(b, 'sesn_1'));
  });

  it('give each work item of a session its own Pod, and the Secret the Pod\'s name', () => {
    const s = sessionName('prod', 'sesn_1');
    expect(podName(s, 'work_1')).not.toBe(podName(s, 'work_2'));
    expect(podName(s, 'work_1').startsWith(`${s}-`)).toBe(true);
    expect(secretName(s, 'work_1')).toBe(podName(s, 'work_1'));
  });

  it('label values are kept when valid and hashed when too long or invalid', () => {
    expect(labelValue('work_011CZkZ9X2dpNyB7HsEFoRfW')).toBe('work_011CZkZ9X2dpNyB7HsEFoRfW');
    const long = labelValue('w'.repeat(100));
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).toBe(labelValue('w'.repeat(100)));
    expect(labelValue('bad/value')).toMatch(/^h-[0-9a-f]{16}$/);
  });

  it('labels link the objects to their environment and session', () => {
    const s = sessionName('prod', 'sesn_1');
    expect(sessionLabels('prod', s)).toEqual({
      'app.kubernetes.io/managed-by': 'agentenv',
      'agentenv.io/component': 'session',
      'agentenv.io/environment': 'prod',
      'agentenv.io/session': s,
    });
    expect(workLabels('prod', s, 'work_1')['agentenv.io/work-id']).toBe('work_1');
  });
});

describe('servingPodName', () => {
  it.each([
    ['a record bound to a warm Pod is served by that Pod, under its own name', { workId: 'work_1', warmPod: { name: 'prod-warm-1a2b3c-0', uid: 'u' } }, 'prod-warm-1a2b3c-0'],
    ['any other record by the Pod made for its item', { workId: 'work_1' }, podName('prod-abc', 'work_1')],
  ])('%s', (_name, spec, expected) => {
    expect(servingPodName('prod-abc', spec)).toBe(expected);
  });
});
