/**
 * The operator's session Pods on a real kubelet (containerd + runc) with the images built from the
 * Dockerfile: the native sidecar gates the main container; the securityContext the operator writes is
 * in force inside both containers (read from /proc/self/status and by trying, not from the spec); the
 * main container reaches neither the sidecar's processes nor its credential, while the sidecar itself
 * reads it (the positive control that makes the negative ones mean something); and the Restricted Pod
 * Security Standard, enforced by the apiserver on a labelled namespace, admits the Pods and refuses a
 * Custom template that breaks it.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CORE, type KubeObject } from '../../src/k8s/rest.ts';
import { podName } from '../../src/sessions/record/names.ts';
import { SIDECAR_NAME } from '../../src/sessions/objects/pod.ts';
import { CREDENTIAL_DIR, SIDECAR_UID } from '../../src/contract/sidecar.ts';
import { adminRest, createNamespace, waitFor, type TestNamespace } from '../support/cluster.ts';
import { createEnvironment, dispatch, getPod, waitForSession, type SessionsWorld } from '../integration/sessions.fixtures.ts';
import { kubectl, startRuntimeWorld, unavailable } from './world.ts';

/**
 * The main container's probe (bash, in the runner image): prints `key=value` lines, then waits for
 * SIGTERM. Each line is something the container itself observes.
 */
const PROBE = [
  "trap 'exit 0' TERM",
  'echo "uid=$(id -u)"',
  "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\\t' | sed 's/:/=/'",
  // Every process this container can see, by command line.
  'echo "processes=$(for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null; echo -n "|"; done)"',
  // Any environment of any visible process that holds the sidecar's variables.
  'echo "foreign_environ=$(cat /proc/[0-9]*/environ 2>/dev/null | tr "\\0" "\\n" | grep -c "^AGENTENV_" )"',
  // The credential by its path, through every visible process's root, and the sidecar's state dir.
  `echo "credential_path=$(cat ${CREDENTIAL_DIR}/token 2>&1 | head -c 120)"`,
  `echo "credential_via_proc_root=$(cat /proc/[0-9]*/root${CREDENTIAL_DIR}/token 2>&1 | head -c 120)"`,
  'echo "state_dir=$(ls /var/run/agentenv 2>&1 | head -c 120)"',
  'echo "rootfs_write=$(touch /probe-write 2>&1 && echo written)"',
  'echo probe-done',
  'while true; do sleep 1 & wait $!; done',
].join('\n');

const probeTemplate = (runnerImage: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  spec: { containers: [{ name: 'session', image: runnerImage, command: ['/bin/bash', '-c', PROBE], ...extra }] },
});

/** `key=value` lines of a log. */
const fields = (log: string): Record<string, string> => Object.fromEntries(log.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));

/** The sidecar's view of itself, from inside (the project image has Node and no shell). */
const SIDECAR_PROBE = `
const fs = require('node:fs');
const status = Object.fromEntries(fs.readFileSync('/proc/self/status', 'utf8').split('\\n').filter(Boolean).map((l) => l.split(/:\\s*/)));
let write; try { fs.writeFileSync('/probe-write', 'x'); write = 'written'; } catch (e) { write = e.code; }
let credential; try { credential = fs.readFileSync('${CREDENTIAL_DIR}/token', 'utf8').length > 0 ? 'readable' : 'empty'; } catch (e) { credential = e.code; }
console.log(JSON.stringify({ uid: process.getuid(), CapEff: status.CapEff, NoNewPrivs: status.NoNewPrivs, Seccomp: status.Seccomp, write, credential }));
`;

