/**
 * A throwaway CA and a serving certificate signed by it, made with `openssl` (dev and tests only):
 * what the chart's certificate would be for the operator's assignment endpoint, here for an IP
 * address (the process kubelet's Pods reach the operator on the host's loopback).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Writes `ca.crt`, `tls.crt` and `tls.key` (P-256, one day) into `dir` for the IP `address`; returns `dir`. */
export function writeServingCertificate(dir: string, address = '127.0.0.1'): string {
  mkdirSync(dir, { recursive: true });
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=agentenv-local-ca');
  run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'tls.key', '-out', 'tls.csr', '-subj', `/CN=${address}`);
  writeFileSync(join(dir, 'san.ext'), `subjectAltName=IP:${address}\n`);
  run('x509', '-req', '-in', 'tls.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'tls.crt', '-days', '1', '-extfile', 'san.ext');
  return dir;
}
