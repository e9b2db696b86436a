/**
 * The scripted part of `npm run dev`, run against a cluster that already has the CRDs, an operator
 * and the emulator:
 *
 * 1. apply the samples from `deploy/samples/` into the demo namespace;
 * 2. once the self-hosted environment has its remote id, mint its environment key in the emulator
 *    (what a person does in the Console) and store it in the Secret the sample references;
 * 3. enqueue a few sessions through the emulator's admin API;
 * 4. script each session's agent through the emulator's admin route once its lease is claimed: a
 *    few bash calls, which the Pod's runner executes (the live view prints each call and result),
 *    then the session ends;
 * 5. stop one of them gracefully from the API side, as the platform would, so a stop is seen end
 *    to end: its runner learns it from its heartbeat and ends.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { Work } from '../api/wire.ts';
import type { AgentEventInput } from '../emulator/index.ts';
import type { AgentEnvironment } from '../crd/resources.ts';
import { AGENT_ENVIRONMENTS } from '../crd/resources.ts';
import { isAlreadyExists, isNotFound } from '../k8s/errors.ts';
import { resource, type KubeObject, type KubeRest, type ResourceType } from '../k8s/rest.ts';
import { sleepUnlessAborted } from '../util/sleep.ts';
import { line, type Print } from './view.ts';

/** The slice of the in-process emulator the demo drives (its admin API). */
export interface DemoEmulator {
  createSession(environmentId: string): { session_id: string; work_id: string };
  mintKey(environmentId: string): string;
  work(): readonly Work[];
  stop(environmentId: string, workId: string): Promise<void>;
  /** Append agent-side events to a session (the admin route); returns their ids. */
  script(sessionId: string, events: AgentEventInput[]): string[];
  /** Whether the runner has posted a result for every one of these tool uses. */
  answered(sessionId: string, toolUseIds: readonly string[]): boolean;
}

/**
 * What each demo agent asks the Pod to run. `$HOSTNAME` is the Pod's name (the kubelet sets it);
 * `$(hostname)` would print the machine's name on the process kubelet, which has no UTS namespace.
 */
const DEMO_CALLS = ['echo "hello from $HOSTNAME"', 'uname -sm && id -u', 'printf "%s\\n" one two > notes.txt && wc -l notes.txt'];
const bash = (command: string): AgentEventInput => ({ type: 'agent.tool_use', name: 'bash', input: { command } });

export interface DemoOptions {
  readonly rest: KubeRest;
  readonly emulator: DemoEmulator;
  readonly namespace: string;
  readonly samplesDir: string;
  readonly sessions: number;
  readonly print: Print;
  readonly signal: AbortSignal;
}

interface Manifest extends KubeObject {
  kind: string;
  apiVersion: string;
  spec?: { selfHosted?: { environmentKeySecretRef?: { name: string; key: string } } };
}

/** Read every manifest of the samples folder (multi-document YAML files, in name order). */
export function readSamples(dir: string): Manifest[] {
  return readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .flatMap((f) => parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => d.toJS() as Manifest | null))
    .filter((m): m is Manifest => !!m && typeof m.kind === 'string');
}

function typeOf(m: Manifest): ResourceType {
  const [group, version] = m.apiVersion.includes('/') ? m.apiVersion.split('/') : ['', m.apiVersion];
  const plural = `${m.kind.toLowerCase()}s`;
  return resource(group ?? '', version ?? 'v1', plural, m.kind);
}

export async function runDemo(o: DemoOptions): Promise<void> {
  const say = (what: string): void => o.print(line('demo', '', what));
  const samples = readSamples(o.samplesDir);
  // Adoption and ObserveOnly samples point at environments that exist only in a real organization.
  const applied = samples.filter((m) => m.kind !== 'AgentEnvironment' || !('environmentId' in ((m.spec ?? {}) as object)));
  for (const m of applied) {
    const obj = { ...m, metadata: { ...m.metadata, namespace: o.namespace } };
    try {
      await o.rest.create(typeOf(m), o.namespace, obj);
      say(`applied ${m.kind} ${m.metadata?.name}`);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
  }

  const selfHosted = applied.find((m) => m.kind === 'AgentEnvironment' && m.spec?.selfHosted);
  if (!selfHosted?.metadata?.name) {
    say('no self-hosted sample: nothing to dispatch');
    return;
  }
  const envId = await waitForEnvironmentId(o, selfHosted.metadata.name);
  if (!envId) return;
  const keyRef = selfHosted.spec?.selfHosted?.environmentKeySecretRef;
  if (keyRef) {
    await storeEnvironmentKey(o, keyRef, o.emulator.mintKey(envId));
    say(`minted an environment key for ${envId} and stored it in Secret ${keyRef.name} (as you would from the Console)`);
  }

  const enqueued = Array.from({ length: o.sessions }, () => o.emulator.createSession(envId));
  for (const s of enqueued) say(`enqueued session ${s.session_id} (work ${s.work_id})`);

  // Every agent but the first makes its calls and ends; the first is stopped from the API.
  const [first, ...rest] = enqueued;
  await Promise.all(rest.map((s) => runAgent(o, envId, s)));
  const active = first ? await waitForActive(o, envId, first.work_id) : undefined;
  if (active) {
    say(`stopping work ${active.id} from the API (graceful): the runner learns it from its heartbeat and ends, the sidecar confirms the stop`);
    await o.emulator.stop(envId, active.id);
  }
  say('Ctrl-C tears everything down');
}

/** Script one session's agent once its lease is claimed: the demo calls, then the session ends. */
async function runAgent(o: DemoOptions, envId: string, s: { session_id: string; work_id: string }): Promise<void> {
  if (!(await waitForActive(o, envId, s.work_id))) return;
  const ids = o.emulator.script(s.session_id, [{ type: 'session.status_running' }, ...DEMO_CALLS.map(bash)]).slice(1);
  while (!o.signal.aborted && !o.emulator.answered(s.session_id, ids)) await sleepUnlessAborted(200, o.signal);
  if (!o.signal.aborted) o.emulator.script(s.session_id, [{ type: 'session.status_terminated' }]);
}

async function waitForEnvironmentId(o: DemoOptions, name: string): Promise<string | undefined> {
  while (!o.signal.aborted) {
    try {
      const env = await o.rest.get<AgentEnvironment>(AGENT_ENVIRONMENTS, o.namespace, name);
      if (env.status?.environmentId) return env.status.environmentId;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    await sleepUnlessAborted(250, o.signal);
  }
  return undefined;
}

async function waitForActive(o: DemoOptions, envId: string, workId: string): Promise<Work | undefined> {
  while (!o.signal.aborted) {
    const active = o.emulator.work().find((w) => w.environment_id === envId && w.id === workId && w.state === 'active');
    if (active) return active;
    await sleepUnlessAborted(250, o.signal);
  }
  return undefined;
}

async function storeEnvironmentKey(o: DemoOptions, ref: { name: string; key: string }, key: string): Promise<void> {
  const secrets = resource('', 'v1', 'secrets', 'Secret');
  const data = { [ref.key]: Buffer.from(key).toString('base64') };
  try {
    await o.rest.patch(secrets, o.namespace, ref.name, { data }, 'merge');
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await o.rest.create(secrets, o.namespace, { metadata: { name: ref.name, namespace: o.namespace }, type: 'Opaque', data } as KubeObject);
  }
}
