/**
 * `agentenv uninstall`: what the chart's pre-delete hook runs before `helm uninstall` removes the
 * operator (see src/lifecycle/uninstall.ts for the three policies). Exits 0 when the release may
 * go, 1 when it refused or gave up (the last line says why; the hook Job's log shows it).
 */
import { KubeConfig } from '@kubernetes/client-node';
import { Command, Option } from 'commander';
import { z } from 'zod';
import { duration } from '../config/duration.ts';
import { describeIssues } from '../config/operator.ts';
import { KubeRest } from '../k8s/rest.ts';
import { runUninstall, UNINSTALL_POLICIES } from '../lifecycle/uninstall.ts';

const UninstallConfig = z.object({
  kubeconfig: z.string().optional(),
  policy: z.enum(UNINSTALL_POLICIES),
  namespaces: z.array(z.string().min(1)).default([]),
  timeoutMs: duration.default(300_000),
});

export function command(): Command {
  return new Command('uninstall')
    .description('before the operator is removed: refuse while AgentEnvironments exist, delete them (each deletionPolicy applied), or orphan them (finalizers removed, remote environments untouched)')
    .addOption(new Option('--policy <policy>', 'refuse | delete | orphan').choices([...UNINSTALL_POLICIES]).default('refuse'))
    .option('--namespaces <list>', 'comma-separated namespaces to look in (env WATCH_NAMESPACES; default all)')
    .option('--timeout <duration>', 'give up after this long (default 5m)')
    .option('--kubeconfig <path>', 'kubeconfig file (default: in-cluster, then ~/.kube/config)')
    .action(async (flags: { policy: string; namespaces?: string; timeout?: string; kubeconfig?: string }) => {
      const list = flags.namespaces ?? process.env['WATCH_NAMESPACES'];
      const parsed = UninstallConfig.safeParse({
        policy: flags.policy,
        ...(flags.kubeconfig ? { kubeconfig: flags.kubeconfig } : {}),
        ...(list ? { namespaces: list.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
        ...(flags.timeout ? { timeoutMs: flags.timeout } : {}),
      });
      if (!parsed.success) throw new Error(`invalid configuration:\n${describeIssues(parsed.error)}`);
      const c = parsed.data;
      const kc = new KubeConfig();
      if (c.kubeconfig) kc.loadFromFile(c.kubeconfig);
      else kc.loadFromDefault();
      const stop = new AbortController();
      process.once('SIGTERM', () => stop.abort());
      const ok = await runUninstall({
        rest: new KubeRest(kc, { fieldManager: 'agentenv-uninstall' }),
        policy: c.policy,
        namespaces: c.namespaces,
        timeoutMs: c.timeoutMs,
        print: (line) => console.log(line),
        signal: stop.signal,
      });
      process.exitCode = ok ? 0 : 1;
    });
}
