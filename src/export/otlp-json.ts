// Spans as OTLP/JSON ResourceSpans (hex ids, string int64s, int enums), the
// shape Tempo's JSON trace API and OTLP/HTTP JSON share.
import type { AttrValue, Attributes, Span, SpanKind } from '../model/index.js';

export interface OtlpAnyValue {
  stringValue?: string;
  intValue?: string;
  doubleValue?: number;
  boolValue?: boolean;
}
export interface OtlpKeyValue {
  key: string;
  value: OtlpAnyValue;
}

const KIND: Record<SpanKind, number> = { unspecified: 0, internal: 1, server: 2, client: 3, producer: 4, consumer: 5 };
const STATUS = { unset: 0, ok: 1, error: 2 } as const;

export function anyValue(v: AttrValue): OtlpAnyValue {
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  return Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v };
}

export function keyValues(a: Attributes): OtlpKeyValue[] {
  return Object.entries(a).map(([key, v]) => ({ key, value: anyValue(v) }));
}

export function toResourceSpans(spans: readonly Span[]): unknown[] {
  const byResource = new Map<string, { resource: Attributes; spans: Span[] }>();
  for (const s of spans) {
    const k = JSON.stringify(s.resource);
    const g = byResource.get(k);
    if (g) g.spans.push(s);
    else byResource.set(k, { resource: s.resource, spans: [s] });
  }
  return [...byResource.values()].map((g) => ({
    resource: { attributes: keyValues(g.resource) },
    scopeSpans: [
      {
        scope: { name: 'osprey', version: '0.1.0' },
        spans: g.spans.map((s) => ({
          traceId: s.traceId,
          spanId: s.spanId,
          ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
          name: s.name,
          kind: KIND[s.kind],
          startTimeUnixNano: s.startTimeUnixNano.toString(),
          endTimeUnixNano: (s.startTimeUnixNano + BigInt(s.durationNano)).toString(),
          attributes: keyValues(s.attributes),
          ...(s.events !== undefined ? { events: s.events.map((e) => ({ timeUnixNano: e.timeUnixNano.toString(), name: e.name, attributes: keyValues(e.attributes) })) } : {}),
          ...(s.droppedEvents ? { droppedEventsCount: s.droppedEvents } : {}),
          ...(s.links !== undefined ? { links: s.links.map((l) => ({ traceId: l.traceId, spanId: l.spanId, attributes: keyValues(l.attributes) })) } : {}),
          ...(s.droppedLinks ? { droppedLinksCount: s.droppedLinks } : {}),
          status: { code: STATUS[s.status], ...(s.statusMessage ? { message: s.statusMessage } : {}) },
        })),
      },
    ],
  }));
}
