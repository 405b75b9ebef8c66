// OTLP requests (traces, metrics, logs) from bytes to messages, and trace messages to spans.
//
// Decoding uses the OpenTelemetry JS project's own generated definitions: the protobufjs static
// root that @opentelemetry/otlp-transformer shipped up to 0.214 (generated from
// opentelemetry-proto). Newer releases of that package replaced it with an encoder that cannot
// decode requests, so the 0.214 release is installed under the alias
// `otel-otlp-transformer-protobufjs` and only its generated root is loaded from it.
// No hand-written wire decoder: a malformed body is whatever protobufjs refuses.
//
// OTLP/JSON is proto3 JSON with OTLP's deviations (opentelemetry-proto docs/specification.md):
// trace and span ids are hex (not base64), enums are integers (names are accepted too),
// 64-bit integers are decimal strings or numbers, unknown fields are ignored. JSON.parse gives
// the object, ids are turned from hex into bytes here, and the generated fromObject() checks
// and converts the rest exactly as it does for its own JSON.
import { createRequire } from 'node:module';
import type protobuf from 'protobufjs';
import { Span, type AttrValue, type Attributes, type SpanEvent, type SpanKind, type SpanLink, type SpanStatus } from '../model/index.js';
import { REDACTED, isSecretName, redactQuery, redactText, redactUrl } from '../agent/redact.js';

export type Signal = 'traces' | 'metrics' | 'logs';

interface MessageType {
  decode(r: Uint8Array): protobuf.Message;
  fromObject(o: Record<string, unknown>): protobuf.Message;
  encode(m: protobuf.Message): protobuf.Writer;
  toObject(m: protobuf.Message, o?: protobuf.IConversionOptions): Record<string, unknown>;
}
interface SignalTypes {
  request: MessageType;
  response: MessageType;
}

/** the generated root names the trace package `trace`, not `traces` */
const PACKAGE: Record<Signal, string> = { traces: 'trace', metrics: 'metrics', logs: 'logs' };

let rootTypes: Record<Signal, SignalTypes> | undefined;
function otlpTypes(): Record<Signal, SignalTypes> {
  if (!rootTypes) {
    const require = createRequire(import.meta.url);
    // eslint-disable-next-line @typescript-eslint/no-unsafe-assignment -- a generated CommonJS module without types
    const root = require('otel-otlp-transformer-protobufjs/build/src/generated/root.js');
    // eslint-disable-next-line @typescript-eslint/no-unsafe-member-access
    const c = root.opentelemetry.proto.collector as Record<string, { v1: Record<string, MessageType> } | undefined>;
    const pick = (s: Signal, name: string): MessageType => {
      const t = c[PACKAGE[s]]?.v1[name];
      if (!t) throw new Error(`OTLP definitions: ${name} missing from the generated root`);
      return t;
    };
    rootTypes = {
      traces: { request: pick('traces', 'ExportTraceServiceRequest'), response: pick('traces', 'ExportTraceServiceResponse') },
      metrics: { request: pick('metrics', 'ExportMetricsServiceRequest'), response: pick('metrics', 'ExportMetricsServiceResponse') },
      logs: { request: pick('logs', 'ExportLogsServiceRequest'), response: pick('logs', 'ExportLogsServiceResponse') },
    };
  }
  return rootTypes;
}


export class OtlpDecodeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OtlpDecodeError';
  }
}

