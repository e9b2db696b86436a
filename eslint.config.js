// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Dependency direction (see ../shared/STYLE.md, "A layout that shows the architecture"):
 *
 *   cli → feature folders (environments, sessions, sidecar) → runtime/k8s/api/crd → telemetry/config → util
 *
 * plus dev-only code that product code never imports: `emulator` (the Environments API emulator),
 * `localcluster` (control plane + process kubelet for tests and `npm run dev`) and `dev` (the demo).
 * The sidecar runs in every sandbox Pod and needs no Kubernetes access, so it imports neither
 * `k8s`, `runtime` nor `crd` (which would also pull @kubernetes/client-node into its memory), nor
 * `api` or `telemetry` (zod, undici, pino, prom-client); third-party packages are banned by name too.
 * `contract` holds the names both sides of the session Pod agree on (the sidecar's env); it is a
 * leaf that imports nothing of the project, so the sidecar bundle stays small.
 */
const FEATURES = ['environments', 'sessions', 'sidecar', 'lifecycle', 'runner'];
const DEV_ONLY = ['emulator', 'localcluster', 'dev'];
const LOWER = ['runtime', 'k8s', 'api', 'crd'];
/** @param {string} feature */
const otherFeatures = (feature) => FEATURES.filter((f) => f !== feature);

/** What each top-level folder of src/ must not import, with the reason shown to the developer. */
const forbidden = {
  contract: [['util', 'config', 'telemetry', ...LOWER, ...FEATURES, ...DEV_ONLY, 'cli'], 'the Pod contract is a leaf shared by the operator and the sidecar'],
  util: [['config', 'telemetry', ...LOWER, ...FEATURES, ...DEV_ONLY, 'cli'], 'util is the bottom layer'],
  config: [[...LOWER, ...FEATURES, ...DEV_ONLY, 'cli', 'telemetry'], 'config sits below everything but util'],
  telemetry: [[...LOWER, ...FEATURES, ...DEV_ONLY, 'cli'], 'telemetry sits below api/k8s/runtime/crd'],
  api: [[...FEATURES, ...DEV_ONLY, 'cli', 'k8s', 'runtime', 'crd'], 'the API client knows nothing of Kubernetes or features'],
  k8s: [[...FEATURES, ...DEV_ONLY, 'cli', 'api'], 'k8s helpers are generic'],
  crd: [[...FEATURES, ...DEV_ONLY, 'cli', 'runtime'], 'crd holds schemas and constants only'],
  runtime: [[...FEATURES, ...DEV_ONLY, 'cli', 'api', 'crd'], 'the controller runtime is generic (no Kind-specific code)'],
  environments: [[...otherFeatures('environments'), ...DEV_ONLY, 'cli'], 'features do not import other features, dev-only code or the CLI'],
  sessions: [[...otherFeatures('sessions'), ...DEV_ONLY, 'cli'], 'features do not import other features, dev-only code or the CLI'],
  lifecycle: [[...otherFeatures('lifecycle'), 'api', ...DEV_ONLY, 'cli'], 'install/uninstall steps act on the custom resources only, never on the API'],
  sidecar: [[...otherFeatures('sidecar'), 'k8s', 'runtime', 'crd', 'api', 'telemetry', ...DEV_ONLY, 'cli'], 'the sidecar has no Kubernetes access and must stay small'],
  runner: [[...otherFeatures('runner'), 'k8s', 'runtime', 'crd', 'api', ...DEV_ONLY, 'cli'], 'the default runner runs in the sandbox: the official SDK talking to the sidecar only, no Kubernetes access, no API client of ours'],
  emulator: [[...FEATURES, 'k8s', 'runtime', 'crd', 'localcluster', 'cli'], 'the emulator depends only on the API wire schemas'],
  localcluster: [[...FEATURES, 'emulator', 'runtime', 'crd', 'api', 'cli', 'dev'], 'the local cluster is a generic Kubernetes runtime'],
  dev: [[...FEATURES, 'cli'], 'the dev demo drives the product from outside, like a user'],
};

// Imports inside src/ are relative, so "reaching folder X" means a path that climbs with ../ into X.
/** @param {keyof typeof forbidden} folder */
function layerPattern(folder) {
  const [targets, why] = forbidden[folder];
  return { regex: `^(\\.\\./)+(${targets.join('|')})/`, message: `src/${folder} must not import from it: ${why}. See ../shared/STYLE.md.` };
}
/**
 * Third-party packages src/sidecar must not import, each with its reason: the sidecar runs in every
 * sandbox Pod, bundled alone into dist/sidecar.cjs (`npm run build:sidecar`), and its memory and
 * start-up time are per session (bench/sidecar.ts). It has node's built-ins and nothing else.
 */
const SIDECAR_PACKAGE_BANS = [
  ['zod', 'the sidecar checks its few AGENTENV_* variables (sidecar/config.ts) and the API replies it reads by hand; zod would add MBs to every session Pod'],
  ['@kubernetes/client-node', 'the sidecar has no Kubernetes access at all (session Pods mount no ServiceAccount token); it reports through its Pod status (readiness)'],
  ['prom-client', 'the sidecar exposes no metrics; the operator counts sessions'],
  ['pino', 'the sidecar writes its JSON log lines itself (sidecar/log.ts)'],
  ['undici', "node's own http/https modules (or raw sockets) carry the sidecar's calls; a second HTTP stack would add MBs to every session Pod"],
  ['commander', 'the sidecar takes no flags: its configuration is its environment (the names are in src/contract/sidecar.ts)'],
].map(([name, why]) => ({
  regex: `^${name}(/|$)`,
  message: `src/sidecar must not import ${name}: ${why}. The sidecar bundle stays free of third-party modules.`,
}));

const layerRules = Object.keys(forbidden).map((folder) => ({
  files: [`src/${folder}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      { patterns: [layerPattern(/** @type {keyof typeof forbidden} */ (folder)), ...(folder === 'sidecar' ? SIDECAR_PACKAGE_BANS : [])] },
    ],
  },
}));

/**
 * Inside src/sessions, the parts (see docs/sessions.md, "Code map"): the dispatcher (`dispatch/`:
 * poll → record → ack) and the AgentSession controller (`controller/`: Pods, stops, cleanup) never
 * import each other — they meet only in `sessions/index.ts`, which wires them; both build on the
 * record (`record/`) and the objects (`objects/`). `objects/` holds pure builders and views of the
 * Kubernetes objects a session owns: it does no I/O (no Kubernetes REST or informer, no API client;
 * their types are fine), so a Pod is the same for the same inputs.
 */
const SESSIONS_FEATURE_PATTERN = layerPattern('sessions');
const sessionPartRules = [
  ['dispatch', ['controller', 'pool'], 'the dispatcher and the session controller meet only in sessions/index.ts'],
  ['controller', ['dispatch'], 'the session controller and the dispatcher meet only in sessions/index.ts'],
  ['record', ['dispatch', 'controller'], 'the record is shared by the dispatcher and the controller, below both'],
  ['objects', ['dispatch', 'controller', 'record/record'], 'objects are pure builders and views (the record store does I/O)'],
  ['pool', ['dispatch', 'controller'], 'the warm pool is kept from the environment\'s keyed pass; the dispatcher binds its Pods through sessions/index.ts'],
].map(([part, targets, why]) => ({
  files: [`src/sessions/${part}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          SESSIONS_FEATURE_PATTERN,
          { regex: `^\\.\\./(${targets.join('|')})(/|\\.ts$)`, message: `src/sessions/${part} must not import from it: ${why}. See docs/sessions.md.` },
        ],
      },
    ],
  },
}));
const objectsArePure = {
  files: ['src/sessions/objects/**/*.ts'],
  rules: {
    '@typescript-eslint/no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            regex: '^(\\.\\./)+(k8s/(rest|informer)|api/)',
            allowTypeImports: true,
            message: 'src/sessions/objects is pure: no Kubernetes REST or informer, no API client (type imports are fine). See docs/sessions.md.',
          },
        ],
      },
    ],
  },
};
/**
 * Inside src/environments, the decisions are pure (see docs/architecture.md): `plan.ts`,
 * `desired.ts` and `status.ts` turn what a pass read into what it does, and do no I/O themselves —
 * no Kubernetes REST, informer, event recorder or status writer, no API client (types are fine),
 * so their table tests need nothing but inputs.
 */
const environmentDecisionsArePure = {
  files: ['src/environments/plan.ts', 'src/environments/desired.ts', 'src/environments/status.ts'],
  rules: {
    '@typescript-eslint/no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            regex: '^(\\.\\./)+(k8s/(rest|informer|events|status|finalizer|secrets)|api/(client|transport|retry))\\.ts$',
            allowTypeImports: true,
            message: 'the AgentEnvironment decisions are pure: no Kubernetes or API I/O (type imports are fine); reconcile.ts and finalize.ts apply them.',
          },
        ],
      },
    ],
  },
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.k8s/**', 'deploy/**', 'crds/**', '.bench/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'error',
      eqeqeq: ['error', 'smart'],
    },
  },
  {
    // Entry points and scripts may print to the terminal.
    files: ['src/cli/**', 'scripts/**', 'test/**', 'bench/**'],
    rules: { 'no-console': 'off' },
  },
  ...layerRules,
  // After the layer rules: for these files the part rules (which repeat the feature's pattern) take over.
  ...sessionPartRules,
  objectsArePure,
  environmentDecisionsArePure,
);
