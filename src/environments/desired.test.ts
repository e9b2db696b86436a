import { describe, expect, it } from 'vitest';
import type { Environment } from '../api/wire.ts';
import { AgentEnvironmentSpec } from '../crd/agent-environment.ts';
import { createParams, desiredEnvironment, diffEnvironment } from './desired.ts';

const id = { name: 'data', namespace: 'team-a', uid: 'uid-1' };
const spec = (s: unknown) => AgentEnvironmentSpec.parse(s);

function remoteOf(overrides: Partial<Environment> = {}): Environment {
  const d = desiredEnvironment(spec({ cloud: {} }), id);
  return {
    id: 'env_1',
    type: 'environment',
    name: d.name,
    description: '',
    metadata: { ...d.metadata },
    config: d.config,
    archived_at: null,
    created_at: 't',
    updated_at: 't',
    ...overrides,
  };
}

describe('desiredEnvironment', () => {
  it('defaults the name to metadata.name and tags the environment with the uid fence and owner', () => {
    const d = desiredEnvironment(spec({ cloud: {}, metadata: { team: 'a' } }), id);
    expect(d.name).toBe('data');
    expect(d.metadata).toEqual({ team: 'a', 'agentenv.io/uid': 'uid-1', 'agentenv.io/owner': 'team-a/data' });
  });

  it('normalises an omitted cloud config to the API defaults', () => {
    const d = desiredEnvironment(spec({ cloud: {} }), id);
    expect(d.config).toEqual({
      type: 'cloud',
      networking: { type: 'unrestricted' },
      packages: { type: 'packages', apt: [], cargo: [], gem: [], go: [], npm: [], pip: [] },
    });
  });

  it('maps limited networking to the API field names with false defaults', () => {
    const d = desiredEnvironment(spec({ cloud: { networking: { type: 'limited', allowedHosts: ['api.example.com'] } } }), id);
    expect(d.config).toMatchObject({
      networking: { type: 'limited', allowed_hosts: ['api.example.com'], allow_mcp_servers: false, allow_package_managers: false },
    });
  });

  it('creates self-hosted environments as self_hosted', () => {
    const p = createParams(desiredEnvironment(spec({ selfHosted: {}, scope: 'account', description: 'x' }), id));
    expect(p).toMatchObject({ name: 'data', description: 'x', scope: 'account', config: { type: 'self_hosted' } });
  });
});

describe('diffEnvironment', () => {
  it('finds nothing to do when the remote environment matches (zero writes at steady state)', () => {
    expect(diffEnvironment(remoteOf(), desiredEnvironment(spec({ cloud: {} }), id))).toEqual({ drift: [] });
  });

  it('treats a null description like an empty one', () => {
    expect(diffEnvironment(remoteOf({ description: null }), desiredEnvironment(spec({ cloud: {} }), id)).update).toBeUndefined();
  });

  it('sends only the fields that differ', () => {
    const desired = desiredEnvironment(spec({ cloud: { packages: { pip: ['pandas'] } }, description: 'new' }), id);
    const { update, drift } = diffEnvironment(remoteOf(), desired);
    expect(update).toEqual({ description: 'new', config: { type: 'cloud', packages: { type: 'packages', pip: ['pandas'] } } });
    expect(drift.map((d) => d.field)).toEqual(['description', 'config.packages.pip']);
  });

  it('deletes remote metadata keys the spec does not have (Console drift) with null', () => {
    const remote = remoteOf();
    const { update } = diffEnvironment({ ...remote, metadata: { ...remote.metadata, added: 'in console' } }, desiredEnvironment(spec({ cloud: {} }), id));
    expect(update).toEqual({ metadata: { added: null } });
  });

  it('detects networking drift including booleans and host order', () => {
    const desired = desiredEnvironment(spec({ cloud: { networking: { type: 'limited', allowedHosts: ['a.com', 'b.com'] } } }), id);
    const remote = remoteOf({ config: { ...(desired.config as Extract<Environment['config'], { type: 'cloud' }>), networking: { type: 'limited', allowed_hosts: ['b.com', 'a.com'], allow_mcp_servers: false, allow_package_managers: true } } });
    expect(diffEnvironment(remote, desired).drift.map((d) => d.field)).toEqual(['config.networking']);
  });

  it('manages scope only when the spec sets it', () => {
    expect(diffEnvironment(remoteOf({ scope: 'organization' }), desiredEnvironment(spec({ cloud: {} }), id)).update).toBeUndefined();
    expect(diffEnvironment(remoteOf({ scope: 'organization' }), desiredEnvironment(spec({ cloud: {}, scope: 'account' }), id)).update).toEqual({ scope: 'account' });
  });

  it('reports a config type mismatch (an adopted environment of the other type)', () => {
    const { drift } = diffEnvironment(remoteOf({ config: { type: 'self_hosted' } }), desiredEnvironment(spec({ cloud: {} }), id));
    expect(drift.map((d) => d.field)).toContain('config.type');
  });
});
