// The span model every part of Osprey shares: the agent makes spans, metrics count them, the
// store writes them, export and the server send them. Field names and meanings follow the
// public span JSON in ARCHITECTURE.md (spanToJson below).
//
// A Span is a fixed-shape record: ids are 32-bit words (./ids.ts), the start time is two
// 32-bit words of Unix ns, and the attributes the agent writes on every HTTP span are plain
// fields (HOT_ATTRIBUTES). Only attributes outside that set live in an object (`extra`), and
// the attribute object of the public shape is built when something reads `attributes`. So
// making, counting and storing a span allocates no id strings, no BigInt and no attribute
// map: at ~10k spans/s those were most of the garbage the agent made.
import { hex32, spanFromHex, spanHex, traceFromHex, type TraceId } from './ids.js';

export type SpanKind = 'server' | 'client' | 'internal' | 'producer' | 'consumer' | 'unspecified';
export type SpanStatus = 'ok' | 'error' | 'unset';
export type AttrValue = string | number | boolean;
export type Attributes = Record<string, AttrValue>;

/** Which source gave a span its parent (attribute `osprey.link`). */
export type LinkSource = 'traceparent' | 'tuple' | 'thread' | 'runtime' | 'none';

/**
 * A span event (OTLP Span.Event): something that happened at a point in the span, most often
 * an exception (`name` "exception", attributes `exception.type`, `exception.message`...).
 * The agent makes none; spans received over OTLP carry them.
 */
export interface SpanEvent {
  timeUnixNano: bigint;
  name: string;
  attributes: Attributes;
}

/** A link from a span to another span (OTLP Span.Link), often in another trace. */
export interface SpanLink {
  traceId: string; // 32 lowercase hex
  spanId: string; // 16 lowercase hex
  attributes: Attributes;
}

/**
 * Attributes held in fields, in the order the agent writes them (which is the order read
 * back): key, then the JS type the field holds. A value of another type (a numeric
 * http.route from an OTLP sender) goes to `extra` like any other key.
 */
export const HOT_ATTRIBUTES = [
  ['http.request.method', 'string'],
  ['url.path', 'string'],
  ['http.route', 'string'],
  ['network.protocol.name', 'string'],
  ['network.protocol.version', 'string'],
  ['network.peer.address', 'string'],
  ['network.peer.port', 'number'],
  ['url.query', 'string'],
  ['server.address', 'string'],
  ['server.port', 'number'],
  ['client.address', 'string'],
  ['url.scheme', 'string'],
  ['url.full', 'string'],
  ['user_agent.original', 'string'],
  ['http.request.body.size', 'number'],
  ['http.response.status_code', 'number'],
  ['http.response.body.size', 'number'],
  ['error.type', 'string'],
  ['osprey.link', 'string'],
] as const satisfies readonly (readonly [string, 'string' | 'number'])[];

export type HotValue = string | number | undefined;

/** index of each hot key in HOT_ATTRIBUTES */
const HOT_INDEX = new Map<string, number>(HOT_ATTRIBUTES.map(([k], i) => [k, i]));
export function hotIndex(key: string): number | undefined {
  return HOT_INDEX.get(key);
}

const EMPTY: Attributes = Object.freeze({});
const TWO32 = 2 ** 32;

/** The old, plain shape of a span: what tests, receivers and readers build spans from. */
export interface SpanInit {
  traceId: string; // 32 lowercase hex
  spanId: string; // 16 lowercase hex
  parentSpanId: string; // 16 lowercase hex or ''
  name: string;
  kind: SpanKind;
  startTimeUnixNano: bigint;
  durationNano: number;
  status: SpanStatus;
  statusMessage?: string;
  resource: Attributes;
  attributes: Attributes;
  events?: SpanEvent[];
  links?: SpanLink[];
  /** events / links the sender or a limit dropped (OTLP dropped_events_count, dropped_links_count) */
  droppedEvents?: number;
  droppedLinks?: number;
}

