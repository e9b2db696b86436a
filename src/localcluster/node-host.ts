/**
 * What the containerd node changes on the machine outside its state directory, and how it is put
 * back: the Pod bridge, the kubelet's cgroup root in every cgroup v1 hierarchy, and mounts (overlay
 * root filesystems, tmpfs volumes, network namespaces) under the state directory. `cleanUpNode` is
 * idempotent and runs at every stop and before every start, so a run killed with SIGKILL leaves
 * nothing that the next start does not remove.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CGROUP_ROOT, NODE_NETWORK } from './containerd-config.ts';
import { isAlive } from './controlplane-process.ts';

const run = promisify(execFile);
const CGROUP_FS = '/sys/fs/cgroup';

/** Mount points strictly under `dir` (deepest first), from /proc/self/mountinfo. */
export function mountsUnder(mountinfo: string, dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const points = mountinfo
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    // mountinfo escapes spaces and other separators as octal (\040).
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))))
    .filter((p) => p.startsWith(prefix));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Lazily unmounts everything mounted under `dir`, so that removing `dir` never reaches through a mount. */
export async function unmountUnder(dir: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const points = mountsUnder(await readFile('/proc/self/mountinfo', 'utf8'), dir);
    if (points.length === 0) return;
    for (const point of points) await run('umount', ['--lazy', point]).catch(() => {});
  }
}

/** Creates the Pod bridge with the node's address (the CNI bridge plugin then reuses it). */
export async function ensureBridge(): Promise<void> {
  const { bridge, gateway, prefixLength } = NODE_NETWORK;
  if (!existsSync(`/sys/class/net/${bridge}`)) await run('ip', ['link', 'add', bridge, 'type', 'bridge']);
  const { stdout } = await run('ip', ['-4', '-o', 'addr', 'show', 'dev', bridge]);
  if (!stdout.includes(` ${gateway}/`)) await run('ip', ['addr', 'add', `${gateway}/${prefixLength}`, 'dev', bridge]);
  await run('ip', ['link', 'set', bridge, 'up']);
}

