// Grafana: datasources (Tempo wired to Loki for trace → logs and to Mimir for the service
// map and trace → metrics) and a RED dashboard on Tempo's span-metrics names. Both are
// ConfigMaps labelled the way the Grafana Helm chart's sidecar collects them
// (grafana_datasource / grafana_dashboard = "1"); without the sidecar, mount them under
// /etc/grafana/provisioning/datasources and a dashboards provider path.
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { yamlText } from './yaml.js';
import { labels, NAMES } from './names.js';
import type { DeployOptions } from './options.js';
import { TEMPO_SOURCE_LABEL } from './tempo.js';

/** uids of the provisioned datasources: prefixed, so they never replace a user's own */
export const UID = { tempo: 'osprey-tempo', mimir: 'osprey-mimir', loki: 'osprey-loki' } as const;

// Grafana expands $VAR and ${VAR} in provisioning files from its environment; "$$" is a
// literal "$", which is what Grafana's own template variables ($__tags, ${__trace.traceId}) need.
const lit = (s: string) => s.replace(/\$/g, '$$$$');

/** the matcher of Tempo's own series: source="tempo" */
const TEMPO = Object.entries(TEMPO_SOURCE_LABEL)
  .map(([k, v]) => `${k}="${v}"`)
  .join(',');

export function datasources(o: DeployOptions) {
  const tenantHeader = { httpHeaderName1: 'X-Scope-OrgID' };
  const tenantValue = { httpHeaderValue1: o.tenant };
  return {
    apiVersion: 1,
    datasources: [
      {
        name: 'Osprey Mimir',
        type: 'prometheus',
        uid: UID.mimir,
        access: 'proxy',
        url: o.mimirQuery,
        jsonData: {
          httpMethod: 'POST',
          ...tenantHeader,
          // Tempo's metrics-generator puts the trace id on histogram exemplars as traceID
          exemplarTraceIdDestinations: [{ name: 'traceID', datasourceUid: UID.tempo }],
        },
        secureJsonData: tenantValue,
      },
      {
        name: 'Osprey Loki',
        type: 'loki',
        uid: UID.loki,
        access: 'proxy',
        url: o.lokiQuery,
        jsonData: {
          ...tenantHeader,
          // Loki's OTLP ingest keeps the record's trace id as structured metadata trace_id
          derivedFields: [
            { name: 'TraceID', matcherType: 'label', matcherRegex: 'trace_id', datasourceUid: UID.tempo, url: lit('${__value.raw}'), urlDisplayLabel: 'View trace' },
          ],
        },
        secureJsonData: tenantValue,
      },
      {
        name: 'Osprey Tempo',
        type: 'tempo',
        uid: UID.tempo,
        access: 'proxy',
        url: o.tempoQuery,
        jsonData: {
          ...tenantHeader,
          tracesToLogsV2: {
            datasourceUid: UID.loki,
            spanStartTimeShift: '-2s',
            spanEndTimeShift: '2s',
            // Loki's OTLP index labels are the resource attributes with "." as "_"
            tags: [
              { key: 'service.name', value: 'service_name' },
              { key: 'k8s.namespace.name', value: 'k8s_namespace_name' },
            ],
            filterByTraceID: true,
            filterBySpanID: false,
            customQuery: true,
            query: lit('{${__tags}} | trace_id="${__trace.traceId}"'),
          },
          tracesToMetrics: {
            datasourceUid: UID.mimir,
            spanStartTimeShift: '-2m',
            spanEndTimeShift: '2m',
            // Tempo's span-metrics label for service.name is "service"
            tags: [{ key: 'service.name', value: 'service' }],
            queries: [
              { name: 'Request rate', query: lit(`sum(rate(traces_spanmetrics_calls_total{$__tags,${TEMPO}}[5m]))`) },
              { name: 'Error rate', query: lit(`sum(rate(traces_spanmetrics_calls_total{$__tags,${TEMPO},status_code="STATUS_CODE_ERROR"}[5m]))`) },
              { name: 'p95 latency', query: lit(`histogram_quantile(0.95, sum by (le) (rate(traces_spanmetrics_latency_bucket{$__tags,${TEMPO}}[5m])))`) },
            ],
          },
          serviceMap: { datasourceUid: UID.mimir },
          nodeGraph: { enabled: true },
          search: { hide: false },
          traceQuery: { timeShiftEnabled: true, spanStartTimeShift: '-1h', spanEndTimeShift: '1h' },
        },
        secureJsonData: tenantValue,
      },
    ],
  };
}

export function datasourcesConfigMap(o: DeployOptions): ConfigMap {
  return new ConfigMap({
    metadata: { name: NAMES.grafanaDatasources, namespace: o.namespace, labels: { ...labels('grafana'), grafana_datasource: '1' } },
    data: { 'osprey-datasources.yaml': yamlText(datasources(o)) },
  });
}

// ---- the RED dashboard ------------------------------------------------------------------

/** the selector every panel shares: Tempo's series (not an agent's), server spans, the chosen namespace and services */
const SEL = `${TEMPO},span_kind="SPAN_KIND_SERVER",k8s_namespace_name=~"$namespace",service=~"$service"`;

