// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';

/**
 * Dependency direction (see ../shared/STYLE.md, "A layout that shows the architecture"):
 *
 *   cli → feature folders (environments, sessions, sidecar) → runtime/k8s/api/crd → telemetry/config → util
 *
 * plus two dev-only products that product code never imports: `emulator` (the Environments API
 * emulator) and `localcluster` (control plane + process kubelet for tests and `npm run dev`).
 * The sidecar runs in every sandbox Pod and needs no Kubernetes access, so it imports neither
 * `k8s`, `runtime` nor `crd` (which would also pull @kubernetes/client-node into its memory).
 */
const src = (dir) => `./src/${dir}`;
const zone = (target, from, message) => ({ target: src(target), from: from.map(src), message });

const FEATURES = ['environments', 'sessions', 'sidecar'];
const DEV_ONLY = ['emulator', 'localcluster'];
const LOWER = ['runtime', 'k8s', 'api', 'crd'];

const zones = [
  // The bottom layers import nothing above them.
  zone('util', ['config', 'telemetry', ...LOWER, ...FEATURES, ...DEV_ONLY, 'cli'], 'util is the bottom layer'),
  ...['config', 'telemetry'].map((t) =>
    zone(t, [...LOWER, ...FEATURES, ...DEV_ONLY, 'cli'], `${t} sits below api/k8s/runtime/crd`),
  ),
  ...LOWER.map((t) => zone(t, [...FEATURES, ...DEV_ONLY, 'cli'], `${t} must not depend on features, dev tools or the CLI`)),
  // Features do not reach into each other, into dev-only tools, or up into the CLI.
  ...FEATURES.map((t) =>
    zone(t, [...FEATURES.filter((f) => f !== t), ...DEV_ONLY, 'cli'], `${t} must not import other features, dev-only code or the CLI`),
  ),
  zone('sidecar', ['k8s', 'runtime', 'crd'], 'the sidecar has no Kubernetes access and must stay small'),
  // Dev-only products never import product features.
  zone('emulator', [...FEATURES, 'k8s', 'runtime', 'crd', 'localcluster', 'cli'], 'the emulator depends only on the API wire schemas'),
  zone('localcluster', [...FEATURES, 'emulator', 'runtime', 'crd', 'cli'], 'the local cluster is a generic Kubernetes runtime'),
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.k8s/**', 'deploy/**', 'crds/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver': { node: { extensions: ['.ts', '.js'] } } },
    rules: {
      'import-x/no-restricted-paths': ['error', { zones }],
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
);
