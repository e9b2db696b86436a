/**
 * What `helm uninstall` does with the custom resources before the operator goes (the chart's
 * pre-delete hook runs `agentenv uninstall`), so nothing is left stuck in Terminating:
 *
 * - `refuse` (the default): while any AgentEnvironment exists, refuse with a message that names
 *   them and the two ways on. Removing the operator first would leave their finalizers with nobody
 *   to run them: deleting their namespaces, or the CRDs, then hangs, and the remote environments
 *   keep taking work nobody serves.
 * - `delete`: delete every AgentEnvironment and wait until they are gone. The operator, still
 *   running while the hook runs, applies each one's `deletionPolicy` (Retain, Archive or Delete)
 *   and drains its sessions first.
 * - `orphan`: remove the operator's finalizers from every AgentEnvironment and AgentSession and
 *   touch nothing remote. The objects stay (the CRDs are kept) and the remote environments are left
 *   exactly as they are; the command says so for each one.
 *
 * The plan is pure (`planUninstall`); `runUninstall` applies it and re-plans from a fresh list
 * until it is done, so a conflict or a new object on the way is handled by the next round.
 */
import { ENVIRONMENT_FINALIZER, SESSION_FINALIZER } from '../crd/meta.ts';
import { AGENT_ENVIRONMENTS, AGENT_SESSIONS } from '../crd/resources.ts';
import { isConflict, isNotFound } from '../k8s/errors.ts';
import type { KubeObject, KubeRest, ResourceType } from '../k8s/rest.ts';
import { sleepUnlessAborted } from '../util/sleep.ts';

export const UNINSTALL_POLICIES = ['refuse', 'delete', 'orphan'] as const;
export type UninstallPolicy = (typeof UNINSTALL_POLICIES)[number];

/** One custom resource as the plan sees it. */
export interface Held {
  readonly kind: 'AgentEnvironment' | 'AgentSession';
  readonly namespace: string;
  readonly name: string;
  readonly finalizers: readonly string[];
  readonly deleting: boolean;
  readonly resourceVersion: string;
  /** AgentEnvironment only: the remote environment it reconciles, if known. */
  readonly environmentId?: string;
}

export type UninstallStep =
  | { readonly do: 'delete'; readonly target: Held }
  | { readonly do: 'unfinalize'; readonly target: Held; readonly keep: readonly string[] };

export type UninstallPlan =
  | { readonly verdict: 'done'; readonly message: string }
  | { readonly verdict: 'refuse'; readonly message: string }
  | { readonly verdict: 'wait'; readonly message: string; readonly steps: readonly UninstallStep[] };

const OURS = new Set([ENVIRONMENT_FINALIZER, SESSION_FINALIZER]);
const ref = (h: Held): string => `${h.namespace}/${h.name}`;

/** Decide the next round from what exists now. */
export function planUninstall(policy: UninstallPolicy, held: readonly Held[]): UninstallPlan {
  const environments = held.filter((h) => h.kind === 'AgentEnvironment');
  if (policy === 'refuse') {
    if (environments.length === 0) return { verdict: 'done', message: 'no AgentEnvironment left: the operator can be removed' };
    return {
      verdict: 'refuse',
      message:
        `refusing to uninstall: ${environments.length} AgentEnvironment(s) still exist (${environments.map(ref).join(', ')}). ` +
        'Removing the operator now would leave their finalizers with nobody to run them (namespace and CRD deletion would hang) ' +
        'and their remote environments taking work nobody serves. Delete them first (kubectl delete agentenvironments --all -A), ' +
        'or uninstall with --set uninstall.policy=delete (apply each deletionPolicy, then uninstall) ' +
        'or --set uninstall.policy=orphan (remove the finalizers, leave the remote environments untouched).',
    };
  }
  if (policy === 'delete') {
    if (environments.length === 0) return { verdict: 'done', message: 'every AgentEnvironment is gone (each deletionPolicy applied)' };
    const steps = environments.filter((e) => !e.deleting).map((target): UninstallStep => ({ do: 'delete', target }));
    return { verdict: 'wait', message: `waiting for ${environments.length} AgentEnvironment(s) to be deleted by the operator: ${environments.map(ref).join(', ')}`, steps };
  }
  const finalized = held.filter((h) => h.finalizers.some((f) => OURS.has(f)));
  if (finalized.length === 0) return { verdict: 'done', message: 'no AgentEnvironment or AgentSession holds an operator finalizer any more' };
  const steps = finalized.map((target): UninstallStep => ({ do: 'unfinalize', target, keep: target.finalizers.filter((f) => !OURS.has(f)) }));
  return { verdict: 'wait', message: `removing the operator's finalizers from ${finalized.length} object(s)`, steps };
}