export const RED_QUERIES = {
  rate: `sum by (service) (rate(traces_spanmetrics_calls_total{${SEL}}[$__rate_interval]))`,
  errors:
    `sum by (service) (rate(traces_spanmetrics_calls_total{${SEL},status_code="STATUS_CODE_ERROR"}[$__rate_interval]))` +
    ` / sum by (service) (rate(traces_spanmetrics_calls_total{${SEL}}[$__rate_interval]))`,
  p50: `histogram_quantile(0.5, sum by (service, le) (rate(traces_spanmetrics_latency_bucket{${SEL}}[$__rate_interval])))`,
  p95: `histogram_quantile(0.95, sum by (service, le) (rate(traces_spanmetrics_latency_bucket{${SEL}}[$__rate_interval])))`,
  p99: `histogram_quantile(0.99, sum by (service, le) (rate(traces_spanmetrics_latency_bucket{${SEL}}[$__rate_interval])))`,
  slowest: `topk(20, histogram_quantile(0.95, sum by (service, span_name, le) (rate(traces_spanmetrics_latency_bucket{${SEL}}[$__range]))))`,
};

const MIMIR = { type: 'prometheus', uid: '${datasource}' };

function timeseries(id: number, title: string, unit: string, targets: { expr: string; legend: string }[], x: number, y: number) {
  return {
    id,
    type: 'timeseries',
    title,
    datasource: MIMIR,
    gridPos: { h: 8, w: 12, x, y },
    fieldConfig: { defaults: { unit }, overrides: [] },
    options: { legend: { displayMode: 'table', placement: 'right', calcs: ['lastNotNull', 'max'] }, tooltip: { mode: 'multi' } },
    targets: targets.map((t, i) => ({ refId: String.fromCharCode(65 + i), datasource: MIMIR, expr: t.expr, legendFormat: t.legend })),
  };
}

export function redDashboard() {
  const variable = (name: string, label: string, query: string) => ({
    name,
    label,
    type: 'query',
    datasource: MIMIR,
    query: { query, refId: name },
    definition: query,
    refresh: 2,
    includeAll: true,
    multi: true,
    // ".*" also matches series without the label (spans that had no namespace)
    allValue: '.*',
    current: { selected: true, text: ['All'], value: ['$__all'] },
    sort: 1,
  });
  return {
    uid: 'osprey-red',
    title: 'Osprey: RED by service',
    description: "Rate, errors and duration of every service's server spans, from Tempo's span metrics (traced by Osprey, no code changes)",
    tags: ['osprey', 'red', 'tempo'],
    editable: true,
    schemaVersion: 39,
    version: 1,
    refresh: '30s',
    time: { from: 'now-1h', to: 'now' },
    templating: {
      list: [
        { name: 'datasource', label: 'Metrics', type: 'datasource', query: 'prometheus', current: { text: 'Osprey Mimir', value: UID.mimir } },
        variable('namespace', 'Namespace', `label_values(traces_spanmetrics_calls_total{${TEMPO}}, k8s_namespace_name)`),
        variable('service', 'Service', `label_values(traces_spanmetrics_calls_total{${TEMPO},k8s_namespace_name=~"$namespace"}, service)`),
      ],
    },
    panels: [
      timeseries(1, 'Requests per second', 'reqps', [{ expr: RED_QUERIES.rate, legend: '{{service}}' }], 0, 0),
      timeseries(2, 'Error ratio (5xx, failed calls)', 'percentunit', [{ expr: RED_QUERIES.errors, legend: '{{service}}' }], 12, 0),
      timeseries(
        3,
        'Latency p50 / p95 / p99',
        's',
        [
          { expr: RED_QUERIES.p50, legend: '{{service}} p50' },
          { expr: RED_QUERIES.p95, legend: '{{service}} p95' },
          { expr: RED_QUERIES.p99, legend: '{{service}} p99' },
        ],
        0,
        8,
      ),
      {
        id: 4,
        type: 'table',
        title: 'Slowest routes (p95 over the range)',
        datasource: MIMIR,
        gridPos: { h: 8, w: 12, x: 12, y: 8 },
        fieldConfig: { defaults: { unit: 's' }, overrides: [] },
        options: { sortBy: [{ displayName: 'Value', desc: true }] },
        targets: [{ refId: 'A', datasource: MIMIR, expr: RED_QUERIES.slowest, instant: true, format: 'table' }],
        transformations: [{ id: 'organize', options: { excludeByName: { Time: true } } }],
      },
      {
        id: 5,
        type: 'nodeGraph',
        title: 'Service graph',
        datasource: { type: 'tempo', uid: UID.tempo },
        gridPos: { h: 12, w: 24, x: 0, y: 16 },
        targets: [{ refId: 'A', datasource: { type: 'tempo', uid: UID.tempo }, queryType: 'serviceMap' }],
      },
    ],
  };
}

export function dashboardConfigMap(o: DeployOptions): ConfigMap {
  return new ConfigMap({
    metadata: { name: NAMES.grafanaDashboard, namespace: o.namespace, labels: { ...labels('grafana'), grafana_dashboard: '1' } },
    data: { 'osprey-red.json': `${JSON.stringify(redDashboard(), null, 2)}\n` },
  });
}