export class Span {
  /** trace id, most significant word first */
  t0 = 0;
  t1 = 0;
  t2 = 0;
  t3 = 0;
  /** span id */
  s0 = 0;
  s1 = 0;
  /** parent span id; 0, 0 for a root */
  p0 = 0;
  p1 = 0;
  /** start, Unix ns: high and low 32-bit words (unsigned) */
  startHi = 0;
  startLo = 0;
  durationNano = 0;
  name = '';
  kind: SpanKind = 'unspecified';
  status: SpanStatus = 'unset';
  statusMessage: string | undefined = undefined;
  /** per process, shared by its spans (service.name, process.pid, ...) */
  resource: Attributes = EMPTY;
  // the hot attributes (HOT_ATTRIBUTES), undefined when absent
  method: string | undefined = undefined;
  path: string | undefined = undefined;
  route: string | undefined = undefined;
  protocolName: string | undefined = undefined;
  protocolVersion: string | undefined = undefined;
  peerAddress: string | undefined = undefined;
  peerPort: number | undefined = undefined;
  query: string | undefined = undefined;
  serverAddress: string | undefined = undefined;
  serverPort: number | undefined = undefined;
  clientAddress: string | undefined = undefined;
  scheme: string | undefined = undefined;
  urlFull: string | undefined = undefined;
  userAgent: string | undefined = undefined;
  requestBodySize: number | undefined = undefined;
  statusCode: number | undefined = undefined;
  responseBodySize: number | undefined = undefined;
  errorType: string | undefined = undefined;
  /** osprey.link: a LinkSource from the agent, any string from elsewhere */
  link: string | undefined = undefined;
  /** every other attribute (or a hot key whose value has another type) */
  extra: Attributes | undefined = undefined;
  /**
   * Span events and links: undefined when there are none (every span the agent makes), so a
   * span without them costs one field read wherever they are handled.
   */
  events: SpanEvent[] | undefined = undefined;
  links: SpanLink[] | undefined = undefined;
  /** events and links not kept (by the sender or a limit here), as OTLP counts them */
  droppedEvents = 0;
  droppedLinks = 0;

  // V8 keeps a number field as a small integer until a value needs more (an id word past 2^30, a
  // duration past 1.07 s), then changes the layout of the spans made from then on and leaves
  // those alive at that moment on the old one, now deprecated: every function that handles
  // spans deoptimises and compiles again (seen 38 s into a run: ~20 deoptimised, 56 compiles
  // within 10 s). One span holding such values when the class is defined settles the layout
  // before any real span exists (docs/benchmarks.md, session 11).
  static {
    const s = new Span();
    s.t0 = s.t1 = s.t2 = s.t3 = s.s0 = s.s1 = s.p0 = s.p1 = s.startLo = s.durationNano = TWO32 - 1;
  }

  /** a span from the plain shape; throws RangeError on ids that are not hex of their length */
  static from(init: SpanInit): Span {
    const s = new Span();
    s.traceId = init.traceId;
    s.spanId = init.spanId;
    s.parentSpanId = init.parentSpanId;
    s.name = init.name;
    s.kind = init.kind;
    s.setStartNs(typeof init.startTimeUnixNano === 'bigint' ? init.startTimeUnixNano : BigInt(init.startTimeUnixNano));
    s.durationNano = init.durationNano;
    s.status = init.status;
    if (init.statusMessage !== undefined) s.statusMessage = init.statusMessage;
    s.resource = init.resource;
    s.setAttributes(init.attributes);
    if (init.events !== undefined && init.events.length > 0) s.events = init.events;
    if (init.links !== undefined && init.links.length > 0) s.links = init.links;
    if (init.droppedEvents) s.droppedEvents = init.droppedEvents;
    if (init.droppedLinks) s.droppedLinks = init.droppedLinks;
    return s;
  }

