/**
 * Warm pools end to end on the local cluster: the real operator (least-privilege RBAC) keeps two
 * warm Pods of the default runner on the process kubelet before any session; two sessions bind to
 * them — the sidecar learns its assignment from the operator's https endpoint (its projected token
 * checked by a TokenReview), claims the lease, and the runner serves the agent's bash call — and
 * the pool refills to two with new Pods. The warm Pods hold no key and no token before binding.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { AgentEnvironment, AgentSession } from '../../src/crd/resources.ts';
import { AGENT_ENVIRONMENTS, AGENT_SESSIONS } from '../../src/crd/resources.ts';
import { CORE, type KubeObject } from '../../src/k8s/rest.ts';
import { SIDECAR_NAME } from '../../src/sessions/objects/pod.ts';
import type { Pod } from '../../src/sessions/objects/pod-types.ts';
import { podName, warmPoolSelector } from '../../src/sessions/record/names.ts';
import { bash, resultText, scriptAgent, waitForToolResults } from '../support/agent-script.ts';
import { adminRest, createNamespace, operatorRest, waitFor, type TestNamespace } from '../support/cluster.ts';
import { settleSession } from '../../src/sessions/dispatch/settle.ts';
import { kubeRecordStore } from '../../src/sessions/record/record.ts';
import { API_KEY, clientFor, emulator } from '../support/emulator.ts';
import { startTestOperator, type TestOperator } from '../support/operator.ts';
import { containerLog, containerPid, volumeFile } from '../support/pod-files.ts';
import { writeServingCertificate } from '../../src/localcluster/serving-cert.ts';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { freePort } from '../../src/localcluster/controlplane-process.ts';

let ns: TestNamespace;
let emu: RunningEmulator;
let operator: TestOperator;
let assignment: { url: string; port: number; tlsDir: string };
const admin = adminRest();



beforeAll(async () => {
  ns = await createNamespace('warm');
  emu = await emulator({ workSecrets: true, leaseTtl: { defaultSeconds: 20, minSeconds: 2 } });
  const port = await freePort();
  assignment = { url: `https://127.0.0.1:${port}`, port, tlsDir: writeServingCertificate(mkdtempSync(join(tmpdir(), 'agentenv-assignment-'))) };
  operator = await startOperatorLife();
});

/** One operator life, on the same assignment endpoint (port, certificate) as every other. */
const startOperatorLife = (onApiCall?: (r: { endpoint: string }) => void) =>
  startTestOperator({ kubeconfig: inject('operatorKubeconfig'), namespace: ns.name, baseUrl: emu.url, apiKey: API_KEY, assignment, ...(onApiCall ? { onApiCall } : {}) });

afterAll(async () => {
  await operator?.stop();
  await emu?.close();
  await ns?.cleanup();
});

const secretOf = (r: AgentSession): string => podName(r.metadata!.name!, r.spec.workId);
const listWarm = async (): Promise<Pod[]> => (await admin.list<Pod>(CORE.pods, ns.name, { labelSelector: warmPoolSelector('pool') })).items.filter((p) => !p.metadata?.deletionTimestamp);
const ready = (p: Pod): boolean => !!p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');

