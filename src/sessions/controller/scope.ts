/**
 * The first phase of an AgentSession pass: read the world into one plain object, the scope the
 * other phases work on. Level-triggered: every pass re-reads the record, its environment (cache
 * first) and its Pods (cache), and the acknowledgement this process holds, if any.
 */
import { parseEnvironmentSpec, SelfHostedSpec } from '../../crd/agent-environment.ts';
import { AGENT_ENVIRONMENTS, AGENT_SESSIONS, type AgentEnvironment, type AgentSession } from '../../crd/resources.ts';
import { isNotFound } from '../../k8s/errors.ts';
import type { ReconcileContext } from '../../runtime/controller.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { Pod } from '../objects/pod-types.ts';
import { servingPodName } from '../record/names.ts';
import { withAcknowledgement, type Acknowledgement } from './acknowledgements.ts';
import type { SessionSettings } from './decide.ts';
import type { ReconcilerDeps } from './deps.ts';

/** What one pass works on. */
export interface SessionScope {
  /** `namespace/name` of the AgentSession. */
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  /** The record as this pass decides on it: with the acknowledgement this process holds applied. */
  readonly session: AgentSession;
  /** The record as the apiserver holds it: its status is the one previous status, and the base of the status write. */
  readonly record: AgentSession;
  /** The acknowledgement this process made and has not written yet, if any (its reply is a fresh reading of the item). */
  readonly ack: Acknowledgement | undefined;
  /** The environment with its spec parsed (defaults applied); undefined when it is gone or invalid. */
  readonly env: AgentEnvironment | undefined;
  /** The environment's session settings; the CRD's defaults when the environment is gone. */
  readonly settings: SessionSettings;
  /** Every Pod of the session (any work item), from the cache. */
  readonly pods: readonly Pod[];
  /** The name of the current work item's Pod. */
  readonly podName: string;
  readonly log: Logger;
  readonly signal: AbortSignal;
  /** One clock reading for the pass's decisions. */
  readonly now: Date;
}

/** The CRD's defaults of a self-hosted environment, from the schema itself. */
const SELF_HOSTED_DEFAULTS = SelfHostedSpec.parse({});

/**
 * The settings a session decision needs, from the environment's parsed spec (which carries the
 * CRD's defaults). A session whose environment is gone is decided as ObserveOnly: nothing is
 * written to the API for it.
 */
export function settingsOf(env: AgentEnvironment | undefined): SessionSettings {
  const sh = env?.spec.selfHosted ?? SELF_HOSTED_DEFAULTS;
  return {
    startDeadlineSeconds: sh.startDeadlineSeconds,
    stopGracePeriodSeconds: sh.stopGracePeriodSeconds,
    leaseTTLSeconds: sh.leaseTTLSeconds,
    sessionTTLSecondsAfterFinished: sh.sessionTTLSecondsAfterFinished,
    observeOnly: env === undefined || env.spec.managementPolicy === 'ObserveOnly',
    workspace: env?.spec.selfHosted?.workspace,
    defaultRunner: env !== undefined && !env.spec.selfHosted?.sessionTemplate,
  };
}

/** Read the record and what it depends on; undefined when the record is gone (its held acknowledgement is dropped). */
export async function gather(deps: ReconcilerDeps, key: string, ctx: ReconcileContext): Promise<SessionScope | undefined> {
  const slash = key.indexOf('/');
  const namespace = key.slice(0, slash);
  const name = key.slice(slash + 1);
  let recorded: AgentSession;
  try {
    recorded = deps.acknowledgements.takeRecord(key) ?? (await deps.rest.get<AgentSession>(AGENT_SESSIONS, namespace, name));
  } catch (err) {
    if (!isNotFound(err)) throw err;
    deps.acknowledgements.delete(key);
    return undefined;
  }
  const ack = deps.acknowledgements.pending(key, recorded);
  const session = ack ? withAcknowledgement(recorded, ack) : recorded;
  const env = await readEnvironment(deps, namespace, session.spec.environmentRef.name);
  return {
    key,
    namespace,
    name,
    session,
    record: recorded,
    ack,
    env,
    settings: settingsOf(env),
    pods: deps.podsOf(namespace, name),
    podName: servingPodName(name, session.spec),
    log: ctx.logger.child({ session: name, workId: session.spec.workId }),
    signal: ctx.signal,
    now: deps.now(),
  };
}

/** The environment, cache first, with its spec parsed; undefined when it is gone or its spec is invalid. */
async function readEnvironment(deps: ReconcilerDeps, namespace: string, name: string): Promise<AgentEnvironment | undefined> {
  try {
    const env = deps.cachedEnvironment?.(namespace, name) ?? (await deps.rest.get<AgentEnvironment>(AGENT_ENVIRONMENTS, namespace, name));
    const spec = parseEnvironmentSpec(env.spec);
    return spec.success ? { ...env, spec: spec.data } : undefined;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}
