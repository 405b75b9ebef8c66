// Tempo's span-metrics processor: per (service, span_name, span_kind, status_code) a call
// counter and a latency histogram (seconds). Series are found through nested Maps
// (service -> span name -> 18 kind×status slots): no per-span string building or allocation once
// a series exists.
//
// Cardinality is bounded twice, and neither bound loses a count (OpenTelemetry's overflow rule):
// - per service, at most `maxNamesPerService` span names; the spans of further names are
//   counted in the service's overflow series {service, span_kind, status_code,
//   otel_metric_overflow="true"} (no span_name), so the service's RED stays exact;
// - overall, at most `maxSeries` series; beyond, spans go to the one series
//   {otel_metric_overflow="true"}.
// Route templating (src/agent: ids, hashes, numbers → {id}) keeps names low in the first place.
import type { Span } from '../model/index.js';
import type { MetricFamily } from './prometheus.js';
import { boundsToNs, KIND_LABELS, kindIndex, labelValue, NsHistogram, OVERFLOW_KEY, OVERFLOW_LABEL, SPAN_METRICS_BUCKETS, STATUS_LABELS, statusIndex, sweepNested } from './series.js';

interface SpanSeries {
  readonly labels: Readonly<Record<string, string>>;
  readonly hist: NsHistogram;
  /** ms of the last update, for staleness */
  last: number;
}

const SLOTS = KIND_LABELS.length * STATUS_LABELS.length;

export interface SpanMetricsOptions {
  /** most series (label sets) kept; a span that needs one more is counted in the overflow series (default 10000) */
  maxSeries?: number;
  /** most span names per service; further names are counted in the service's overflow series (default 1000) */
  maxNamesPerService?: number;
  /** latency buckets in seconds (default Tempo's 0.002·2^k, k < 14) */
  buckets?: readonly number[];
}

export class SpanMetrics {
  readonly bounds: readonly number[];
  /** spans counted in an overflow series because their own would pass maxSeries or maxNamesPerService */
  seriesDropped = 0;
  readonly #boundsNs: Float64Array;
  readonly #maxSeries: number;
  readonly #maxNames: number;
  #overflow: SpanSeries | undefined;
  readonly #byService = new Map<string, Map<string, (SpanSeries | undefined)[]>>();
  #series = 0;

  constructor(opts: SpanMetricsOptions = {}) {
    this.bounds = opts.buckets ?? SPAN_METRICS_BUCKETS;
    this.#boundsNs = boundsToNs(this.bounds);
    this.#maxSeries = opts.maxSeries ?? 10_000;
    this.#maxNames = opts.maxNamesPerService ?? 1000;
  }

  get seriesCount(): number {
    return this.#series;
  }

  /** service: resource service.name ('' when absent: the label is then left out) */
  observe(service: string, span: Span, now: number): void {
    // containers (the service's map, a name's slots) are made only for a series that will exist:
    // past the limits nothing new is allocated, whatever the names
    let byName = this.#byService.get(service);
    let name = span.name;
    let slots = byName?.get(name);
    if (slots === undefined) {
      name = labelValue(name);
      slots = byName?.get(name);
      if (slots === undefined && byName !== undefined && byName.size - (byName.has(OVERFLOW_KEY) ? 1 : 0) >= this.#maxNames) {
        name = OVERFLOW_KEY;
        slots = byName.get(name);
      }
    }
    const k = kindIndex(span.kind);
    const st = statusIndex(span.status);
    const slot = k * STATUS_LABELS.length + st;
    // a negative duration counts as 0
    const ns = span.durationNano > 0 ? span.durationNano : 0;
    let s = slots?.[slot];
    if (name === OVERFLOW_KEY) this.seriesDropped++;
    if (s === undefined) {
      if (this.#series >= this.#maxSeries) {
        if (name !== OVERFLOW_KEY) this.seriesDropped++;
        s = this.#overflow ??= { labels: Object.freeze({ [OVERFLOW_LABEL]: 'true' }), hist: new NsHistogram(this.#boundsNs), last: now };
        s.last = now;
        s.hist.observe(ns, this.#boundsNs);
        return;
      }
      if (byName === undefined) {
        byName = new Map();
        this.#byService.set(service, byName);
      }
      if (slots === undefined) {
        slots = new Array<SpanSeries | undefined>(SLOTS).fill(undefined);
        byName.set(name, slots);
      }
      // Tempo's rule "write a 0 sample at the end of the previous minute before the first real
      // value of a new counter series" exists because remote write pushes timestamped samples and
      // rate()/increase() would lose the first increment. A pull exposition cannot write a sample
      // in the past: a new series simply starts at 0 here and the scraper sees its cumulative value
      // from its first scrape on, as with every Prometheus client library.
      const labels: Record<string, string> =
        name === OVERFLOW_KEY
          ? { service, span_kind: KIND_LABELS[k]!, status_code: STATUS_LABELS[st]!, [OVERFLOW_LABEL]: 'true' }
          : { service, span_name: name, span_kind: KIND_LABELS[k]!, status_code: STATUS_LABELS[st]! };
      const created: SpanSeries = { labels: Object.freeze(labels), hist: new NsHistogram(this.#boundsNs), last: now };
      slots[slot] = created;
      this.#series++;
      s = created;
    }
    s.last = now;
    s.hist.observe(ns, this.#boundsNs);
  }

  /** forgets series not updated since `before` (ms), as Tempo's registry stale_duration does */
  sweep(before: number): number {
    if (this.#overflow && this.#overflow.last < before) this.#overflow = undefined;
    const removed = sweepNested(this.#byService, before);
    this.#series -= removed;
    return removed;
  }

  #all(): SpanSeries[] {
    const out: SpanSeries[] = [];
    for (const byName of this.#byService.values()) for (const slots of byName.values()) for (const s of slots) if (s) out.push(s);
    if (this.#overflow) out.push(this.#overflow);
    return out;
  }

  families(): MetricFamily[] {
    const all = this.#all();
    return [
      {
        name: 'traces_spanmetrics_calls_total',
        help: 'Spans by service, span name, kind and status (Tempo span metrics).',
        type: 'counter',
        samples: all.map((s) => ({ labels: s.labels, value: s.hist.count })),
      },
      {
        name: 'traces_spanmetrics_latency',
        help: 'Span duration in seconds (Tempo span metrics).',
        type: 'histogram',
        bounds: this.bounds,
        samples: all.map((s) => ({ labels: s.labels, counts: s.hist.counts, sum: s.hist.sumNs / 1e9, count: s.hist.count })),
      },
    ];
  }
}
