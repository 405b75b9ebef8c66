// The span model shared by the agent, the store, the server and the CLI.
// Field names and meanings follow the public span JSON in ARCHITECTURE.md.

export type SpanKind = 'server' | 'client' | 'internal' | 'producer' | 'consumer' | 'unspecified';
export type SpanStatus = 'ok' | 'error' | 'unset';
export type AttrValue = string | number | boolean;
export type Attributes = Record<string, AttrValue>;

/** Which source gave a span its parent (attribute `osprey.link`). */
export type LinkSource = 'traceparent' | 'tuple' | 'thread' | 'none';

export interface Span {
  traceId: string; // 32 lowercase hex
  spanId: string; // 16 lowercase hex
  parentSpanId: string; // 16 lowercase hex or ''
  name: string;
  kind: SpanKind;
  startTimeUnixNano: bigint;
  durationNano: number;
  status: SpanStatus;
  statusMessage?: string;
  resource: Attributes; // service.name, process.pid (number), ...
  attributes: Attributes;
}

/** The public JSON shape of a span (CLI --json, osprey HTTP API). */
export interface SpanJson {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: SpanKind;
  startTimeUnixNano: string;
  durationNano: number;
  status: SpanStatus;
  resource: Attributes;
  attributes: Attributes;
}

export function spanToJson(s: Span): SpanJson {
  return {
    traceId: s.traceId,
    spanId: s.spanId,
    parentSpanId: s.parentSpanId,
    name: s.name,
    kind: s.kind,
    startTimeUnixNano: s.startTimeUnixNano.toString(),
    durationNano: s.durationNano,
    status: s.status,
    resource: s.resource,
    attributes: s.attributes,
  };
}
