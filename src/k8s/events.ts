/**
 * Kubernetes Events (core/v1) for the objects the operator manages, as `kubectl describe` shows
 * them. Repeats of the same (object, type, reason, message) within `aggregateWindowMs` bump the
 * count of the existing Event instead of creating a new one. Recording never throws: an Event that
 * cannot be written is logged and dropped, because events are advisory.
 *
 * Events are written behind the work, never in its way: at most `maxInFlight` writes at once, and
 * at most `maxPending` waiting (further ones are dropped and counted), as client-go's recorder does.
 * A burst of sessions would otherwise put two Event writes per session in front of the writes that
 * carry the work (records, Pods, status) on the same apiserver.
 *
 * `Normal` events are also rate-limited, across all objects: a token bucket of `normalBurst`
 * refilled at `normalPerSecond` (default 25, then 1 a second: what client-go's spam filter allows
 * one object, here for the whole process). A burst of 1,000 sessions would otherwise add a
 * thousand Event writes — a quarter of its writes — on an apiserver that is the bottleneck, to say
 * what each session's status already says (at 50 then 5 a second a burst still wrote 85). `Warning` events are never
 * rate-limited: they explain a failure. Both kinds of drop are counted.
 *
 * Messages are built by callers from error codes and API messages; callers must never put a
 * credential in one (tests assert this).
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../telemetry/logger.ts';
import { CORE, apiVersionOf, type KubeObject, type KubeRest, type ResourceType } from './rest.ts';

export type EventType = 'Normal' | 'Warning';

export interface EventRecorder {
  record(object: KubeObject, type: EventType, reason: string, message: string): void;
}

interface CoreEvent extends KubeObject {
  count?: number;
  lastTimestamp?: string;
}

export class KubeEventRecorder implements EventRecorder {
  readonly #rest: KubeRest;
  readonly #component: string;
  readonly #logger: Logger;
  readonly #windowMs: number;
  readonly #maxInFlight: number;
  readonly #maxPending: number;
  readonly #pending: Array<() => Promise<void>> = [];
  #inFlight = 0;
  /** Events dropped because the backlog was full (logged every 100). */
  dropped = 0;
  /** Normal events not written because of the rate limit. */
  limited = 0;
  readonly #normal: { readonly burst: number; readonly perSecond: number; tokens: number; at: number };
  readonly #now: () => number;
  readonly #recent = new Map<string, { name: string; namespace: string; count: number; at: number }>();

  constructor(
    rest: KubeRest,
    options: { component: string; logger: Logger; aggregateWindowMs?: number; maxInFlight?: number; maxPending?: number; normalBurst?: number; normalPerSecond?: number; now?: () => number },
  ) {
    this.#rest = rest;
    this.#component = options.component;
    this.#logger = options.logger;
    this.#windowMs = options.aggregateWindowMs ?? 10 * 60_000;
    this.#maxInFlight = options.maxInFlight ?? 2;
    this.#maxPending = options.maxPending ?? 1_000;
    this.#now = options.now ?? Date.now;
    const burst = options.normalBurst ?? 25;
    this.#normal = { burst, perSecond: options.normalPerSecond ?? 1, tokens: burst, at: this.#now() };
  }

  record(object: KubeObject, type: EventType, reason: string, message: string): void {
    if (type === 'Normal' && !this.#takeNormalToken()) {
      this.limited++;
      return;
    }
    if (this.#pending.length >= this.#maxPending) {
      if (this.dropped++ % 100 === 0) this.#logger.warn({ reason, dropped: this.dropped }, 'event backlog full; dropping events');
      return;
    }
    this.#pending.push(() =>
      this.#write(object, type, reason, message.slice(0, 1024)).catch((err: unknown) => this.#logger.warn({ err, reason }, 'could not record event')),
    );
    this.#pump();
  }

  #takeNormalToken(): boolean {
    const b = this.#normal;
    const now = this.#now();
    b.tokens = Math.min(b.burst, b.tokens + ((now - b.at) / 1000) * b.perSecond);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }

  #pump(): void {
    while (this.#inFlight < this.#maxInFlight && this.#pending.length > 0) {
      const write = this.#pending.shift()!;
      this.#inFlight++;
      void write().finally(() => {
        this.#inFlight--;
        this.#pump();
      });
    }
  }

  async #write(object: KubeObject, type: EventType, reason: string, message: string): Promise<void> {
    const meta = object.metadata ?? {};
    const namespace = meta.namespace ?? 'default';
    const key = `${meta.uid}|${type}|${reason}|${message}`;
    const now = new Date();
    const seen = this.#recent.get(key);
    if (seen && now.getTime() - seen.at < this.#windowMs) {
      seen.count++;
      seen.at = now.getTime();
      await this.#rest.patch(CORE.events, seen.namespace, seen.name, { count: seen.count, lastTimestamp: now.toISOString() }, 'merge');
      return;
    }
    const name = `${meta.name ?? 'object'}.${now.getTime().toString(16)}${randomBytes(3).toString('hex')}`;
    await this.#rest.create<CoreEvent>(CORE.events, namespace, {
      metadata: { name, namespace },
      involvedObject: {
        apiVersion: object.apiVersion,
        kind: object.kind,
        name: meta.name,
        namespace,
        uid: meta.uid,
        resourceVersion: meta.resourceVersion,
      },
      type,
      reason,
      message,
      source: { component: this.#component },
      reportingComponent: this.#component,
      reportingInstance: this.#component,
      firstTimestamp: now.toISOString(),
      lastTimestamp: now.toISOString(),
      count: 1,
    } as CoreEvent);
    this.#recent.set(key, { name, namespace, count: 1, at: now.getTime() });
    if (this.#recent.size > 5_000) this.#prune(now.getTime());
  }

  #prune(now: number): void {
    for (const [k, v] of this.#recent) if (now - v.at >= this.#windowMs) this.#recent.delete(k);
  }
}

/** Records into memory (unit tests of reconcilers). */
export class MemoryEventRecorder implements EventRecorder {
  readonly events: Array<{ object: string; type: EventType; reason: string; message: string }> = [];
  record(object: KubeObject, type: EventType, reason: string, message: string): void {
    this.events.push({ object: `${object.metadata?.namespace}/${object.metadata?.name}`, type, reason, message });
  }
}

/** An owner reference making `owner` the controller of a child object (for garbage collection). */
export function controllerRef(owner: KubeObject, type: ResourceType): { apiVersion: string; kind: string; name: string; uid: string; controller: true; blockOwnerDeletion: true } {
  return {
    apiVersion: apiVersionOf(type),
    kind: type.kind,
    name: owner.metadata?.name ?? '',
    uid: owner.metadata?.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}
