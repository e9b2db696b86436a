/** Test fixtures around the in-process emulator. */
import { EnvironmentsClient } from '../../src/api/client.ts';
import type { Credential } from '../../src/api/transport.ts';
import type { Environment } from '../../src/api/wire.ts';
import { startEmulator, type EmulatorOptions, type RunningEmulator } from '../../src/emulator/index.ts';

export const API_KEY = 'sk-ant-api03-test-key';

export async function emulator(options: Partial<EmulatorOptions> = {}): Promise<RunningEmulator> {
  return startEmulator({ apiKeys: [API_KEY], ...options });
}

/** A client with fast retries, so fault tests stay quick. */
export function clientFor(emu: RunningEmulator, credential: Credential = { kind: 'api-key', value: API_KEY }, extra: Partial<ConstructorParameters<typeof EnvironmentsClient>[0]> = {}): EnvironmentsClient {
  return new EnvironmentsClient({
    baseUrl: emu.url,
    credential,
    retry: { maxRetries: 3, backoff: { baseMs: 20, capMs: 100, jitter: 0.5 }, maxRetryAfterMs: 5_000 },
    ...extra,
  });
}

export async function selfHosted(api: EnvironmentsClient, name = 'self-hosted'): Promise<Environment> {
  return api.createEnvironment({ name, config: { type: 'self_hosted' } });
}

export const versionHeaders = { 'anthropic-version': '2023-06-01', 'anthropic-beta': 'managed-agents-2026-04-01' };