  /** the plain shape (a copy: changing it changes nothing here) */
  toInit(): SpanInit {
    const o: SpanInit = {
      traceId: this.traceId,
      spanId: this.spanId,
      parentSpanId: this.parentSpanId,
      name: this.name,
      kind: this.kind,
      startTimeUnixNano: this.startTimeUnixNano,
      durationNano: this.durationNano,
      status: this.status,
      resource: this.resource,
      attributes: this.attributes,
    };
    if (this.statusMessage !== undefined) o.statusMessage = this.statusMessage;
    if (this.events !== undefined) o.events = this.events;
    if (this.links !== undefined) o.links = this.links;
    if (this.droppedEvents) o.droppedEvents = this.droppedEvents;
    if (this.droppedLinks) o.droppedLinks = this.droppedLinks;
    return o;
  }

  get traceId(): string {
    return hex32(this.t0) + hex32(this.t1) + hex32(this.t2) + hex32(this.t3);
  }
  set traceId(hex: string) {
    const t = traceFromHex(hex);
    if (!t) throw new RangeError(`trace id is not 32 hex digits: ${JSON.stringify(hex)}`);
    this.setTrace(t);
  }
  setTrace(t: TraceId): void {
    this.t0 = t.w0;
    this.t1 = t.w1;
    this.t2 = t.w2;
    this.t3 = t.w3;
  }
  get spanId(): string {
    return spanHex(this.s0, this.s1);
  }
  set spanId(hex: string) {
    const w = spanFromHex(hex);
    if (!w || hex === '') throw new RangeError(`span id is not 16 hex digits: ${JSON.stringify(hex)}`);
    this.s0 = w[0];
    this.s1 = w[1];
  }
  /** '' for a root */
  get parentSpanId(): string {
    return spanHex(this.p0, this.p1);
  }
  set parentSpanId(hex: string) {
    const w = spanFromHex(hex);
    if (!w) throw new RangeError(`parent span id is not 16 hex digits: ${JSON.stringify(hex)}`);
    this.p0 = w[0];
    this.p1 = w[1];
  }
  hasParent(): boolean {
    return (this.p0 | this.p1) !== 0;
  }

  get startTimeUnixNano(): bigint {
    return (BigInt(this.startHi) << 32n) | BigInt(this.startLo);
  }
  setStartNs(ns: bigint): void {
    if (ns < 0n || ns >= 1n << 63n) throw new RangeError(`start time out of range: ${ns}`);
    this.startHi = Number(ns >> 32n);
    this.startLo = Number(ns & 0xffffffffn);
  }
  /** start = base (hi, lo words) + rel ns, rel a non-negative integer < 2^53 */
  setStartFrom(baseHi: number, baseLo: number, rel: number): void {
    const relHi = Math.floor(rel / TWO32);
    let lo = baseLo + (rel - relHi * TWO32);
    let hi = baseHi + relHi;
    if (lo >= TWO32) {
      lo -= TWO32;
      hi++;
    }
    this.startHi = hi;
    this.startLo = lo;
  }
  /** start in whole Unix ms (exact: floor(ns / 1e6)) */
  get startMs(): number {
    // 2^32 = 4294 * 1e6 + 967296; hi * 967296 + lo < 2^53 for any hi below 2^31
    const r = this.startHi * 967296 + this.startLo;
    return this.startHi * 4294 + Math.floor(r / 1e6);
  }

