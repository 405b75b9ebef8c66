// OTLP export of spans and span-derived metrics to an OpenTelemetry Collector (or any OTLP
// endpoint), and the counters that prove what became of every span.
export { DEFAULT_METRICS_INTERVAL_MS, DEFAULT_QUEUE_BYTES, describeTarget, ExportConfigError, parseHeaders, parseSize, resolveExportConfig } from './config.js';
export type { ExportConfig, ExportFlags, ExportTarget, OtlpProtocol } from './config.js';
export { encodeMetrics, encodeSpans, OTLP_SPAN_KIND, OTLP_STATUS_CODE } from './otlp.js';
export { DROP_REASONS, SpanExporter, type DropReason, type SpanExportCounters, type SpanExporterOptions } from './span-exporter.js';
export { MetricsExporter, type MetricExportCounters, type MetricsExporterOptions } from './metrics-exporter.js';
export { createTransport, GrpcTransport, HttpTransport, parseRetryAfter, type SendResult, type Transport } from './transport.js';
export { Exporter, exportFamilies, type ExporterOptions } from './exporter.js';
