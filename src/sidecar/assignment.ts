/**
 * A warm Pod's sidecar before binding: it holds no session, work item or credential, and asks the
 * operator what it was bound to (docs/sessions.md, "Warm pool").
 *
 * Why it asks (and is not told): the sidecar has no Kubernetes API access and the sandbox gets no
 * ingress, so the assignment travels on a connection the sidecar opens: a long poll of the
 * operator's assignment endpoint over TLS, verified against the CA mounted beside its token (the
 * credential in the answer is protected on the wire), authenticated with its projected
 * service-account token (its own audience; the operator's TokenReview names the Pod from it).
 *
 * Rules:
 * - 200: the assignment (parsed by hand: no zod in the sidecar); anything malformed is retried;
 * - 204 / 408: not bound yet, ask again at once (each ask is held by the operator up to `wait_ms`);
 * - 401 / 403 / 404 / 410 / 5xx / a network error: ask again after a backoff (the kubelet may be
 *   renewing the token; the operator may be restarting). The token file is re-read every attempt:
 *   the kubelet rotates it in place.
 */
import type { IncomingMessage } from 'node:http';
import { CREDENTIAL_KINDS, type CredentialKind } from '../contract/sidecar.ts';
import { backoffDelay } from '../util/backoff.ts';
import { sleepUnlessAborted } from '../util/sleep.ts';
import type { SidecarLogger } from './log.ts';

const https = process.getBuiltinModule('node:https');
const { readFileSync } = process.getBuiltinModule('node:fs');

/** How long the operator may hold one ask (it answers 204 at the end). */
export const ASSIGNMENT_WAIT_MS = 30_000;
/** The largest answer read: ids and one token. */
const MAX_ANSWER_BYTES = 16 * 1024;

export interface AssignmentSource {
  readonly url: URL;
  readonly tokenFile: string;
  readonly caFile: string;
}

/** What the operator hands a warm sidecar once its Pod is bound and the item acknowledged. */
export interface Assignment {
  readonly environmentId: string;
  readonly sessionId: string;
  readonly workId: string;
  readonly credentialKind: CredentialKind;
  /** The per-item sessions token, else the environment key. Kept in memory only, never logged. */
  readonly credential: string;
}

/** Parse the operator's answer; undefined when it is not a complete assignment. */
export function parseAssignment(body: unknown): Assignment | undefined {
  if (body === null || typeof body !== 'object') return undefined;
  const b = body as Record<string, unknown>;
  const text = (k: string): string | undefined => (typeof b[k] === 'string' && (b[k] as string).length > 0 && (b[k] as string).length <= 4096 ? (b[k] as string) : undefined);
  const environmentId = text('environment_id');
  const sessionId = text('session_id');
  const workId = text('work_id');
  const kind = text('credential_kind');
  const credential = text('credential');
  if (!environmentId || !sessionId || !workId || !credential || !(CREDENTIAL_KINDS as readonly string[]).includes(kind ?? '')) return undefined;
  return { environmentId, sessionId, workId, credentialKind: kind as CredentialKind, credential };
}

/** Ask until the operator names this Pod's assignment (or `signal` aborts: then undefined). */
export async function waitForAssignment(source: AssignmentSource, log: SidecarLogger, signal: AbortSignal): Promise<Assignment | undefined> {
  let failures = 0;
  while (!signal.aborted) {
    let outcome: { status: number; body?: unknown };
    try {
      outcome = await ask(source, signal);
    } catch (err) {
      outcome = { status: 0 };
      if (!signal.aborted && failures % 10 === 0) log.warn('the assignment endpoint is unreachable; asking again', { err: err as Error });
    }
    if (outcome.status === 200) {
      const assignment = parseAssignment(outcome.body);
      if (assignment) return assignment;
      log.warn('the assignment endpoint sent an incomplete assignment; asking again');
    }
    if (outcome.status === 204 || outcome.status === 408) {
      failures = 0;
      continue;
    }
    if (outcome.status !== 0 && outcome.status !== 200 && failures % 10 === 0) log.warn('the assignment endpoint refused the ask; asking again', { status: outcome.status });
    await sleepUnlessAborted(backoffDelay(failures++, { baseMs: 200, capMs: 5_000 }), signal);
  }
  return undefined;
}

/** One long-poll ask: `GET <url>/v1/assignment?wait_ms=…` with the Pod's token, the endpoint checked against the mounted CA. */
function ask(source: AssignmentSource, signal: AbortSignal): Promise<{ status: number; body?: unknown }> {
  const token = readFileSync(source.tokenFile, 'utf8').trim();
  const ca = readFileSync(source.caFile, 'utf8');
  const url = new URL(`${source.url.pathname.replace(/\/+$/, '')}/v1/assignment?wait_ms=${ASSIGNMENT_WAIT_MS}`, source.url);
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: 'GET', ca, headers: { authorization: `Bearer ${token}`, accept: 'application/json' }, signal, timeout: ASSIGNMENT_WAIT_MS + 10_000 }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_ANSWER_BYTES) req.destroy(new Error('assignment answer too large'));
        else chunks.push(c);
      });
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        if (status !== 200) return resolve({ status });
        try {
          resolve({ status, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
        } catch {
          resolve({ status: 502 });
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('assignment ask timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** The sidecar's configuration once assigned: the work item's ids and credential kind filled in. */
export function assigned<C extends { environmentId: string; sessionId: string; workId: string; credentialKind: CredentialKind }>(config: C, a: Assignment): C {
  return { ...config, environmentId: a.environmentId, sessionId: a.sessionId, workId: a.workId, credentialKind: a.credentialKind };
}