/** The cgroup v1 hierarchies mounted on this machine (cpu, memory, pids, …; not the unified one). */
async function hierarchies(): Promise<string[]> {
  const entries = await readdir(CGROUP_FS, { withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isDirectory() && e.name !== 'unified').map((e) => join(CGROUP_FS, e.name));
}

/**
 * The kubelet refuses a `cgroupRoot` that does not exist in every hierarchy. A new cpuset cgroup starts
 * with no CPUs and no memory nodes, so the root's are copied in (children copy from their parent).
 */
export async function ensureCgroupRoot(): Promise<void> {
  for (const h of await hierarchies()) {
    const dir = join(h, CGROUP_ROOT);
    await mkdir(dir, { recursive: true });
    if (h.endsWith('/cpuset')) {
      for (const file of ['cpuset.cpus', 'cpuset.mems']) await copyFile(join(h, file), join(dir, file));
    }
  }
}

/** Removes the cgroup root's directories, deepest first (only empty cgroups can be removed). */
async function removeCgroupRoot(): Promise<void> {
  for (const h of await hierarchies()) {
    const root = join(h, CGROUP_ROOT);
    if (!existsSync(root)) continue;
    const dirs = (await readdir(root, { withFileTypes: true, recursive: true }))
      .filter((e) => e.isDirectory())
      .map((e) => join(e.parentPath, e.name))
      .sort((a, b) => b.length - a.length);
    for (const dir of [...dirs, root]) await rmdir(dir).catch(() => {});
  }
}

/**
 * Makes `dir` a shared mount (a bind mount onto itself): containerd runs in a mount namespace of its
 * own (it needs its own /proc, see containerd-node.ts), and the mounts that it and the kubelet make
 * under `dir` (root filesystems, volumes, network namespaces) must be seen by both.
 */
export async function shareMounts(dir: string): Promise<void> {
  await run('mount', ['--bind', dir, dir]);
  await run('mount', ['--make-rshared', dir]);
}

/** Puts the machine back: mounts under and on `stateDir`, the bridge, the cgroup root. Processes must be gone. */
export async function cleanUpNode(stateDir: string): Promise<void> {
  await unmountUnder(stateDir);
  const own = mountsUnder(await readFile('/proc/self/mountinfo', 'utf8'), join(stateDir, '..')).filter((p) => p === stateDir);
  for (const point of own) await run('umount', ['--lazy', point]).catch(() => {});
  if (existsSync(`/sys/class/net/${NODE_NETWORK.bridge}`)) await run('ip', ['link', 'del', NODE_NETWORK.bridge]).catch(() => {});
  await removeCgroupRoot();
  await removeNodeRules();
}

/**
 * iptables chains the node's components create, and the rules that jump to them: the kubelet's
 * (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT), CNI portmap's (CNI-…), kube-router's
 * policy controller's (KUBE-ROUTER-, KUBE-POD-FW-, KUBE-NWPLCY-, KUBE-SRC-, KUBE-DST-) and
 * kube-proxy's (KUBE-SERVICES, KUBE-SVC-, KUBE-SEP-, KUBE-POSTROUTING, KUBE-MARK-, KUBE-PROXY-,
 * KUBE-NODEPORTS, KUBE-FORWARD, …): every KUBE- chain on this machine is the node's. The apiserver
 * guard (AGENTENV-API-) is not: it belongs to the cluster and goes with its apiserver.
 */
const NODE_RULES = /KUBE-|kube-router netpol|CNI-/;

/** An iptables-save table without the node's chains and the rules that use them. */
export function withoutNodeRules(table: string): string {
  return table
    .split('\n')
    .filter((line) => !NODE_RULES.test(line))
    .join('\n');
}

/**
 * Removes what the node put in the machine's firewall (kube-router's own `--cleanup-config` panics
 * on a kernel without IPVS): each table is restored without the node's chains and rules, then
 * kube-router's ipsets are destroyed. Idempotent; a no-op when there is nothing.
 */
export async function removeNodeRules(): Promise<void> {
  for (const table of ['filter', 'nat', 'mangle']) {
    const { stdout } = await run('iptables-save', ['-t', table]).catch(() => ({ stdout: '' }));
    if (!NODE_RULES.test(stdout)) continue;
    const restore = run('iptables-restore', ['-T', table]);
    restore.child.stdin?.end(withoutNodeRules(stdout));
    await restore;
  }
  const sets = await run('ipset', ['list', '-n']).then((r) => r.stdout.split('\n'), () => [] as string[]);
  for (const set of sets.filter((s) => s.startsWith('KUBE-') || s.startsWith('inet6:KUBE-'))) await run('ipset', ['destroy', set]).catch(() => {});
}

const GUARD_COMMENT = 'agentenv apiserver guard pid=';
const guardChain = (port: number): string => `AGENTENV-API-${port}`;

/**
 * The apiserver of a containerd node's cluster listens on every address (it must serve on the
 * bridge, and 127.0.0.1 stays every other client's address): this keeps it to loopback and the
 * bridge, as the machine's loopback-only rule wants. INPUT jumps to a chain of its own that returns
 * for loopback and for the bridge address coming from the bridge (so kube-router's and the kubelet's
 * INPUT rules still see Pod traffic) and drops the rest. The rule names its owner's pid, so a guard
 * left by a killed run is removed at the next install. Installed before the apiserver starts.
 */
export async function guardApiServerPort(port: number): Promise<void> {
  const { stdout } = await run('iptables', ['-S', 'INPUT']);
  for (const [, owner, stalePort] of stdout.matchAll(new RegExp(`${GUARD_COMMENT}(\\d+)" -j AGENTENV-API-(\\d+)`, 'g'))) {
    if (!isAlive(Number(owner))) await removeApiServerGuard(Number(stalePort));
  }
  const chain = guardChain(port);
  await run('iptables', ['-N', chain]);
  await run('iptables', ['-A', chain, '-i', 'lo', '-j', 'RETURN']);
  await run('iptables', ['-A', chain, '-i', NODE_NETWORK.bridge, '-d', NODE_NETWORK.gateway, '-j', 'RETURN']);
  await run('iptables', ['-A', chain, '-j', 'DROP']);
  await run('iptables', ['-I', 'INPUT', '1', '-p', 'tcp', '--dport', String(port), '-m', 'comment', '--comment', `${GUARD_COMMENT}${process.pid}`, '-j', chain]);
}

/** Removes the guard of `port` (its INPUT rule, then its chain). Idempotent; run after the apiserver stopped. */
export async function removeApiServerGuard(port: number): Promise<void> {
  const chain = guardChain(port);
  const { stdout } = await run('iptables', ['-S', 'INPUT']);
  for (const line of stdout.split('\n').filter((l) => l.endsWith(`-j ${chain}`))) {
    await run('iptables', ['-D', ...splitRule(line.replace(/^-A /, ''))]).catch(() => {});
  }
  await run('iptables', ['-F', chain]).catch(() => {});
  await run('iptables', ['-X', chain]).catch(() => {});
}

/** `INPUT -p tcp -m comment --comment "a b" -j X` → argv, keeping quoted words whole. */
export function splitRule(rule: string): string[] {
  return [...rule.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? '');
}
