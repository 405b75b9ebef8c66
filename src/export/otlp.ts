// Osprey's spans and metric families as OTLP protobuf: the one place that maps the span model
// onto OTLP (the lead adapts this module when the model changes; otlp-json.ts shares the enums).
//
// Spans (the hot half of the export path) are written by encodeSpans() below, in one pass,
// into exactly the bytes the official encoder, @opentelemetry/otlp-transformer's
// ProtobufTraceSerializer, writes for the same spans: same fields, same order, zero counts
// included. otlp.test.ts checks that byte for byte against the official serializer
// (encodeSpansOfficial(), kept for that) on real and edge-case spans, so the official encoder
// stays the reference. Why not call the official serializer on the hot path: it measures every
// message and then writes it (two passes) and encodes every attribute key and value character
// by character each time, from the public span shape (hex ids, BigInt times, an attribute
// object built per read); with osprey's ~15 attributes per span that was 8.4 µs per span, more
// than the whole agent spends on a span, against 2.5 µs here (bench/export.mjs). Here attribute keys are encoded
// once and cached, ids and times come from the span's words, the hot attributes from its fields,
// strings are copied by Buffer.write, lengths are back-patched in place.
// Why not the SDK's span pipeline (Tracer → Span → BatchSpanProcessor → OTLPTraceExporter)
// either: every span would become an SDK Span object (clock reads, attribute copies and limits,
// a context), built on the agent's hot path and kept for the whole batch window.
//
// Metrics (once per interval, off the hot path) go through the official
// ProtobufMetricsSerializer from the SDK's ResourceMetrics shape.
import { ValueType } from '@opentelemetry/api';
import { ProtobufMetricsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { AggregationTemporality, DataPointType, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { HOT_ATTRIBUTES, type AttrValue, type Attributes, type Span, type SpanEvent, type SpanKind, type SpanLink, type SpanStatus } from '../model/index.js';
import type { MetricFamily } from '../metrics/prometheus.js';

/** OTLP Span.SpanKind numbers (proto enum) */
/** links made inside one process (its thread, or its runtime's context): the parent is not remote */
const LOCAL_LINKS = new Set(['thread', 'runtime']);

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

/** the fields of an SDK ReadableSpan that ProtobufTraceSerializer reads, over an osprey Span
 *  (encodeSpansOfficial only) */
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
  readonly events: readonly { time: HrTime; name: string; attributes: Attributes; droppedAttributesCount: number }[];
  readonly links: readonly { context: { traceId: string; spanId: string; traceFlags: number }; attributes: Attributes; droppedAttributesCount: number }[];
  readonly droppedAttributesCount = 0;
  readonly droppedEventsCount: number;
  readonly droppedLinksCount: number;
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
    this.events = s.events?.map((e) => ({ time: hrTime(e.timeUnixNano), name: e.name, attributes: e.attributes, droppedAttributesCount: 0 })) ?? NO_EVENTS;
    // a link's trace flags are not kept: 0, as encodeSpans() writes them
    this.links = s.links?.map((l) => ({ context: { traceId: l.traceId, spanId: l.spanId, traceFlags: 0 }, attributes: l.attributes, droppedAttributesCount: 0 })) ?? NO_EVENTS;
    this.droppedEventsCount = s.droppedEvents;
    this.droppedLinksCount = s.droppedLinks;
    // a parent found through the thread rule is in the same process; every other rule links
    // across processes (a traceparent header, a connection's 4-tuple)
    this.parentSpanContext = s.parentSpanId ? { spanId: s.parentSpanId, isRemote: !LOCAL_LINKS.has(String(s.attributes['osprey.link'])) } : undefined;
  }

  spanContext(): { traceId: string; spanId: string; traceFlags: number } {
    return this.#ctx;
  }
}

/** the official serializer's bytes for a batch (the reference encodeSpans() is tested against) */
export function encodeSpansOfficial(spans: readonly Span[]): Uint8Array {
  const views = new Array<SpanView>(spans.length);
  for (let i = 0; i < spans.length; i++) views[i] = new SpanView(spans[i]!);
  // the serializer's parameter is the SDK's ReadableSpan; SpanView has every field it reads
  const bytes = ProtobufTraceSerializer.serializeRequest(views as unknown as Parameters<typeof ProtobufTraceSerializer.serializeRequest>[0]);
  return bytes ?? new Uint8Array(0);
}

