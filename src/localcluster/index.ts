/**
 * The local cluster: a real control plane built from Go modules, for tests and development only
 * (product code never imports it; see eslint.config.js).
 */
export { startLocalCluster, DEFAULT_NODE_NAME, type LocalCluster, type LocalClusterOptions } from './cluster.ts';
export { ensureControlPlaneBinaries, controlPlaneKey, defaultCacheDir, type ControlPlaneBinaries, type BuildOptions } from './controlplane-build.ts';
export { OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, OPERATOR_CLUSTER_ROLE, PROCESS_KUBELET_USER } from './controlplane-bootstrap.ts';
export { isAlive } from './controlplane-process.ts';
export { ensureProvisionerBinary, PROVISIONER_NAME, STORAGE_CLASS } from './provisioner.ts';
export { ensureRuntimeBinaries, runtimeKey, type RuntimeBinaries } from './runtime-build.ts';
export { ensureProjectImages, formatBytes, type ProjectImage } from './image-build.ts';
export { CONTAINERD_NODE_NAME, NODE_NETWORK } from './containerd-config.ts';
export type { ContainerdNode } from './containerd-node.ts';
