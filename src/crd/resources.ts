/** Typed handles for the custom resources, for the generic Kubernetes client. */
import { resource, type KubeObject } from '../k8s/rest.ts';
import type { AgentEnvironmentSpec, AgentEnvironmentStatus } from './agent-environment.ts';
import type { AgentSessionSpec, AgentSessionStatus } from './agent-session.ts';
import { AGENT_ENVIRONMENT, AGENT_SESSION, GROUP, VERSION } from './meta.ts';

export const AGENT_ENVIRONMENTS = resource(GROUP, VERSION, AGENT_ENVIRONMENT.plural, AGENT_ENVIRONMENT.kind);
export const AGENT_SESSIONS = resource(GROUP, VERSION, AGENT_SESSION.plural, AGENT_SESSION.kind);

export interface AgentEnvironment extends KubeObject {
  spec: AgentEnvironmentSpec;
  status?: AgentEnvironmentStatus;
}

export interface AgentSession extends KubeObject {
  spec: AgentSessionSpec;
  status?: AgentSessionStatus;
}
