import { describe, expect, it } from 'vitest';
import { classifyPodRefusal } from './pod-refusal.ts';

const forbidden = (detail: string) => ({ status: 403, message: `create pods team-a/s-1: pods "s-1" is forbidden: ${detail}` });

describe('classifyPodRefusal', () => {
  it.each([
    [
      'a full ResourceQuota is QuotaExhausted, naming the quota and what is used up',
      forbidden('exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2'),
      { kind: 'quota', reason: 'QuotaExhausted', message: 'session Pods do not fit ResourceQuota compute in namespace team-a: pods: 2 of 2 used, a session Pod needs 1' },
    ],
    [
      'every exhausted resource of the quota is named',
      forbidden('exceeded quota: mem, requested: requests.cpu=500m,requests.memory=1Gi, used: requests.cpu=3800m,requests.memory=7Gi, limited: requests.cpu=4,requests.memory=8Gi'),
      { kind: 'quota', message: 'session Pods do not fit ResourceQuota mem in namespace team-a: requests.cpu: 3800m of 4 used, a session Pod needs 500m; requests.memory: 7Gi of 8Gi used, a session Pod needs 1Gi' },
    ],
    [
      'a quota that needs a figure the Pod lacks is a quota refusal that says what to set',
      forbidden('failed quota: compute: must specify limits.cpu,limits.memory'),
      { kind: 'quota', reason: 'QuotaExhausted', message: "ResourceQuota compute in namespace team-a needs session Pods to specify limits.cpu,limits.memory (set it in the sessionTemplate's containers)" },
    ],
    ['a quota not yet counted by its controller is a quota refusal', forbidden('status unknown for quota: compute, resources: pods'), { kind: 'quota', message: 'ResourceQuota compute in namespace team-a has not been counted yet by the quota controller' }],
    [
      'a LimitRange refusal (403) is LimitRangeRefused with the plugin\'s words',
      forbidden('[maximum cpu usage per Container is 1, but limit is 2, maximum memory usage per Pod is 1Gi, but limit is 2Gi]'),
      { kind: 'limitRange', reason: 'LimitRangeRefused', message: 'a LimitRange in namespace team-a refuses session Pods: [maximum cpu usage per Container is 1, but limit is 2, maximum memory usage per Pod is 1Gi, but limit is 2Gi]' },
    ],
    ['a LimitRange ratio refusal as 422 counts too', { status: 422, message: 'pods "s-1" is forbidden: cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000' }, { kind: 'limitRange' }],
    [
      'a webhook denial (its own code, here 400) is AdmissionDenied naming the webhook',
      { status: 400, message: 'create pods team-a/s-1: admission webhook "capacity.example.com" denied the request: the team is over its GPU budget' },
      { kind: 'webhook', reason: 'AdmissionDenied', message: 'admission webhook capacity.example.com denied the session Pod: the team is over its GPU budget' },
    ],
    ['a webhook denial without an explanation', { status: 403, message: 'admission webhook "w.example.com" denied the request without explanation' }, { kind: 'webhook', message: 'admission webhook w.example.com denied the session Pod' }],
    [
      'a ValidatingAdmissionPolicy denial is AdmissionDenied naming the policy',
      forbidden("ValidatingAdmissionPolicy 'max-sessions' with binding 'max-sessions-binding' denied request: too many sessions"),
      { kind: 'webhook', reason: 'AdmissionDenied', message: 'ValidatingAdmissionPolicy max-sessions denied the session Pod: too many sessions' },
    ],
  ])('%s', (_rule, status, want) => {
    expect(classifyPodRefusal(status, 'team-a')).toMatchObject(want);
  });

  it.each([
    ['Pod Security (a template problem, not capacity)', forbidden('violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false')],
    ['RBAC (the operator may not create Pods)', { status: 403, message: 'pods is forbidden: User "system:serviceaccount:agentenv:agentenv" cannot create resource "pods" in API group "" in the namespace "team-a"' }],
    ['an invalid Pod', { status: 422, message: 'Pod "s-1" is invalid: spec.containers[0].image: Required value' }],
    ['a webhook that could not be called (500, transient)', { status: 500, message: 'Internal error occurred: failed calling webhook "w.example.com": connection refused' }],
    ['a throttled create', { status: 429, message: 'exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2' }],
    ['a failure without a status', { status: undefined, message: 'socket hang up' }],
  ])('is not a capacity refusal: %s', (_rule, status) => {
    expect(classifyPodRefusal(status, 'team-a')).toBeUndefined();
  });
});
