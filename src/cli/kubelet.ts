/**
 * `agentenv kubelet` — the process kubelet (development and tests only): registers a Node with a
 * real kube-apiserver and runs the Pods bound to it as local processes. See docs/process-kubelet.md.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { Command } from 'commander';
import { describeIssues } from '../config/operator.ts';
import { KubeletConfig } from '../localcluster/kubelet/config.ts';
import { REPO_ROOT } from '../localcluster/kubelet/images.ts';
import { runKubelet } from '../localcluster/kubelet/kubelet.ts';
import { KubeRest } from '../k8s/rest.ts';
import { createLogger } from '../telemetry/logger.ts';

interface Flags {
  kubeconfig?: string;
  nodeName?: string;
  rootDir?: string;
  projectImage?: string;
  reaper?: string;
  anchorPid?: string;
  nodeLabels?: string;
  scheduling?: boolean;
  logLevel?: string;
  logFormat?: string;
}

export function command(): Command {
  return new Command('kubelet')
    .requiredOption('--kubeconfig <path>', 'kubeconfig of the kubelet identity')
    .requiredOption('--node-name <name>', 'the Node to register')
    .requiredOption('--root-dir <dir>', 'state directory: Pod volumes, logs and run records')
    .option('--project-image <name>', 'image name (any tag) that runs this repository\'s CLI (default ghcr.io/agentenv-io/agentenv)')
    .option('--reaper <path>', 'reaper binary: containers die with --anchor-pid even if the kubelet is killed (default: setsid)')
    .option('--anchor-pid <pid>', 'with --reaper: the process whose death kills every container (default: the kubelet\'s parent)')
    .option('--node-labels <k=v,...>', 'extra Node labels')
    .option('--no-scheduling', 'do not bind unscheduled Pods (only run Pods already bound to this node)')
    .option('--log-level <level>', 'log level (default info)')
    .option('--log-format <format>', 'json|text (default json)')
    .action(async (flags: Flags) => {
      const parsed = KubeletConfig.safeParse(Object.fromEntries(Object.entries({ ...flags, anchorPid: flags.anchorPid ?? (flags.reaper ? String(process.ppid) : undefined) }).filter(([, v]) => v !== undefined)));
      if (!parsed.success) throw new Error(`invalid configuration:\n${describeIssues(parsed.error)}`);
      const c = parsed.data;
      const logger = createLogger({ level: c.logLevel, format: c.logFormat, base: { process: 'kubelet', node: c.nodeName } });
      const kubeConfig = new KubeConfig();
      kubeConfig.loadFromFile(c.kubeconfig);
      // A development runtime keeps running through a bug in one Pod's handling (and says so).
      process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));
      const stop = new AbortController();
      process.once('SIGTERM', () => stop.abort());
      process.once('SIGINT', () => stop.abort());
      await runKubelet(
        {
          rest: new KubeRest(kubeConfig, { fieldManager: 'agentenv-process-kubelet' }),
          nodeName: c.nodeName,
          rootDir: c.rootDir,
          images: { projectImage: c.projectImage, nodeBinary: process.execPath, repoRoot: REPO_ROOT },
          reaper: c.reaper,
          anchorPid: c.anchorPid,
          nodeLabels: c.nodeLabels,
          scheduling: c.scheduling,
          logger,
        },
        stop.signal,
      );
    });
}
