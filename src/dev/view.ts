/**
 * The live view of `npm run dev`: one compact line per transition, as it happens —
 * AgentEnvironments becoming Ready, AgentSessions moving through their phases, session Pods, and
 * the work items in the emulator (queued → starting → active → stopping → stopped), and each tool
 * call an agent makes with the result the session Pod's runner posted.
 *
 * It reads only: informers on the cluster and the emulator's in-memory state. It prints what
 * changed, never a heartbeat-by-heartbeat stream, and never a credential (it prints names, ids,
 * phases and reasons only).
 */
import type { SessionEvent } from '../api/sessions-wire.ts';
import type { Work } from '../api/wire.ts';
import type { AgentEnvironment, AgentSession } from '../crd/resources.ts';
import { AGENT_ENVIRONMENTS, AGENT_SESSIONS } from '../crd/resources.ts';
import { LABELS } from '../crd/meta.ts';
import { Informer, type InformerEvent } from '../k8s/informer.ts';
import { CORE, type KubeObject, type KubeRest } from '../k8s/rest.ts';
import type { Logger } from '../telemetry/logger.ts';

export type Print = (line: string) => void;

interface Pod extends KubeObject {
  status?: { phase?: string; containerStatuses?: Array<{ name: string; state?: Record<string, { reason?: string; exitCode?: number }> }> };
}

const COLOR = process.stdout.isTTY && !process.env['NO_COLOR'];
const paint = (code: number, s: string): string => (COLOR ? `\x1b[${code}m${s}\x1b[0m` : s);
const KIND_COLOR: Record<string, number> = { environment: 36, session: 35, pod: 34, work: 33, demo: 32, tool: 94, result: 92 };

/** Format one line: time, kind, subject, what happened. */
export function line(kind: string, subject: string, what: string, at = new Date()): string {
  const time = at.toISOString().slice(11, 19);
  return `${paint(90, time)}  ${paint(KIND_COLOR[kind] ?? 0, kind.padEnd(11))} ${subject.padEnd(44)} ${what}`;
}

/** What an AgentEnvironment looks like in one line; undefined when nothing worth showing changed. */
export function describeEnvironment(e: AgentEnvironment): string {
  const ready = e.status?.conditions?.find((c) => c.type === 'Ready');
  const synced = e.status?.conditions?.find((c) => c.type === 'Synced');
  const parts = [
    ready ? `Ready=${ready.status}${ready.status === 'True' ? '' : ` (${ready.reason})`}` : 'Ready=?',
    synced && synced.status !== 'True' ? `Synced=False (${synced.reason}: ${synced.message})` : '',
    e.status?.environmentId ? `${e.status.environmentId} (${e.status.type ?? (e.spec.cloud ? 'cloud' : 'self_hosted')})` : '',
    e.status?.activeSessions !== undefined ? `active=${e.status.activeSessions}` : '',
    e.metadata?.deletionTimestamp ? 'deleting' : '',
  ];
  return parts.filter(Boolean).join('  ');
}

export function describeSession(s: AgentSession): string {
  const st = s.status ?? {};
  const parts = [
    st.phase ?? 'Pending',
    st.reason ? `(${st.reason})` : '',
    st.podName ? `pod=${st.podName}` : '',
    st.workState ? `work=${st.workState}` : '',
    st.lease?.claimedAt ? 'lease claimed' : '',
    s.metadata?.deletionTimestamp ? 'deleting' : '',
  ];
  return parts.filter(Boolean).join('  ');
}

export function describePod(p: Pod): string {
  const containers = (p.status?.containerStatuses ?? []).map((c) => {
    const [state, detail] = Object.entries(c.state ?? {})[0] ?? ['unknown', {}];
    const extra = detail.reason ?? (detail.exitCode !== undefined ? `exit ${detail.exitCode}` : '');
    return `${c.name}:${state}${extra ? `(${extra})` : ''}`;
  });
  return [p.status?.phase ?? 'Pending', ...containers, p.metadata?.deletionTimestamp ? 'terminating' : ''].filter(Boolean).join('  ');
}

