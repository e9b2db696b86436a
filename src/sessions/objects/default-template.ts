/**
 * The session template used when an environment names none: the default runner (pure).
 *
 * One container, `session`, running `agentenv runner` in the runner image — the official SDK's
 * per-item runner (`EnvironmentWorker.handleItem`) with its standard agent toolset (bash, read,
 * write, edit, glob, grep) confined to `/workspace`, an emptyDir of the Pod's own. The operator
 * then injects the sidecar, the `ANTHROPIC_*` contract and the hardening as for any template.
 */
import type { PodTemplate } from './pod-types.ts';

export interface RunnerSettings {
  readonly image: string;
  readonly imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
}

/** The runner's working directory: the agent's files live here (the session's workspace claim, else an emptyDir gone with the Pod). */
export const WORKSPACE_DIR = '/workspace';
export const WORKSPACE_VOLUME = 'workspace';

/**
 * The default runner's template. `idleTimeoutSeconds` (the environment's `spec.selfHosted.idleTimeoutSeconds`)
 * is its `--idle-timeout` (the SDK's `maxIdleMs`): the runner ends once the session has been idle
 * that long, and the next message starts a new Pod.
 */
export function defaultSessionTemplate(runner: RunnerSettings, idleTimeoutSeconds?: number): PodTemplate {
  return {
    spec: {
      containers: [
        {
          name: 'session',
          image: runner.image,
          imagePullPolicy: runner.imagePullPolicy,
          command: ['agentenv', 'runner', ...(idleTimeoutSeconds !== undefined ? ['--idle-timeout', `${idleTimeoutSeconds}s`] : [])],
          workingDir: WORKSPACE_DIR,
          volumeMounts: [{ name: WORKSPACE_VOLUME, mountPath: WORKSPACE_DIR }],
          // Modest: one agent's shell commands. Set a sessionTemplate for heavier work.
          resources: { requests: { cpu: '250m', memory: '512Mi' }, limits: { memory: '2Gi' } },
        },
      ],
      volumes: [{ name: WORKSPACE_VOLUME, emptyDir: { sizeLimit: '10Gi' } }],
    },
  };
}
