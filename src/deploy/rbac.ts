// The namespace, service accounts and read-only RBAC of the two DaemonSets.
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { labels, NAMES, type Component } from './names.js';
import type { DeployOptions } from './options.js';

const READ = ['get', 'list', 'watch'];

/**
 * Pod Security Admission "baseline" (the level many clusters enforce) forbids hostPID,
 * hostPath volumes and added capabilities: the agent needs all three, so its namespace
 * is labelled "privileged", and only it (this namespace holds nothing but Osprey).
 */
export function namespace(o: DeployOptions): Namespace {
  return new Namespace({
    metadata: {
      name: o.namespace,
      labels: { ...labels('namespace'), 'pod-security.kubernetes.io/enforce': 'privileged', 'pod-security.kubernetes.io/warn': 'privileged' },
    },
  });
}

/**
 * What src/resource/kube reads: it watches this node's pods (field selector spec.nodeName)
 * and Services (a client span to a ClusterIP gets the peer's k8s.* attributes), and gets
 * the ReplicaSet or Job that owns a pod (to name its Deployment or CronJob; one GET each,
 * cached). Read-only, nothing more: no nodes, secrets or configmaps, no write verbs.
 */
export const AGENT_RULES = [
  { apiGroups: [''], resources: ['pods', 'services'], verbs: READ },
  { apiGroups: ['apps'], resources: ['replicasets'], verbs: ['get'] },
  { apiGroups: ['batch'], resources: ['jobs'], verbs: ['get'] },
];

/**
 * What the collector's k8sattributes processor watches with the extraction configured in
 * collector.ts: pods and namespaces always, ReplicaSets for k8s.deployment.name. Written
 * here rather than left to the operator, which creates these rules only when it holds
 * them itself.
 */
export const COLLECTOR_RULES = [
  { apiGroups: [''], resources: ['pods', 'namespaces'], verbs: READ },
  { apiGroups: ['apps'], resources: ['replicasets'], verbs: READ },
];

function account(o: DeployOptions, name: string, component: Component, rules: typeof AGENT_RULES) {
  // cluster-scoped names carry the namespace: two installs in two namespaces must not
  // rebind each other's service account
  const cluster = { name: `${name}-${o.namespace}`, labels: labels(component) };
  return [
    new ServiceAccount({ metadata: { name, namespace: o.namespace, labels: labels(component) } }),
    new ClusterRole({ metadata: cluster, rules }),
    new ClusterRoleBinding({
      metadata: cluster,
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: cluster.name },
      subjects: [{ kind: 'ServiceAccount', name, namespace: o.namespace }],
    }),
  ] as const;
}

export function agentAccount(o: DeployOptions) {
  return account(o, NAMES.agent, 'agent', AGENT_RULES);
}

export function collectorAccount(o: DeployOptions) {
  return account(o, NAMES.collectorServiceAccount, 'collector', COLLECTOR_RULES);
}
