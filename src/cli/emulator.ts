/** `agentenv emulator`: serve the in-memory Environments API emulator until SIGTERM/SIGINT. */
import { Command } from 'commander';
import { EmulatorConfig } from '../config/emulator.ts';
import { describeIssues } from '../config/operator.ts';
import { startEmulator } from '../emulator/index.ts';
import { createLogger } from '../telemetry/logger.ts';

interface Flags {
  port?: string;
  host?: string;
  apiKey: string[];
  workSecrets?: boolean;
  leaseTtlDefault?: string;
  leaseTtlMin?: string;
  leaseTtlMax?: string;
  logLevel?: string;
  logFormat?: string;
}

export function command(): Command {
  return new Command('emulator')
    .option('--port <port>', 'port to listen on (default 18080; 0 picks a free one)')
    .option('--host <host>', 'address to listen on (default 127.0.0.1)')
    .option('--api-key <key>', 'accepted organization API key (repeatable; env EMULATOR_API_KEYS, comma-separated)', (v: string, acc: string[]) => [...acc, v], [])
    .option('--work-secrets', 'add a per-item secret (sessions token) to poll replies')
    .option('--lease-ttl-default <seconds>', 'lease TTL when a heartbeat asks for none (default 90)')
    .option('--lease-ttl-min <seconds>', 'smallest lease TTL granted (default 10)')
    .option('--lease-ttl-max <seconds>', 'largest lease TTL granted (default 600)')
    .option('--log-level <level>', 'log level (default info)')
    .option('--log-format <format>', 'json|text (default json)')
    .action(async (flags: Flags) => {
      const envKeys = (process.env['EMULATOR_API_KEYS'] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
      const parsed = EmulatorConfig.safeParse(
        Object.fromEntries(
          Object.entries({
            port: flags.port,
            host: flags.host,
            apiKeys: [...flags.apiKey, ...envKeys],
            workSecrets: flags.workSecrets,
            leaseTtlDefault: flags.leaseTtlDefault,
            leaseTtlMin: flags.leaseTtlMin,
            leaseTtlMax: flags.leaseTtlMax,
            logLevel: flags.logLevel ?? process.env['LOG_LEVEL'],
            logFormat: flags.logFormat ?? process.env['LOG_FORMAT'],
          }).filter(([, v]) => v !== undefined),
        ),
      );
      if (!parsed.success) throw new Error(`invalid configuration:\n${describeIssues(parsed.error)}`);
      const c = parsed.data;
      const logger = createLogger({ level: c.logLevel, format: c.logFormat, base: { process: 'emulator' } });
      const emulator = await startEmulator({
        port: c.port,
        host: c.host,
        apiKeys: c.apiKeys,
        workSecrets: c.workSecrets,
        leaseTtl: { defaultSeconds: c.leaseTtlDefault, minSeconds: c.leaseTtlMin, maxSeconds: c.leaseTtlMax },
        logger,
      });
      console.log(`agentenv emulator listening on ${emulator.url}`);
      await new Promise<void>((resolve) => {
        process.once('SIGTERM', () => resolve());
        process.once('SIGINT', () => resolve());
      });
      await emulator.close();
    });
}
