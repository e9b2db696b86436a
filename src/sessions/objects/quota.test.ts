import { describe, expect, it } from 'vitest';
import type { Container, Pod } from './pod-types.ts';
import { parseQuantity, podQuotaUsage, quotaFit, type ResourceQuota } from './quota.ts';

const c = (name: string, requests?: Record<string, string>, limits?: Record<string, string>, restartPolicy?: 'Always'): Container => ({
  name,
  image: 'x',
  ...(requests || limits ? { resources: { ...(requests ? { requests } : {}), ...(limits ? { limits } : {}) } } : {}),
  ...(restartPolicy ? { restartPolicy } : {}),
});
const pod = (containers: Container[], initContainers: Container[] = [], extra: Partial<Pod['spec']> = {}): Pod => ({ metadata: { name: 'p' }, spec: { containers, initContainers, ...extra } }) as Pod;
const quota = (name: string, hard: Record<string, string>, used: Record<string, string>, spec: ResourceQuota['spec'] = {}): ResourceQuota => ({ metadata: { name }, spec, status: { hard, used } });

describe('parseQuantity', () => {
  it.each([
    ['500m', 0.5],
    ['2', 2],
    ['1Gi', 2 ** 30],
    ['128Mi', 128 * 2 ** 20],
    ['1G', 1e9],
    ['1e3', 1000],
    ['1.5', 1.5],
  ])('%s is %d', (q, n) => expect(parseQuantity(q)).toBe(n));
  it('a string that is no quantity is NaN', () => expect(parseQuantity('lots')).toBeNaN());
});

describe('podQuotaUsage', () => {
  it('counts one Pod, and the larger of app containers + sidecars and each init container + the sidecars before it', () => {
    const p = pod([c('main', { cpu: '500m', memory: '256Mi' })], [c('sidecar', { cpu: '100m', memory: '64Mi' }, undefined, 'Always'), c('setup', { cpu: '1', memory: '32Mi' })]);
    const u = podQuotaUsage(p);
    expect(u.get('pods')).toBe(1);
    expect(u.get('requests.cpu')).toBeCloseTo(1.1); // setup (1) + the sidecar started before it (0.1) > 0.5 + 0.1
    expect(u.get('cpu')).toBeCloseTo(1.1);
    expect(u.get('requests.memory')).toBe(320 * 2 ** 20); // 256Mi + 64Mi > 32Mi + 64Mi
  });
  it('a limit without a request is the request too (Pod defaulting), and overhead is added', () => {
    const u = podQuotaUsage(pod([c('main', undefined, { cpu: '2' })], [], { overhead: { cpu: '250m' } }));
    expect(u.get('limits.cpu')).toBeCloseTo(2.25);
    expect(u.get('requests.cpu')).toBeCloseTo(2.25);
  });
});

describe('quotaFit', () => {
  const p = pod([c('main', { cpu: '500m', memory: '1Gi' }, { cpu: '1', memory: '1Gi' })]);
  it.each([
    ['no quota: no limit', [], { fits: Infinity }],
    ['room for two more Pods by count', [quota('count', { pods: '5' }, { pods: '3' })], { fits: 2 }],
    ['a full Pod count names the quota and the figures', [quota('count', { pods: '3' }, { pods: '3' })], { fits: 0, quota: 'count', resource: 'pods', used: '3', hard: '3', needs: '1' }],
    ['cpu requests decide when they are the scarcer', [quota('compute', { 'requests.cpu': '4', pods: '10' }, { 'requests.cpu': '3200m', pods: '2' })], { fits: 1 }],
    ['memory exhausted', [quota('mem', { 'limits.memory': '8Gi' }, { 'limits.memory': '7680Mi' })], { fits: 0, quota: 'mem', resource: 'limits.memory', needs: '1Gi' }],
    ['the scarcest of several quotas wins', [quota('a', { pods: '10' }, { pods: '0' }), quota('b', { 'count/pods': '4' }, { 'count/pods': '3' })], { fits: 1 }],
    ['a resource the Pod does not use is not judged', [quota('gpu', { 'requests.nvidia.com/gpu': '0' }, {})], { fits: Infinity }],
    ['a quota not yet counted (no status) is left to the apiserver', [{ metadata: { name: 'new' }, spec: {} }], { fits: Infinity }],
    ['a BestEffort-scoped quota does not apply to a Pod with requests', [quota('be', { pods: '0' }, { pods: '0' }, { scopes: ['BestEffort'] })], { fits: Infinity }],
    ['a NotBestEffort-scoped quota applies', [quota('nbe', { pods: '1' }, { pods: '1' }, { scopes: ['NotBestEffort'] })], { fits: 0, quota: 'nbe' }],
    ['a PriorityClass selector for another class does not apply', [quota('high', { pods: '0' }, {}, { scopeSelector: { matchExpressions: [{ scopeName: 'PriorityClass', operator: 'In', values: ['high'] }] } })], { fits: Infinity }],
    ['a scope not judged here is left to the apiserver', [quota('x', { pods: '0' }, {}, { scopes: ['SomethingNew'] })], { fits: Infinity }],
  ])('%s', (_rule, quotas, want) => {
    expect(quotaFit(quotas as ResourceQuota[], p)).toMatchObject(want);
  });
  it('a PriorityClass selector for the Pod\'s class applies', () => {
    const q = quota('sessions', { pods: '2' }, { pods: '2' }, { scopeSelector: { matchExpressions: [{ scopeName: 'PriorityClass', operator: 'In', values: ['agent-sessions'] }] } });
    expect(quotaFit([q], { ...p, spec: { ...p.spec, priorityClassName: 'agent-sessions' } })).toMatchObject({ fits: 0, quota: 'sessions' });
  });
});
