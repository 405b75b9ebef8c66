// The node-local OpenTelemetry Collector, as an OpenTelemetryCollector the OpenTelemetry
// Operator turns into a DaemonSet plus a Service with internalTrafficPolicy: Local, so
// `http://osprey-collector.<ns>.svc:4318` from any pod reaches the collector of its own node.
//
// No npm package carries typed models of the operator's CRD, so the part of its schema
// used here is typed below; test/deploy.test.ts checks every generated CR against the CRD
// of the operator release OPERATOR_VERSION, and the `config` against a real collector.
import type { IIoK8sApimachineryPkgApisMetaV1ObjectMeta as ObjectMeta } from '@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta';
import type { IIoK8sApiCoreV1EnvVar as EnvVar } from 'kubernetes-models/v1/EnvVar';
import type { IIoK8sApiCoreV1ResourceRequirements as Resources } from 'kubernetes-models/v1/ResourceRequirements';
import type { IIoK8sApiCoreV1Toleration as Toleration } from 'kubernetes-models/v1/Toleration';
import { labels, NAMES } from './names.js';
import type { DeployOptions } from './options.js';

export interface CollectorConfig {
  receivers: Record<string, unknown>;
  processors: Record<string, unknown>;
  exporters: Record<string, unknown>;
  service: {
    pipelines: Record<'traces' | 'metrics' | 'logs', { receivers: string[]; processors: string[]; exporters: string[] }>;
  };
}

/** the subset of opentelemetry.io/v1beta1 OpenTelemetryCollector this deployment sets */
export interface OpenTelemetryCollector {
  apiVersion: 'opentelemetry.io/v1beta1';
  kind: 'OpenTelemetryCollector';
  metadata: ObjectMeta;
  spec: {
    mode: 'daemonset';
    image: string;
    priorityClassName: string;
    serviceAccount: string;
    tolerations: Toleration[];
    env: EnvVar[];
    resources: Resources;
    config: CollectorConfig;
  };
}

/**
 * The pipeline: OTLP in (from the agent, and from SDK-instrumented pods of the node), then
 * memory_limiter first (it must see the data before anything buffers it), k8sattributes
 * before batch (a batch mixes pods), batch last; traces to Tempo over OTLP/gRPC, metrics
 * to Mimir over remote write, logs to Loki's native OTLP endpoint.
 */
export function collectorConfig(o: DeployOptions): CollectorConfig {
  const tenant = { 'X-Scope-OrgID': o.tenant };
  const processors = ['memory_limiter', 'k8sattributes', 'batch'];
  return {
    receivers: {
      otlp: {
        protocols: {
          // explicit: the collector's own default bind is localhost
          grpc: { endpoint: '0.0.0.0:4317' },
          http: { endpoint: '0.0.0.0:4318' },
        },
      },
    },
    processors: {
      // percentages of the container's memory limit (resources below)
      memory_limiter: { check_interval: '1s', limit_percentage: 80, spike_limit_percentage: 25 },
      k8sattributes: {
        // only this node's pods: the informer stays small on a large cluster
        filter: { node_from_env_var: 'K8S_NODE_NAME' },
        extract: { metadata: ['k8s.namespace.name', 'k8s.pod.name', 'k8s.pod.uid', 'k8s.deployment.name', 'k8s.node.name'] },
        // the agent sends on behalf of other pods: its own connection says nothing about the
        // span's pod, so match on the attributes it set first, the connection last (SDK pods)
        pod_association: [
          { sources: [{ from: 'resource_attribute', name: 'k8s.pod.uid' }] },
          { sources: [{ from: 'resource_attribute', name: 'k8s.pod.ip' }] },
          {
            sources: [
              { from: 'resource_attribute', name: 'k8s.pod.name' },
              { from: 'resource_attribute', name: 'k8s.namespace.name' },
            ],
          },
          { sources: [{ from: 'connection' }] },
        ],
      },
      batch: { timeout: '1s', send_batch_size: 2048, send_batch_max_size: 4096 },
    },
    exporters: {
      // in-cluster plaintext, as Tempo's chart serves it; TLS needs a CA, not a default
      'otlp/tempo': { endpoint: o.tempoOtlp, tls: { insecure: true }, headers: tenant },
      'prometheusremotewrite/mimir': {
        endpoint: o.mimirWrite,
        headers: tenant,
        // Osprey names its metrics as Tempo does (traces_spanmetrics_calls_total,
        // traces_spanmetrics_latency_bucket …): the exporter must not append unit suffixes
        add_metric_suffixes: false,
      },
      'otlphttp/loki': { endpoint: o.lokiOtlp, headers: tenant },
    },
    // no health_check extension: the collector the tests build and validate this config
    // with (test/otelcol.ts) has none; the operator then sets no probes on the collector pod
    service: {
      pipelines: {
        traces: { receivers: ['otlp'], processors, exporters: ['otlp/tempo'] },
        metrics: { receivers: ['otlp'], processors, exporters: ['prometheusremotewrite/mimir'] },
        logs: { receivers: ['otlp'], processors, exporters: ['otlphttp/loki'] },
      },
    },
  };
}

export function openTelemetryCollector(o: DeployOptions): OpenTelemetryCollector {
  return {
    apiVersion: 'opentelemetry.io/v1beta1',
    kind: 'OpenTelemetryCollector',
    metadata: { name: NAMES.collector, namespace: o.namespace, labels: labels('collector') },
    spec: {
      mode: 'daemonset',
      image: o.collectorImage,
      priorityClassName: NAMES.collectorPriority,
      serviceAccount: NAMES.collectorServiceAccount,
      tolerations: [{ operator: 'Exists' }],
      env: [{ name: 'K8S_NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }],
      resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '512Mi' } },
      config: collectorConfig(o),
    },
  };
}
