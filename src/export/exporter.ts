// What `osprey up` wires in: the span exporter and the metrics exporter of one ExportConfig,
// and their counters for /metrics and `osprey status`.
import { hostname } from 'node:os';
import type { Attributes, Span } from '../model/index.js';
import type { MetricFamily } from '../metrics/prometheus.js';
import { describeTarget, type ExportConfig } from './config.js';
import { MetricsExporter } from './metrics-exporter.js';
import { DROP_REASONS, SpanExporter } from './span-exporter.js';

export interface ExporterOptions {
  config: ExportConfig;
  /** the span-derived families (the metrics generator's); only Tempo's traces_* names are exported */
  metricFamilies?: () => MetricFamily[];
  /** extra resource attributes of osprey's own metrics (k8s.node.name …) */
  resource?: Attributes;
  log?: (line: string) => void;
}

/** the families a downstream Mimir/Prometheus should get: Tempo's, not osprey's internals */
export function exportFamilies(families: MetricFamily[]): MetricFamily[] {
  return families.filter((f) => f.name.startsWith('traces_'));
}

export class Exporter {
  readonly spans: SpanExporter | undefined;
  readonly metrics: MetricsExporter | undefined;
  readonly config: ExportConfig;

  constructor(opts: ExporterOptions) {
    const { config } = opts;
    this.config = config;
    const log = opts.log ?? (() => {});
    this.spans = config.traces ? new SpanExporter({ target: config.traces, queueBytes: config.queueBytes, log }) : undefined;
    const families = opts.metricFamilies;
    this.metrics =
      config.metrics && families
        ? new MetricsExporter({
            target: config.metrics,
            intervalMs: config.metricsIntervalMs,
            families: () => exportFamilies(families()),
            resource: { 'service.name': 'osprey', 'service.instance.id': hostname(), 'host.name': hostname(), ...opts.resource },
            log,
          }).start()
        : undefined;
  }

  /** one line for the start-up log */
  describe(): string {
    const parts: string[] = [];
    if (this.config.traces) parts.push(`traces → ${describeTarget(this.config.traces)} (queue ${Math.round(this.config.queueBytes / 2 ** 20)} MiB)`);
    if (this.metrics && this.config.metrics) parts.push(`metrics → ${describeTarget(this.config.metrics)} every ${this.config.metricsIntervalMs / 1000} s`);
    return parts.join('; ');
  }

  /** the final tally, for the exit log: consumed = sent + every dropped */
  summary(): string {
    const c = this.spans?.counters;
    if (!c) return '';
    return `${c.consumed} spans consumed, ${c.sent} sent, dropped ${DROP_REASONS.map((r) => `${r}=${c.dropped[r]}`).join(' ')}`;
  }

  consume(spans: readonly Span[]): void {
    this.spans?.consume(spans);
  }

  async shutdown(): Promise<void> {
    await Promise.all([this.spans?.shutdown(), this.metrics?.shutdown()]);
  }

  /** flat counters for `osprey status` (export_*) */
  statusCounters(): Record<string, number> {
    const out: Record<string, number> = {};
    const s = this.spans;
    if (s) {
      const c = s.counters;
      out.export_spans_consumed = c.consumed;
      out.export_spans_sent = c.sent;
      out.export_spans_retried = c.retried;
      for (const r of DROP_REASONS) out[`export_spans_dropped_${r}`] = c.dropped[r];
      out.export_spans_queued = s.queuedSpans + s.openSpans;
      out.export_queue_bytes = s.queuedBytes;
      out.export_queue_limit_bytes = s.queueLimitBytes;
      out.export_requests = c.requests;
      out.export_retries = c.retries;
      out.export_bytes_sent = c.sentBytes;
    }
    const m = this.metrics;
    if (m) {
      out.export_metric_exports = m.counters.exports;
      out.export_metric_exports_failed = m.counters.failed;
      out.export_metric_points_sent = m.counters.points;
      out.export_metric_points_rejected = m.counters.pointsRejected;
    }
    return out;
  }

  /** osprey_export_* families for /metrics */
  families(): MetricFamily[] {
    const out: MetricFamily[] = [];
    const s = this.spans;
    if (s) {
      const c = s.counters;
      const one = (name: string, help: string, value: number, type: 'counter' | 'gauge' = 'counter'): MetricFamily => ({ name, help, type, samples: [{ value }] });
      out.push(
        one('osprey_export_spans_consumed_total', 'Spans handed to the OTLP exporter.', c.consumed),
        one('osprey_export_sent_spans_total', 'Spans the collector accepted.', c.sent),
        one('osprey_export_retried_spans_total', 'Span deliveries tried again after a retryable failure (a batch of n spans retried once adds n).', c.retried),
        {
          name: 'osprey_export_dropped_spans_total',
          help: 'Spans that will never be delivered, by reason: queue_full (the export queue budget was used up), rejected (the collector refused the batch for good), partial_rejected (refused inside an accepted batch), encode_error, shutdown (left at exit).',
          type: 'counter',
          samples: DROP_REASONS.map((reason) => ({ labels: { reason }, value: c.dropped[reason] })),
        },
        one('osprey_export_queue_spans', 'Spans waiting to be exported (open batch and queue).', s.queuedSpans + s.openSpans, 'gauge'),
        one('osprey_export_queue_bytes', 'Bytes of encoded spans in the export queue.', s.queuedBytes, 'gauge'),
        one('osprey_export_queue_limit_bytes', 'The export queue budget (--export-queue).', s.queueLimitBytes, 'gauge'),
        one('osprey_export_requests_total', 'Export requests delivered.', c.requests),
        one('osprey_export_retries_total', 'Export requests that failed and were tried again.', c.retries),
        one('osprey_export_sent_bytes_total', 'Bytes delivered to the collector (compressed when compression is on).', c.sentBytes),
      );
    }
    const m = this.metrics;
    if (m) {
      out.push({
        name: 'osprey_export_metric_exports_total',
        help: 'Metric exports by outcome (a failed export is made good by the next: values are cumulative).',
        type: 'counter',
        samples: [
          { labels: { outcome: 'sent' }, value: m.counters.exports },
          { labels: { outcome: 'failed' }, value: m.counters.failed },
        ],
      });
      out.push({ name: 'osprey_export_metric_points_total', help: 'Metric data points the collector accepted.', type: 'counter', samples: [{ value: m.counters.points }] });
    }
    return out;
  }
}
