// Pieces shared by the span-metrics and service-graph processors: Tempo's default buckets,
// a classic histogram kept in integer nanoseconds, attribute lookups as Tempo does them.
import type { AttrValue, Attributes, Span, SpanKind, SpanStatus } from '../model/index.js';

/** prometheus.ExponentialBuckets(start, factor, count) */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  const out: number[] = [];
  let b = start;
  for (let i = 0; i < count; i++, b *= factor) out.push(b);
  return out;
}

/** Tempo span metrics: 0.002 … 16.384 s (14 buckets, + Inf) */
export const SPAN_METRICS_BUCKETS: readonly number[] = Object.freeze(exponentialBuckets(0.002, 2, 14));
/** Tempo service graphs: 0.1 … 12.8 s (8 buckets, + Inf) */
export const SERVICE_GRAPH_BUCKETS: readonly number[] = Object.freeze(exponentialBuckets(0.1, 2, 8));

/** Tempo's registry.max_label_value_length: longer values are cut (before they key a series) */
export const MAX_LABEL_VALUE_LENGTH = 2048;

/** a classic histogram whose observations are integer nanoseconds; exposed in seconds */
export class NsHistogram {
  /** per bucket, not cumulative; the last slot is +Inf */
  readonly counts: Float64Array;
  /**
   * [sum of the observations in ns, their number], in a typed array rather than two number
   * fields: a field that starts as a small integer and later holds more than 2^30 (a sum of ns
   * does within a second) changes the class's object layout in V8, and histograms made before
   * then can keep the old, deprecated one for as long as they live (/metrics series: the agent's
   * life). TurboFan throws away code built against a deprecated layout, so it compiled
   * ServiceGraph's #complete again every ~0.6 s while they lived (docs/benchmarks.md, session 11).
   * Typed-array elements have one representation: the layout never changes.
   */
  readonly #totals = new Float64Array(2);

  constructor(boundsNs: Float64Array) {
    this.counts = new Float64Array(boundsNs.length + 1);
  }

  get sumNs(): number {
    return this.#totals[0]!;
  }

  get count(): number {
    return this.#totals[1]!;
  }

  /**
   * ns: a non-negative duration; boundsNs: the same array the histogram was made with.
   * weight -1 takes an observation out again (the store's retention does, src/store/retention.ts).
   */
  observe(ns: number, boundsNs: Float64Array, weight = 1): void {
    // a linear scan: most spans are short and land in the first few buckets
    let i = 0;
    const n = boundsNs.length;
    while (i < n && ns > boundsNs[i]!) i++;
    this.counts[i]! += weight;
    this.#totals[0]! += ns * weight;
    this.#totals[1]! += weight;
  }

  /** adds another histogram's observations (same bounds) */
  merge(counts: ArrayLike<number>, sumNs: number, count: number): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i]! += counts[i] ?? 0;
    this.#totals[0]! += sumNs;
    this.#totals[1]! += count;
  }
}

/** bucket bounds in seconds -> integer nanoseconds (exact for Tempo's defaults) */
export function boundsToNs(bounds: readonly number[]): Float64Array {
  return Float64Array.from(bounds, (b) => Math.round(b * 1e9));
}

/** Tempo's span_kind label values */
export function kindIndex(k: SpanKind): number {
  switch (k) {
    case 'unspecified':
      return 0;
    case 'internal':
      return 1;
    case 'server':
      return 2;
    case 'client':
      return 3;
    case 'producer':
      return 4;
    case 'consumer':
      return 5;
    default:
      return 0;
  }
}
export const KIND_LABELS = ['SPAN_KIND_UNSPECIFIED', 'SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER', 'SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'] as const;

export function statusIndex(s: SpanStatus): number {
  return s === 'error' ? 2 : s === 'ok' ? 1 : 0;
}
export const STATUS_LABELS = ['STATUS_CODE_UNSET', 'STATUS_CODE_OK', 'STATUS_CODE_ERROR'] as const;

/** an attribute value as a label value (Tempo's StringifyAnyValue for scalars); '' when absent */
export function attrString(v: AttrValue | undefined): string {
  if (v === undefined) return '';
  const s = typeof v === 'string' ? v : String(v);
  return s.length > MAX_LABEL_VALUE_LENGTH ? s.slice(0, MAX_LABEL_VALUE_LENGTH) : s;
}

/** The service a span is counted under, by /metrics and by the store's rollups alike: the
 *  resource's service.name as a label value ('' when absent). */
export function spanService(resource: Attributes): string {
  const svc = resource['service.name'];
  return typeof svc === 'string' ? labelValue(svc) : attrString(svc);
}

/** Tempo's FindAttributeValue(key, resource, span attributes): the first non-empty value wins */
export function findAttr(key: string, first: Attributes | undefined, span?: Span): string {
  if (first) {
    const a = first[key];
    if (a !== undefined && a !== '') return attrString(a);
  }
  if (span) {
    const b = span.attr(key);
    if (b !== undefined && b !== '') return attrString(b);
  }
  return '';
}

/** a label value used as a series key: cut to Tempo's maximum length */
export function labelValue(s: string): string {
  return s.length > MAX_LABEL_VALUE_LENGTH ? s.slice(0, MAX_LABEL_VALUE_LENGTH) : s;
}

/**
 * The label of an overflow series (the OpenTelemetry SDKs' `otel.metric.overflow` as a Prometheus
 * label): observations whose own series would pass a cardinality limit are counted there, so
 * totals stay exact while the number of series stays bounded.
 */
export const OVERFLOW_LABEL = 'otel_metric_overflow';
/** the span-name key of a service's overflow series (cannot come from a span: names never hold NUL) */
export const OVERFLOW_KEY = '\u0000overflow';

/** series slots keyed by two labels (service -> span name, client -> server) */
export type NestedSlots<T> = Map<string, Map<string, (T | undefined)[]>>;

/** forgets slots not updated since `before` (ms) and empty maps; returns how many went */
export function sweepNested<T extends { last: number }>(series: NestedSlots<T>, before: number): number {
  let removed = 0;
  for (const [outer, inner] of series) {
    for (const [key, slots] of inner) {
      let left = 0;
      for (let i = 0; i < slots.length; i++) {
        const s = slots[i];
        if (s === undefined) continue;
        if (s.last < before) {
          slots[i] = undefined;
          removed++;
        } else left++;
      }
      if (left === 0) inner.delete(key);
    }
    if (inner.size === 0) series.delete(outer);
  }
  return removed;
}