export interface UninstallOptions {
  readonly rest: KubeRest;
  readonly policy: UninstallPolicy;
  /** Namespaces to look in; all when empty. */
  readonly namespaces: readonly string[];
  /** Give up (non-zero exit) after this long. */
  readonly timeoutMs: number;
  readonly print: (line: string) => void;
  readonly signal?: AbortSignal;
  /** Pause between rounds. Default 1 s. */
  readonly pollMs?: number;
}

/** Apply the policy; resolves true when done, false when refused or timed out (the message says which). */
export async function runUninstall(o: UninstallOptions): Promise<boolean> {
  const deadline = Date.now() + o.timeoutMs;
  const said = new Set<string>();
  const say = (line: string): void => {
    if (!said.has(line)) o.print(line);
    said.add(line);
  };
  for (;;) {
    const plan = planUninstall(o.policy, await readHeld(o.rest, o.namespaces));
    if (plan.verdict !== 'wait') {
      o.print(plan.message);
      return plan.verdict === 'done';
    }
    say(plan.message);
    for (const step of plan.steps) say(await applyStep(o.rest, step));
    if (Date.now() > deadline) {
      o.print(`gave up after ${Math.round(o.timeoutMs / 1000)} s: ${plan.message}`);
      return false;
    }
    if (!(await sleepUnlessAborted(o.pollMs ?? 1_000, o.signal))) return false;
  }
}

async function applyStep(rest: KubeRest, step: UninstallStep): Promise<string> {
  const t = step.target;
  const type = t.kind === 'AgentEnvironment' ? AGENT_ENVIRONMENTS : AGENT_SESSIONS;
  try {
    if (step.do === 'delete') {
      await rest.delete(type, t.namespace, t.name);
      return `deleted AgentEnvironment ${ref(t)}: the operator applies its deletionPolicy`;
    }
    // The resourceVersion makes this a compare-and-set: a finalizer added meanwhile is not lost.
    await rest.patch(type, t.namespace, t.name, { metadata: { finalizers: [...step.keep], resourceVersion: t.resourceVersion } }, 'merge');
    return t.kind === 'AgentEnvironment'
      ? `orphaned AgentEnvironment ${ref(t)}: finalizer removed, remote environment ${t.environmentId ?? '(none recorded)'} left untouched`
      : `orphaned AgentSession ${ref(t)}: finalizer removed, its work item and Pod left as they are`;
  } catch (err) {
    // Gone already, or changed since the list: the next round re-plans from a fresh list.
    if (isNotFound(err) || isConflict(err)) return `${ref(t)} changed meanwhile; looking again`;
    throw err;
  }
}

interface HeldObject extends KubeObject {
  status?: { environmentId?: string };
}

async function readHeld(rest: KubeRest, namespaces: readonly string[]): Promise<Held[]> {
  const scopes = namespaces.length ? namespaces : [undefined];
  const read = async (type: ResourceType, kind: Held['kind']): Promise<Held[]> =>
    (await Promise.all(scopes.map((ns) => rest.listAll<HeldObject>(type, ns)))).flatMap((list) =>
      list.items.map((o) => ({
        kind,
        namespace: o.metadata?.namespace ?? '',
        name: o.metadata?.name ?? '',
        finalizers: o.metadata?.finalizers ?? [],
        deleting: !!o.metadata?.deletionTimestamp,
        resourceVersion: o.metadata?.resourceVersion ?? '',
        ...(kind === 'AgentEnvironment' && o.status?.environmentId ? { environmentId: o.status.environmentId } : {}),
      })),
    );
  return [...(await read(AGENT_ENVIRONMENTS, 'AgentEnvironment')), ...(await read(AGENT_SESSIONS, 'AgentSession'))];
}
