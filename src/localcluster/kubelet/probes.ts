/**
 * Startup, readiness and liveness probes: exec (in the container's mount namespace, with its
 * environment), HTTP GET and TCP, with the API's defaults — initialDelaySeconds 0,
 * periodSeconds 10, timeoutSeconds 1, successThreshold 1, failureThreshold 3.
 *
 * An HTTP/TCP probe without `host` targets the Pod's own IP (as in a cluster); HTTP counts
 * 200–399 as success.
 */
import { connect } from 'node:net';
import { request } from 'undici';
import type { Container, Probe } from './pod-types.ts';
import { execInContainer, type RunRecord } from './process.ts';
import { sleepUnlessAborted } from '../../util/sleep.ts';

export type ProbeKind = 'startup' | 'readiness' | 'liveness';

export interface ProbeTarget {
  readonly podIP: string;
  readonly container: Container;
  readonly run: RunRecord;
  readonly workingDir: string;
  /** An exec probe's command as this machine runs it in the container's image (kubelet/images.ts). */
  readonly execArgv: (command: readonly string[]) => readonly string[];
}

const resolvePort = (port: number | string, container: Container): number | undefined =>
  typeof port === 'number' ? port : /^\d+$/.test(port) ? Number(port) : container.ports?.find((p) => p.name === port)?.containerPort;

/** One probe attempt: true = success. */
export async function probeOnce(probe: Probe, target: ProbeTarget): Promise<boolean> {
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  if (probe.exec?.command?.length) return (await execInContainer(target.run, target.workingDir, target.execArgv(probe.exec.command), timeoutMs)) === 0;
  if (probe.httpGet) {
    const port = resolvePort(probe.httpGet.port, target.container);
    if (port === undefined) return false;
    const scheme = (probe.httpGet.scheme ?? 'HTTP').toLowerCase();
    const url = `${scheme}://${probe.httpGet.host ?? target.podIP}:${port}${probe.httpGet.path ?? '/'}`;
    try {
      const res = await request(url, {
        method: 'GET',
        headers: Object.fromEntries((probe.httpGet.httpHeaders ?? []).map((h) => [h.name, h.value])),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.body.dump();
      return res.statusCode >= 200 && res.statusCode < 400;
    } catch {
      return false;
    }
  }
  if (probe.tcpSocket) {
    const port = resolvePort(probe.tcpSocket.port, target.container);
    if (port === undefined) return false;
    return new Promise<boolean>((resolve) => {
      const socket = connect({ host: probe.tcpSocket!.host ?? target.podIP, port, timeout: timeoutMs });
      const done = (ok: boolean): void => {
        socket.destroy();
        resolve(ok);
      };
      socket.once('connect', () => done(true));
      socket.once('timeout', () => done(false));
      socket.once('error', () => done(false));
    });
  }
  // gRPC probes are not emulated: report failure so the gap shows instead of hiding.
  return false;
}

/**
 * Runs `check` every period until `signal` aborts, calling `onResult` each time the consecutive
 * successes reach successThreshold (`true`) or consecutive failures reach failureThreshold (`false`).
 */
export async function watchProbe(probe: Probe, check: () => Promise<boolean>, onResult: (ok: boolean) => void, signal: AbortSignal): Promise<void> {
  const periodMs = (probe.periodSeconds ?? 10) * 1000;
  const successThreshold = probe.successThreshold ?? 1;
  const failureThreshold = probe.failureThreshold ?? 3;
  if (!(await sleepUnlessAborted((probe.initialDelaySeconds ?? 0) * 1000, signal))) return;
  let successes = 0;
  let failures = 0;
  while (!signal.aborted) {
    const ok = await check();
    if (signal.aborted) return;
    if (ok) {
      failures = 0;
      if (++successes === successThreshold) onResult(true);
    } else {
      successes = 0;
      if (++failures === failureThreshold) onResult(false);
    }
    if (!(await sleepUnlessAborted(periodMs, signal))) return;
  }
}
