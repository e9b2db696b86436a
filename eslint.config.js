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
 * `k8s`, `runtime` nor `crd` (which would also pull @kubernetes/client-node into its memory).
 * `contract` holds the names both sides of the session Pod agree on (the sidecar's env); it is a
 * leaf that imports nothing of the project, so the sidecar bundle stays small.
 */
const FEATURES = ['environments', 'sessions', 'sidecar', 'lifecycle', 'runner'];
const DEV_ONLY = ['emulator', 'localcluster', 'dev'];
const LOWER = ['runtime', 'k8s', 'api', 'crd'];

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
  environments: [['sessions', 'sidecar', ...DEV_ONLY, 'cli'], 'features do not import other features, dev-only code or the CLI'],
  sessions: [['environments', 'sidecar', ...DEV_ONLY, 'cli'], 'features do not import other features, dev-only code or the CLI'],
  lifecycle: [['environments', 'sessions', 'sidecar', 'api', ...DEV_ONLY, 'cli'], 'install/uninstall steps act on the custom resources only, never on the API'],
  sidecar: [['environments', 'sessions', 'k8s', 'runtime', 'crd', ...DEV_ONLY, 'cli'], 'the sidecar has no Kubernetes access and must stay small'],
  runner: [['environments', 'sessions', 'sidecar', 'lifecycle', 'k8s', 'runtime', 'crd', 'api', ...DEV_ONLY, 'cli'], 'the default runner runs in the sandbox: the official SDK talking to the sidecar only, no Kubernetes access, no API client of ours'],
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
const layerRules = Object.keys(forbidden).map((folder) => ({
  files: [`src/${folder}/**/*.ts`],
  rules: { 'no-restricted-imports': ['error', { patterns: [layerPattern(/** @type {keyof typeof forbidden} */ (folder))] }] },
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
  ['dispatch', ['controller'], 'the dispatcher and the session controller meet only in sessions/index.ts'],
  ['controller', ['dispatch'], 'the session controller and the dispatcher meet only in sessions/index.ts'],
  ['record', ['dispatch', 'controller'], 'the record is shared by the dispatcher and the controller, below both'],
  ['objects', ['dispatch', 'controller', 'record/record'], 'objects are pure builders and views (the record store does I/O)'],
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
);