describe('a warm pool of two', () => {
  it('has two ready warm Pods before any session, binds two sessions to them (their bash results come back) and refills to two', async () => {
    const api = clientFor(emu);
    const remote = await api.createEnvironment({ name: 'pool', config: { type: 'self_hosted' } });
    const key = emu.admin.mintKey(remote.id);
    await admin.create(CORE.secrets, ns.name, { metadata: { name: 'pool-key' }, stringData: { key } } as KubeObject);
    await admin.create<AgentEnvironment>(AGENT_ENVIRONMENTS, ns.name, {
      metadata: { name: 'pool' },
      spec: { environmentId: remote.id, selfHosted: { environmentKeySecretRef: { name: 'pool-key', key: 'key' }, warmPool: { size: 2 }, stopGracePeriodSeconds: 5 } },
    } as unknown as AgentEnvironment);

    // Two ready warm Pods before any session.
    const warm = await waitFor(async () => {
      const pods = await listWarm();
      return pods.length === 2 && pods.every(ready) ? pods : undefined;
    }, { what: 'two ready warm Pods', timeoutMs: 90_000 });
    await waitFor(async () => (await admin.get<AgentEnvironment>(AGENT_ENVIRONMENTS, ns.name, 'pool')).status?.warmPool?.ready === 2, { what: 'status.warmPool.ready 2', timeoutMs: 30_000 });

    // No key and no token before binding: no Secret anywhere in the Pod; the sandbox container has
    // no session id and mounts nothing of the sidecar's; the only token is the sidecar's own.
    for (const pod of warm) {
      expect(pod.spec.volumes!.filter((v) => v.secret)).toEqual([]);
      const main = pod.spec.containers[0]!;
      expect((main.env ?? []).map((e) => e.name)).not.toContain('ANTHROPIC_SESSION_ID');
      expect((main.env ?? []).some((e) => e.valueFrom?.secretKeyRef)).toBe(false);
      expect(main.volumeMounts!.map((m) => m.name)).toEqual(['workspace']);
      expect(pod.spec.initContainers!.find((c) => c.name === SIDECAR_NAME)!.volumeMounts!.map((m) => m.name)).toContain('agentenv-assignment');
      // As the sandbox sees it: the runner's own environment holds no credential and no session.
      const pid = containerPid(pod, 'session');
      expect(pid, 'the runner runs').toBeDefined();
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
      expect(environ).not.toContain(key);
      expect(environ).not.toMatch(/sk-ant-|ANTHROPIC_SESSION_ID=|ANTHROPIC_WORK_ID=|AGENTENV_ASSIGNMENT_/);
      expect(environ).toContain('AGENTENV_WAIT_FOR_ASSIGNMENT=1');
      // The sidecar's token is in its own volume only (the sandbox mounts just its workspace).
      expect(volumeFile(pod, 'agentenv-assignment', 'token')).toMatch(/^ey/);
    }

    // Two sessions: each bound to one of the warm Pods, each bash call answered.
    const sessions = [emu.admin.createSession(remote.id), emu.admin.createSession(remote.id)];
    const scripted = await Promise.all(sessions.map(async (s, i) => ({ s, ids: await scriptAgent(emu.url, s.session_id, [bash(`echo warm-${i}`)]) })));
    const records = await waitFor(async () => {
      const all = (await admin.list<AgentSession>(AGENT_SESSIONS, ns.name)).items;
      return all.length === 2 && all.every((r) => r.spec.warmPod) ? all : undefined;
    }, { what: 'two AgentSessions bound to warm Pods', timeoutMs: 30_000 });
    const warmNames = new Set(warm.map((p) => p.metadata?.name));
    expect(new Set(records.map((r) => r.spec.warmPod!.name))).toEqual(warmNames);
    for (const { s, ids } of scripted) {
      const results = await waitForToolResults(emu.url, s.session_id, ids, { timeoutMs: 60_000 });
      expect(resultText(results.get(ids[0]!))).toMatch(/warm-\d/);
    }

    // The pool refills to two, with new Pods: a served warm Pod is never reused.
    const refilled = await waitFor(async () => {
      const pods = await listWarm();
      return pods.length === 2 && pods.every(ready) ? pods : undefined;
    }, { what: 'the pool refilled to two ready Pods', timeoutMs: 90_000 });
    for (const p of refilled) expect(warmNames.has(p.metadata?.name)).toBe(false);
    // Each sidecar got its assignment from the endpoint; the credential never reached a log line.
    expect(operator.logLines.filter((l) => l.includes('handed a warm Pod its assignment')).length).toBeGreaterThanOrEqual(2);
    const secrets = await Promise.all(records.map((r) => admin.get<KubeObject & { data?: Record<string, string> }>(CORE.secrets, ns.name, secretOf(r)).catch(() => undefined)));
    for (const sec of secrets) {
      const token = sec?.data?.['token'] ? Buffer.from(sec.data['token'], 'base64').toString('utf8') : undefined;
      if (token) expect(operator.logLines.some((l) => l.includes(token))).toBe(false);
    }
  });

  it('replaces a warm Pod deleted while waiting', async () => {
    const before = await waitFor(async () => {
      const pods = await listWarm();
      return pods.length === 2 && pods.every(ready) ? pods : undefined;
    }, { what: 'two ready warm Pods', timeoutMs: 90_000 });
    const victim = before[0]!;
    await admin.delete(CORE.pods, ns.name, victim.metadata!.name!, { preconditions: { uid: victim.metadata!.uid! } });
    await waitFor(async () => {
      const pods = await listWarm();
      return pods.length === 2 && pods.every(ready) && !pods.some((p) => p.metadata?.uid === victim.metadata?.uid) ? pods : undefined;
    }, { what: 'the deleted warm Pod replaced', timeoutMs: 90_000 });
  });

  it('a warm sidecar killed while waiting is restarted by the kubelet, waits again, and its Pod then serves a session', async () => {
    const pods = await waitFor(async () => {
      const p = await listWarm();
      return p.length === 2 && p.every(ready) ? p : undefined;
    }, { what: 'two ready warm Pods', timeoutMs: 90_000 });
    for (const pod of pods) process.kill(containerPid(pod, SIDECAR_NAME)!, 'SIGKILL');
    await waitFor(async () => {
      const p = await listWarm();
      const restarted = (x: Pod) => (x.status?.initContainerStatuses ?? []).some((c) => c.name === SIDECAR_NAME && (c.restartCount ?? 0) > 0);
      return p.length === 2 && p.every((x) => ready(x) && restarted(x)) ? p : undefined;
    }, { what: 'both sidecars restarted and ready', timeoutMs: 60_000 });
    // Bind candidates come from the operator's warm-Pod cache: let its watch deliver the readiness
    // seen above (ms on a quiet machine; this margin is for a loaded one).
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    const remoteId = (await admin.get<AgentEnvironment>(AGENT_ENVIRONMENTS, ns.name, 'pool')).status!.environmentId!;
    const s = emu.admin.createSession(remoteId);
    const ids = await scriptAgent(emu.url, s.session_id, [bash('echo after-a-sidecar-restart')]);
    const results = await waitForToolResults(emu.url, s.session_id, ids, { timeoutMs: 60_000 });
    expect(resultText(results.get(ids[0]!))).toContain('after-a-sidecar-restart');
    const record = (await admin.list<AgentSession>(AGENT_SESSIONS, ns.name)).items.find((r) => r.spec.sessionId === s.session_id)!;
    expect(pods.map((p) => p.metadata?.uid)).toContain(record.spec.warmPod?.uid);
  });

  it('deletes a Pod taken for an item that was never recorded (an operator killed between the take and the record), and refills', async () => {
    const pods = await waitFor(async () => {
      const p = await listWarm();
      return p.length === 2 && p.every(ready) ? p : undefined;
    }, { what: 'two ready warm Pods', timeoutMs: 90_000 });
    const taken = pods[0]!;
    // What the take writes, two minutes ago, with no record after it.
    await admin.patch(CORE.pods, ns.name, taken.metadata!.name!, {
      metadata: { labels: { 'agentenv.io/component': 'session', 'agentenv.io/session': 'pool-never-recorded' }, annotations: { 'agentenv.io/bound-at': new Date(Date.now() - 120_000).toISOString() } },
    }, 'merge');
    await waitFor(async () => {
      try {
        const p = await admin.get<Pod>(CORE.pods, ns.name, taken.metadata!.name!);
        return p.metadata?.uid !== taken.metadata?.uid || p.metadata?.deletionTimestamp ? true : undefined;
      } catch {
        return true;
      }
    }, { what: 'the orphaned Pod deleted', timeoutMs: 30_000 });
    await waitFor(async () => {
      const p = await listWarm();
      return p.length === 2 && p.every(ready) ? p : undefined;
    }, { what: 'the pool refilled', timeoutMs: 90_000 });
  });

  it('an operator killed as its ack of a bound item returns: the next life settles the record and the bound warm Pod serves the item once', async () => {
    const pods = await waitFor(async () => {
      const p = await listWarm();
      return p.length === 2 && p.every(ready) ? p : undefined;
    }, { what: 'two ready warm Pods', timeoutMs: 90_000 });
    // This life dies at its ack: the record names the Pod, the ack reached the API, nothing after it ran.
    await operator.stop();
    let crashed = false;
    operator = await startOperatorLife((r) => {
      if (r.endpoint === 'work.ack' && !crashed) {
        crashed = true;
        throw new Error('operator killed here');
      }
    });
    const remoteId = (await admin.get<AgentEnvironment>(AGENT_ENVIRONMENTS, ns.name, 'pool')).status!.environmentId!;
    const s = emu.admin.createSession(remoteId);
    const ids = await scriptAgent(emu.url, s.session_id, [bash('echo after-the-crash')]);
    const record = await waitFor(async () => (await admin.list<AgentSession>(AGENT_SESSIONS, ns.name)).items.find((r) => r.spec.sessionId === s.session_id && r.spec.warmPod), { what: 'the record naming a warm Pod', timeoutMs: 30_000 });
    await waitFor(() => crashed, { what: 'the ack', timeoutMs: 30_000 });
    await operator.stop();
    // The settle pass leaves records younger than its grace (5 s) to their hand-off.
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    operator = await startOperatorLife();
    const results = await waitForToolResults(emu.url, s.session_id, ids, { timeoutMs: 90_000 });
    expect(resultText(results.get(ids[0]!))).toContain('after-the-crash');
    const after = await admin.get<AgentSession>(AGENT_SESSIONS, ns.name, record.metadata!.name!);
    expect(after.spec.warmPod).toEqual(record.spec.warmPod);
    expect(pods.map((p) => p.metadata?.uid)).toContain(record.spec.warmPod!.uid);
    const bound = (await admin.list<AgentSession>(AGENT_SESSIONS, ns.name)).items.filter((r) => r.spec.warmPod?.uid === record.spec.warmPod!.uid);
    expect(bound).toHaveLength(1);
    // A settle from the reading taken before the acknowledgement (a duplicate delivery's hand-off
    // whose ack answered 409 meanwhile) leaves the served record alone: its item is active in the
    // record's warm Pod, not held by another worker.
    const settled = await settleSession({ store: kubeRecordStore(operatorRest()), api: clientFor(emu), now: () => new Date() }, record);
    expect(settled).toBe('none');
    expect((await admin.get<AgentSession>(AGENT_SESSIONS, ns.name, record.metadata!.name!)).status).toMatchObject({ workId: record.spec.workId, acknowledgedAt: after.status?.acknowledgedAt });
  });

  it('serves a burst larger than the pool: the ready Pods bound, the rest cold, every bash result back', async () => {
    await waitFor(async () => {
      const p = await listWarm();
      return p.length === 2 && p.every(ready) ? p : undefined;
    }, { what: 'two ready warm Pods', timeoutMs: 90_000 });
    // …as the operator's pass saw them (its cache is what a take picks from).
    await waitFor(async () => (await admin.get<AgentEnvironment>(AGENT_ENVIRONMENTS, ns.name, 'pool')).status?.warmPool?.ready === 2, { what: 'status.warmPool.ready 2', timeoutMs: 30_000 });
    const remoteId = (await admin.get<AgentEnvironment>(AGENT_ENVIRONMENTS, ns.name, 'pool')).status!.environmentId!;
    const burst = Array.from({ length: 4 }, () => emu.admin.createSession(remoteId));
    const scripted = await Promise.all(burst.map(async (s, i) => ({ s, ids: await scriptAgent(emu.url, s.session_id, [bash(`echo burst-${i}`)]) })));
    for (const { s, ids } of scripted) {
      const results = await waitForToolResults(emu.url, s.session_id, ids, { timeoutMs: 60_000 }).catch(async (err: unknown) => {
        // Say where the session stood: its record, the operator's lines about it, its Pod's logs.
        const r = (await admin.list<AgentSession>(AGENT_SESSIONS, ns.name)).items.find((x) => x.spec.sessionId === s.session_id);
        const podName = r?.status?.podName ?? r?.spec.warmPod?.name ?? '';
        const about = operator.logLines.filter((l) => l.includes(s.session_id) || (podName && l.includes(podName)));
        const pod = { metadata: { namespace: ns.name, name: podName, uid: r?.spec.warmPod?.uid ?? '' } };
        const logs = `operator:\n${about.join('')}\nsession container:\n${containerLog(pod, 'session')}\nsidecar:\n${containerLog(pod, SIDECAR_NAME)}`;
        throw new Error(`${String(err)}; record ${JSON.stringify({ spec: r?.spec, status: r?.status })}\n${logs}`, { cause: err });
      });
      expect(resultText(results.get(ids[0]!))).toMatch(/burst-\d/);
    }
    const ids = new Set(burst.map((b) => b.session_id));
    const records = (await admin.list<AgentSession>(AGENT_SESSIONS, ns.name)).items.filter((r) => ids.has(r.spec.sessionId));
    expect(records).toHaveLength(4);
    const warmBound = records.filter((r) => r.spec.warmPod);
    expect(warmBound.length).toBeGreaterThanOrEqual(1);
    expect(warmBound.length).toBeLessThanOrEqual(2);
    expect(new Set(warmBound.map((r) => r.spec.warmPod!.uid)).size).toBe(warmBound.length);
  });

  it('is sized through the scale subresource, as HPA and KEDA drive it: /scale writes warmPool.size and reads the unbound Pods and their selector back', async () => {
    // The REST client names only the status subresource; /scale is reached the same way.
    const scale = await admin.patch<KubeObject & { spec?: { replicas?: number }; status?: { replicas?: number; selector?: string } }>(AGENT_ENVIRONMENTS, ns.name, 'pool', { spec: { replicas: 3 } }, 'merge', { subresource: 'scale' as 'status' });
    expect(scale.spec?.replicas).toBe(3);
    expect(scale.status?.selector).toBe(warmPoolSelector('pool'));
    expect((await admin.get<AgentEnvironment>(AGENT_ENVIRONMENTS, ns.name, 'pool')).spec.selfHosted?.warmPool?.size).toBe(3);
    await waitFor(async () => {
      const p = await listWarm();
      return p.length === 3 && p.every(ready) ? p : undefined;
    }, { what: 'three ready warm Pods', timeoutMs: 90_000 });
    await waitFor(async () => (await admin.get<AgentEnvironment>(AGENT_ENVIRONMENTS, ns.name, 'pool')).status?.warmPool?.replicas === 3, { what: 'status.warmPool.replicas 3', timeoutMs: 30_000 });
  });
});
