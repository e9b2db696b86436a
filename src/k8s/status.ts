/**
 * The one way status is written, with one conflict policy.
 *
 * - {@link writeStatus}: the object's reconciler owns its status. It computes the whole status from
 *   the object it read, writes nothing when that equals the current status, and replaces the status
 *   subresource guarded by the resourceVersion it read (so nobody else's change is overwritten).
 * - {@link applyCondition}: a condition owned by a loop other than the reconciler (the dispatcher's
 *   `Dispatching`) is written alone by server-side apply with that loop's own field manager, so the
 *   two writers never replace each other's fields. This needs the CRD's conditions list to be
 *   `x-kubernetes-list-type: map` keyed by `type` (src/crd/schema-helpers.ts `Conditions`): with the
 *   default (atomic) list, applying one condition would replace the whole list.
 */
import { jsonEqual, setCondition, type Condition, type ConditionInput } from './conditions.ts';
import { classify, isNotFound } from './errors.ts';
import { apiVersionOf, type KubeObject, type KubeRest, type ResourceType } from './rest.ts';

/** How many times a status write is tried in all when each try meets a Conflict; the last Conflict is thrown. */
export const STATUS_WRITE_ATTEMPTS = 4;

/** An object with a status subresource. */
export type WithStatus<S> = KubeObject & { status?: S };

export interface WriteStatusOptions<T> {
  /**
   * After a Conflict: whether this pass's decision still holds for the object read afresh. Default:
   * it has the same `metadata.generation` (a new generation gets a pass of its own, so this one gives way).
   */
  readonly stillApplies?: (fresh: T, read: T) => boolean;
}

/**
 * Write the status `next(current)` computes, once it differs from the current status.
 *
 * Flow:
 * 1. `status = next(current)`, starting from `object`; equal to `current.status` → nothing is written.
 * 2. Replace the status subresource, guarded by `current`'s resourceVersion.
 * 3. NotFound → `undefined` (the object is gone). Conflict → read it again; if the decision no longer
 *    applies to the fresh object (`stillApplies`), give way and return `undefined`; else go to 1
 *    with the fresh object. After {@link STATUS_WRITE_ATTEMPTS} tries the Conflict is thrown.
 *
 * Guarantees: another writer's change between our read and our write is never overwritten (it is
 * merged by `next`, which sees the fresh object). Any other failure is thrown unchanged.
 * Assumptions: `next` is pure (it is called once per try); `object` carries the resourceVersion it was read at.
 *
 * Returns the object as stored afterwards (`current` itself when nothing was written), or `undefined`.
 */
export async function writeStatus<S, T extends WithStatus<S>>(
  rest: Pick<KubeRest, 'get' | 'replace'>,
  type: ResourceType,
  object: T,
  next: (current: T) => S,
  options: WriteStatusOptions<T> = {},
): Promise<T | undefined> {
  const stillApplies = options.stillApplies ?? ((fresh, read) => fresh.metadata?.generation === read.metadata?.generation);
  const namespace = object.metadata?.namespace;
  const name = object.metadata?.name ?? '';
  let current = object;
  for (let attempt = 1; ; attempt++) {
    const status = next(current);
    if (jsonEqual(current.status ?? {}, status ?? {})) return current;
    try {
      return await rest.replace<T>(type, namespace, { ...current, status }, 'status');
    } catch (err) {
      if (isNotFound(err)) return undefined;
      if (classify(err) !== 'conflict' || attempt >= STATUS_WRITE_ATTEMPTS) throw err;
    }
    let fresh: T;
    try {
      fresh = await rest.get<T>(type, namespace, name);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    if (!stillApplies(fresh, object)) return undefined;
    current = fresh;
  }
}

export interface ApplyConditionOptions {
  /** The field manager of the loop that owns this condition (not the reconciler's). */
  readonly fieldManager: string;
  readonly now?: Date;
}

/**
 * Server-side apply one condition of `object`'s status, and nothing else.
 *
 * Flow: the condition as it would be set on `object` (its `lastTransitionTime` kept while the status
 * does not flip); equal to the one `object` carries → nothing is written; else one apply
 * (`application/apply-patch+yaml`, `force: true`, `fieldManager`) of `status.conditions: [that one]`.
 * Guarantees: the other conditions and status fields are left as they are (the list merges by
 * `type`), whoever wrote them; no resourceVersion is sent, so there is no Conflict to retry.
 * Assumptions: `object` is a recent copy (an informer's cache is fine: a stale copy at worst costs
 * one write that changes nothing); the caller retries transient failures (`classify`).
 *
 * Returns false when nothing was written (unchanged, or the object is gone).
 */
export async function applyCondition(
  rest: Pick<KubeRest, 'patch'>,
  type: ResourceType,
  object: WithStatus<{ conditions?: readonly Condition[] | undefined }>,
  condition: ConditionInput,
  options: ApplyConditionOptions,
): Promise<boolean> {
  const existing = object.status?.conditions;
  const wanted = setCondition(existing, condition, options.now).find((c) => c.type === condition.type);
  if (!wanted || jsonEqual(existing?.find((c) => c.type === condition.type), wanted)) return false;
  const namespace = object.metadata?.namespace;
  const name = object.metadata?.name ?? '';
  const patch = {
    apiVersion: apiVersionOf(type),
    kind: type.kind,
    metadata: { name, ...(namespace ? { namespace } : {}) },
    status: { conditions: [wanted] },
  };
  try {
    await rest.patch(type, namespace, name, patch, 'apply', { subresource: 'status', force: true, fieldManager: options.fieldManager });
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}
