/**
 * The operator behind an egress proxy (HTTP_PROXY/HTTPS_PROXY/NO_PROXY, as the chart's `proxy.*`
 * sets them): the operator's own Environments API calls go through the proxy,
 * NO_PROXY hosts are reached directly, and the Kubernetes client never uses it.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startRecordingProxy, type RecordingProxy } from '../support/egress-proxy.ts';
import { createEnvironment, deleteAndWait, environmentFixture, waitForReady, type EnvironmentFixture } from '../support/environments.ts';

let f: EnvironmentFixture;
let proxy: RecordingProxy;
beforeAll(async () => {
  proxy = await startRecordingProxy();
  f = await environmentFixture('proxy', { kubeconfig: inject('operatorKubeconfig'), proxy: { url: proxy.url } });
});
afterAll(async () => {
  await f?.cleanup();
  await proxy?.close();
});

describe('the operator behind an egress proxy', () => {
  it('reaches the Environments API through the proxy, and the Kubernetes apiserver directly', async () => {
    await createEnvironment(f.admin, f.ns.name, 'proxied', { cloud: {} });
    await waitForReady(f.admin, f.ns.name, 'proxied');
    const api = new URL(f.emu.url).host;
    expect(proxy.targets.length).toBeGreaterThan(0);
    expect(new Set(proxy.targets)).toEqual(new Set([api]));
    await deleteAndWait(f.admin, f.ns.name, 'proxied');
  });

  it('goes direct to NO_PROXY hosts', async () => {
    await f.restartOperator({ proxy: { url: proxy.url, noProxy: '127.0.0.1,localhost' } });
    proxy.targets.length = 0;
    await createEnvironment(f.admin, f.ns.name, 'direct', { cloud: {} });
    await waitForReady(f.admin, f.ns.name, 'direct');
    expect(f.op.apiCalls.length).toBeGreaterThan(0);
    expect(proxy.targets).toEqual([]);
    await deleteAndWait(f.admin, f.ns.name, 'direct');
  });
});