/** a request body (already decompressed) into the signal's Export*ServiceRequest message */
export function decodeRequest(signal: Signal, body: Uint8Array, encoding: 'protobuf' | 'json'): protobuf.Message {
  const t = types(signal).request;
  if (encoding === 'protobuf') {
    try {
      return t.decode(body);
    } catch (err) {
      throw new OtlpDecodeError(`the body is not an OTLP ${signal} protobuf message (${(err as Error).message})`, { cause: err });
    }
  }
  let obj: unknown;
  try {
    obj = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch (err) {
    throw new OtlpDecodeError(`the body is not JSON (${(err as Error).message})`, { cause: err });
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new OtlpDecodeError('the JSON body must be an object such as {"resourceSpans":[…]}');
  hexIdsToBytes(signal, obj as Record<string, unknown>);
  try {
    return t.fromObject(obj as Record<string, unknown>);
  } catch (err) {
    throw new OtlpDecodeError(`the JSON body is not an OTLP ${signal} request (${(err as Error).message})`, { cause: err });
  }
}

function types(signal: Signal): SignalTypes {
  return otlpTypes()[signal];
}

/** the success answer: Export*ServiceResponse, partial_success only when something was rejected or a warning is due */
export function encodeResponse(
  signal: Signal,
  encoding: 'protobuf' | 'json',
  partial?: { rejected: number; message: string },
): Uint8Array | string {
  const field = signal === 'traces' ? 'rejectedSpans' : signal === 'metrics' ? 'rejectedDataPoints' : 'rejectedLogRecords';
  const obj = partial ? { partialSuccess: { [field]: partial.rejected, errorMessage: partial.message } } : {};
  if (encoding === 'json') {
    // proto3 JSON: int64 as a decimal string
    return JSON.stringify(partial ? { partialSuccess: { [field]: String(partial.rejected), errorMessage: partial.message } } : {});
  }
  const t = types(signal).response;
  return t.encode(t.fromObject(obj)).finish();
}

// --- JSON ids ----------------------------------------------------------------------------

const HEX = /^[0-9a-fA-F]*$/;
/** hex → bytes; anything else (not a string, odd length, not hex) → an empty id, refused later */
function idBytes(v: unknown): Uint8Array {
  if (typeof v !== 'string' || v.length % 2 !== 0 || !HEX.test(v)) return new Uint8Array(0);
  return Buffer.from(v, 'hex');
}
function fixIds(o: unknown, keys: readonly string[]): void {
  if (o === null || typeof o !== 'object') return;
  const r = o as Record<string, unknown>;
  for (const k of keys) if (k in r) r[k] = idBytes(r[k]);
}
function each(v: unknown, f: (x: unknown) => void): void {
  if (Array.isArray(v)) for (const x of v) f(x);
}
function field(o: unknown, k: string): unknown {
  return o !== null && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined;
}

/** OTLP/JSON writes ids as hex where proto3 JSON would have base64: convert them in place */
function hexIdsToBytes(signal: Signal, req: Record<string, unknown>): void {
  if (signal === 'traces') {
    each(req.resourceSpans, (rs) =>
      each(field(rs, 'scopeSpans'), (ss) =>
        each(field(ss, 'spans'), (s) => {
          fixIds(s, ['traceId', 'spanId', 'parentSpanId']);
          each(field(s, 'links'), (l) => fixIds(l, ['traceId', 'spanId']));
        }),
      ),
    );
  } else if (signal === 'logs') {
    each(req.resourceLogs, (rl) => each(field(rl, 'scopeLogs'), (sl) => each(field(sl, 'logRecords'), (l) => fixIds(l, ['traceId', 'spanId']))));
  } else {
    each(req.resourceMetrics, (rm) =>
      each(field(rm, 'scopeMetrics'), (sm) =>
        each(field(sm, 'metrics'), (m) => {
          for (const kind of ['gauge', 'sum', 'histogram', 'exponentialHistogram', 'summary']) {
            each(field(field(m, kind), 'dataPoints'), (dp) => each(field(dp, 'exemplars'), (e) => fixIds(e, ['traceId', 'spanId'])));
          }
        }),
      ),
    );
  }
}

// --- counting what metrics and logs requests carry ---------------------------------------------

interface Loose {
  [k: string]: unknown;
}
function arr(v: unknown): Loose[] {
  return Array.isArray(v) ? (v as Loose[]) : [];
}

/** data points of an ExportMetricsServiceRequest (OTLP's unit for rejected_data_points) */
export function countDataPoints(req: protobuf.Message): number {
  let n = 0;
  for (const rm of arr((req as unknown as Loose).resourceMetrics)) {
    for (const sm of arr(rm.scopeMetrics)) {
      for (const m of arr(sm.metrics)) {
        for (const kind of ['gauge', 'sum', 'histogram', 'exponentialHistogram', 'summary']) {
          n += arr((m[kind] as Loose | undefined)?.dataPoints).length;
        }
      }
    }
  }
  return n;
}

/** log records of an ExportLogsServiceRequest */
export function countLogRecords(req: protobuf.Message): number {
  let n = 0;
  for (const rl of arr((req as unknown as Loose).resourceLogs)) for (const sl of arr(rl.scopeLogs)) n += arr(sl.logRecords).length;
  return n;
}

// --- spans -------------------------------------------------------------------------------------

export type SpanRejectReason = 'bad_trace_id' | 'bad_span_id' | 'bad_parent_span_id' | 'bad_time';
export const SPAN_REJECT_REASONS: readonly SpanRejectReason[] = ['bad_trace_id', 'bad_span_id', 'bad_parent_span_id', 'bad_time'];

export interface SpanBatch {
  spans: Span[];
  /** spans refused, by reason (each is counted and named in the partial-success message) */
  rejected: Record<SpanRejectReason, number>;
  /** the first refusal, in words, for the partial-success message */
  firstRejection: string | undefined;
  /** span events and links over the per-span limits (or broken links): dropped here, counted on their span and here */
  droppedEvents: number;
  droppedLinks: number;
}

/**
 * Events and links kept per span (the OpenTelemetry SDKs' default span limits, 128 each): an
 * exception event or two and a few links are what spans carry; a span with thousands (a loop
 * logging into its span) keeps the first 128 and counts the rest in dropped_events_count /
 * dropped_links_count, as an SDK at its limit does.
 */
export const MAX_EVENTS_PER_SPAN = 128;
export const MAX_LINKS_PER_SPAN = 128;
/** attributes kept per event or link (the SDKs' default attribute count limit) */
export const MAX_EXTRA_ATTRIBUTES = 128;
/** an event name longer than this is cut (names are short: "exception", "message") */
const MAX_EVENT_NAME_CHARS = 256;

const KIND_BY_NUMBER: readonly SpanKind[] = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'];
const STATUS_BY_NUMBER: readonly SpanStatus[] = ['unset', 'ok', 'error'];
const MAX_NS = (1n << 63n) - 1n;
/** attribute values kept per span; longer strings are cut (the store is no payload archive) */
const MAX_VALUE_CHARS = 4096;

interface LongLike {
  low: number;
  high: number;
}
function u64(v: unknown): bigint {
  if (typeof v === 'number') return BigInt(Math.max(0, Math.trunc(v)));
  if (typeof v === 'string') return /^\d+$/.test(v) ? BigInt(v) : 0n;
  if (v && typeof v === 'object' && 'low' in v && 'high' in v) {
    const l = v as LongLike;
    return (BigInt(l.high >>> 0) << 32n) | BigInt(l.low >>> 0);
  }
  return 0n;
}
function i64(v: unknown): number | string {
  if (typeof v === 'number') return v;
  if (v && typeof v === 'object' && 'low' in v && 'high' in v) {
    const l = v as LongLike;
    const b = (BigInt(l.high | 0) << 32n) | BigInt(l.low >>> 0);
    const n = Number(b);
    // beyond 2^53 a number would silently change the value: keep the exact digits
    return Number.isSafeInteger(n) ? n : b.toString();
  }
  return Number(v);
}

function hexOf(b: unknown): string {
  return b instanceof Uint8Array ? Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex') : '';
}

/** AnyValue → a stored value: scalars as they are, arrays and maps as JSON text, bytes as base64 */
function attrValue(v: Loose | undefined | null): AttrValue | undefined {
  if (!v) return undefined;
  if (typeof v.stringValue === 'string') return v.stringValue;
  if (v.boolValue !== undefined && v.boolValue !== null) return Boolean(v.boolValue);
  if (v.intValue !== undefined && v.intValue !== null) return i64(v.intValue);
  if (v.doubleValue !== undefined && v.doubleValue !== null) return Number(v.doubleValue);
  if (v.bytesValue instanceof Uint8Array) return Buffer.from(v.bytesValue).toString('base64');
  if (v.arrayValue || v.kvlistValue) return JSON.stringify(plain(v));
  return undefined;
}
/** an array or map value as plain JSON (for the text form of a compound attribute) */
function plain(v: Loose | undefined | null): unknown {
  if (!v) return null;
  if (v.arrayValue) return arr((v.arrayValue as Loose).values).map(plain);
  if (v.kvlistValue) return Object.fromEntries(arr((v.kvlistValue as Loose).values).map((kv) => [String(kv.key), plain(kv.value as Loose)]));
  const x = attrValue(v);
  return x === undefined ? null : x;
}

const URL_KEYS = new Set(['url.full', 'http.url', 'url.original']);
const QUERY_KEYS = new Set(['url.query']);

/**
 * Secrets never reach the store (ARCHITECTURE.md): a secret-named attribute
 * (`http.request.header.authorization`, `…cookie`, `db.password`) keeps its key with the value
 * REDACTED; URLs and query strings lose secret parameters and passwords; other strings go
 * through the free-text rules (Bearer tokens, key=value secrets), as the agent's own values do.
 */
function cleanValue(key: string, v: AttrValue): AttrValue {
  if (isSecretName(key)) return REDACTED;
  if (typeof v !== 'string') return v;
  let s = v.length > MAX_VALUE_CHARS ? `${v.slice(0, MAX_VALUE_CHARS)}…` : v;
  if (URL_KEYS.has(key)) s = redactUrl(s);
  else if (QUERY_KEYS.has(key)) s = redactQuery(s);
  else s = redactText(s);
  return s;
}

function attributes(list: unknown, into: Attributes = {}, max = Infinity): Attributes {
  let n = 0;
  for (const kv of arr(list)) {
    if (n >= max) break;
    const key = typeof kv.key === 'string' ? kv.key : '';
    if (key === '') continue;
    const v = attrValue(kv.value as Loose | undefined);
    if (v === undefined) continue;
    into[key] = cleanValue(key, v);
    n++;
  }
  return into;
}

/** the u32 of a dropped_*_count field (anything else: 0) */
function count(v: unknown): number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : 0;
}

/**
 * A span's events, at most MAX_EVENTS_PER_SPAN (the rest counted in `dropped`), attributes
 * redacted by the span attributes' rules: an exception message or a logged URL is text an
 * application wrote, and may hold a token as easily as an attribute does.
 */
function spanEvents(list: unknown, dropped: { n: number }): SpanEvent[] | undefined {
  const all = arr(list);
  if (all.length === 0) return undefined;
  const out: SpanEvent[] = [];
  for (const e of all) {
    if (out.length >= MAX_EVENTS_PER_SPAN) {
      dropped.n += all.length - out.length;
      break;
    }
    const raw = typeof e.name === 'string' ? e.name : '';
    const name = redactText(raw.length > MAX_EVENT_NAME_CHARS ? raw.slice(0, MAX_EVENT_NAME_CHARS) : raw);
    out.push({ timeUnixNano: u64(e.timeUnixNano), name, attributes: attributes(e.attributes, {}, MAX_EXTRA_ATTRIBUTES) });
  }
  return out;
}

/** A span's links, at most MAX_LINKS_PER_SPAN; a link without a valid trace and span id is dropped and counted. */
function spanLinks(list: unknown, dropped: { n: number }): SpanLink[] | undefined {
  const all = arr(list);
  if (all.length === 0) return undefined;
  const out: SpanLink[] = [];
  for (const l of all) {
    const traceId = hexOf(l.traceId);
    const spanId = hexOf(l.spanId);
    if (out.length >= MAX_LINKS_PER_SPAN || traceId.length !== 32 || spanId.length !== 16 || /^0+$/.test(traceId) || /^0+$/.test(spanId)) {
      dropped.n++;
      continue;
    }
    out.push({ traceId, spanId, attributes: attributes(l.attributes, {}, MAX_EXTRA_ATTRIBUTES) });
  }
  return out.length > 0 ? out : undefined;
}

/** an ExportTraceServiceRequest into spans of the model, refusing (and counting) broken ones */
export function toSpans(req: protobuf.Message): SpanBatch {
  const out: SpanBatch = {
    spans: [],
    rejected: { bad_trace_id: 0, bad_span_id: 0, bad_parent_span_id: 0, bad_time: 0 },
    firstRejection: undefined,
    droppedEvents: 0,
    droppedLinks: 0,
  };
  const reject = (reason: SpanRejectReason, why: string): void => {
    out.rejected[reason]++;
    out.firstRejection ??= why;
  };
  for (const rs of arr((req as unknown as Loose).resourceSpans)) {
    // one resource object for all spans of a ResourceSpans: the store keeps each resource once
    const resource = Object.freeze(attributes((rs.resource as Loose | undefined)?.attributes));
    for (const ss of arr(rs.scopeSpans)) {
      const scope = ss.scope as Loose | undefined;
      const scopeName = typeof scope?.name === 'string' ? scope.name : '';
      const scopeVersion = typeof scope?.version === 'string' ? scope.version : '';
      for (const s of arr(ss.spans)) {
        const name = typeof s.name === 'string' ? s.name : '';
        const traceId = hexOf(s.traceId);
        if (traceId.length !== 32 || /^0+$/.test(traceId)) {
          reject('bad_trace_id', `span "${name.slice(0, 60)}": trace id must be 16 bytes, not all zero (got ${traceId.length / 2} bytes)`);
          continue;
        }
        const spanId = hexOf(s.spanId);
        if (spanId.length !== 16 || /^0+$/.test(spanId)) {
          reject('bad_span_id', `span "${name.slice(0, 60)}": span id must be 8 bytes, not all zero (got ${spanId.length / 2} bytes)`);
          continue;
        }
        let parent = hexOf(s.parentSpanId);
        if (parent !== '' && parent.length !== 16) {
          reject('bad_parent_span_id', `span "${name.slice(0, 60)}": parent span id must be empty or 8 bytes (got ${parent.length / 2} bytes)`);
          continue;
        }
        if (/^0+$/.test(parent)) parent = '';
        const start = u64(s.startTimeUnixNano);
        const end = u64(s.endTimeUnixNano);
        if (start === 0n || start > MAX_NS || end < start || end - start > BigInt(Number.MAX_SAFE_INTEGER)) {
          reject('bad_time', `span "${name.slice(0, 60)}": needs 0 < start_time_unix_nano <= end_time_unix_nano (got ${start}, ${end})`);
          continue;
        }
        const attrs: Attributes = {};
        // the instrumentation scope has no column of its own: kept as OTel's non-OTLP convention
        if (scopeName) attrs['otel.scope.name'] = scopeName;
        if (scopeVersion) attrs['otel.scope.version'] = scopeVersion;
        attributes(s.attributes, attrs);
        const status = s.status as Loose | undefined;
        const code = typeof status?.code === 'number' ? status.code : 0;
        const message = typeof status?.message === 'string' && status.message !== '' ? redactText(status.message) : undefined;
        const kind = typeof s.kind === 'number' ? KIND_BY_NUMBER[s.kind] : undefined;
        const evDropped = { n: 0 };
        const lkDropped = { n: 0 };
        const events = spanEvents(s.events, evDropped);
        const links = spanLinks(s.links, lkDropped);
        out.droppedEvents += evDropped.n;
        out.droppedLinks += lkDropped.n;
        const droppedEvents = count(s.droppedEventsCount) + evDropped.n;
        const droppedLinks = count(s.droppedLinksCount) + lkDropped.n;
        out.spans.push(
          Span.from({
            traceId,
            spanId,
            parentSpanId: parent,
            name,
            kind: kind ?? 'unspecified',
            startTimeUnixNano: start,
            durationNano: Number(end - start),
            status: STATUS_BY_NUMBER[code] ?? 'unset',
            ...(message !== undefined ? { statusMessage: message } : {}),
            resource,
            attributes: attrs,
            ...(events ? { events } : {}),
            ...(links ? { links } : {}),
            ...(droppedEvents ? { droppedEvents } : {}),
            ...(droppedLinks ? { droppedLinks } : {}),
          }),
        );
      }
    }
  }
  return out;
}
