/**
 * The slice of the core/v1 Pod the session feature reads and writes, as plain JSON shapes (the
 * wire format, not @kubernetes/client-node's classes with Date fields). Fields the operator does
 * not look at pass through untouched from the user's template, hence the index signatures.
 */
import type { KubeObject } from '../../k8s/rest.ts';

export interface SecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  privileged?: boolean;
  allowPrivilegeEscalation?: boolean;
  readOnlyRootFilesystem?: boolean;
  procMount?: string;
  capabilities?: { add?: string[]; drop?: string[] };
  seccompProfile?: { type: string; localhostProfile?: string };
  [field: string]: unknown;
}

export interface PodSecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  fsGroup?: number;
  seccompProfile?: { type: string; localhostProfile?: string };
  sysctls?: Array<{ name: string; value: string }>;
  [field: string]: unknown;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    fieldRef?: { fieldPath: string; apiVersion?: string };
    [source: string]: unknown;
  };
}

export interface Container {
  name: string;
  image?: string;
  imagePullPolicy?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  envFrom?: Array<{ secretRef?: { name: string }; configMapRef?: { name: string }; prefix?: string }>;
  ports?: Array<{ name?: string; containerPort: number; hostPort?: number; protocol?: string }>;
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean; subPath?: string }>;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: SecurityContext;
  startupProbe?: Record<string, unknown>;
  readinessProbe?: Record<string, unknown>;
  workingDir?: string;
  restartPolicy?: 'Always';
  [field: string]: unknown;
}

export interface Volume {
  name: string;
  secret?: { secretName: string; items?: Array<{ key: string; path: string }>; defaultMode?: number; optional?: boolean };
  emptyDir?: { medium?: string; sizeLimit?: string };
  projected?: { sources?: Array<{ secret?: { name: string } ; [source: string]: unknown }>; defaultMode?: number };
  [source: string]: unknown;
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  ephemeralContainers?: unknown[];
  volumes?: Volume[];
  restartPolicy?: string;
  securityContext?: PodSecurityContext;
  shareProcessNamespace?: boolean;
  automountServiceAccountToken?: boolean;
  enableServiceLinks?: boolean;
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  hostUsers?: boolean;
  nodeName?: string;
  nodeSelector?: Record<string, string>;
  terminationGracePeriodSeconds?: number;
  priorityClassName?: string;
  activeDeadlineSeconds?: number;
  overhead?: Record<string, string>;
  imagePullSecrets?: Array<{ name?: string }>;
  [field: string]: unknown;
}

export interface ContainerState {
  waiting?: { reason?: string; message?: string };
  running?: { startedAt?: string };
  terminated?: { exitCode: number; reason?: string; message?: string; startedAt?: string; finishedAt?: string };
}

export interface ContainerStatus {
  name: string;
  ready?: boolean;
  started?: boolean;
  restartCount?: number;
  state?: ContainerState;
  lastState?: ContainerState;
}

export interface PodStatus {
  phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
  reason?: string;
  message?: string;
  podIP?: string;
  startTime?: string;
  conditions?: Array<{ type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string }>;
  containerStatuses?: ContainerStatus[];
  initContainerStatuses?: ContainerStatus[];
}

export interface Pod extends KubeObject {
  spec: PodSpec;
  status?: PodStatus;
}

/** A PodTemplateSpec as the user writes it in `spec.selfHosted.sessionTemplate`. */
export interface PodTemplate {
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Partial<PodSpec>;
}

export interface Secret extends KubeObject {
  type?: string;
  data?: Record<string, string>;
}
