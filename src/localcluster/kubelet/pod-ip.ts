/**
 * Each Pod's own loopback address (`status.podIP`), so servers and HTTP probes of different Pods on
 * one port do not collide. All of 127.0.0.0/8 routes to `lo` on Linux, so no setup is needed.
 * 127.0.0.x is left to the host (127.0.0.1 is the node's own address).
 */
import { createHash } from 'node:crypto';

const SPACE = 254 * 256 * 254;

/** A stable address derived from the uid, probing onward past addresses in `used`. */
export function allocatePodIP(uid: string, used: ReadonlySet<string>): string {
  const start = createHash('sha256').update(uid).digest().readUInt32BE(0) % SPACE;
  for (let i = 0; i < SPACE; i++) {
    const n = (start + i) % SPACE;
    const ip = `127.${1 + Math.floor(n / (256 * 254))}.${Math.floor(n / 254) % 256}.${1 + (n % 254)}`;
    if (!used.has(ip)) return ip;
  }
  throw new Error('no free pod IP');
}