/** Print a line whenever the one-line description of an object changes (and when it goes away). */
function follow<T extends KubeObject>(informer: Informer<T>, kind: string, describe: (o: T) => string, print: Print): void {
  const last = new Map<string, string>();
  informer.on((e: InformerEvent<T>) => {
    const key = `${e.object.metadata?.namespace}/${e.object.metadata?.name}`;
    if (e.type === 'delete') {
      last.delete(key);
      print(line(kind, key, 'deleted'));
      return;
    }
    const text = describe(e.object);
    if (last.get(key) === text) return;
    last.set(key, text);
    print(line(kind, key, text));
  });
}

/** Watch the cluster objects of the demo and print their transitions until `signal` aborts. */
export function watchCluster(rest: KubeRest, namespace: string, print: Print, logger: Logger, signal: AbortSignal): Promise<void> {
  const opts = { namespace, logger };
  const envs = new Informer<AgentEnvironment>(rest, AGENT_ENVIRONMENTS, opts);
  const sessions = new Informer<AgentSession>(rest, AGENT_SESSIONS, opts);
  const pods = new Informer<Pod>(rest, CORE.pods, { ...opts, labelSelector: `${LABELS.managedBy}=agentenv` });
  follow(envs, 'environment', describeEnvironment, print);
  follow(sessions, 'session', describeSession, print);
  follow(pods, 'pod', describePod, print);
  return Promise.all([envs.run(signal), sessions.run(signal), pods.run(signal)]).then(() => undefined);
}

/** Print work-item state transitions from the emulator's state, sampled every `everyMs`. */
export function watchWork(read: () => readonly Work[], print: Print, signal: AbortSignal, everyMs = 200): void {
  const last = new Map<string, string>();
  const tick = (): void => {
    for (const w of read()) {
      const before = last.get(w.id);
      if (before === w.state) continue;
      last.set(w.id, w.state);
      const note = w.state === 'active' && before !== 'stopping' ? '  (lease claimed by the sidecar)' : w.state === 'stopping' ? '  (graceful stop requested)' : '';
      print(line('work', `${w.id} session ${w.data.id.slice(-8)}`, `${before ? `${before} → ` : ''}${w.state}${note}`));
    }
  };
  const timer = setInterval(tick, everyMs);
  signal.addEventListener('abort', () => clearInterval(timer), { once: true });
}

/**
 * Print each agent tool call and the result the Pod's runner posted for it, from the emulator's
 * session histories, sampled every `everyMs`. Results are cut to one short line.
 */
export function watchToolCalls(sessions: () => readonly string[], history: (sessionId: string) => readonly SessionEvent[], print: Print, signal: AbortSignal, everyMs = 200): void {
  const seen = new Set<string>();
  const tick = (): void => {
    for (const id of sessions()) {
      let events: readonly SessionEvent[];
      try {
        events = history(id);
      } catch {
        continue; // a work item whose session the emulator does not know: nothing to show
      }
      for (const e of events) {
        if (seen.has(e.id)) continue;
        seen.add(e.id);
        const what = describeToolEvent(e);
        if (what) print(line(e.type === 'agent.tool_use' ? 'tool' : 'result', `session ${id.slice(-8)}`, what));
      }
    }
  };
  const timer = setInterval(tick, everyMs);
  signal.addEventListener('abort', () => clearInterval(timer), { once: true });
}

/** One line for a tool call or its result; undefined for other events. */
export function describeToolEvent(e: SessionEvent): string | undefined {
  if (e.type === 'agent.tool_use') return `${String(e['name'])} ${JSON.stringify(e['input'] ?? {})}`.slice(0, 120);
  if (e.type !== 'user.tool_result') return undefined;
  const text = ((e['content'] ?? []) as Array<{ type: string; text?: string }>).filter((b) => b.type === 'text').map((b) => b.text ?? '').join(' ').replace(/\s+/g, ' ').trim();
  return `${e['is_error'] ? 'error: ' : '→ '}${text.slice(0, 100) || '(no output)'}`;
}
