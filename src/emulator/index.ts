/**
 * The Environments API emulator, with the Sessions endpoints a self-hosted runner uses: in-memory,
 * same wire schemas as the client, loopback by default.
 * For development, tests, CI and the `npm run dev` demo; never imported by product code.
 */
import type { AddressInfo } from 'node:net';
import type { Metadata } from '../api/wire.ts';
import type { SessionEvent } from '../api/sessions-wire.ts';
import { AgentEventsBody, type AgentEventInput } from './agent-events.ts';
import { silentLogger, type Logger } from '../telemetry/logger.ts';
import { realClock, type Clock } from './clock.ts';
import { FaultInjector, FaultRule } from './faults.ts';
import { routes } from './routes.ts';
import { createEmulatorServer } from './server.ts';
import { DEFAULT_SESSION_LIMITS, type SessionLimits } from './sessions.ts';
import { DEFAULT_SSE_OPTIONS, SseHub, type SseOptions } from './sse.ts';
import { EmulatorState } from './state.ts';
import { DEFAULT_LEASE_TTL, type LeaseTtl } from './work.ts';

export { ManualClock, realClock, type Clock } from './clock.ts';
export { DEFAULT_LEASE_TTL, type LeaseTtl } from './work.ts';
export type { FaultRule } from './faults.ts';
export type { AgentEventInput } from './agent-events.ts';
export { DEFAULT_SESSION_LIMITS, type SessionLimits } from './sessions.ts';
export { DEFAULT_SSE_OPTIONS, type SseOptions } from './sse.ts';

export interface EmulatorOptions {
  /** Default 0 (a free port). */
  readonly port?: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Organization API keys accepted as `x-api-key` or `Authorization: Bearer`. */
  readonly apiKeys: readonly string[];
  readonly clock?: Clock;
  readonly leaseTtl?: Partial<LeaseTtl>;
  /** Add a per-item `secret` with a sessions token to poll replies. Default false. */
  readonly workSecrets?: boolean;
  /** Bounds on each session's event history. Default {@link DEFAULT_SESSION_LIMITS}. */
  readonly sessionLimits?: Partial<SessionLimits>;
  /** Event-stream keep-alive and buffering. Default {@link DEFAULT_SSE_OPTIONS} (pings every 15 s on `clock`). */
  readonly sse?: Partial<SseOptions>;
  readonly logger?: Logger;
}

export interface RunningEmulator {
  readonly url: string;
  readonly state: EmulatorState;
  readonly admin: {
    createSession(environmentId: string, metadata?: Metadata): { session_id: string; work_id: string };
    wake(environmentId: string, sessionId: string): { work_id: string };
    /** Append agent-side events (as `POST /emulator/v1/sessions/{id}/events`); returns their ids. */
    appendAgentEvents(sessionId: string, events: AgentEventInput[]): string[];
    /** The whole history of a session (as `GET /emulator/v1/sessions/{id}/events`). */
    sessionEvents(sessionId: string): SessionEvent[];
    mintKey(environmentId: string): string;
    /** Make pending items deliverable again at once (as `POST …/work/reclaim`); returns how many. */
    reclaimPending(environmentId: string): number;
    setFaults(rules: FaultRule[]): void;
    clearFaults(): void;
    snapshot(): Record<string, unknown>;
  };
  close(): Promise<void>;
}

export async function startEmulator(options: EmulatorOptions): Promise<RunningEmulator> {
  const clock = options.clock ?? realClock;
  const state = new EmulatorState({
    clock,
    apiKeys: options.apiKeys,
    leaseTtl: { ...DEFAULT_LEASE_TTL, ...options.leaseTtl },
    sessionLimits: { ...DEFAULT_SESSION_LIMITS, ...options.sessionLimits },
  });
  const faults = new FaultInjector();
  const hub = new SseHub(clock, { ...DEFAULT_SSE_OPTIONS, ...options.sse });
  let url = '';
  const server = createEmulatorServer({
    state,
    faults,
    hub,
    logger: options.logger ?? silentLogger,
    routes: routes(state, faults, { workSecrets: options.workSecrets ?? false, baseUrl: () => url }),
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  // Leases lapse even when nobody calls: a real-clock sweep wakes polls waiting for requeued work.
  const sweeper = options.clock ? undefined : setInterval(() => state.sweepAll(), 250);
  sweeper?.unref();
  return {
    url,
    state,
    admin: {
      createSession: (environmentId, metadata = {}) => state.createSession(environmentId, metadata),
      wake: (environmentId, sessionId) => state.wake(environmentId, sessionId),
      appendAgentEvents: (sessionId, events) => state.sessions.appendAgent(sessionId, AgentEventsBody.parse({ events }).events).map((e) => e.id),
      sessionEvents: (sessionId) => state.sessions.history(sessionId),
      mintKey: (environmentId) => state.mintEnvironmentKey(environmentId),
      reclaimPending: (environmentId) => state.work.reclaimPending(environmentId),
      setFaults: (rules) => {
        faults.clear();
        faults.add(rules.map((r) => FaultRule.parse(r)));
      },
      clearFaults: () => faults.clear(),
      snapshot: () => state.snapshot(),
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (sweeper) clearInterval(sweeper);
        hub.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
