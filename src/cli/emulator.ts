import { Command } from 'commander';

/** Placeholder until the emulator lands (issue 2). */
export function command(): Command {
  return new Command('emulator').action(() => {
    throw new Error('the emulator is not implemented yet');
  });
}
