/**
 * Fixtures for the AgentEnvironment integration tests: one namespace, one in-process emulator and
 * one in-process operator per test file, plus readers for what the assertions look at (the
 * resource, its conditions and Events, the remote environments, the samples in deploy/samples).
 */
import { readFileSync } from 'node:fs';
import { loadAllYaml } from '@kubernetes/client-node';
import type { EnvironmentsClient } from '../../src/api/client.ts';
import type { Environment } from '../../src/api/wire.ts';
import { AGENT_ENVIRONMENTS, type AgentEnvironment } from '../../src/crd/resources.ts';
import { REMOTE_METADATA } from '../../src/crd/meta.ts';
import type { RunningEmulator } from '../../src/emulator/index.ts';
import { isNotFound } from '../../src/k8s/errors.ts';
import { CORE, type KubeObject, type KubeRest } from '../../src/k8s/rest.ts';
import { adminRest, createNamespace, waitFor, type TestNamespace } from './cluster.ts';
import { API_KEY, clientFor, emulator } from './emulator.ts';
import { startTestOperator, type TestOperator, type TestOperatorOptions } from './operator.ts';

export interface EnvironmentFixture {
  readonly ns: TestNamespace;
  readonly emu: RunningEmulator;
  /** The emulator as an API client with the organization key (arranging remote state, "the Console"). */
  readonly console: EnvironmentsClient;
  readonly admin: KubeRest;
  op: TestOperator;
  /** Every operator this fixture started, in order (log lines of stopped ones included). */
  readonly operators: TestOperator[];
  /** Stop the running operator and start a new one with these options (same namespace and emulator). */
  restartOperator(options?: Partial<TestOperatorOptions>): Promise<TestOperator>;
  cleanup(): Promise<void>;
}

export interface FixtureOptions extends Partial<Omit<TestOperatorOptions, 'namespace' | 'baseUrl'>> {
  /** Organization API keys the emulator accepts. Default [API_KEY]. */
  readonly apiKeys?: readonly string[];
  /** Operator kubeconfig file. */
  readonly kubeconfig: string;
  /** Admin client; default the run's cluster. */
  readonly admin?: KubeRest;
  /** Namespace factory; default the run's cluster. */
  readonly namespace?: (prefix: string) => Promise<TestNamespace>;
}

export async function environmentFixture(prefix: string, o: FixtureOptions): Promise<EnvironmentFixture> {
  const { apiKeys, admin, namespace, ...operatorOptions } = o;
  const ns = await (namespace ?? createNamespace)(prefix);
  const emu = await emulator({ apiKeys: apiKeys ?? [API_KEY] });
  const base = (extra: Partial<TestOperatorOptions> = {}): TestOperatorOptions => ({
    namespace: ns.name,
    baseUrl: emu.url,
    apiKey: API_KEY,
    ...operatorOptions,
    ...extra,
  });
  const first = await startTestOperator(base());
  const fixture: EnvironmentFixture = {
    ns,
    emu,
    console: clientFor(emu, { kind: 'api-key', value: (apiKeys ?? [API_KEY])[0]! }),
    admin: admin ?? adminRest(),
    op: first,
    operators: [first],
    async restartOperator(extra = {}) {
      await fixture.op.stop();
      fixture.op = await startTestOperator(base(extra));
      fixture.operators.push(fixture.op);
      return fixture.op;
    },
    async cleanup() {
      await releaseAll(fixture);
      await fixture.op.stop();
      await ns.cleanup();
      await emu.close();
    },
  };
  return fixture;
}

/** An AgentEnvironment object to create. */
export const agentEnvironment = (name: string, spec: Record<string, unknown>): AgentEnvironment =>
  ({ apiVersion: 'agentenv.io/v1alpha1', kind: 'AgentEnvironment', metadata: { name }, spec }) as unknown as AgentEnvironment;

export const createEnvironment = (admin: KubeRest, ns: string, name: string, spec: Record<string, unknown>): Promise<AgentEnvironment> =>
  admin.create<AgentEnvironment>(AGENT_ENVIRONMENTS, ns, agentEnvironment(name, spec));

export const getEnvironment = (admin: KubeRest, ns: string, name: string): Promise<AgentEnvironment> => admin.get<AgentEnvironment>(AGENT_ENVIRONMENTS, ns, name);

/** JSON merge patch of the spec (null removes a field). */
export const patchSpec = (admin: KubeRest, ns: string, name: string, spec: Record<string, unknown>): Promise<AgentEnvironment> =>
  admin.patch<AgentEnvironment>(AGENT_ENVIRONMENTS, ns, name, { spec }, 'merge');

export const conditionOf = (env: AgentEnvironment, type: string) => env.status?.conditions?.find((c) => c.type === type);

/** Wait until condition `type` has `status` (and `reason`, when given); returns the resource. */
export function waitForCondition(admin: KubeRest, ns: string, name: string, type: string, status: 'True' | 'False', reason?: string, timeoutMs = 20_000): Promise<AgentEnvironment> {
  return waitFor(
    async () => {
      const env = await getEnvironment(admin, ns, name);
      const c = conditionOf(env, type);
      return c?.status === status && (reason === undefined || c.reason === reason) ? env : undefined;
    },
    { timeoutMs, what: `${ns}/${name} ${type}=${status}${reason ? ` (${reason})` : ''}` },
  );
}

