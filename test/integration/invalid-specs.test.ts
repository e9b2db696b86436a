/**
 * The admission table: every AgentEnvironment spec the CRD's schema and CEL rules must refuse, sent
 * to the real apiserver as cluster-admin (so nothing but admission stands in the way), each with a
 * substring of the message a person sees in `kubectl apply`. Transition cases create a valid
 * resource first and then try the update.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AGENT_ENVIRONMENTS } from '../../src/crd/resources.ts';
import { KubeError } from '../../src/k8s/errors.ts';
import { CORE, type KubeObject } from '../../src/k8s/rest.ts';
import { ensureControlPlaneBinaries } from '../../src/localcluster/index.ts';
import { adminRest, createNamespace, type TestNamespace } from '../support/cluster.ts';
import { loadSample } from '../support/environments.ts';

type Spec = Record<string, unknown>;

interface InvalidCase {
  readonly name: string;
  /** Created as is (or, with `from`, applied as an update of a resource created with `from`). */
  readonly spec: Spec | undefined;
  readonly from?: Spec;
  readonly message: string;
}

const cloud = (extra: Spec = {}): Spec => ({ cloud: {}, ...extra });
const limited = (allowedHosts: string[]): Spec => ({ cloud: { networking: { type: 'limited', allowedHosts } } });
const metadataWith = (n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`key-${i}`, 'v']));
const HOST_MESSAGE = 'is not a lower-case DNS host name';

