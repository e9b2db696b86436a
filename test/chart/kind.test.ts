/**
 * deploy/kind and scripts/e2e-kind.sh cannot run here (no Docker engine, no kind), so what can be
 * checked without them is: every manifest validates against the Kubernetes and agentenv CRD schemas,
 * the e2e chart values render, the script parses, and all of them name the same image.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DEFAULT_IMAGE } from '../../src/config/operator.ts';
import { kubeconform, renderText, REPO } from './helm.ts';

const KIND = join(REPO, 'deploy', 'kind');
const SCRIPT = join(REPO, 'scripts', 'e2e-kind.sh');
const E2E_IMAGE = `${DEFAULT_IMAGE}:e2e`;

describe('kind end-to-end assets', () => {
  it('validate against the Kubernetes and agentenv CRD schemas', async () => {
    const text = [await readFile(join(KIND, 'emulator.yaml'), 'utf8'), await readFile(join(KIND, 'environments.yaml'), 'utf8')].join('\n---\n');
    const report = await kubeconform(text);
    expect(report.output).toMatch(/Invalid: 0, Errors: 0, Skipped: 0/);
    expect(report.output).toMatch(/Valid: 5,/);
    expect(report.ok).toBe(true);
  }, 600_000);

  it('the e2e chart values render manifests that validate, with the loaded image never pulled', async () => {
    const text = await renderText({ valuesFiles: [join(KIND, 'values-e2e.yaml')] });
    expect(text).toContain(`image: "${E2E_IMAGE}"`);
    expect(text).toContain('imagePullPolicy: Never');
    const report = await kubeconform(text);
    expect(report.ok, report.output).toBe(true);
  }, 600_000);

  it('the kind cluster has workers for the two operator replicas', async () => {
    const cluster = parse(await readFile(join(KIND, 'cluster.yaml'), 'utf8')) as { kind: string; apiVersion: string; nodes: { role: string }[] };
    expect(cluster).toMatchObject({ kind: 'Cluster', apiVersion: 'kind.x-k8s.io/v1alpha4' });
    expect(cluster.nodes.filter((n) => n.role === 'worker').length).toBeGreaterThanOrEqual(2);
  });

  it('the script parses, says it has not been run here, and names the same image', async () => {
    await promisify(execFile)('bash', ['-n', SCRIPT]);
    const script = await readFile(SCRIPT, 'utf8');
    expect(script).toMatch(/NOT RUN IN THIS REPOSITORY'S CI/);
    expect(script).toContain(`IMAGE="${E2E_IMAGE}"`);
    expect(await readFile(join(KIND, 'emulator.yaml'), 'utf8')).toContain(`image: ${E2E_IMAGE}`);
    expect(await readFile(join(KIND, 'environments.yaml'), 'utf8')).toContain(`image: ${E2E_IMAGE}`);
  });
});