// ---- the span encoder ------------------------------------------------------------------

const SPAN_FLAGS_SAMPLED_HAS_IS_REMOTE = 0x1 | 0x100;
const SPAN_FLAGS_IS_REMOTE = 0x200;
const MAX_CACHED_KEYS = 4096;
const TWO_32 = 4294967296;

/** bytes of a varint below 2^32 */
function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** writes v (below 2^32) as a varint at p; the position after it */
function putVarint32(buf: Buffer, p: number, v: number): number {
  while (v > 127) {
    buf[p++] = (v & 127) | 128;
    v >>>= 7;
  }
  buf[p++] = v;
  return p;
}

/** copies the n chars of s to p when every one is ASCII (one byte each); the position after them, or -1 */
function copyAscii(buf: Buffer, p: number, s: string, n: number): number {
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 127) return -1;
    buf[p++] = c;
  }
  return p;
}

/** a growing output buffer with protobuf primitives */
class Writer {
  buf = Buffer.allocUnsafe(256 * 1024);
  pos = 0;

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  /** a non-negative integer below 2^53, or a negative one (10 bytes, two's complement) */
  varint(value: number): void {
    this.ensure(10);
    const buf = this.buf;
    if (value >= 0 && value <= 0xffffffff) {
      this.pos = putVarint32(buf, this.pos, value >>> 0);
      return;
    }
    let low: number;
    let high: number;
    if (value >= 0) {
      low = value >>> 0;
      high = (value / TWO_32) >>> 0;
    } else {
      const abs = Math.abs(value);
      low = ~(abs >>> 0) >>> 0;
      high = ~((abs / TWO_32) >>> 0) >>> 0;
      low = (low + 1) >>> 0;
      if (low === 0) high = (high + 1) >>> 0;
    }
    while (high > 0 || low > 127) {
      buf[this.pos++] = (low & 127) | 128;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high >>>= 7;
    }
    buf[this.pos++] = low & 127;
  }

