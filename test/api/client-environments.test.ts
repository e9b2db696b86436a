import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { AuthenticationError, ConflictError, InvalidRequestError, NotFoundError, PermissionDeniedError } from '../../src/api/errors.ts';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { API_KEY, clientFor, emulator, selfHosted, versionHeaders } from '../support/emulator.ts';

let emu: RunningEmulator;
beforeAll(async () => {
  emu = await emulator();
});
afterAll(() => emu.close());

describe('environments: the client against the emulator', () => {
  it('creates a cloud environment by default with every package list and unrestricted networking', async () => {
    const env = await clientFor(emu).createEnvironment({ name: 'defaults' });
    expect(env).toMatchObject({
      type: 'environment',
      name: 'defaults',
      archived_at: null,
      metadata: {},
      config: { type: 'cloud', networking: { type: 'unrestricted' }, packages: { apt: [], cargo: [], gem: [], go: [], npm: [], pip: [] } },
    });
    expect(env.id).toMatch(/^env_[A-Za-z0-9]{24}$/);
  });

  it('fills limited-networking defaults: booleans false, allowed_hosts empty', async () => {
    const env = await clientFor(emu).createEnvironment({ name: 'limited', config: { type: 'cloud', networking: { type: 'limited' } } });
    expect(env.config).toMatchObject({ networking: { type: 'limited', allowed_hosts: [], allow_mcp_servers: false, allow_package_managers: false } });
  });

  it('refuses a create without a name', async () => {
    await expect(clientFor(emu).createEnvironment({ name: '' })).rejects.toBeInstanceOf(InvalidRequestError);
  });

  it('keeps omitted fields on update at every level of config, and deletes metadata set to null or ""', async () => {
    const api = clientFor(emu);
    const env = await api.createEnvironment({
      name: 'merge',
      metadata: { a: '1', b: '2', c: '3' },
      config: { type: 'cloud', networking: { type: 'limited', allowed_hosts: ['x.com'], allow_mcp_servers: true }, packages: { pip: ['pandas'], npm: ['left-pad'] } },
    });
    const updated = await api.updateEnvironment(env.id, {
      metadata: { a: null, b: '', d: '4' },
      config: { type: 'cloud', networking: { type: 'limited', allow_package_managers: true }, packages: { pip: ['numpy'] } },
    });
    expect(updated.metadata).toEqual({ c: '3', d: '4' });
    expect(updated.config).toMatchObject({
      networking: { type: 'limited', allowed_hosts: ['x.com'], allow_mcp_servers: true, allow_package_managers: true },
      packages: { pip: ['numpy'], npm: ['left-pad'] },
    });
    expect(updated.name).toBe('merge');
  });

  it('refuses to change the config type', async () => {
    const api = clientFor(emu);
    const env = await selfHosted(api);
    await expect(api.updateEnvironment(env.id, { config: { type: 'cloud' } })).rejects.toBeInstanceOf(InvalidRequestError);
  });

  it('enforces the metadata limits with a readable 400', async () => {
    const api = clientFor(emu);
    const tooMany = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']));
    const err = await api.createEnvironment({ name: 'm', metadata: tooMany }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidRequestError);
    expect((err as Error).message).toMatch(/at most 16 keys/);
    await expect(api.createEnvironment({ name: 'm', metadata: { ['k'.repeat(65)]: 'v' } })).rejects.toBeInstanceOf(InvalidRequestError);
    await expect(api.createEnvironment({ name: 'm', metadata: { k: 'v'.repeat(513) } })).rejects.toBeInstanceOf(InvalidRequestError);
  });

  it('archives (archived_at set, no new sessions) and archiving twice is harmless', async () => {
    const api = clientFor(emu);
    const env = await selfHosted(api);
    const archived = await api.archiveEnvironment(env.id);
    expect(archived.archived_at).toBeTruthy();
    expect((await api.archiveEnvironment(env.id)).archived_at).toBe(archived.archived_at);
    expect(() => emu.admin.createSession(env.id)).toThrow(/cannot take new sessions/);
    const res = await request(`${emu.url}/emulator/v1/environments/${env.id}/sessions`, { method: 'POST', body: '{}' });
    expect(res.statusCode).toBe(409);
    await res.body.dump();
  });

  it('creates many sessions in one admin call, each with its own queued work item', async () => {
    const env = await clientFor(emu).createEnvironment({ name: 'batch', config: { type: 'self_hosted' } });
    const res = await request(`${emu.url}/emulator/v1/environments/${env.id}/sessions/batch`, { method: 'POST', body: JSON.stringify({ count: 3 }) });
    expect(res.statusCode).toBe(200);
    const { data } = (await res.body.json()) as { data: { session_id: string; work_id: string }[] };
    expect(new Set(data.map((d) => d.session_id)).size).toBe(3);
    expect(new Set(data.map((d) => d.work_id)).size).toBe(3);
    const tooMany = await request(`${emu.url}/emulator/v1/environments/${env.id}/sessions/batch`, { method: 'POST', body: JSON.stringify({ count: 0 }) });
    expect(tooMany.statusCode).toBe(400);
    await tooMany.body.dump();
  });

  it('deletes, then answers 404', async () => {
    const api = clientFor(emu);
    const env = await api.createEnvironment({ name: 'doomed' });
    expect(await api.deleteEnvironment(env.id)).toEqual({ id: env.id, type: 'environment_deleted' });
    await expect(api.getEnvironment(env.id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(api.deleteEnvironment(env.id)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('pages through environments with an opaque cursor, hiding archived ones unless asked', async () => {
    const own = await emulator();
    try {
      const api = clientFor(own);
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await api.createEnvironment({ name: `p${i}` })).id);
      await api.archiveEnvironment(ids[0]!);
      const first = await api.listEnvironmentsPage({ limit: 2 });
      expect(first.data).toHaveLength(2);
      expect(first.next_page).toBeTruthy();
      const all: string[] = [];
      for await (const e of api.listEnvironments({ limit: 2 })) all.push(e.id);
      expect(all.sort()).toEqual(ids.slice(1).sort());
      const withArchived: string[] = [];
      for await (const e of api.listEnvironments({ limit: 2, include_archived: true })) withArchived.push(e.id);
      expect(withArchived).toHaveLength(5);
      const last = await api.listEnvironmentsPage({ limit: 100, include_archived: true });
      expect(last.next_page).toBeNull();
    } finally {
      await own.close();
    }
  });
});

describe('authentication and headers', () => {
  it('accepts the API key as x-api-key and as a bearer token', async () => {
    const env = await clientFor(emu).createEnvironment({ name: 'auth' });
    await expect(clientFor(emu, { kind: 'bearer', value: API_KEY }).getEnvironment(env.id)).resolves.toMatchObject({ id: env.id });
  });

  it('refuses an unknown key with 401', async () => {
    await expect(clientFor(emu, { kind: 'api-key', value: 'sk-wrong' }).listEnvironmentsPage()).rejects.toBeInstanceOf(AuthenticationError);
  });

  it('scopes an environment key to its own environment\'s work endpoints', async () => {
    const api = clientFor(emu);
    const a = await selfHosted(api, 'a');
    const b = await selfHosted(api, 'b');
    const key = emu.admin.mintKey(a.id);
    const asKey = clientFor(emu, { kind: 'bearer', value: key });
    await expect(asKey.getQueueStats(a.id)).resolves.toMatchObject({ type: 'work_queue_stats' });
    await expect(asKey.getQueueStats(b.id)).rejects.toBeInstanceOf(PermissionDeniedError);
    await expect(asKey.getEnvironment(a.id)).rejects.toBeInstanceOf(PermissionDeniedError);
    await expect(clientFor(emu, { kind: 'api-key', value: key }).getQueueStats(a.id)).rejects.toBeInstanceOf(AuthenticationError);
  });

  it.each([
    ['anthropic-version', { 'anthropic-beta': 'managed-agents-2026-04-01' }],
    ['anthropic-beta', { 'anthropic-version': '2023-06-01' }],
  ])('answers 400 in the Anthropic error shape when %s is missing, with a request-id', async (_missing, headers) => {
    const res = await request(`${emu.url}/v1/environments`, { headers: { 'x-api-key': API_KEY, ...headers } });
    expect(res.statusCode).toBe(400);
    expect(res.headers['request-id']).toMatch(/^req_/);
    expect(await res.body.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
  });

  it('accepts several comma-separated betas', async () => {
    const res = await request(`${emu.url}/v1/environments`, {
      headers: { 'x-api-key': API_KEY, ...versionHeaders, 'anthropic-beta': 'files-api-2025-04-14, managed-agents-2026-04-01' },
    });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
  });

  it('treats an archived environment as read-only (update is a 409)', async () => {
    const api = clientFor(emu);
    const env = await api.createEnvironment({ name: 'ro' });
    await api.archiveEnvironment(env.id);
    await expect(api.updateEnvironment(env.id, { description: 'x' })).rejects.toBeInstanceOf(ConflictError);
  });
});
