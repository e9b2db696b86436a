#!/usr/bin/env node
/**
 * `agentenv` — one program, one subcommand per process.
 *
 * Each subcommand's module is imported only when that subcommand runs, so the sidecar (which runs
 * in every sandbox Pod) never loads the operator's dependencies.
 */
import { Command } from 'commander';

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
};

async function main(argv: string[]): Promise<void> {
  const program = new Command('agentenv')
    .description('Kubernetes operator for Anthropic Managed Agents environments')
    .showHelpAfterError()
    .exitOverride((err) => process.exit(err.exitCode));
  const invoked = argv[2];
  for (const [name, sub] of Object.entries(SUBCOMMANDS)) {
    if (name === invoked) program.addCommand((await sub.load()).command().name(name).description(sub.description));
    else program.command(name).description(sub.description);
  }
  await program.parseAsync(argv);
}

main(process.argv).catch((err: unknown) => {
  console.error(`agentenv: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
