/**
 * A warm Pod after binding, on the local cluster with the real operator, sidecar and runner (the
 * pool itself, its refill and its crash points before the record are in warm-pool.test.ts):
 * - the session ends: the record settles, the Pod is deleted with it, and the pool refills with
 *   new Pods (a Pod that served is never bound again);
 * - the sidecar is SIGKILLed holding the lease of its bound item: the kubelet restarts it, it asks
 *   for its assignment again, resumes the lease from its state file, and the session is served once;
 * - what the sandbox sees once bound: no environment key, no per-item token or work secret, and
 *   not the projected assignment token (mounted into the sidecar alone), in its environment, in the
 *   environment of any process it can see, or in its files.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { decodeWorkSecret } from '../../src/api/work-secret.ts';
import { AGENT_ENVIRONMENTS, AGENT_SESSIONS, type AgentEnvironment, type AgentSession } from '../../src/crd/resources.ts';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { isNotFound } from '../../src/k8s/errors.ts';
import { CORE, type KubeObject } from '../../src/k8s/rest.ts';
import { SIDECAR_NAME } from '../../src/sessions/objects/pod.ts';
import type { Pod } from '../../src/sessions/objects/pod-types.ts';
import { ASSIGNMENT_VOLUME } from '../../src/sessions/objects/warm-pod.ts';
import { secretName, SECRET_TOKEN_KEY, SECRET_WORK_SECRET_KEY } from '../../src/sessions/record/names.ts';
import { bash, resultText, scriptAgent, sessionEvents, terminated, waitForToolResults } from '../support/agent-script.ts';
import { adminRest, createNamespace, waitFor, type TestNamespace } from '../support/cluster.ts';
import { API_KEY, clientFor, emulator } from '../support/emulator.ts';
import { startTestOperator, type TestOperator } from '../support/operator.ts';
import { containerPid, volumeFile } from '../support/pod-files.ts';
import { assignmentEndpoint, listWarm, waitForReadyPool } from '../support/warm-pool.ts';

const ENV = 'bound';
let ns: TestNamespace;
let emu: RunningEmulator;
let operator: TestOperator;
let remoteId: string;
let envKey: string;
const admin = adminRest();

beforeAll(async () => {
  ns = await createNamespace('warm-bound');
  emu = await emulator({ workSecrets: true, leaseTtl: { defaultSeconds: 20, minSeconds: 2 } });
  operator = await startTestOperator({ kubeconfig: inject('operatorKubeconfig'), namespace: ns.name, baseUrl: emu.url, apiKey: API_KEY, assignment: await assignmentEndpoint() });
  const remote = await clientFor(emu).createEnvironment({ name: ENV, config: { type: 'self_hosted' } });
  remoteId = remote.id;
  envKey = emu.admin.mintKey(remote.id);
  await admin.create(CORE.secrets, ns.name, { metadata: { name: `${ENV}-key` }, stringData: { key: envKey } } as KubeObject);
  // A finished record (and its Pod and Secret) is deleted 2 s after it finished.
  await admin.create<AgentEnvironment>(AGENT_ENVIRONMENTS, ns.name, {
    metadata: { name: ENV },
    spec: { environmentId: remote.id, selfHosted: { environmentKeySecretRef: { name: `${ENV}-key`, key: 'key' }, warmPool: { size: 2 }, stopGracePeriodSeconds: 5, sessionTTLSecondsAfterFinished: 2 } },
  } as unknown as AgentEnvironment);
});

afterAll(async () => {
  await operator?.stop();
  await emu?.close();
  await ns?.cleanup();
});

const recordOf = async (sessionId: string): Promise<AgentSession | undefined> => (await admin.list<AgentSession>(AGENT_SESSIONS, ns.name)).items.find((r) => r.spec.sessionId === sessionId);

/** A new session bound to one of `pool`'s Pods, once its lease is claimed: its record and that Pod. */
async function boundSession(pool: readonly Pod[]): Promise<{ sessionId: string; record: AgentSession; pod: Pod }> {
  const { session_id: sessionId } = emu.admin.createSession(remoteId);
  const record = await waitFor(async () => {
    const r = await recordOf(sessionId);
    return r?.status?.phase === 'Running' ? r : undefined;
  }, { what: 'the bound session Running (its lease claimed)', timeoutMs: 60_000 });
  const pod = pool.find((p) => p.metadata?.uid === record.spec.warmPod?.uid);
  expect(pod, 'the session is bound to a Pod of the ready pool').toBeDefined();
  return { sessionId, record, pod: pod! };
}

