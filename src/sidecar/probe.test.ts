import { afterEach, describe, expect, it } from 'vitest';
import { READY_PATH, STARTED_PATH } from '../contract/sidecar.ts';
import { leaseProbeState, probeStatus, startProbeServer, type ProbeServer } from './probe.ts';

const get = async (port: number, path: string): Promise<number> => (await fetch(`http://127.0.0.1:${port}${path}`)).status;

describe('probe status', () => {
  it.each([
    ['a started, ready sidecar passes both probes', { started: true, ready: true }, [200, 200]],
    ['a sidecar claiming its lease is not started and not ready', { started: false, ready: false }, [503, 503]],
    ['a stop due turns readiness off, started stays', { started: true, ready: false }, [200, 503]],
  ] as const)('%s', (_rule, state, [started, ready]) => {
    expect(probeStatus(`GET ${STARTED_PATH} HTTP/1.1`, state)).toBe(started);
    expect(probeStatus(`GET ${READY_PATH} HTTP/1.1`, state)).toBe(ready);
  });
});

describe('readiness from the lease', () => {
  it.each([
    ['a cold sidecar claiming its lease is not ready (its startup probe holds the Pod)', { started: false, claimed: false, ended: false }, false, false],
    ['a cold sidecar holding its lease is ready', { started: true, claimed: true, ended: false }, false, true],
    ['a warm sidecar claiming the lease of its bound item stays ready: no stop is due', { started: false, claimed: false, ended: false }, true, true],
    ['a warm sidecar holding its lease is ready', { started: true, claimed: true, ended: false }, true, true],
    ['a warm sidecar whose lease ended is not ready: the main container should end', { started: true, claimed: true, ended: true }, true, false],
    ['a warm sidecar whose claim failed is not ready', { started: false, claimed: false, ended: true }, true, false],
  ] as const)('%s', (_rule, lease, warm, ready) => {
    expect(leaseProbeState(lease, warm).ready).toBe(ready);
    expect(leaseProbeState(lease, warm).started).toBe(lease.started);
  });
});

describe('a probe server handed over (a warm sidecar bound to an item)', () => {
  let server: ProbeServer | undefined;
  afterEach(async () => server?.close());

  it('keeps its port and answers from the new state at once: the kubelet never finds it closed', async () => {
    server = await startProbeServer('127.0.0.1', 0, () => ({ started: true, ready: true }));
    expect(await get(server.port, READY_PATH)).toBe(200);
    let ended = false;
    server.use(() => ({ started: false, ready: !ended }));
    expect(await get(server.port, READY_PATH)).toBe(200);
    expect(await get(server.port, STARTED_PATH)).toBe(503);
    ended = true;
    expect(await get(server.port, READY_PATH)).toBe(503);
  });

  it('answers a held /started as soon as the new state is started', async () => {
    let started = false;
    server = await startProbeServer('127.0.0.1', 0, () => ({ started: false, ready: true }));
    const held = get(server.port, `${STARTED_PATH}?wait_ms=5000`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    server.use(() => ({ started, ready: true }));
    started = true;
    server.changed();
    expect(await held).toBe(200);
  });
});
