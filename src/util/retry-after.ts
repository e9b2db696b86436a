/**
 * `Retry-After` as the API sends it, shared by the API client and the sidecar (which must not load
 * the client's schemas: it runs in every sandbox Pod and its memory counts).
 */

/**
 * Parse `retry-after-ms` (milliseconds) or `retry-after` (delta-seconds or an HTTP date) into a
 * delay in ms from `now`. Returns undefined when absent or unparseable; never negative.
 */
export function parseRetryAfter(
  headers: { get(name: string): string | null | undefined },
  now: number = Date.now(),
): number | undefined {
  const ms = headers.get('retry-after-ms');
  if (ms != null && ms.trim() !== '') {
    const n = Number(ms);
    if (Number.isFinite(n) && n >= 0) return Math.round(n);
  }
  const value = headers.get('retry-after');
  if (value == null || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return seconds >= 0 ? Math.round(seconds * 1000) : undefined;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