describe('a bound warm Pod', () => {
  it('whose session ends is settled with its record: the record Succeeded, the Pod deleted, the pool refilled with new Pods, the Pod never bound again', async () => {
    const pool = await waitForReadyPool(admin, ns.name, ENV);
    const { sessionId, record, pod } = await boundSession(pool);
    const [echo] = await scriptAgent(emu.url, sessionId, [bash('echo served-once')]);
    expect(resultText((await waitForToolResults(emu.url, sessionId, [echo!], { timeoutMs: 60_000 })).get(echo!))).toContain('served-once');
    await scriptAgent(emu.url, sessionId, [terminated()]);

    // The record settles as a cold one does: Succeeded, its item stopped…
    const finished = await waitFor(async () => {
      const r = await admin.get<AgentSession>(AGENT_SESSIONS, ns.name, record.metadata!.name!).catch(() => undefined);
      return r?.status?.finishedAt ? r : undefined;
    }, { what: 'the record finished', timeoutMs: 60_000 });
    expect(finished.status).toMatchObject({ phase: 'Succeeded', workState: 'stopped', podName: pod.metadata!.name });
    // …then goes after its TTL, and the Pod with it.
    await waitFor(async () => {
      const gone = (p: Promise<unknown>) => p.then(() => false, (err: unknown) => isNotFound(err));
      const podGone = await admin.get<Pod>(CORE.pods, ns.name, pod.metadata!.name!).then((p) => p.metadata?.uid !== pod.metadata?.uid, (err: unknown) => isNotFound(err));
      return podGone && (await gone(admin.get(AGENT_SESSIONS, ns.name, record.metadata!.name!))) ? true : undefined;
    }, { what: 'the record and the served Pod deleted', timeoutMs: 60_000 });

    // The pool is two ready Pods again, none of them the one that served.
    const refilled = await waitForReadyPool(admin, ns.name, ENV, 2, 'the pool refilled');
    expect(refilled.map((p) => p.metadata?.uid)).not.toContain(pod.metadata?.uid);
    // No record ever named the served Pod but its own.
    const naming = (await admin.list<AgentSession>(AGENT_SESSIONS, ns.name)).items.filter((r) => r.spec.warmPod?.uid === pod.metadata?.uid);
    expect(naming).toEqual([]);
  });

  it('whose sidecar is SIGKILLed holding the lease of its bound item resumes the lease after the restart, and the session is served once', async () => {
    const pool = await waitForReadyPool(admin, ns.name, ENV);
    const { sessionId, record, pod } = await boundSession(pool);
    const before = containerPid(pod, SIDECAR_NAME)!;
    process.kill(before, 'SIGKILL');
    await waitFor(async () => {
      const p = await admin.get<Pod>(CORE.pods, ns.name, pod.metadata!.name!);
      const s = p.status?.initContainerStatuses?.find((c) => c.name === SIDECAR_NAME);
      return (s?.restartCount ?? 0) > 0 && s?.ready && containerPid(p, SIDECAR_NAME) !== before ? p : undefined;
    }, { what: 'the sidecar restarted and ready', timeoutMs: 60_000 });

    const [echo] = await scriptAgent(emu.url, sessionId, [bash('echo after-the-kill')]);
    await waitForToolResults(emu.url, sessionId, [echo!], { timeoutMs: 60_000 });
    // Served once: one result for the call, by the same Pod, on the same item, its lease never lost.
    const results = (await sessionEvents(emu.url, sessionId)).filter((e) => e.type === 'user.tool_result' && e['tool_use_id'] === echo);
    expect(results).toHaveLength(1);
    expect(resultText(results[0])).toContain('after-the-kill');
    const after = (await recordOf(sessionId))!;
    expect(after.spec.warmPod).toEqual(record.spec.warmPod);
    expect(after.spec.workId).toBe(record.spec.workId);
    expect(after.status).toMatchObject({ phase: 'Running', workItems: 1 });
    await scriptAgent(emu.url, sessionId, [terminated()]);
  });

  it('gives the sandbox no environment key, no per-item token or work secret and no assignment token: not in its environment, the environments it can see, or its files', async () => {
    const pool = await waitForReadyPool(admin, ns.name, ENV);
    const { sessionId, record, pod } = await boundSession(pool);
    const secret = await admin.get<KubeObject & { data?: Record<string, string> }>(CORE.secrets, ns.name, secretName(record.metadata!.name!, record.spec.workId));
    const decoded = (k: string) => Buffer.from(secret.data?.[k] ?? '', 'base64').toString('utf8');
    const workSecret = decoded(SECRET_WORK_SECRET_KEY);
    const itemToken = decoded(SECRET_TOKEN_KEY);
    expect(decodeWorkSecret(workSecret)?.sessions_token).toBe(itemToken);
    const assignmentToken = volumeFile(pod, ASSIGNMENT_VOLUME, 'token')!;
    expect(assignmentToken).toMatch(/^ey/);
    const secrets: Record<string, string> = { 'the environment key': envKey, 'the per-item token': itemToken, 'the work secret': workSecret, 'the organization API key': API_KEY, 'the assignment token': assignmentToken.trim() };

    // From inside the session container, as agent-written code would look. The process kubelet
    // shares the host's PID namespace, so every process is visible: the environments printed are
    // those of agentenv's processes (the Pod's sidecar and runner among them), to keep the result small.
    const calls = await scriptAgent(emu.url, sessionId, [
      bash('env'),
      bash('for f in /proc/[0-9]*/environ; do e=$(tr "\\0" "\\n" < "$f" 2>/dev/null) || continue; case "$e" in *AGENTENV_*|*ANTHROPIC_*) echo "== $f"; echo "$e";; esac; done'),
      bash('cat /var/run/agentenv/assignment/token /var/run/secrets/kubernetes.io/serviceaccount/token 2>&1; find /workspace /var/run/agentenv /var/run/secrets -type f 2>&1 | head -100; find /workspace -type f -size -1M -exec cat {} + 2>/dev/null | head -c 1000000'),
    ]);
    const results = await waitForToolResults(emu.url, sessionId, calls, { timeoutMs: 60_000 });
    const [env, environs, files] = calls.map((id) => resultText(results.get(id)));
    // Each output shows what it looked at (the SDK's bash tool drops ANTHROPIC_* from its own
    // environment; the runner's, printed from /proc, keeps them).
    expect(env).toContain(`HOSTNAME=${pod.metadata!.name}`);
    expect(environs).toContain('ANTHROPIC_WORK_SECRET=');
    expect(environs).toContain('AGENTENV_WAIT_FOR_ASSIGNMENT=1');
    expect(environs).toContain('AGENTENV_ASSIGNMENT_TOKEN_FILE=');
    expect(files).toMatch(/\/var\/run\/agentenv\/assignment\/token: No such file or directory/);
    for (const [what, value] of Object.entries(secrets)) {
      expect(value.length, what).toBeGreaterThan(8);
      for (const [where, text] of Object.entries({ 'its environment': env!, 'the environments it can see': environs!, 'its files': files! })) {
        expect(text.includes(value), `${what} in ${where}`).toBe(false);
      }
    }
    await scriptAgent(emu.url, sessionId, [terminated()]);
    await waitFor(async () => (await listWarm(admin, ns.name, ENV)).length === 2, { what: 'the pool refilled', timeoutMs: 90_000 });
  });
});
