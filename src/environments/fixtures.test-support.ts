/**
 * Small builders for the AgentEnvironment unit tests (not a test file itself):
 * `agentEnvironment().observeOnly().recorded('env_1')`, then `.env` (the spec parsed, as a pass sees it);
 * `remoteOf(env.env, { archived_at: … })` for the remote environment that matches it.
 */
import type { Environment } from '../api/wire.ts';
import { AgentEnvironmentSpec, type AgentEnvironmentStatus } from '../crd/agent-environment.ts';
import { CONDITIONS } from '../crd/meta.ts';
import type { AgentEnvironment } from '../crd/resources.ts';
import { desiredEnvironment, type ResourceIdentity } from './desired.ts';

export const IDENTITY: ResourceIdentity = { name: 'data', namespace: 'team-a', uid: 'uid-1' };

class EnvironmentBuilder {
  readonly #spec: Record<string, unknown>;
  readonly #status: AgentEnvironmentStatus | undefined;
  readonly #generation: number;

  constructor(spec: Record<string, unknown>, status: AgentEnvironmentStatus | undefined, generation: number) {
    this.#spec = spec;
    this.#status = status;
    this.#generation = generation;
  }

  #with(spec: Record<string, unknown>): EnvironmentBuilder {
    return new EnvironmentBuilder({ ...this.#spec, ...spec }, this.#status, this.#generation);
  }

  #withStatus(status: AgentEnvironmentStatus): EnvironmentBuilder {
    return new EnvironmentBuilder(this.#spec, { ...this.#status, ...status }, this.#generation);
  }

  selfHosted(): EnvironmentBuilder {
    const { cloud: _cloud, ...rest } = this.#spec;
    return new EnvironmentBuilder({ ...rest, selfHosted: {} }, this.#status, this.#generation);
  }

  observeOnly(): EnvironmentBuilder {
    return this.#with({ managementPolicy: 'ObserveOnly' });
  }

  adopting(id: string): EnvironmentBuilder {
    return this.#with({ environmentId: id });
  }

  deletionPolicy(policy: 'Delete' | 'Archive' | 'Orphan'): EnvironmentBuilder {
    return this.#with({ deletionPolicy: policy });
  }

  describedAs(description: string): EnvironmentBuilder {
    return this.#with({ description });
  }

  /** Status records the remote id, as of a clean pass of the current generation. */
  recorded(id: string): EnvironmentBuilder {
    return this.#withStatus({ environmentId: id, observedGeneration: this.#generation });
  }

  /** The spec was edited after the last clean pass (a new generation). */
  edited(): EnvironmentBuilder {
    return new EnvironmentBuilder(this.#spec, this.#status, this.#generation + 1);
  }

  /** The Synced condition already says `message`. */
  syncedSays(reason: string, message: string): EnvironmentBuilder {
    return this.#withStatus({ conditions: [{ type: CONDITIONS.synced, status: 'False', reason, message, lastTransitionTime: '2026-01-01T00:00:00Z' }] });
  }

  /** The spec as stored, not parsed (for the schema's own refusals). */
  raw(spec: unknown): AgentEnvironment {
    return { ...this.env, spec: spec as AgentEnvironment['spec'] };
  }

  get env(): AgentEnvironment {
    return {
      apiVersion: 'agentenv.io/v1alpha1',
      kind: 'AgentEnvironment',
      metadata: { name: IDENTITY.name, namespace: IDENTITY.namespace, uid: IDENTITY.uid, generation: this.#generation },
      spec: AgentEnvironmentSpec.parse(this.#spec),
      ...(this.#status ? { status: this.#status } : {}),
    };
  }
}

/** A cloud AgentEnvironment under Full management, never reconciled. */
export function agentEnvironment(spec: Record<string, unknown> = { cloud: {} }): EnvironmentBuilder {
  return new EnvironmentBuilder(spec, undefined, 1);
}

/** The remote environment exactly as `env`'s spec wants it (id `env_1`), with `overrides`. */
export function remoteOf(env: AgentEnvironment, overrides: Partial<Environment> = {}): Environment {
  const d = desiredEnvironment(env.spec, IDENTITY);
  return {
    id: 'env_1',
    type: 'environment',
    name: d.name,
    description: d.description,
    metadata: { ...d.metadata },
    config: d.config,
    archived_at: null,
    created_at: '2026-01-01T00:00:00Z',
    updated_at: '2026-01-01T00:00:00Z',
    ...overrides,
  };
}