  fixed32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
  }

  /** a fixed64 from its high and low 32-bit words (unsigned) */
  fixed64Words(hi: number, lo: number): void {
    this.ensure(8);
    this.buf.writeUInt32LE(lo >>> 0, this.pos);
    this.buf.writeUInt32LE(hi >>> 0, this.pos + 4);
    this.pos += 8;
  }

  double(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }

  /** length-prefixed string */
  string(s: string): void {
    const n = s.length;
    // optimistic: ASCII, so its length in bytes is n; copied char by char while checked
    if (n < 128) {
      this.ensure(n + 1);
      this.buf[this.pos] = n;
      const p = copyAscii(this.buf, this.pos + 1, s, n);
      if (p >= 0) {
        this.pos = p;
        return;
      }
    }
    const len = Buffer.byteLength(s, 'utf8');
    this.varint(len);
    this.ensure(len);
    this.pos += this.buf.write(s, this.pos, len, 'utf8');
  }

  /**
   * A KeyValue attribute with a string value as field `tag`: tag, KeyValue length, the key's
   * pre-encoded bytes, AnyValue length, string_value. Lengths are computed, not back-patched.
   */
  stringAttr(tag: number, key: Buffer, v: string): void {
    const n = v.length;
    const keyLen = key.length;
    // up to 125 bytes: every length below fits one byte when the key is short
    if (n <= 125 && keyLen + n + 3 < 128) {
      this.ensure(keyLen + 3 * n + 5);
      const buf = this.buf;
      const at = this.pos;
      buf[at] = tag;
      let p = at + 2;
      for (let i = 0; i < keyLen; i++) buf[p++] = key[i]!;
      p += 3; // AnyValue length, string_value's tag and length
      let len: number;
      if (n < 24) {
        // short: a loop beats the native call; ASCII only (its length in bytes is n)
        p = copyAscii(buf, p, v, n);
        len = p < 0 ? -1 : n;
      } else {
        // as many bytes as chars only when every char is ASCII
        len = buf.write(v, p, 'utf8');
        p += len;
      }
      if (len >= 0 && len <= 125 && keyLen + len + 3 < 128) {
        buf[at + 1] = keyLen + len + 3;
        const lens = at + 2 + keyLen;
        buf[lens] = len + 2; // AnyValue
        buf[lens + 1] = 0x0a; // string_value
        buf[lens + 2] = len;
        this.pos = p;
        return;
      }
    }
    const len = Buffer.byteLength(v, 'utf8');
    const anyLen = 1 + varintSize(len) + len;
    this.ensure(len + 32 + keyLen);
    this.byte(tag);
    this.varint(keyLen + varintSize(anyLen) + anyLen);
    this.raw(key);
    this.varint(anyLen);
    this.byte(0x0a);
    this.varint(len);
    this.pos += this.buf.write(v, this.pos, len, 'utf8');
  }

  /** a KeyValue attribute with a value below 2^32 as int_value (see stringAttr) */
  smallIntAttr(tag: number, key: Buffer, v: number): void {
    const keyLen = key.length;
    this.ensure(keyLen + 8);
    const buf = this.buf;
    let p = this.pos;
    const vLen = varintSize(v);
    buf[p++] = tag;
    buf[p++] = keyLen + 2 + vLen; // short keys only (HOT_KEYS): one byte
    for (let i = 0; i < keyLen; i++) buf[p++] = key[i]!;
    buf[p++] = 1 + vLen; // AnyValue
    buf[p++] = 0x18; // int_value
    this.pos = putVarint32(buf, p, v);
  }

  /** length-prefixed 16 bytes of a trace id given as 32-bit words, most significant first */
  traceId(w0: number, w1: number, w2: number, w3: number): void {
    this.ensure(17);
    const b = this.buf;
    b[this.pos++] = 16;
    b.writeUInt32BE(w0 >>> 0, this.pos);
    b.writeUInt32BE(w1 >>> 0, this.pos + 4);
    b.writeUInt32BE(w2 >>> 0, this.pos + 8);
    b.writeUInt32BE(w3 >>> 0, this.pos + 12);
    this.pos += 16;
  }

  /** length-prefixed 8 bytes of a span id given as 32-bit words, most significant first */
  spanId(w0: number, w1: number): void {
    this.ensure(9);
    const b = this.buf;
    b[this.pos++] = 8;
    b.writeUInt32BE(w0 >>> 0, this.pos);
    b.writeUInt32BE(w1 >>> 0, this.pos + 4);
    this.pos += 8;
  }

  /** pre-encoded bytes (attribute keys: short, copied by a loop rather than a native call) */
  raw(b: Buffer): void {
    const n = b.length;
    this.ensure(n);
    if (n > 64) {
      b.copy(this.buf, this.pos);
      this.pos += n;
      return;
    }
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < n; i++) buf[p++] = b[i]!;
    this.pos = p;
  }

  /** reserves one byte for the length of the message that follows; finish() fills it in */
  begin(): number {
    this.ensure(1);
    return this.pos++;
  }

  /**
   * reserves two bytes for the length of a message of 128 to 16,383 bytes (a span, usually);
   * finish2() fills them in, and moves the message only when its length is another size
   */
  begin2(): number {
    this.ensure(2);
    const at = this.pos;
    this.pos += 2;
    return at;
  }

  finish2(at: number): void {
    this.#fill(at, 2);
  }

  finish(at: number): void {
    this.#fill(at, 1);
  }

  /** writes the length of the message after the `reserved` bytes at `at`, moving the message when its varint takes another number of bytes */
  #fill(at: number, reserved: number): void {
    const len = this.pos - at - reserved;
    const size = varintSize(len);
    if (size !== reserved) {
      if (size > reserved) this.ensure(size - reserved);
      this.buf.copyWithin(at + size, at + reserved, this.pos);
      this.pos += size - reserved;
    }
    putVarint32(this.buf, at, len);
  }
}

