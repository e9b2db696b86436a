/**
 * PKI, kubeconfigs and a minimal HTTPS client for the local control plane.
 *
 * Certificates come from the `certs` command of test/controlplane (Go's crypto/x509, no openssl).
 * Kubeconfigs embed their certificates and keys, so a kubeconfig file is usable on its own.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';

export interface Pki {
  readonly dir: string;
  readonly caFile: string;
  readonly servingCertFile: string;
  readonly servingKeyFile: string;
  readonly serviceAccountKeyFile: string;
  readonly serviceAccountPublicKeyFile: string;
  /** PEM of the cluster CA. */
  readonly ca: string;
  /** cluster-admin (O=system:masters). */
  readonly admin: ClientCertificate;
  /** kube-controller-manager's identity. */
  readonly controllerManager: ClientCertificate;
  /** The process kubelet's identity (user agentenv:process-kubelet). */
  readonly processKubelet: ClientCertificate;
  /** The containerd node's kubelet (system:node:agentenv-containerd, group system:nodes). */
  readonly containerdNode: ClientCertificate;
  /** kube-scheduler (system:kube-scheduler). */
  readonly scheduler: ClientCertificate;
  readonly apiserverKubeletClientCertFile: string;
  readonly apiserverKubeletClientKeyFile: string;
}

export interface ClientCertificate {
  readonly cert: string;
  readonly key: string;
}

/** Writes (or keeps) the PKI in `dir` and reads it back. */
export async function createPki(certsBinary: string, dir: string): Promise<Pki> {
  await promisify(execFile)(certsBinary, ['--dir', dir]);
  const pem = (file: string): Promise<string> => readFile(join(dir, file), 'utf8');
  const pair = async (name: string): Promise<ClientCertificate> => ({ cert: await pem(`${name}.crt`), key: await pem(`${name}.key`) });
  return {
    dir,
    caFile: join(dir, 'ca.crt'),
    servingCertFile: join(dir, 'apiserver.crt'),
    servingKeyFile: join(dir, 'apiserver.key'),
    serviceAccountKeyFile: join(dir, 'service-account.key'),
    serviceAccountPublicKeyFile: join(dir, 'service-account.pub'),
    ca: await pem('ca.crt'),
    admin: await pair('admin'),
    controllerManager: await pair('controller-manager'),
    processKubelet: await pair('process-kubelet'),
    containerdNode: await pair('node-containerd'),
    scheduler: await pair('scheduler'),
    apiserverKubeletClientCertFile: join(dir, 'apiserver-kubelet-client.crt'),
    apiserverKubeletClientKeyFile: join(dir, 'apiserver-kubelet-client.key'),
  };
}

export type KubeconfigUser = ClientCertificate | { readonly token: string };

/** Writes a single-context kubeconfig (mode 0600: it holds a credential). */
export async function writeKubeconfig(file: string, server: string, ca: string, userName: string, user: KubeconfigUser): Promise<void> {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const credentials = 'token' in user ? { token: user.token } : { 'client-certificate-data': b64(user.cert), 'client-key-data': b64(user.key) };
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'agentenv-local', cluster: { server, 'certificate-authority-data': b64(ca) } }],
    users: [{ name: userName, user: credentials }],
    contexts: [{ name: userName, context: { cluster: 'agentenv-local', user: userName } }],
    'current-context': userName,
    preferences: {},
  };
  await writeFile(file, stringify(config), { mode: 0o600 });
}

export interface ApiReply {
  readonly status: number;
  readonly body: unknown;
}

/**
 * One request to the apiserver as `identity` (used before any KubeConfig exists: /readyz, and the
 * TokenRequest subresource). Never throws for an HTTP status; connection errors reject.
 */
export function apiRequest(server: string, ca: string, identity: ClientCertificate, method: string, path: string, body?: unknown): Promise<ApiReply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      new URL(path, server),
      {
        method,
        ca,
        cert: identity.cert,
        key: identity.key,
        timeout: 10_000,
        headers: { accept: 'application/json', ...(payload ? { 'content-type': 'application/json' } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // /readyz answers plain text
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}
