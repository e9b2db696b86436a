/**
 * The official @anthropic-ai/sdk against the emulator: an independent client keeps the emulator
 * honest about the wire format (headers, auth, bodies, 412 details, null polls, cursors).
 */
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { API_KEY, emulator } from '../support/emulator.ts';

let emu: RunningEmulator;
let sdk: Anthropic;
beforeAll(async () => {
  emu = await emulator();
  sdk = new Anthropic({ apiKey: API_KEY, baseURL: emu.url, maxRetries: 0 });
});
afterAll(() => emu.close());

async function selfHosted(): Promise<string> {
  const env = await sdk.beta.environments.create({ name: 'sdk-self-hosted', config: { type: 'self_hosted' } });
  return env.id;
}

describe('the official SDK against the emulator: environments', () => {
  it('creates, retrieves, updates, lists, archives and deletes', async () => {
    const env = await sdk.beta.environments.create({
      name: 'sdk-cloud',
      config: { type: 'cloud', networking: { type: 'limited', allowed_hosts: ['api.example.com'] }, packages: { pip: ['pandas'] } },
      metadata: { team: 'a' },
    });
    expect(env.config).toMatchObject({ type: 'cloud', networking: { type: 'limited', allow_mcp_servers: false }, packages: { pip: ['pandas'], npm: [] } });
    expect((await sdk.beta.environments.retrieve(env.id)).name).toBe('sdk-cloud');
    const updated = await sdk.beta.environments.update(env.id, { description: 'updated', metadata: { team: null } as unknown as Record<string, string> });
    expect(updated).toMatchObject({ description: 'updated', metadata: {} });
    const ids: string[] = [];
    for await (const e of sdk.beta.environments.list({ limit: 1 })) ids.push(e.id);
    expect(ids).toContain(env.id);
    expect((await sdk.beta.environments.archive(env.id)).archived_at).toBeTruthy();
    expect(await sdk.beta.environments.delete(env.id)).toEqual({ id: env.id, type: 'environment_deleted' });
    await expect(sdk.beta.environments.retrieve(env.id)).rejects.toMatchObject({ status: 404 });
  });

  it('sees Anthropic-shaped errors with a request id', async () => {
    const bad = new Anthropic({ apiKey: 'sk-wrong', baseURL: emu.url, maxRetries: 0 });
    const err = await bad.beta.environments.list().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.AuthenticationError);
    expect((err as InstanceType<typeof Anthropic.APIError>).requestID).toMatch(/^req_/);
  });
});

describe('the official SDK against the emulator: work', () => {
  it('polls null on an empty queue, then claims an item with its WorkPoller', async () => {
    const environmentId = await selfHosted();
    const environmentKey = emu.admin.mintKey(environmentId);
    expect(await sdk.beta.environments.work.poll(environmentId)).toBeNull();
    const { work_id } = emu.admin.createSession(environmentId);
    const poller = sdk.beta.environments.work.poller({ environmentId, environmentKey, autoStop: false });
    let claimed: string | undefined;
    for await (const work of poller) {
      claimed = work.id;
      break;
    }
    expect(claimed).toBe(work_id);
    const item = await sdk.beta.environments.work.retrieve(work_id, { environment_id: environmentId });
    expect(item.state).toBe('starting');
    const stats = await sdk.beta.environments.work.stats(environmentId);
    expect(stats.workers_polling).toBe(1);
  });

  it('runs the heartbeat compare-and-set: NO_HEARTBEAT claim, exact echo, 412 with the server lease', async () => {
    const environmentId = await selfHosted();
    const { work_id } = emu.admin.createSession(environmentId);
    await sdk.beta.environments.work.poll(environmentId, { block_ms: 10 });
    await sdk.beta.environments.work.ack(work_id, { environment_id: environmentId });
    const first = await sdk.beta.environments.work.heartbeat(work_id, { environment_id: environmentId, expected_last_heartbeat: 'NO_HEARTBEAT', desired_ttl_seconds: 30 });
    expect(first).toMatchObject({ state: 'active', lease_extended: true, ttl_seconds: 30 });
    const second = await sdk.beta.environments.work.heartbeat(work_id, { environment_id: environmentId, expected_last_heartbeat: first.last_heartbeat });
    const err = await sdk.beta.environments.work
      .heartbeat(work_id, { environment_id: environmentId, expected_last_heartbeat: first.last_heartbeat })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.APIError);
    const apiErr = err as InstanceType<typeof Anthropic.APIError>;
    expect(apiErr.status).toBe(412);
    expect((apiErr.error as { error: { details: { current_state: unknown } } }).error.details.current_state).toEqual({
      state: 'active',
      ttl_seconds: 30,
      last_heartbeat: second.last_heartbeat,
    });
  });

  it('stops gracefully then confirms, lists and updates work', async () => {
    const environmentId = await selfHosted();
    const { work_id } = emu.admin.createSession(environmentId, { origin: 'sdk' });
    await sdk.beta.environments.work.ack(work_id, { environment_id: environmentId });
    await sdk.beta.environments.work.heartbeat(work_id, { environment_id: environmentId, expected_last_heartbeat: 'NO_HEARTBEAT' });
    expect((await sdk.beta.environments.work.stop(work_id, { environment_id: environmentId })).state).toBe('stopping');
    expect((await sdk.beta.environments.work.stop(work_id, { environment_id: environmentId })).state).toBe('stopped');
    await expect(sdk.beta.environments.work.stop(work_id, { environment_id: environmentId, force: true })).rejects.toMatchObject({ status: 409 });
    const updated = await sdk.beta.environments.work.update(work_id, { environment_id: environmentId, metadata: { note: 'x' } });
    expect(updated.metadata).toEqual({ origin: 'sdk', note: 'x' });
    const listed: string[] = [];
    for await (const w of sdk.beta.environments.work.list(environmentId)) listed.push(w.id);
    expect(listed).toEqual([work_id]);
  });
});
