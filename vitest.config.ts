import { defineConfig } from 'vitest/config';

/**
 * Test tiers (see README "Tests"):
 * - unit:        pure tests next to the code (src/**\/*.test.ts) and test/unit
 * - api:         the API client and the official SDK against the in-process emulator
 * - integration: a real kube-apiserver + etcd (built from Go modules) + the emulator + the process kubelet
 * - runtime:     the same control plane with a real kubelet on containerd + runc, and the project's images
 *                built from the Dockerfile with buildah (docs/runtime.md); root, runc, buildah, mmdebstrap
 */
export default defineConfig({
  test: {
    // CI asks for a machine-readable report as well (see .ci/run).
    reporters: process.env.AGENTENV_TEST_REPORT ? ['default', 'json'] : ['default'],
    outputFile: process.env.AGENTENV_TEST_REPORT ? { json: process.env.AGENTENV_TEST_REPORT } : undefined,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'test/unit/**/*.test.ts'],
          testTimeout: 10_000,
        },
      },
      {
        test: {
          // The Helm chart through the real helm and kubeconform (tools built by scripts/tools.ts).
          name: 'chart',
          include: ['test/chart/**/*.test.ts'],
          // Builds the tools once (Go module proxy; cached in ~/.cache/agentenv/tools).
          globalSetup: ['test/chart/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 600_000,
        },
      },
      {
        test: {
          name: 'api',
          include: ['test/api/**/*.test.ts'],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          // One cluster for the run; files run in parallel, each in its own namespace.
          globalSetup: ['test/integration/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
      {
        test: {
          name: 'runtime',
          include: ['test/runtime/**/*.test.ts'],
          // One containerd node for the run (it is one per machine: a bridge and a cgroup root); files
          // run in parallel, each in its own namespace.
          globalSetup: ['test/runtime/global-setup.ts'],
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
