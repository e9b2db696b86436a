/**
 * The assignment endpoint: where warm Pods' sidecars learn the work item their Pod was bound to
 * (docs/sessions.md, "Warm pool"; the sidecar's side is src/sidecar/assignment.ts).
 *
 * Flow of one ask, `GET /v1/assignment?wait_ms=N` with `Authorization: Bearer <projected token>`:
 * 1. **Who asks.** The token is checked with a TokenReview for the audience
 *    `assignment.agentenv.io`; a bound service-account token names its Pod (name and uid) in the
 *    review's extra fields, and the user name gives the namespace. Anything else is 401: no Pod
 *    can ask for another's assignment. Reviews are cached by the token's hash for five minutes,
 *    never past the token's expiry (a sidecar asks every 30 s with the same token).
 * 2. **What it is bound to**, from the AgentSession informer cache (decide.ts), so any replica
 *    answers, leader or not: the binding is in the cluster, not in a process.
 * 3. **Held** while the answer is "wait", re-decided on every AgentSession event, until `wait_ms`
 *    (at most 30 s): 204, ask again. "gone": 410. A hold ends at once when its asker hangs up or
 *    the endpoint closes.
 * 4. **Assign**: the credential is read from its Secret at that moment and sent in the body, over
 *    TLS (the serving certificate's CA is mounted beside the sidecar's token). It is never logged.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { ASSIGNMENT_AUDIENCE } from '../../contract/sidecar.ts';
import type { AgentEnvironment, AgentSession } from '../../crd/resources.ts';
import { isNotFound } from '../../k8s/errors.ts';
import type { Informer } from '../../k8s/informer.ts';
import { CORE, type KubeObject, type KubeRest } from '../../k8s/rest.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { bindingOf, decideAssignment, type PodIdentity } from './decide.ts';

/** The longest hold of one ask. */
export const MAX_WAIT_MS = 30_000;
/**
 * How long a TokenReview's verdict is reused for the same token (never past the token's own `exp`).
 * A waiting sidecar asks every 30 s with the same token (the kubelet renews it after ~48 min): a
 * review per ask would be the idle pool's only API writes. Five minutes bounds how long a token
 * keeps naming its Pod after the Pod was deleted (the apiserver stops honouring it at once) — and
 * a deleted Pod's record is finished or names no live item, so its answer is "gone" anyway.
 */
const REVIEW_CACHE_MS = 5 * 60_000;