// the KeyValue prefix of an attribute key: tag 1 (key), its length and bytes, then tag 2 (value)
const keyCache = new Map<string, Buffer>();
function keyBytes(key: string): Buffer {
  let b = keyCache.get(key);
  if (b === undefined) {
    const w = new Writer();
    w.buf = Buffer.allocUnsafe(key.length * 3 + 16);
    w.byte(0x0a);
    w.string(key);
    w.byte(0x12);
    b = Buffer.from(w.buf.subarray(0, w.pos));
    if (keyCache.size < MAX_CACHED_KEYS) keyCache.set(key, b);
  }
  return b;
}

const MIN_INT64 = -(2 ** 63);
const MAX_INT64 = 2 ** 63;

function anyValue(w: Writer, v: AttrValue): void {
  if (typeof v === 'string') {
    w.byte(0x0a);
    w.string(v);
  } else if (typeof v === 'boolean') {
    w.byte(0x10);
    w.byte(v ? 1 : 0);
  } else if (Number.isInteger(v) && v >= MIN_INT64 && v < MAX_INT64) {
    w.byte(0x18);
    w.varint(v);
  } else {
    w.byte(0x21);
    w.double(v);
  }
}

function attributes(w: Writer, attrs: Attributes, field: number): void {
  const tag = (field << 3) | 2;
  for (const key in attrs) {
    if (!Object.prototype.hasOwnProperty.call(attrs, key)) continue;
    const v = attrs[key]!;
    w.varint(tag);
    const kv = w.begin();
    w.raw(keyBytes(key));
    const val = w.begin();
    anyValue(w, v);
    w.finish(val);
    w.finish(kv);
  }
}

/** the KeyValue prefixes of the hot attributes (fields of the span), by HOT_ATTRIBUTES index */
const HOT_KEYS: readonly Buffer[] = HOT_ATTRIBUTES.map(([k]) => keyBytes(k));

/** a span's attributes as the `attributes` getter orders them: hot fields, then `extra` */
function spanAttributes(w: Writer, s: Span): void {
  for (let i = 0; i < HOT_KEYS.length; i++) {
    const v = s.hot(i);
    if (v === undefined) continue;
    if (typeof v === 'string') w.stringAttr(0x4a, HOT_KEYS[i]!, v); // Span.attributes (9)
    else if (Number.isInteger(v) && v >= 0 && v < TWO_32) w.smallIntAttr(0x4a, HOT_KEYS[i]!, v);
    else {
      w.byte(0x4a);
      const kv = w.begin();
      w.raw(HOT_KEYS[i]!);
      const val = w.begin();
      anyValue(w, v);
      w.finish(val);
      w.finish(kv);
    }
  }
  if (s.extra) attributes(w, s.extra, 9);
}

/** Span.events (11): Event{1 time fixed64, 2 name, 3 attributes, 4 dropped_attributes_count} */
function spanEvent(w: Writer, e: SpanEvent): void {
  w.byte(0x5a);
  const at = w.begin();
  const t = e.timeUnixNano >= 0n && e.timeUnixNano < 1n << 64n ? e.timeUnixNano : 0n;
  w.byte(0x09);
  w.fixed64Words(Number(t >> 32n), Number(t & 0xffffffffn));
  w.byte(0x12);
  w.string(e.name);
  attributes(w, e.attributes, 3);
  w.byte(0x20);
  w.byte(0);
  w.finish(at);
}

/** Span.links (13): Link{1 trace_id, 2 span_id, 4 attributes, 5 dropped_attributes_count, 6 flags fixed32} */
function spanLink(w: Writer, l: SpanLink): void {
  w.byte(0x6a);
  const at = w.begin();
  w.byte(0x0a);
  w.byte(16);
  w.raw(Buffer.from(l.traceId, 'hex'));
  w.byte(0x12);
  w.byte(8);
  w.raw(Buffer.from(l.spanId, 'hex'));
  attributes(w, l.attributes, 4);
  w.byte(0x28);
  w.byte(0);
  // flags: the linked context's trace flags are not kept (0) and "has is_remote" as the official serializer writes
  w.byte(0x35);
  w.fixed32(SPAN_FLAGS_SAMPLED_HAS_IS_REMOTE & ~0x1);
  w.finish(at);
}

