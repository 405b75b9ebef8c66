// RED metrics and the service graph from spans (Tempo metrics-generator names), and the
// Prometheus text exposition.
export { MetricsGenerator, type MetricsGeneratorOptions } from './generator.js';
export { SpanMetrics, type SpanMetricsOptions } from './spanmetrics.js';
export { ServiceGraph, type CompletedEdge, type ServiceGraphCounters, type ServiceGraphOptions } from './servicegraph.js';
export { histogramQuantile } from './latency.js';
export { SERVICE_GRAPH_BUCKETS, SPAN_METRICS_BUCKETS, exponentialBuckets, spanService } from './series.js';
export { exposition, formatValue, labelText, type HistogramSample, type MetricFamily, type Sample } from './prometheus.js';
