/**
 * The session NetworkPolicy enforced on the containerd node (kube-router's policy controller): a
 * session Pod of an environment with `networkPolicy.enabled` takes no ingress and reaches neither a
 * private address nor another Pod, while it still reaches the API (here the emulator on the node's
 * address, allowed through `allowedEgress` — a real API is public). Each negative is paired with the
 * same connection succeeding where no policy applies, so a blocked result means the policy.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CORE } from '../../src/k8s/rest.ts';
import type { Pod } from '../../src/sessions/objects/pod-types.ts';
import { podName } from '../../src/sessions/record/names.ts';
import { adminRest, createNamespace, waitFor, type TestNamespace } from '../support/cluster.ts';
import { createEnvironment, dispatch, getPod, waitForSession, type SessionsWorld } from '../integration/sessions.fixtures.ts';
import { kubectl, startRuntimeWorld, unavailable } from './world.ts';

const SERVER = "require('node:http').createServer((q, r) => r.end('ok')).listen(8080)";
/** Prints `<name>=reached|blocked` for each URL of argv, every 2 s (policies are programmed shortly after a Pod starts). */
const CHECKER = `
const targets = process.argv.slice(1).map((a) => a.split('='));
const check = async () => {
  const out = [];
  for (const [name, url] of targets) {
    out.push(name + '=' + (await fetch(url, { signal: AbortSignal.timeout(2000) }).then(() => 'reached', () => 'blocked')));
  }
  console.log('check ' + out.join(' '));
};
setInterval(check, 2000); check();
process.on('SIGTERM', () => process.exit(0));
`;

const reason = unavailable() || inject('networkPolicyUnavailable');

describe.skipIf(reason)('the session NetworkPolicy on containerd', () => {
  let ns: TestNamespace;
  let w: SessionsWorld;
  const runPod = async (name: string, args: string[]): Promise<string> => {
    await kubectl('run', name, '--namespace', ns.name, `--image=${inject('runnerImage')}`, `--labels=app=${name}`, '--restart=Never', '--command', '--', 'node', '-e', ...args);
    const pod = await waitFor(async () => {
      const p = await adminRest().get<Pod>(CORE.pods, ns.name, name);
      return p.status?.phase === 'Running' && p.status.podIP ? p : undefined;
    }, { what: `Pod ${name} running`, timeoutMs: 60_000 });
    return pod.status!.podIP!;
  };
  beforeAll(async () => {
    ns = await createNamespace('netpol');
    w = await startRuntimeWorld(ns.name);
  });
  afterAll(async () => {
    await w?.stop();
    await ns?.cleanup();
  });

  it('denies ingress to the session Pod and egress to other Pods, and allows the API', async () => {
    const targetIp = await runPod('target', [SERVER]);
    const emulatorPort = new URL(w.emu.url).port;
    const env = await createEnvironment(
      w,
      'fenced',
      { spec: { containers: [{ name: 'session', image: inject('runnerImage'), command: ['node', '-e', CHECKER, `api=${w.emu.url}/`, `pod=http://${targetIp}:8080/`] }] } },
      { leaseTTLSeconds: 10, networkPolicy: { enabled: true, allowedEgress: [{ cidr: `${inject('nodeAddress')}/32`, ports: [Number(emulatorPort)] }] } },
    );
    // What the environment's pass does (the environments reconciler is not running here): apply the policy.
    await w.controller.applyNetworkPolicy(env.env);
    expect(await adminRest().get(CORE.networkPolicies, ns.name, 'fenced-sessions')).toBeTruthy();
    const d = await dispatch(w, env);
    const name = podName(d.name, d.work.id);
    await waitForSession(w, d.name, (s) => s.status?.phase === 'Running', 'Running', 120_000);
    const sessionIp = await waitFor(async () => (await getPod(w, name))?.status?.podIP, { what: 'the session Pod IP' });

    // From the session Pod: the API reached, the other Pod blocked.
    await waitFor(async () => (await getPod(w, name))?.status?.containerStatuses?.some((c) => c.name === 'session' && c.state?.running) ?? false, { what: 'the main container running', timeoutMs: 60_000 });
    await waitFor(async () => (await kubectl('logs', '--namespace', ns.name, name, '-c', 'session')).includes('check api=reached pod=blocked'), { what: 'the session Pod reaching the API and not the other Pod', timeoutMs: 60_000 });
    // From a Pod under no policy: the other Pod reached (the control), the session Pod's probe port blocked.
    await runPod('client', [CHECKER, `pod=http://${targetIp}:8080/`, `session=http://${sessionIp}:8095/started`]);
    await waitFor(async () => (await kubectl('logs', '--namespace', ns.name, 'client')).includes('check pod=reached session=blocked'), { what: 'a Pod without policy reaching the other Pod and not the session Pod', timeoutMs: 60_000 });
    // The kubelet still probes the sidecar (probes come from the node, which the policy does not cover).
    expect((await getPod(w, name))?.status?.initContainerStatuses?.find((c) => c.name === 'agentenv-sidecar')?.started).toBe(true);
  });
});
