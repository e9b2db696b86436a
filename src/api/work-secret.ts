/**
 * The optional per-item `secret` of a poll reply: base64url JSON `{sessions_token, api_base_url?}`.
 * `sessions_token` is a short-lived bearer credential for that one work item. The payload is
 * untrusted input and a credential: decode defensively, never log it.
 */
import { WorkSecret } from './wire.ts';

/** Decode a work secret; `undefined` when absent or unusable (the caller falls back to the environment key). */
export function decodeWorkSecret(secret: string | null | undefined): WorkSecret | undefined {
  if (!secret) return undefined;
  try {
    // Accept both base64url and padded/standard base64.
    const json = Buffer.from(secret.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8');
    const parsed = WorkSecret.safeParse(JSON.parse(json));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Encode a work secret the way the API does (base64url, no padding). */
export function encodeWorkSecret(secret: WorkSecret): string {
  return Buffer.from(JSON.stringify(secret), 'utf8').toString('base64url');
}
