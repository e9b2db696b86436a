/** Query parameters of the emulator's routes, each checked with a 400 that names it. */
import { EmulatorError } from './errors.ts';

export function intParam(q: URLSearchParams, name: string, min: number, max: number): number | undefined {
  const raw = q.get(name);
  if (raw === null || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new EmulatorError(400, `${name} must be an integer between ${min} and ${max} (got ${raw})`);
  return n;
}

export function boolParam(q: URLSearchParams, name: string): boolean | undefined {
  const raw = q.get(name);
  if (raw === null) return undefined;
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw new EmulatorError(400, `${name} must be true or false`);
}
