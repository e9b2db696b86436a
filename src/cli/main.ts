#!/usr/bin/env node
/**
 * `agentenv` — one program, one subcommand per process.
 *
 * Each subcommand's module is imported only when that subcommand runs, so the sidecar (which runs
 * in every sandbox Pod) never loads the operator's dependencies. The sidecar does not even load
 * commander (measured: ~10 MB of RSS, a quarter of a bare Node process): it is configured by
 * environment variables and parses its own two flags.
 */
import type { Command } from 'commander';

interface Subcommand {
  readonly description: string;
  /** Loads the module whose `command()` builds the fully configured Command. */
  readonly load: () => Promise<{ command(): Command }>;
}

const SUBCOMMANDS: Record<string, Subcommand> = {
  operator: {
    description: 'run the operator: reconcile AgentEnvironments and dispatch self-hosted sessions',
    load: () => import('./operator.ts'),
  },
  emulator: {
    description: 'serve an in-memory Environments API emulator (for development and tests)',
    load: () => import('./emulator.ts'),
  },
  kubelet: {
    description: 'run the process kubelet: one Node whose Pods run as local processes (development and tests only)',
    load: () => import('./kubelet.ts'),
  },
  uninstall: {
    description: 'before helm uninstall: refuse while AgentEnvironments exist, or delete or orphan them (the chart\'s pre-delete hook)',
    load: () => import('./uninstall.ts'),
  },
  runner: {
    description: "serve a session Pod's work item with the official SDK's runner and agent toolset (the default runner; configured by ANTHROPIC_* variables)",
    load: () => import('./runner.ts'),
  },
  dev: {
    description: 'run everything locally (control plane, process kubelet, emulator, operator) with a live demo view',
    load: () => import('./dev.ts'),
  },
};

/** Subcommands run without commander: `run` gets the arguments after the subcommand's name. */
interface BareSubcommand {
  readonly description: string;
  /** V8 flags set before the module loads (they must precede any hot code to matter). */
  readonly v8Flags?: readonly string[];
  readonly load: () => Promise<{ run(args: readonly string[]): Promise<void> }>;
}

const BARE_SUBCOMMANDS: Record<string, BareSubcommand> = {
  sidecar: {
    description: "keep a session Pod's work-item lease and stop its main container (configured by environment variables)",
    // Interpreter only. Nothing in the sidecar is hot (a beat every few seconds), yet linking its
    // dozen ES modules makes a few of Node's loader functions hot enough to be compiled, mapping
    // megabytes of compiler code into every sandbox Pod (measured: −2 MB RSS, bench/sidecar.ts).
    // V8 consults these flags at each tier-up decision, so setting them before any code is hot works.
    v8Flags: ['--no-sparkplug', '--no-maglev', '--no-turbofan'],
    load: () => import('./sidecar.ts'),
  },
};

async function main(argv: string[]): Promise<void> {
  const bare = BARE_SUBCOMMANDS[argv[2] ?? ''];
  if (bare) {
    for (const flag of bare.v8Flags ?? []) process.getBuiltinModule('node:v8').setFlagsFromString(flag);
    return (await bare.load()).run(argv.slice(3));
  }
  const { Command } = await import('commander');
  const program = new Command('agentenv')
    .description('Kubernetes operator for Anthropic Managed Agents environments')
    .showHelpAfterError()
    .exitOverride((err) => process.exit(err.exitCode));
  const invoked = argv[2];
  for (const [name, sub] of Object.entries(SUBCOMMANDS)) {
    if (name === invoked) program.addCommand((await sub.load()).command().name(name).description(sub.description));
    else program.command(name).description(sub.description);
  }
  for (const [name, sub] of Object.entries(BARE_SUBCOMMANDS)) program.command(name).description(sub.description);
  await program.parseAsync(argv);
}

main(process.argv).catch((err: unknown) => {
  console.error(`agentenv: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
