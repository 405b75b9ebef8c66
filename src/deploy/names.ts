// Names and labels of the generated objects, in one place: the agent's export URL, the
// RBAC bindings and the docs all refer to them.

export const NAMES = {
  agent: 'osprey-agent',
  /** the OpenTelemetryCollector; the operator names its DaemonSet and Service `<name>-collector` */
  collector: 'osprey',
  collectorServiceAccount: 'osprey-otel-collector',
  agentPriority: 'osprey-node-agent',
  collectorPriority: 'osprey-node-collector',
  tempoConfig: 'osprey-tempo-metrics-generator',
  grafanaDatasources: 'osprey-grafana-datasources',
  grafanaDashboard: 'osprey-grafana-dashboard',
} as const;

/** the Service the operator makes for a daemonset-mode collector (internalTrafficPolicy: Local) */
export function collectorService(namespace: string): string {
  return `${NAMES.collector}-collector.${namespace}.svc`;
}

/** the port the agent's HTTP server listens on in the pod (probes, /metrics, status) */
export const AGENT_PORT = 7070;

export type Component = 'namespace' | 'agent' | 'collector' | 'grafana' | 'tempo' | 'rbac' | 'scheduling';

/** the recommended app.kubernetes.io labels */
export function labels(component: Component): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'osprey',
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/part-of': 'osprey',
    'app.kubernetes.io/managed-by': 'osprey-manifests',
  };
}
