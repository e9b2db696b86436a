/**
 * The apiserver on the containerd node's address: it listens on every address (one --bind-address),
 * publishes the bridge address as the `kubernetes` Service's endpoint, and its guard keeps it to
 * loopback and the bridge. A network namespace of this test's own, wired to the machine by a veth
 * pair outside the bridge, stands for any other interface: its connections are dropped, both to the
 * machine's address on that link and to the bridge address routed through it.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { resource, type KubeObject } from '../../src/k8s/rest.ts';
import { adminRest } from '../support/cluster.ts';
import { unavailable } from './world.ts';

const run = promisify(execFile);
const ENDPOINT_SLICES = resource('discovery.k8s.io', 'v1', 'endpointslices', 'EndpointSlice');
/** The foreign link's addresses (RFC 1918, not the bridge's range). */
const HOST_SIDE = '192.168.250.1';
const NS_SIDE = '192.168.250.2';

interface EndpointSlice extends KubeObject {
  endpoints?: Array<{ addresses: string[] }>;
  ports?: Array<{ port?: number }>;
}

/** Whether a TCP connection to host:port opens within 3 s, from the machine itself. */
function opens(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 3_000 });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
    socket.once('error', () => resolve(false));
  });
}

/** Whether a TCP connection opens from inside the network namespace `netns` (bash's /dev/tcp, 3 s). */
async function opensFrom(netns: string, host: string, port: number): Promise<boolean> {
  return run('ip', ['netns', 'exec', netns, 'timeout', '3', 'bash', '-c', `echo > /dev/tcp/${host}/${port}`]).then(() => true, () => false);
}

describe.skipIf(unavailable())('the apiserver on the node address', () => {
  const id = randomBytes(3).toString('hex');
  const netns = `agentenv-guard-${id}`;
  const hostLink = `agg${id}h`;
  let port: number;

  beforeAll(async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(inject('adminKubeconfig'));
    port = Number(new URL(kc.getCurrentCluster()?.server ?? '').port);
    await run('ip', ['netns', 'add', netns]);
    await run('ip', ['link', 'add', hostLink, 'type', 'veth', 'peer', 'name', `agg${id}n`, 'netns', netns]);
    await run('ip', ['addr', 'add', `${HOST_SIDE}/30`, 'dev', hostLink]);
    await run('ip', ['link', 'set', hostLink, 'up']);
    await run('ip', ['netns', 'exec', netns, 'ip', 'addr', 'add', `${NS_SIDE}/30`, 'dev', `agg${id}n`]);
    await run('ip', ['netns', 'exec', netns, 'ip', 'link', 'set', `agg${id}n`, 'up']);
    await run('ip', ['netns', 'exec', netns, 'ip', 'route', 'add', `${inject('nodeAddress')}/32`, 'via', HOST_SIDE]);
  });

  afterAll(async () => {
    await run('ip', ['link', 'del', hostLink]).catch(() => {});
    await run('ip', ['netns', 'del', netns]).catch(() => {});
  });

  it("publishes the bridge address as the kubernetes Service's endpoint", async () => {
    const slice = await adminRest().get<EndpointSlice>(ENDPOINT_SLICES, 'default', 'kubernetes');
    expect(slice.endpoints?.flatMap((e) => e.addresses)).toEqual([inject('nodeAddress')]);
    expect(slice.ports?.map((p) => p.port)).toEqual([port]);
  });

  it('answers on loopback and on the bridge address from the machine, and drops connections arriving on any other interface', async () => {
    expect(await opens('127.0.0.1', port)).toBe(true);
    expect(await opens(inject('nodeAddress'), port)).toBe(true);
    // The control: an unguarded port on the machine's side of the foreign link opens from there.
    const control = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => control.listen(0, HOST_SIDE, resolve));
    try {
      expect(await opensFrom(netns, HOST_SIDE, (control.address() as AddressInfo).port)).toBe(true);
    } finally {
      control.close();
    }
    expect(await opensFrom(netns, HOST_SIDE, port)).toBe(false);
    expect(await opensFrom(netns, inject('nodeAddress'), port)).toBe(false);
  });
});
