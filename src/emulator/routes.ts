/**
 * The emulator's route table: the fourteen public endpoints of the Environments API, the Sessions
 * endpoints a runner uses (session-routes.ts), and the admin API under /emulator/v1.
 */
import { z } from 'zod';
import { EnvironmentCreateParams, EnvironmentUpdateParams, Metadata, MetadataPatch, WORKER_ID_HEADER, WorkStopParams, type Work } from '../api/wire.ts';
import { EmulatorError } from './errors.ts';
import { FaultRules, type FaultInjector } from './faults.ts';
import { boolParam, intParam } from './query.ts';
import { route, type Request } from './server.ts';
import { sessionRoutes } from './session-routes.ts';
import type { EmulatorState } from './state.ts';
import { DEFAULT_RECLAIM_MS } from './work.ts';

const ENV = '/v1/environments/{environment_id}';
const WORK = `${ENV}/work/{work_id}`;

export interface RouteOptions {
  /** Include a per-item `secret` (sessions token) in poll replies. */
  readonly workSecrets: boolean;
  readonly baseUrl: () => string;
}

export function routes(state: EmulatorState, faults: FaultInjector, options: RouteOptions) {
  const env = (r: Request) => state.environments.get(r.params['environment_id']!);
  // Work endpoints exist for every environment; the queue of a cloud one simply stays empty.
  const workEnv = (r: Request): string => env(r).id;

  /** Long poll: deliver at once, or wait up to block_ms for work to arrive. */
  async function poll(r: Request): Promise<Work | null> {
    const environmentId = workEnv(r);
    const blockMs = intParam(r.query, 'block_ms', 1, 999);
    const reclaimMs = intParam(r.query, 'reclaim_older_than_ms', 0, 86_400_000) ?? DEFAULT_RECLAIM_MS;
    const workerId = r.headers[WORKER_ID_HEADER] as string | undefined;
    state.work.notePoller(environmentId, workerId);
    const secret = options.workSecrets ? { apiBaseUrl: options.baseUrl() } : undefined;
    const deliver = () => state.work.deliver(environmentId, reclaimMs, secret);
    const now = deliver();
    if (now || !blockMs) return now;
    return new Promise<Work | null>((resolve) => {
      let settled = false;
      const finish = (w: Work | null): void => {
        if (settled) return;
        settled = true;
        withdraw();
        clearTimeout(timer);
        r.closed.removeEventListener('abort', onClose);
        resolve(w);
      };
      const withdraw = state.wait(environmentId, { deliver, respond: (w) => finish(w) });
      // block_ms is wall-clock waiting (the injected clock only drives leases and reclaim). At the
      // end of the block, look once more: a pending item may have become reclaimable.
      const timer = setTimeout(() => finish(deliver()), blockMs);
      const onClose = (): void => finish(null);
      r.closed.addEventListener('abort', onClose, { once: true });
    });
  }

  return [
    // --- environments (organization API key) ---
    route('POST', '/v1/environments', 'api-key', (r) => state.environments.create(r.body(EnvironmentCreateParams))),
    route('GET', '/v1/environments', 'api-key', (r) =>
      state.environments.list({
        ...optional('limit', intParam(r.query, 'limit', 1, 100)),
        ...optional('includeArchived', boolParam(r.query, 'include_archived')),
        ...optional('page', r.query.get('page') || undefined),
      }),
    ),
    route('GET', ENV, 'api-key', (r) => env(r)),
    route('POST', ENV, 'api-key', (r) => state.environments.update(r.params['environment_id']!, r.body(EnvironmentUpdateParams))),
    route('DELETE', ENV, 'api-key', (r) => {
      const id = env(r).id;
      state.deleteEnvironment(id);
      return { id, type: 'environment_deleted' };
    }),
    route('POST', `${ENV}/archive`, 'api-key', (r) => state.environments.archive(env(r).id)),

    // --- work (API key or the environment's key; item routes also the item's token) ---
    route('GET', `${ENV}/work/poll`, 'environment', poll),
    route('GET', `${ENV}/work/stats`, 'environment', (r) => state.work.stats(workEnv(r))),
    route('GET', `${ENV}/work`, 'environment', (r) =>
      state.work.list(workEnv(r), { ...optional('limit', intParam(r.query, 'limit', 1, 100)), ...optional('page', r.query.get('page') || undefined) }),
    ),
    route('GET', WORK, 'work-item', (r) => state.work.get(workEnv(r), r.params['work_id']!).work),
    route('POST', WORK, 'work-item', (r) => state.work.update(workEnv(r), r.params['work_id']!, r.body(z.object({ metadata: MetadataPatch.optional() })).metadata ?? {})),
    route('POST', `${WORK}/ack`, 'work-item', (r) => state.work.ack(workEnv(r), r.params['work_id']!)),
    route('POST', `${WORK}/heartbeat`, 'work-item', (r) => {
      const expected = r.query.get('expected_last_heartbeat');
      if (!expected) throw new EmulatorError(400, 'expected_last_heartbeat is required (NO_HEARTBEAT to claim the lease)');
      const desired = intParam(r.query, 'desired_ttl_seconds', 1, Number.MAX_SAFE_INTEGER);
      return { type: 'work_heartbeat', ...state.work.heartbeat(workEnv(r), r.params['work_id']!, expected, desired) };
    }),
    route('POST', `${WORK}/stop`, 'work-item', (r) => state.work.stop(workEnv(r), r.params['work_id']!, r.body(WorkStopParams).force === true)),

    // --- admin API (no auth) ---
    route('POST', '/emulator/v1/environments/{environment_id}/sessions', 'admin', (r) =>
      state.createSession(r.params['environment_id']!, r.body(z.object({ metadata: Metadata.optional() })).metadata ?? {}),
    ),
    // Many sessions in one call (the benches' bursts, without a request per session in the timed run).
    route('POST', '/emulator/v1/environments/{environment_id}/sessions/batch', 'admin', (r) => {
      const { count, metadata } = r.body(z.object({ count: z.number().int().min(1).max(10_000), metadata: Metadata.optional() }));
      return { data: Array.from({ length: count }, () => state.createSession(r.params['environment_id']!, metadata ?? {})) };
    }),
    route('POST', '/emulator/v1/environments/{environment_id}/sessions/{session_id}/wake', 'admin', (r) =>
      state.wake(r.params['environment_id']!, r.params['session_id']!),
    ),
    route('POST', '/emulator/v1/environments/{environment_id}/keys', 'admin', (r) => ({ key: state.mintEnvironmentKey(env(r).id) })),
    route('POST', '/emulator/v1/environments/{environment_id}/work/reclaim', 'admin', (r) => ({ reclaimed: state.work.reclaimPending(env(r).id) })),
    route('GET', '/emulator/v1/environments/{environment_id}/workers', 'admin', (r) => ({ data: state.work.workers(env(r).id) })),
    route('GET', '/emulator/v1/environments/{environment_id}/work/leases', 'admin', (r) => ({
      data: state.work.records(env(r).id).map((w) => ({ work_id: w.work.id, session_id: w.work.data.id, state: w.work.state, ...w.history })),
    })),
    route('POST', '/emulator/v1/faults', 'admin', (r) => {
      faults.add(r.body(FaultRules));
      return { rules: faults.list() };
    }),
    route('DELETE', '/emulator/v1/faults', 'admin', () => {
      faults.clear();
      return { rules: [] };
    }),
    route('GET', '/emulator/v1/state', 'admin', () => ({ ...state.snapshot(), faults: faults.list() })),

    ...sessionRoutes(state),
  ];
}

const optional = <K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> =>
  (value === undefined ? {} : { [key]: value }) as Partial<Record<K, V>>;