/** Ready and Synced, with the id recorded and the generation observed. */
export function waitForReady(admin: KubeRest, ns: string, name: string, timeoutMs = 20_000): Promise<AgentEnvironment> {
  return waitFor(
    async () => {
      const env = await getEnvironment(admin, ns, name);
      const ready = conditionOf(env, 'Ready')?.status === 'True' && conditionOf(env, 'Synced')?.status === 'True';
      return ready && env.status?.environmentId && env.status.observedGeneration === env.metadata?.generation ? env : undefined;
    },
    { timeoutMs, what: `${ns}/${name} Ready and Synced` },
  );
}

/** Delete the resource and wait until it is gone (the finalizer ran). */
export async function deleteAndWait(admin: KubeRest, ns: string, name: string, timeoutMs = 20_000): Promise<void> {
  await admin.delete(AGENT_ENVIRONMENTS, ns, name);
  await waitFor(
    async () => {
      try {
        await getEnvironment(admin, ns, name);
        return false;
      } catch (err) {
        if (isNotFound(err)) return true;
        throw err;
      }
    },
    { timeoutMs, what: `${ns}/${name} to be deleted` },
  );
}

export interface CoreEvent extends KubeObject {
  type?: string;
  reason?: string;
  message?: string;
  count?: number;
  involvedObject?: { name?: string; uid?: string };
}

/** Events about `name` in `ns` (all objects when `name` is omitted). */
export async function eventsOf(admin: KubeRest, ns: string, name?: string): Promise<CoreEvent[]> {
  const list = await admin.list<CoreEvent>(CORE.events, ns, name ? { fieldSelector: `involvedObject.name=${name}` } : {});
  return list.items;
}

export function waitForEvent(admin: KubeRest, ns: string, name: string, reason: string, timeoutMs = 20_000): Promise<CoreEvent> {
  return waitFor(async () => (await eventsOf(admin, ns, name)).find((e) => e.reason === reason), { timeoutMs, what: `event ${reason} on ${ns}/${name}` });
}

/** Remote environments (archived included) tagged with the resource's uid: the create fence's view. */
export const remoteByUid = (emu: RunningEmulator, uid: string | undefined): Environment[] =>
  emu.state.environments.all().filter((e) => e.metadata[REMOTE_METADATA.uid] === uid);

export const remote = (emu: RunningEmulator, id: string | undefined): Environment | undefined =>
  id && emu.state.environments.has(id) ? emu.state.environments.get(id) : undefined;

/** The objects of a sample in deploy/samples, placed in `ns`. */
export function loadSample(file: string, ns: string): KubeObject[] {
  const text = readFileSync(new URL(`../../deploy/samples/${file}`, import.meta.url), 'utf8');
  return (loadAllYaml(text) as KubeObject[]).filter(Boolean).map((o) => ({ ...o, metadata: { ...o.metadata, namespace: ns } }));
}

/** Put `value` under `key` of an Opaque Secret (create or replace). */
export async function putSecret(admin: KubeRest, ns: string, name: string, key: string, value: string): Promise<void> {
  const secret = { metadata: { name, namespace: ns }, type: 'Opaque', data: { [key]: Buffer.from(value).toString('base64') } };
  try {
    const current = await admin.get<KubeObject>(CORE.secrets, ns, name);
    await admin.replace(CORE.secrets, ns, { ...secret, metadata: { ...secret.metadata, resourceVersion: current.metadata?.resourceVersion } } as KubeObject);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await admin.create(CORE.secrets, ns, secret as KubeObject);
  }
}

/**
 * Everything a credential must never appear in: every log line of every operator the fixture
 * started, every Event in the namespace, every AgentEnvironment (status included).
 */
export async function everythingVisible(f: EnvironmentFixture): Promise<string> {
  const events = await eventsOf(f.admin, f.ns.name);
  const envs = await f.admin.list<KubeObject>(AGENT_ENVIRONMENTS, f.ns.name);
  return [...f.operators.flatMap((o) => o.logLines), JSON.stringify(events), JSON.stringify(envs.items)].join('\n');
}

/**
 * Delete every AgentEnvironment of the fixture while its operator still runs (so finalizers are
 * honoured); whatever is still held after a while loses its finalizer, so the namespace can go.
 */
async function releaseAll(f: EnvironmentFixture): Promise<void> {
  const list = async (): Promise<AgentEnvironment[]> => (await f.admin.list<AgentEnvironment>(AGENT_ENVIRONMENTS, f.ns.name)).items;
  for (const env of await list()) await f.admin.delete(AGENT_ENVIRONMENTS, f.ns.name, env.metadata?.name ?? '').catch(() => {});
  await waitFor(async () => (await list()).length === 0, { timeoutMs: 10_000 }).catch(() => {});
  for (const env of await list()) {
    await f.admin.patch(AGENT_ENVIRONMENTS, f.ns.name, env.metadata?.name ?? '', { metadata: { finalizers: null } }, 'merge').catch(() => {});
  }
}