export const INVALID_SPECS: readonly InvalidCase[] = [
  // exactly one of cloud / selfHosted
  { name: 'neither cloud nor selfHosted', spec: {}, message: 'exactly one of spec.cloud or spec.selfHosted must be set' },
  { name: 'both cloud and selfHosted', spec: { cloud: {}, selfHosted: {} }, message: 'exactly one of spec.cloud or spec.selfHosted must be set' },
  { name: 'no spec at all', spec: undefined, message: 'spec: Required value' },
  // no switching after creation
  { name: 'switch cloud → selfHosted', from: cloud(), spec: { selfHosted: {} }, message: 'cannot switch between cloud and selfHosted after creation' },
  { name: 'switch selfHosted → cloud', from: { selfHosted: {} }, spec: cloud(), message: 'cannot switch between cloud and selfHosted after creation' },
  { name: 'environmentId added after creation', from: cloud(), spec: cloud({ environmentId: 'env_abc' }), message: 'spec.environmentId is immutable' },
  { name: 'environmentId changed', from: cloud({ environmentId: 'env_abc' }), spec: cloud({ environmentId: 'env_def' }), message: 'spec.environmentId is immutable' },
  { name: 'environmentId not an environment id', spec: cloud({ environmentId: 'abc' }), message: "spec.environmentId in body should match '^env_" },
  // host names
  { name: 'host with a scheme', spec: limited(['https://api.example.com']), message: `allowedHosts entry "https://api.example.com" ${HOST_MESSAGE}` },
  { name: 'host with a port', spec: limited(['api.example.com:443']), message: `allowedHosts entry "api.example.com:443" ${HOST_MESSAGE}` },
  { name: 'host with a path', spec: limited(['example.com/api']), message: `allowedHosts entry "example.com/api" ${HOST_MESSAGE}` },
  { name: 'upper-case host', spec: limited(['ok.example.com', 'API.example.com']), message: `allowedHosts entry "API.example.com" ${HOST_MESSAGE}` },
  { name: 'wildcard not leading', spec: limited(['api.*.example.com']), message: `allowedHosts entry "api.*.example.com" ${HOST_MESSAGE}` },
  { name: 'empty host', spec: limited(['']), message: `allowedHosts entry "" ${HOST_MESSAGE}` },
  { name: 'label longer than 63', spec: limited([`${'a'.repeat(64)}.com`]), message: HOST_MESSAGE },
  {
    name: 'allowedHosts with unrestricted networking',
    spec: { cloud: { networking: { type: 'unrestricted', allowedHosts: ['api.example.com'] } } },
    message: 'apply only to networking.type "limited"',
  },
  // enums
  { name: 'unknown deletionPolicy', spec: cloud({ deletionPolicy: 'Destroy' }), message: 'spec.deletionPolicy: Unsupported value: "Destroy": supported values: "Delete", "Archive", "Orphan"' },
  { name: 'unknown managementPolicy', spec: cloud({ managementPolicy: 'Manual' }), message: 'spec.managementPolicy: Unsupported value: "Manual"' },
  { name: 'unknown scope', spec: cloud({ scope: 'global' }), message: 'spec.scope: Unsupported value: "global": supported values: "organization", "account"' },
  { name: 'unknown networking type', spec: { cloud: { networking: { type: 'open' } } }, message: 'spec.cloud.networking.type: Unsupported value: "open"' },
  { name: 'unknown podSecurity', spec: { selfHosted: { podSecurity: 'Privileged' } }, message: 'spec.selfHosted.podSecurity: Unsupported value: "Privileged"' },
  // metadata limits (the API's 16 keys minus the operator's 2, keys ≤ 64, values 1–512)
  { name: '15 metadata keys', spec: cloud({ metadata: metadataWith(15) }), message: 'metadata may have at most 14 keys' },
  { name: '17 metadata keys', spec: cloud({ metadata: metadataWith(17) }), message: 'spec.metadata: Too many' },
  { name: 'metadata key of 65 characters', spec: cloud({ metadata: { ['k'.repeat(65)]: 'v' } }), message: 'metadata keys must be 1-64 characters and values 1-512 characters' },
  { name: 'metadata value of 513 characters', spec: cloud({ metadata: { k: 'v'.repeat(513) } }), message: 'metadata keys must be 1-64 characters and values 1-512 characters' },
  { name: 'empty metadata value', spec: cloud({ metadata: { k: '' } }), message: 'metadata keys must be 1-64 characters and values 1-512 characters' },
  { name: 'reserved metadata key', spec: cloud({ metadata: { 'agentenv.io/uid': 'x' } }), message: 'metadata keys starting with "agentenv.io/" are reserved for the operator' },
  // packages
  { name: 'empty pip package', spec: { cloud: { packages: { pip: ['pandas', ''] } } }, message: 'Python (pip) package entries must be non-empty' },
  { name: 'empty apt package', spec: { cloud: { packages: { apt: [''] } } }, message: 'Ubuntu/Debian (apt) package entries must be non-empty' },
  { name: 'npm package with whitespace', spec: { cloud: { packages: { npm: ['typescript 5'] } } }, message: 'Node.js (npm) package entries must be non-empty and contain no whitespace' },
  { name: 'empty cargo, gem and go packages', spec: { cloud: { packages: { cargo: [''], gem: [''], go: [''] } } }, message: 'package entries must be non-empty' },
  // other bounds
  { name: 'empty name', spec: cloud({ name: '' }), message: 'spec.name in body should be at least 1 chars long' },
  { name: 'negative maxSessions', spec: { selfHosted: { maxSessions: -1 } }, message: 'spec.selfHosted.maxSessions in body should be greater than or equal to 0' },
  { name: 'apiKeySecretRef without key', spec: cloud({ apiKeySecretRef: { name: 'api-key' } }), message: 'spec.apiKeySecretRef.key: Required value' },
  // warmPool: min and max together, min ≤ size ≤ max, bounds
  { name: 'warmPool.min without max', spec: { selfHosted: { warmPool: { size: 1, min: 1 } } }, message: 'warmPool.min and warmPool.max go together' },
  { name: 'warmPool.min above max', spec: { selfHosted: { warmPool: { size: 2, min: 3, max: 2 } } }, message: 'warmPool.min must be at most warmPool.max' },
  { name: 'warmPool.size outside min..max', spec: { selfHosted: { warmPool: { size: 5, min: 1, max: 3 } } }, message: 'warmPool.size must lie between warmPool.min and warmPool.max' },
  { name: 'warmPool.size above the bound', spec: { selfHosted: { warmPool: { size: 101 } } }, message: 'should be less than or equal to 100' },
  { name: 'warmPool.size negative', spec: { selfHosted: { warmPool: { size: -1 } } }, message: 'should be greater than or equal to 0' },
];

let ns: TestNamespace;
beforeAll(async () => {
  ns = await createNamespace('invalid-specs');
});
afterAll(async () => {
  await ns?.cleanup();
});

