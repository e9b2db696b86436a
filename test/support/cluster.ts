/**
 * Fixtures for integration tests against the run's local cluster (started by
 * test/integration/global-setup.ts). Each test file works in namespaces of its own, so files can run
 * in parallel.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { inject } from 'vitest';
import { CORE, KubeRest, type KubeObject } from '../../src/k8s/rest.ts';

function loadKubeConfig(file: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  return kc;
}

/** cluster-admin: for arranging and inspecting test state, never for the code under test. */
export const adminKubeConfig = (): KubeConfig => loadKubeConfig(inject('adminKubeconfig'));

/** A REST client as cluster-admin. */
export const adminRest = (): KubeRest => new KubeRest(adminKubeConfig(), { fieldManager: 'agentenv-test' });

/** The operator's identity: ServiceAccount agentenv-system/agentenv-operator with the Helm chart's ClusterRole. */
export const operatorKubeConfig = (): KubeConfig => loadKubeConfig(inject('operatorKubeconfig'));

/** A REST client as the operator. */
export const operatorRest = (): KubeRest => new KubeRest(operatorKubeConfig(), { fieldManager: 'agentenv' });

export interface TestNamespace {
  readonly name: string;
  /** Deletes the namespace (the namespace controller removes its contents in the background). */
  cleanup(): Promise<void>;
}

/** A fresh namespace named `<prefix>-<random>`, labelled as a test namespace. */
export async function createNamespace(prefix: string): Promise<TestNamespace> {
  const rest = adminRest();
  const created = await rest.create<KubeObject>(CORE.namespaces, undefined, {
    metadata: { generateName: `${prefix}-`, labels: { 'agentenv.io/test': 'true' } },
  });
  const name = created.metadata?.name;
  if (!name) throw new Error('the apiserver returned a namespace without a name');
  return {
    name,
    async cleanup() {
      await rest.delete(CORE.namespaces, undefined, name, { propagationPolicy: 'Background' }).catch(() => {});
    },
  };
}

export interface WaitOptions {
  /** Give up after this long. Default 30 s. */
  readonly timeoutMs?: number;
  /** Pause between attempts. Default 100 ms. */
  readonly intervalMs?: number;
  /** Named in the timeout error. */
  readonly what?: string;
}

/**
 * Calls `fn` until it returns a value other than `undefined`/`false`/`null` and returns that value.
 * An exception counts as "not yet"; the last one is reported if time runs out.
 */
export async function waitFor<T>(fn: () => T | undefined | null | false | Promise<T | undefined | null | false>, options: WaitOptions = {}): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined && value !== null && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const reason = last instanceof Error ? `: last error: ${last.message}` : '';
      throw new Error(`timed out after ${options.timeoutMs ?? 30_000} ms waiting for ${options.what ?? 'a condition'}${reason}`, { cause: last });
    }
    await sleep(options.intervalMs ?? 100);
  }
}
