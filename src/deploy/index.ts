// Kubernetes manifests of the cluster deployment, generated from typed models.
export { manifests, toYaml, writeManifests, fileNames, type ManifestObject } from './manifests.js';
export { DEFAULTS, OPERATOR_VERSION, resolveOptions, DeployOptionError, type DeployOptions } from './options.js';
export { AGENT_CAPABILITIES, agentArgs } from './agent.js';
export { collectorConfig, type OpenTelemetryCollector, type CollectorConfig } from './collector.js';
export { AGENT_RULES, COLLECTOR_RULES } from './rbac.js';
export { NAMES, collectorService } from './names.js';
export { RED_QUERIES, UID as DATASOURCE_UID } from './grafana.js';
export { tempoMetricsGenerator } from './tempo.js';