function span(w: Writer, s: Span): void {
  w.byte(0x12); // ScopeSpans.spans
  const at = w.begin2();
  // ids straight from their words (big-endian: the hex reads most significant first)
  w.byte(0x0a);
  w.traceId(s.t0, s.t1, s.t2, s.t3);
  w.byte(0x12);
  w.spanId(s.s0, s.s1);
  const parent = s.hasParent();
  if (parent) {
    w.byte(0x22);
    w.spanId(s.p0, s.p1);
  }
  w.byte(0x2a);
  w.string(s.name);
  const kind = OTLP_SPAN_KIND[s.kind];
  if (kind !== 0) {
    w.byte(0x30);
    w.varint(kind);
  }
  // start and end as fixed64 from the start's two words (no BigInt); a negative duration is 0
  w.byte(0x39);
  w.fixed64Words(s.startHi, s.startLo);
  const d = s.durationNano > 0 ? s.durationNano : 0;
  const dHi = Math.floor(d / TWO_32);
  let lo = s.startLo + (d - dHi * TWO_32);
  let hi = s.startHi + dHi;
  if (lo >= TWO_32) {
    lo -= TWO_32;
    hi++;
  }
  w.byte(0x41);
  w.fixed64Words(hi, lo);
  spanAttributes(w, s);
  // dropped attributes: 0; the dropped counts are written even when 0, as the official serializer does
  w.byte(0x50);
  w.byte(0);
  if (s.events !== undefined) for (const e of s.events) spanEvent(w, e);
  w.byte(0x60);
  w.varint(s.droppedEvents);
  if (s.links !== undefined) for (const l of s.links) spanLink(w, l);
  w.byte(0x70);
  w.varint(s.droppedLinks);
  w.byte(0x7a); // status
  const st = w.begin();
  if (s.statusMessage) {
    w.byte(0x12);
    w.string(s.statusMessage);
  }
  w.byte(0x18);
  w.varint(OTLP_STATUS_CODE[s.status]);
  w.finish(st);
  // flags: sampled, "has is_remote", and is_remote unless the thread rule linked it in-process
  const remote = parent && !LOCAL_LINKS.has(String(s.link ?? s.extra?.['osprey.link']));
  w.varint((16 << 3) | 5);
  w.fixed32(SPAN_FLAGS_SAMPLED_HAS_IS_REMOTE | (remote ? SPAN_FLAGS_IS_REMOTE : 0));
  w.finish2(at);
}

// InstrumentationScope{1 name, 2 version} as ScopeSpans field 1: the same for every batch
const SCOPE_BYTES = (() => {
  const w = new Writer();
  w.byte(0x0a);
  const at = w.begin();
  w.byte(0x0a);
  w.string(SCOPE.name);
  w.byte(0x12);
  w.string(SCOPE.version);
  w.finish(at);
  return Buffer.from(w.buf.subarray(0, w.pos));
})();

let shared: Writer | undefined;

/**
 * ExportTraceServiceRequest bytes for a batch: one ResourceSpans per resource object (spans of
 * one process share theirs), in first-seen order, each with osprey's one scope. The returned
 * buffer is a copy: the encoder's working buffer is reused by the next call.
 */
export function encodeSpans(spans: readonly Span[]): Buffer {
  const groups = new Map<Attributes, Span[]>();
  for (let i = 0; i < spans.length; i++) {
    const s = spans[i]!;
    const g = groups.get(s.resource);
    if (g === undefined) groups.set(s.resource, [s]);
    else g.push(s);
  }
  const w = (shared ??= new Writer());
  w.pos = 0;
  for (const [resource, group] of groups) {
    w.byte(0x0a); // ExportTraceServiceRequest.resource_spans
    const rs = w.begin();
    w.byte(0x0a); // ResourceSpans.resource
    const r = w.begin();
    attributes(w, resource, 1);
    w.byte(0x10); // dropped_attributes_count: 0
    w.byte(0);
    w.finish(r);
    w.byte(0x12); // ResourceSpans.scope_spans
    const ss = w.begin();
    w.raw(SCOPE_BYTES);
    for (let i = 0; i < group.length; i++) span(w, group[i]!);
    w.finish(ss);
    w.finish(rs);
  }
  const out = Buffer.from(w.buf.subarray(0, w.pos));
  // a one-off huge batch does not keep a huge buffer alive
  if (w.buf.length > 16 << 20) shared = undefined;
  return out;
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