/** The `exp` (ms) a JWT claims, unverified (the review verified it); undefined when unreadable. */
export function tokenExpiry(token: string): number | undefined {
  try {
    const exp = (JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
const POD_NAME = 'authentication.kubernetes.io/pod-name';
const POD_UID = 'authentication.kubernetes.io/pod-uid';

export interface AssignmentServerDeps {
  readonly rest: KubeRest;
  readonly log: Logger;
  readonly tls: { readonly cert: string; readonly key: string };
  readonly address: string;
  readonly port: number;
  readonly sessions: readonly Informer<AgentSession>[];
  readonly environment: (namespace: string, name: string) => AgentEnvironment | undefined;
}

export interface AssignmentServer {
  readonly port: number;
  /** Asks held now (waiting for a binding or for their `wait_ms` to pass). */
  held(): number;
  close(): Promise<void>;
}

/** One ask in flight: whether its asker hung up, and how to end its current hold at once. */
interface Ask {
  hungUp: boolean;
  wake: (() => void) | undefined;
}

interface TokenReview extends KubeObject {
  status?: { authenticated?: boolean; audiences?: string[]; user?: { username?: string; extra?: Record<string, string[]> } };
}

/** The Pod a TokenReview vouches for, or undefined (rule 1). */
export function podOfReview(review: TokenReview): PodIdentity | undefined {
  const s = review.status;
  if (!s?.authenticated || !(s.audiences ?? []).includes(ASSIGNMENT_AUDIENCE)) return undefined;
  const m = /^system:serviceaccount:([^:]+):[^:]+$/.exec(s.user?.username ?? '');
  const name = s.user?.extra?.[POD_NAME]?.[0];
  const uid = s.user?.extra?.[POD_UID]?.[0];
  return m && name && uid ? { namespace: m[1]!, name, uid } : undefined;
}

export async function startAssignmentServer(deps: AssignmentServerDeps): Promise<AssignmentServer> {
  const reviews = new Map<string, { pod: PodIdentity | undefined; until: number }>();
  const waiters = new Set<() => void>();
  let closing = false;
  for (const i of deps.sessions) i.on(() => { for (const w of [...waiters]) w(); });

  const authenticate = async (req: IncomingMessage): Promise<PodIdentity | undefined> => {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]?.trim();
    if (!token) return undefined;
    const key = createHash('sha256').update(token).digest('hex');
    const cached = reviews.get(key);
    if (cached && cached.until > Date.now()) return cached.pod;
    const review = await deps.rest.create<TokenReview>(CORE.tokenReviews, undefined, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [ASSIGNMENT_AUDIENCE] } } as KubeObject);
    const pod = podOfReview(review);
    if (reviews.size > 10_000) reviews.clear();
    reviews.set(key, { pod, until: Math.min(Date.now() + REVIEW_CACHE_MS, tokenExpiry(token) ?? Infinity) });
    return pod;
  };

  const decide = (pod: PodIdentity) => {
    const session = bindingOf(pod, deps.sessions.flatMap((i) => i.list((s) => s.metadata?.namespace === pod.namespace)));
    return { session, decision: decideAssignment(session, session ? deps.environment(pod.namespace, session.spec.environmentRef.name) : undefined) };
  };

  const answer = async (pod: PodIdentity, waitMs: number, res: ServerResponse, ask: Ask): Promise<void> => {
    const deadline = Date.now() + waitMs;
    let { decision } = decide(pod);
    // A hold ends when its asker hangs up (a restarted sidecar) or the endpoint closes (the
    // replica stops): `res.destroyed` says neither (it stays false when the socket is destroyed
    // under it), and a hold re-armed then keeps a timer of up to MAX_WAIT_MS alive after the
    // connection is gone — holding a stopping operator's process open that long.
    while (decision.kind === 'wait' && Date.now() < deadline && !ask.hungUp && !closing) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(done);
          ask.wake = undefined;
          resolve();
        };
        const timer = setTimeout(done, deadline - Date.now());
        waiters.add(done);
        ask.wake = done;
      });
      ({ decision } = decide(pod));
    }
    if (ask.hungUp || closing) return;
    if (decision.kind === 'wait') return send(res, 204);
    if (decision.kind === 'gone') return send(res, 410, { error: decision.why });
    let secret: KubeObject & { data?: Record<string, string> };
    try {
      secret = await deps.rest.get(CORE.secrets, pod.namespace, decision.secret.name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      // Written before the ack, so gone since (deleted by hand): the sidecar backs off; the start
      // deadline ends the item with its reason.
      return send(res, 503, { error: 'the credential Secret is missing' });
    }
    const value = secret.data?.[decision.secret.key];
    if (!value) return send(res, 503, { error: 'the credential Secret has no such key' });
    deps.log.info({ pod: pod.name, namespace: pod.namespace, workId: decision.workId, credentialKind: decision.credentialKind }, 'handed a warm Pod its assignment');
    send(res, 200, {
      environment_id: decision.environmentId,
      session_id: decision.sessionId,
      work_id: decision.workId,
      credential_kind: decision.credentialKind,
      credential: Buffer.from(value, 'base64').toString('utf8').trim(),
    });
  };

  const server: Server = createServer({ cert: deps.tls.cert, key: deps.tls.key, requestTimeout: MAX_WAIT_MS + 15_000 }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://assignment');
    if (req.method !== 'GET' || url.pathname !== '/v1/assignment') return send(res, 404, { error: 'only GET /v1/assignment is served' });
    const waitMs = Math.min(MAX_WAIT_MS, Math.max(0, Number(url.searchParams.get('wait_ms') ?? 0) || 0));
    const ask: Ask = { hungUp: false, wake: undefined };
    res.once('close', () => {
      ask.hungUp = true;
      ask.wake?.();
    });
    authenticate(req)
      .then((pod) => (pod ? answer(pod, waitMs, res, ask) : send(res, 401, { error: 'a projected service-account token of a Pod, audience assignment.agentenv.io, is required' })))
      .catch((err: unknown) => {
        deps.log.warn({ err }, 'assignment ask failed');
        send(res, 503, { error: 'try again' });
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(deps.port, deps.address, () => resolve());
  });
  deps.log.info({ port: (server.address() as AddressInfo).port }, 'assignment endpoint listening');
  return {
    port: (server.address() as AddressInfo).port,
    held: () => waiters.size,
    close: () => {
      closing = true;
      for (const w of [...waiters]) w();
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

function send(res: ServerResponse, status: number, body?: unknown): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, body === undefined ? {} : { 'content-type': 'application/json' });
  res.end(body === undefined ? undefined : JSON.stringify(body));
}