describe.skipIf(unavailable())('session Pods on containerd', () => {
  let ns: TestNamespace;
  let w: SessionsWorld;
  beforeAll(async () => {
    ns = await createNamespace('pods');
    // The Restricted Pod Security Standard, enforced by the apiserver's admission for this namespace.
    await adminRest().patch(CORE.namespaces, undefined, ns.name, { metadata: { labels: { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' } } }, 'merge');
    w = await startRuntimeWorld(ns.name);
  });
  afterAll(async () => {
    await w?.stop();
    await ns?.cleanup();
  });

  it('admits the session Pod under enforce=restricted; the sidecar starts first and gates the main container; the security context is in force in both containers; the main container reaches neither the sidecar\'s processes nor its credential', async () => {
    const env = await createEnvironment(w, 'probe', probeTemplate(inject('runnerImage')), { leaseTTLSeconds: 10 });
    const d = await dispatch(w, env);
    const name = podName(d.name, d.work.id);
    await waitForSession(w, d.name, (s) => s.status?.phase === 'Running', 'Running', 120_000);
    const pod = await waitFor(async () => {
      const p = await getPod(w, name);
      return p?.status?.containerStatuses?.some((c) => c.name === 'session' && c.state?.running) ? p : undefined;
    }, { what: `the main container of ${name} running`, timeoutMs: 120_000 });
    expect(pod.spec.nodeName).toBe('agentenv-containerd');

    // Native sidecar: started (its startup probe passed: the lease is claimed) before the main container started.
    const sidecarStatus = pod.status?.initContainerStatuses?.find((c) => c.name === SIDECAR_NAME);
    const mainStatus = pod.status?.containerStatuses?.find((c) => c.name === 'session');
    expect(sidecarStatus?.started).toBe(true);
    const sidecarStarted = Date.parse(sidecarStatus?.state?.running?.startedAt ?? '');
    const mainStarted = Date.parse(mainStatus?.state?.running?.startedAt ?? '');
    expect(sidecarStarted).toBeLessThanOrEqual(mainStarted);
    expect(pod.spec.shareProcessNamespace).toBeUndefined();

    const log = await waitFor(async () => {
      const text = await kubectl('logs', '--namespace', ns.name, name, '-c', 'session');
      return text.includes('probe-done') ? text : undefined;
    }, { what: 'the main container probe', timeoutMs: 60_000 });
    const main = fields(log);
    // runAsUser/runAsNonRoot: the operator's default session UID; capabilities dropped; no privilege
    // escalation; RuntimeDefault seccomp (mode 2: filter).
    expect(main).toMatchObject({ uid: '65532', CapEff: '0000000000000000', NoNewPrivs: '1', Seccomp: '2' });
    // Its own processes only (no shared PID namespace): bash and what it runs, no sidecar, no pause.
    expect(main['processes']).toContain('/bin/bash -c');
    expect(main['processes']).not.toMatch(/sidecar|\/pause|\/nodejs\/bin\/node/);
    expect(main['foreign_environ']).toBe('0');
    expect(main['credential_path']).toMatch(/No such file or directory/);
    expect(main['credential_via_proc_root']).toMatch(/No such file or directory/);
    expect(main['state_dir']).toMatch(/No such file or directory/);

    // The sidecar, from inside: its own UID, no capabilities, seccomp, read-only root — and it does
    // read the credential the main container could not reach.
    const sidecar = JSON.parse(await kubectl('exec', '--namespace', ns.name, name, '-c', SIDECAR_NAME, '--', '/nodejs/bin/node', '-e', SIDECAR_PROBE)) as Record<string, unknown>;
    expect(sidecar).toEqual({ uid: SIDECAR_UID, CapEff: '0000000000000000', NoNewPrivs: '1', Seccomp: '2', write: 'EROFS', credential: 'readable' });
  });

  it('refuses a Custom template that breaks the Restricted standard at admission (PodCreateRefused), with the apiserver\'s reason', async () => {
    const env = await createEnvironment(w, 'rooted', probeTemplate(inject('runnerImage'), { securityContext: { runAsUser: 0, runAsNonRoot: false } }), { podSecurity: 'Custom' });
    const d = await dispatch(w, env);
    const failed = await waitForSession(w, d.name, (s) => s.status?.phase === 'Failed', 'Failed', 60_000);
    expect(failed.status?.reason).toBe('PodCreateRefused');
    expect(failed.status?.message).toContain('violates PodSecurity "restricted:latest"');
    expect(failed.status?.message).toContain('runAsUser=0');
    const pods = await adminRest().list<KubeObject>(CORE.pods, ns.name);
    expect(pods.items.map((p) => p.metadata?.name)).not.toContain(podName(d.name, d.work.id));
  });
});
