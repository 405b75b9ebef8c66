// RED metrics and the service graph from finished spans, with Tempo metrics-generator names so
// existing Grafana dashboards and the service map work on osprey's /metrics:
//   traces_spanmetrics_calls_total, traces_spanmetrics_latency_{bucket,sum,count}
//   traces_service_graph_request_total, traces_service_graph_request_failed_total,
//   traces_service_graph_request_{server,client}_seconds_{bucket,sum,count}
// Not produced: traces_spanmetrics_size_total (Tempo adds the span's protobuf size; osprey
// spans are never protobuf-encoded on this path), exemplars (the 0.0.4 text format has none),
// traces_target_info (off by default in Tempo).
//
// consume() runs on the agent's hot path: per span a few Map lookups and array writes, no
// string building once a series exists. Everything is bounded: series per processor
// (maxSeries) and span names per service (maxNamesPerService), beyond which observations go to
// an overflow series {otel_metric_overflow="true"} and osprey_metrics_series_dropped_total
// counts them (totals stay exact), pending service-graph edges (maxItems,
// then osprey_service_graph_dropped_spans_total), stale series are forgotten after 15 min.
import type { Span } from '../model/index.js';
import type { MetricFamily } from './prometheus.js';
import { spanService } from './series.js';
import { ServiceGraph, type ServiceGraphOptions } from './servicegraph.js';
import { SpanMetrics } from './spanmetrics.js';

export interface MetricsGeneratorOptions {
  /** most series per processor (span metrics; service graph) (default 10000); beyond, the overflow series */
  maxSeries?: number;
  /** span metrics: most span names per service (default 1000); beyond, the service's overflow series */
  maxNamesPerService?: number;
  /** service graph: how long an edge waits for its other half, ms (default 10000) */
  waitMs?: number;
  /** service graph: most pending edges (default 10000; a store sharing the graph raises it to its own, DuckStore.shareServiceGraph) */
  maxItems?: number;
  spanBuckets?: readonly number[];
  graphBuckets?: ServiceGraphOptions['buckets'];
  /** series not updated for this long are forgotten, ms (Tempo stale_duration, default 15 min; 0 = never) */
  staleMs?: number;
  /** spans that ended more than this long ago are ignored, ms: Tempo's
   *  metrics_ingestion_time_range_slack (30 s there). Default 0 = accept any age: this generator
   *  is fed by the local agent and its samples carry no timestamps, so a late span still belongs
   *  in the counters; with a 30 s slack an agent that falls behind under overload would drop its
   *  RED metrics exactly when they matter (seen in the Prometheus e2e test under a concurrent
   *  benchmark: 226,670 of 227,061 spans ignored). */
  ingestionSlackMs?: number;
  /** how often start() expires edges and sweeps stale series, ms (Tempo: 2 s) */
  intervalMs?: number;
  /** wall clock in ms (tests) */
  now?: () => number;
}

export class MetricsGenerator {
  readonly spanMetrics: SpanMetrics;
  readonly serviceGraph: ServiceGraph;
  /** spans seen; spans ignored as older than the ingestion slack */
  spans = 0;
  spansTooOld = 0;
  readonly #now: () => number;
  readonly #staleMs: number;
  readonly #slackMs: number;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: MetricsGeneratorOptions = {}) {
    this.spanMetrics = new SpanMetrics({ maxSeries: opts.maxSeries, maxNamesPerService: opts.maxNamesPerService, buckets: opts.spanBuckets });
    this.serviceGraph = new ServiceGraph({ maxSeries: opts.maxSeries, waitMs: opts.waitMs, maxItems: opts.maxItems, buckets: opts.graphBuckets });
    this.#now = opts.now ?? Date.now;
    this.#staleMs = opts.staleMs ?? 15 * 60_000;
    this.#slackMs = opts.ingestionSlackMs ?? 0;
    this.#intervalMs = opts.intervalMs ?? 2000;
  }

  /** one batch of finished spans (the agent's sink) */
  consume(spans: readonly Span[]): void {
    const now = this.#now();
    // end times are compared as float ns: ~µs precision, plenty for a 30 s window
    const oldestEndNs = this.#slackMs > 0 ? (now - this.#slackMs) * 1e6 : -Infinity;
    const sm = this.spanMetrics;
    const sg = this.serviceGraph;
    this.spans += spans.length;
    for (let i = 0; i < spans.length; i++) {
      const span = spans[i]!;
      if (oldestEndNs > 0 && span.startMs * 1e6 + span.durationNano < oldestEndNs) {
        this.spansTooOld++;
        continue;
      }
      const service = spanService(span.resource);
      sm.observe(service, span, now);
      // the service graph skips resources without service.name
      if (service !== '') sg.observe(service, span, now);
    }
  }

  /** expires service-graph edges whose wait is over, forgets stale series */
  tick(): void {
    const now = this.#now();
    this.serviceGraph.expire(now);
    if (this.#staleMs > 0) {
      this.spanMetrics.sweep(now - this.#staleMs);
      this.serviceGraph.sweep(now - this.#staleMs);
    }
  }

  /** runs tick() every intervalMs (the timer does not keep the process alive) */
  start(): this {
    if (!this.#timer) {
      this.#timer = setInterval(() => this.tick(), this.#intervalMs);
      this.#timer.unref();
    }
    return this;
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Tempo-named families plus osprey's own counters of what the generator dropped */
  families(): MetricFamily[] {
    const g = this.serviceGraph.counters;
    return [
      ...this.spanMetrics.families(),
      ...this.serviceGraph.families(),
      {
        name: 'osprey_metrics_series_dropped_total',
        help: 'Observations counted in an overflow series (otel_metric_overflow="true") instead of their own, which would pass a cardinality limit (span-metrics: spans; service-graphs: edges).',
        type: 'counter',
        samples: [
          { labels: { processor: 'span-metrics' }, value: this.spanMetrics.seriesDropped },
          { labels: { processor: 'service-graphs' }, value: g.seriesDropped },
        ],
      },
      {
        name: 'osprey_metrics_spans_too_old_total',
        help: 'Spans ignored by the metrics generator because they ended before its ingestion slack (off by default).',
        type: 'counter',
        samples: [{ value: this.spansTooOld }],
      },
      {
        name: 'osprey_service_graph_dropped_spans_total',
        help: 'Spans not paired because the pending service-graph edges were at their limit.',
        type: 'counter',
        samples: [{ value: g.droppedSpans }],
      },
      {
        name: 'osprey_service_graph_expired_edges_total',
        help: 'Service-graph edges that found no pair in time and made no series.',
        type: 'counter',
        samples: [{ value: g.expired }],
      },
      {
        name: 'osprey_service_graph_pending_edges',
        help: 'Service-graph edges waiting for their other half.',
        type: 'gauge',
        samples: [{ value: this.serviceGraph.pending }],
      },
      {
        name: 'osprey_metrics_series',
        help: 'Series kept by the metrics generator, per processor.',
        type: 'gauge',
        samples: [
          { labels: { processor: 'span-metrics' }, value: this.spanMetrics.seriesCount },
          { labels: { processor: 'service-graphs' }, value: this.serviceGraph.seriesCount },
        ],
      },
    ];
  }
}