async function refusal(call: Promise<unknown>): Promise<KubeError> {
  const err: unknown = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof KubeError)) throw new Error(`expected the apiserver to refuse it, got ${err === undefined ? 'success' : String(err)}`);
  return err;
}

const object = (name: string, spec: Spec | undefined): KubeObject => ({ metadata: { name }, ...(spec === undefined ? {} : { spec }) }) as KubeObject;

describe('AgentEnvironment admission', () => {
  it.each(INVALID_SPECS.map((c, i) => [c.name, c, i] as const))('refuses %s', async (_name, c, i) => {
    const admin = adminRest();
    const name = `invalid-${i}`;
    if (c.from) {
      const created = await admin.create(AGENT_ENVIRONMENTS, ns.name, object(name, c.from));
      const err = await refusal(admin.replace(AGENT_ENVIRONMENTS, ns.name, { ...created, spec: c.spec } as KubeObject));
      expect(err.reason).toBe('Invalid');
      expect(err.message).toContain(c.message);
      return;
    }
    const err = await refusal(admin.create(AGENT_ENVIRONMENTS, ns.name, object(name, c.spec)));
    expect(err.reason).toBe('Invalid');
    expect(err.message).toContain(c.message);
  });

  it('kubectl apply refuses every case too, with the same messages (what a person sees)', async () => {
    const { kubectl } = await ensureControlPlaneBinaries();
    const doc = (name: string, spec: Spec | undefined): string =>
      JSON.stringify({ apiVersion: 'agentenv.io/v1alpha1', kind: 'AgentEnvironment', metadata: { name, namespace: ns.name }, ...(spec === undefined ? {} : { spec }) });
    const apply = (docs: string[]): { status: number | null; output: string } => {
      const r = spawnSync(kubectl, ['--kubeconfig', inject('adminKubeconfig'), 'apply', '-f', '-'], { input: docs.join('\n---\n'), encoding: 'utf8' });
      return { status: r.status, output: `${r.stdout}${r.stderr}` };
    };
    const name = (i: number): string => `kubectl-invalid-${i}`;
    // Transition cases: their valid starting point first.
    const setup = apply(INVALID_SPECS.flatMap((c, i) => (c.from ? [doc(name(i), c.from)] : [])));
    expect(setup.status, setup.output).toBe(0);

    const { status, output } = apply(INVALID_SPECS.map((c, i) => doc(name(i), c.spec)));
    expect(status).not.toBe(0);
    for (const [i, c] of INVALID_SPECS.entries()) {
      const start = output.indexOf(`"${name(i)}" is invalid`);
      expect(start, `${c.name}: no refusal in\n${output}`).toBeGreaterThanOrEqual(0);
      const end = output.indexOf('Error from server', start);
      expect(output.slice(start, end < 0 ? undefined : end), c.name).toContain(c.message);
    }
  });

  it('accepts every sample shape the table is built from (the refusals are about the broken field)', async () => {
    const admin = adminRest();
    const valid: Spec[] = [
      cloud(),
      { selfHosted: {} },
      limited(['api.example.com', '*.example.com', 'localhost']),
      cloud({ metadata: metadataWith(14), environmentId: 'env_abc', scope: 'account', deletionPolicy: 'Orphan', managementPolicy: 'ObserveOnly' }),
      { cloud: { packages: { pip: ['pandas==2.2.0'], npm: ['typescript@5'], apt: ['ripgrep'], cargo: ['serde@1.0.0'], gem: ['rails'], go: ['golang.org/x/tools/gopls@latest'] } } },
    ];
    for (const [i, spec] of valid.entries()) {
      await expect(admin.create(AGENT_ENVIRONMENTS, ns.name, object(`valid-${i}`, spec))).resolves.toBeDefined();
    }
  });

  it.each(['cloud.yaml', 'self-hosted.yaml', 'adopt.yaml', 'observe-only.yaml'])('admits deploy/samples/%s', async (file) => {
    const admin = adminRest();
    for (const o of loadSample(file, ns.name)) {
      await expect(admin.create(o.kind === 'Secret' ? CORE.secrets : AGENT_ENVIRONMENTS, ns.name, o)).resolves.toBeDefined();
    }
  });
});
