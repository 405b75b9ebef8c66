// Process, container and Kubernetes identity: pid → cgroup → container → pod → workload.
export { containerIdFromCgroup, identityFromCgroup, identityFromPath, type CgroupIdentity } from './cgroup.js';
export { kubeSettings, loadKubeConfig, KubeConfigError, type KubeSettings } from './kube/config.js';
export { KubeMetadata, type KubeMetadataOptions, type KubeStatus, type PodIdentity } from './kube/metadata.js';
export { KubeResources, type KubeResourceCounters } from './kube-resources.js';
export { setupKubernetes, type KubernetesSetup } from './setup.js';
