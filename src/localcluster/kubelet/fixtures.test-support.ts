/** Small Pod builders for the kubelet's table tests. */
import type { Container, Pod } from './pod-types.ts';

export const shell = (name: string, extra: Partial<Container> = {}): Container => ({ name, image: 'local/shell', command: ['/bin/sh', '-c', 'true'], ...extra });

export function pod(extra: Partial<Pod['spec']> = {}, meta: Pod['metadata'] = {}): Pod {
  return {
    metadata: { name: 'p', namespace: 'ns', uid: 'uid-1', labels: { app: 'demo' }, annotations: { note: 'a "quoted" value' }, ...meta },
    spec: { containers: [shell('main')], nodeName: 'node-a', serviceAccountName: 'sa', ...extra },
    status: { podIP: '127.1.2.3' },
  };
}
