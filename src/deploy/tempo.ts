// Tempo's side of the pipeline: its metrics-generator turns the traces the collector
// forwards into span metrics and the service graph, remote-written to Mimir. Tempo is
// installed by its own chart, so this is a config fragment in a ConfigMap to merge into
// Tempo's configuration (tempo-distributed: `tempo.structuredConfig`, or
// `metricsGenerator.config` plus `global_overrides`), not a running object.
//
// Why Tempo and not the agent generates these for the cluster: a service-graph edge needs
// both its client and its server span in one place, and the two run on different nodes
// for most calls; only a central generator sees both (pipeline-compat §8.3). The series it
// writes carry source="tempo", which the dashboard filters on, so metrics that an agent
// also exports for its own node can never be counted twice in a panel.
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { yamlText } from './yaml.js';
import { labels, NAMES } from './names.js';
import type { DeployOptions } from './options.js';

/** label added to every series Tempo writes; the dashboard and datasource queries select on it */
export const TEMPO_SOURCE_LABEL = { source: 'tempo' } as const;

/** dimensions added to Tempo's default labels: a namespace filter costs no extra series (a service lives in one) */
export const SPAN_METRICS_DIMENSIONS = ['k8s.namespace.name'];

export function tempoMetricsGenerator(o: DeployOptions) {
  return {
    metrics_generator: {
      registry: { external_labels: { ...TEMPO_SOURCE_LABEL }, collection_interval: '15s' },
      storage: {
        path: '/var/tempo/generator/wal',
        remote_write: [{ url: o.mimirWrite, send_exemplars: true, headers: { 'X-Scope-OrgID': o.tenant } }],
      },
      processor: {
        span_metrics: { dimensions: SPAN_METRICS_DIMENSIONS },
        // client_/server_ prefixes keep both ends' namespaces on a cross-namespace edge
        service_graphs: { dimensions: SPAN_METRICS_DIMENSIONS, enable_client_server_prefix: true },
      },
    },
    overrides: {
      defaults: {
        metrics_generator: {
          // classic histograms (the default): native ones fail whole writes to a
          // Prometheus without --enable-feature=native-histograms
          processors: ['service-graphs', 'span-metrics'],
        },
      },
    },
  };
}

export function tempoConfigMap(o: DeployOptions): ConfigMap {
  return new ConfigMap({
    metadata: { name: NAMES.tempoConfig, namespace: o.namespace, labels: labels('tempo') },
    data: { 'tempo.yaml': yamlText(tempoMetricsGenerator(o)) },
  });
}