  /** a hot attribute by its index in HOT_ATTRIBUTES */
  hot(i: number): HotValue {
    switch (i) {
      case 0: return this.method;
      case 1: return this.path;
      case 2: return this.route;
      case 3: return this.protocolName;
      case 4: return this.protocolVersion;
      case 5: return this.peerAddress;
      case 6: return this.peerPort;
      case 7: return this.query;
      case 8: return this.serverAddress;
      case 9: return this.serverPort;
      case 10: return this.clientAddress;
      case 11: return this.scheme;
      case 12: return this.urlFull;
      case 13: return this.userAgent;
      case 14: return this.requestBodySize;
      case 15: return this.statusCode;
      case 16: return this.responseBodySize;
      case 17: return this.errorType;
      case 18: return this.link;
      default: return undefined;
    }
  }
  setHot(i: number, v: HotValue): void {
    switch (i) {
      case 0: this.method = v as string | undefined; break;
      case 1: this.path = v as string | undefined; break;
      case 2: this.route = v as string | undefined; break;
      case 3: this.protocolName = v as string | undefined; break;
      case 4: this.protocolVersion = v as string | undefined; break;
      case 5: this.peerAddress = v as string | undefined; break;
      case 6: this.peerPort = v as number | undefined; break;
      case 7: this.query = v as string | undefined; break;
      case 8: this.serverAddress = v as string | undefined; break;
      case 9: this.serverPort = v as number | undefined; break;
      case 10: this.clientAddress = v as string | undefined; break;
      case 11: this.scheme = v as string | undefined; break;
      case 12: this.urlFull = v as string | undefined; break;
      case 13: this.userAgent = v as string | undefined; break;
      case 14: this.requestBodySize = v as number | undefined; break;
      case 15: this.statusCode = v as number | undefined; break;
      case 16: this.responseBodySize = v as number | undefined; break;
      case 17: this.errorType = v as string | undefined; break;
      case 18: this.link = v as string | undefined; break;
    }
  }

  /** one attribute by key, hot or not */
  attr(key: string): AttrValue | undefined {
    const i = HOT_INDEX.get(key);
    if (i !== undefined) {
      const v = this.hot(i);
      if (v !== undefined) return v;
    }
    return this.extra?.[key];
  }

  /** sets one attribute: into its field when it is hot and of the field's type */
  setAttr(key: string, v: AttrValue): void {
    const i = HOT_INDEX.get(key);
    if (i !== undefined && typeof v === HOT_ATTRIBUTES[i]![1]) {
      this.setHot(i, v as HotValue);
      if (this.extra && key in this.extra) delete this.extra[key];
    } else {
      if (i !== undefined) this.setHot(i, undefined);
      (this.extra ??= {})[key] = v;
    }
  }

  /** replaces every attribute */
  setAttributes(a: Attributes): void {
    for (let i = 0; i < HOT_ATTRIBUTES.length; i++) this.setHot(i, undefined);
    this.extra = undefined;
    for (const k in a) this.setAttr(k, a[k]!);
  }

  /** the attributes as one object (built on each read: changing it changes nothing here) */
  get attributes(): Attributes {
    const a: Attributes = {};
    for (let i = 0; i < HOT_ATTRIBUTES.length; i++) {
      const v = this.hot(i);
      if (v !== undefined) a[HOT_ATTRIBUTES[i]![0]] = v;
    }
    const x = this.extra;
    if (x) for (const k in x) a[k] = x[k]!;
    return a;
  }
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
  /** only when the span has events (OTLP spans; never the agent's) */
  events?: { timeUnixNano: string; name: string; attributes: Attributes }[];
  links?: { traceId: string; spanId: string; attributes: Attributes }[];
  droppedEventsCount?: number;
  droppedLinksCount?: number;
}

export function spanToJson(s: Span): SpanJson {
  const o: SpanJson = {
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
  if (s.events !== undefined) o.events = s.events.map((e) => ({ timeUnixNano: e.timeUnixNano.toString(), name: e.name, attributes: e.attributes }));
  if (s.links !== undefined) o.links = s.links.map((l) => ({ traceId: l.traceId, spanId: l.spanId, attributes: l.attributes }));
  if (s.droppedEvents) o.droppedEventsCount = s.droppedEvents;
  if (s.droppedLinks) o.droppedLinksCount = s.droppedLinks;
  return o;
}
