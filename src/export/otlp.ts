// Osprey's spans and metric families as OTLP protobuf: the one place that maps the span model
// onto OTLP (the lead adapts this module when the model changes; otlp-json.ts shares the enums).
//
// The bytes come from the official encoder, @opentelemetry/otlp-transformer's
// ProtobufTraceSerializer / ProtobufMetricsSerializer, which write protobuf straight from the
// SDK's data shapes (ReadableSpan, ResourceMetrics) without an intermediate message tree.
// Why not the SDK's own span pipeline (Tracer → Span → BatchSpanProcessor → OTLPTraceExporter):
// every span would become an SDK Span object (clock reads, attribute copies and limits, a
// context, the processor's own unbounded-in-time retry and a queue counted in spans), built on
// the agent's hot path and kept for the whole batch window. Here a span stays an osprey Span
// until its batch is encoded; only then does it get a short-lived view with the fields the
// serializer reads (SpanView below), which dies with the encode call.
import { ValueType } from '@opentelemetry/api';
import { ProtobufMetricsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { AggregationTemporality, DataPointType, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { Attributes, Span, SpanKind, SpanStatus } from '../agent/span.js';
import type { MetricFamily } from '../metrics/prometheus.js';

/** OTLP Span.SpanKind numbers (proto enum) */
export const OTLP_SPAN_KIND: Readonly<Record<SpanKind, number>> = { unspecified: 0, internal: 1, server: 2, client: 3, producer: 4, consumer: 5 };
/** OTLP Status.StatusCode numbers (proto enum) */
export const OTLP_STATUS_CODE: Readonly<Record<SpanStatus, number>> = { unset: 0, ok: 1, error: 2 };

export const SCOPE = Object.freeze({ name: 'osprey', version: '0.1.0' });

// the serializer takes @opentelemetry/api's SpanKind (INTERNAL = 0 … CONSUMER = 4) and writes
// kind + 1; undefined is written as SPAN_KIND_UNSPECIFIED
const API_KIND: Readonly<Record<SpanKind, number | undefined>> = { unspecified: undefined, internal: 0, server: 1, client: 2, producer: 3, consumer: 4 };
const NO_EVENTS: readonly never[] = Object.freeze([]);
const STATUS: Readonly<Record<SpanStatus, { code: number }>> = {
  unset: Object.freeze({ code: 0 }),
  ok: Object.freeze({ code: 1 }),
  error: Object.freeze({ code: 2 }),
};
const SAMPLED = 1;

type HrTime = [number, number];
const NS_PER_S = 1_000_000_000n;

function hrTime(ns: bigint): HrTime {
  return [Number(ns / NS_PER_S), Number(ns % NS_PER_S)];
}

interface ResourceView {
  attributes: Attributes;
}

// Spans of one process share their resource object; the serializer groups ResourceSpans by
// object identity, so one view per resource object keeps them in one group.
const resourceViews = new WeakMap<Attributes, ResourceView>();
function resourceView(r: Attributes): ResourceView {
  let v = resourceViews.get(r);
  if (v === undefined) {
    v = { attributes: r };
    resourceViews.set(r, v);
  }
  return v;
}

/** the fields of an SDK ReadableSpan that ProtobufTraceSerializer reads, over an osprey Span */
class SpanView {
  readonly name: string;
  readonly kind: number | undefined;
  readonly startTime: HrTime;
  readonly endTime: HrTime;
  readonly attributes: Attributes;
  readonly status: { code: number; message?: string };
  readonly resource: ResourceView;
  readonly instrumentationScope = SCOPE;
  readonly parentSpanContext: { spanId: string; isRemote: boolean } | undefined;
  readonly events = NO_EVENTS;
  readonly links = NO_EVENTS;
  readonly droppedAttributesCount = 0;
  readonly droppedEventsCount = 0;
  readonly droppedLinksCount = 0;
  readonly #ctx: { traceId: string; spanId: string; traceFlags: number };

  constructor(s: Span) {
    this.#ctx = { traceId: s.traceId, spanId: s.spanId, traceFlags: SAMPLED };
    this.name = s.name;
    this.kind = API_KIND[s.kind];
    this.startTime = hrTime(s.startTimeUnixNano);
    this.endTime = hrTime(s.startTimeUnixNano + BigInt(s.durationNano > 0 ? s.durationNano : 0));
    this.attributes = s.attributes;
    this.status = s.statusMessage ? { code: OTLP_STATUS_CODE[s.status], message: s.statusMessage } : STATUS[s.status];
    this.resource = resourceView(s.resource);
    // a parent found through the thread rule is in the same process; every other rule links
    // across processes (a traceparent header, a connection's 4-tuple)
    this.parentSpanContext = s.parentSpanId ? { spanId: s.parentSpanId, isRemote: s.attributes['osprey.link'] !== 'thread' } : undefined;
  }

  spanContext(): { traceId: string; spanId: string; traceFlags: number } {
    return this.#ctx;
  }
}

/** ExportTraceServiceRequest bytes for a batch of spans (grouped by resource) */
export function encodeSpans(spans: readonly Span[]): Uint8Array {
  const views = new Array<SpanView>(spans.length);
  for (let i = 0; i < spans.length; i++) views[i] = new SpanView(spans[i]!);
  // the serializer's parameter is the SDK's ReadableSpan; SpanView has every field it reads
  const bytes = ProtobufTraceSerializer.serializeRequest(views as unknown as Parameters<typeof ProtobufTraceSerializer.serializeRequest>[0]);
  return bytes ?? new Uint8Array(0);
}

/** partial_success.rejected_spans of an ExportTraceServiceResponse (0 when absent or undecodable) */
export function rejectedSpans(response: Uint8Array | undefined): { rejected: number; message: string } {
  if (!response || response.length === 0) return { rejected: 0, message: '' };
  try {
    const r = ProtobufTraceSerializer.deserializeResponse(response);
    return { rejected: Number(r.partialSuccess?.rejectedSpans ?? 0), message: r.partialSuccess?.errorMessage ?? '' };
  } catch {
    return { rejected: 0, message: '' };
  }
}

/** partial_success.rejected_data_points of an ExportMetricsServiceResponse */
export function rejectedDataPoints(response: Uint8Array | undefined): { rejected: number; message: string } {
  if (!response || response.length === 0) return { rejected: 0, message: '' };
  try {
    const r = ProtobufMetricsSerializer.deserializeResponse(response);
    return { rejected: Number(r.partialSuccess?.rejectedDataPoints ?? 0), message: r.partialSuccess?.errorMessage ?? '' };
  } catch {
    return { rejected: 0, message: '' };
  }
}

/**
 * Metric families (Prometheus names, as /metrics shows them) as one ExportMetricsServiceRequest,
 * cumulative since `startNs`. Names are kept as they are, so that a Prometheus remote-write
 * exporter downstream writes Tempo's series names: a monotonic Sum already named `…_total`
 * gets no second suffix, and no unit is set (a unit would add `_seconds` to
 * `traces_spanmetrics_latency`). Empty label values are left out, as on /metrics.
 */
export function encodeMetrics(families: readonly MetricFamily[], resource: Attributes, startNs: bigint, nowNs: bigint): { bytes: Uint8Array; points: number } {
  const startTime = hrTime(startNs);
  const endTime = hrTime(nowNs);
  let points = 0;
  const metrics: ResourceMetrics['scopeMetrics'][number]['metrics'] = [];
  for (const f of families) {
    const descriptor = { name: f.name, description: f.help, unit: '', valueType: ValueType.DOUBLE };
    if (f.type === 'histogram') {
      if (f.samples.length === 0) continue;
      points += f.samples.length;
      metrics.push({
        descriptor,
        dataPointType: DataPointType.HISTOGRAM,
        aggregationTemporality: AggregationTemporality.CUMULATIVE,
        dataPoints: f.samples.map((s) => ({
          attributes: nonEmpty(s.labels),
          startTime,
          endTime,
          value: { count: s.count, sum: s.sum, buckets: { boundaries: f.bounds as number[], counts: s.counts as number[] } },
        })),
      });
    } else {
      if (f.samples.length === 0) continue;
      points += f.samples.length;
      const dataPoints = f.samples.map((s) => ({ attributes: nonEmpty(s.labels), startTime, endTime, value: Number.isFinite(s.value) ? s.value : 0 }));
      metrics.push(
        f.type === 'counter'
          ? { descriptor, dataPointType: DataPointType.SUM, isMonotonic: true, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPoints }
          : { descriptor, dataPointType: DataPointType.GAUGE, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPoints },
      );
    }
  }
  const request = { resource: { attributes: resource }, scopeMetrics: [{ scope: SCOPE, metrics }] };
  const bytes = ProtobufMetricsSerializer.serializeRequest(request as unknown as ResourceMetrics);
  return { bytes: bytes ?? new Uint8Array(0), points };
}

function nonEmpty(labels: Record<string, string> | undefined): Attributes {
  const out: Attributes = {};
  if (labels) for (const k in labels) if (labels[k]) out[k] = labels[k];
  return out;
}
