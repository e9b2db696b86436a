/** Test fixtures around the in-process emulator. */
import { EnvironmentsClient } from '../../src/api/client.ts';
import type { Credential } from '../../src/api/transport.ts';
import type { Environment } from '../../src/api/wire.ts';
import { startEmulator, type EmulatorOptions, type FaultRule as Rule, type RunningEmulator } from '../../src/emulator/index.ts';

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

/** Add scripted fault rules through the admin route (added to the rules in force, not replacing them). */
export async function addFaults(emulatorUrl: string, rules: Rule[]): Promise<void> {
  const res = await fetch(`${emulatorUrl}/emulator/v1/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(rules) });
  if (!res.ok) throw new Error(`POST /emulator/v1/faults: ${res.status} ${await res.text()}`);
}

/** The rules in force with how often each matched (the admin state's `faults`). */
export async function faultHits(emulatorUrl: string): Promise<Array<Rule & { hits: number }>> {
  const res = await fetch(`${emulatorUrl}/emulator/v1/state`);
  if (!res.ok) throw new Error(`GET /emulator/v1/state: ${res.status}`);
  return ((await res.json()) as { faults: Array<Rule & { hits: number }> }).faults;
}

/**
 * A rule that changes nothing (no status, no delay) but counts the requests matching it: how a
 * test asserts that the API never received, say, a stop for one work item. The first matching rule
 * wins, so a counter shadows any later rule on the same path.
 */
export const countOnly = (path: string, method?: string): Rule => ({ ...(method ? { method } : {}), path, latency_ms: 0 });
