// Tempo's service-graphs processor: pairs a CLIENT (or PRODUCER) span, keyed by
// (traceId, spanId), with the SERVER (or CONSUMER) span keyed by (traceId, parentSpanId), and
// counts requests, failures and both latencies per (client, server, connection_type).
//
// Pending edges live in a Map keyed by a word of the span id (for root server spans, whose
// parent id is empty, the first and last words of the trace id XORed: the first alone is the
// same for every 64-bit trace id padded to 128 bits, and one for every second in X-Ray's ids,
// and would chain all their pending roots into one list, searched for every span) whose
// entries chain the (rare) edges with the same word.
// Ids stay 32-bit words (src/model): no key string is built per span. An intrusive FIFO list orders edges by expiry,
// so expiring and completing are O(1) and the pending set is bounded by maxItems.
import type { Attributes, Span } from '../model/index.js';
import type { MetricFamily } from './prometheus.js';
import { boundsToNs, findAttr, labelValue, NsHistogram, OVERFLOW_LABEL, SERVICE_GRAPH_BUCKETS, sweepNested } from './series.js';

/** connection_type values; index 0 (plain client/server) leaves the label out */
export const CONNECTION_TYPES = ['', 'messaging_system', 'database', 'virtual_node'] as const;
const Conn = { Unknown: 0, MessagingSystem: 1, Database: 2, VirtualNode: 3 } as const;

/** Tempo defaults (reference §1.2) */
export const PEER_ATTRIBUTES = ['peer.service', 'db.name', 'db.system', 'db.system.name'] as const;
export const DATABASE_NAME_ATTRIBUTES = ['db.namespace', 'db.name', 'db.system', 'db.system.name'] as const;

class Edge {
  /** key = (trace id, id): id is the client's span id or the server's parent span id (0, 0 for a root) */
  readonly t0: number;
  readonly t1: number;
  readonly t2: number;
  readonly t3: number;
  readonly i0: number;
  readonly i1: number;
  clientService = '';
  serverService = '';
  clientNs = 0;
  serverNs = 0;
  failed = false;
  peerNode = '';
  conn: number = Conn.Unknown;
  /** start of the client span (unix ns, as a float), else of the server span; NaN until known */
  startNs = NaN;
  expireAt: number;
  prev: Edge | undefined;
  next: Edge | undefined;
  /** the next pending edge with the same map key */
  same: Edge | undefined;
  constructor(s: Span, i0: number, i1: number, expireAt: number) {
    this.t0 = s.t0;
    this.t1 = s.t1;
    this.t2 = s.t2;
    this.t3 = s.t3;
    this.i0 = i0;
    this.i1 = i1;
    this.expireAt = expireAt;
  }
  get key(): number {
    return edgeKey(this.t0, this.t3, this.i0, this.i1);
  }
  is(s: Span, i0: number, i1: number): boolean {
    return this.i1 === i1 && this.i0 === i0 && this.t0 === s.t0 && this.t1 === s.t1 && this.t2 === s.t2 && this.t3 === s.t3;
  }
}

interface GraphSeries {
  readonly labels: Readonly<Record<string, string>>;
  total: number;
  failed: number;
  readonly server: NsHistogram;
  readonly client: NsHistogram;
  last: number;
}

export interface ServiceGraphOptions {
  /** how long an edge waits for its other half, ms (default 10 s) */
  waitMs?: number;
  /** most pending edges (default 10000); a span that needs a new edge beyond it is dropped */
  maxItems?: number;
  /** most (client, server, connection_type) series (default 10000); further edges are counted in
   *  the overflow series {otel_metric_overflow="true"} */
  maxSeries?: number;
  /** latency buckets in seconds (default Tempo's 0.1·2^k, k < 8) */
  buckets?: readonly number[];
  /**
   * Receives every completed edge instead of the built-in cumulative series (the store
   * rolls them up per time bucket). The pairing, expiry and naming are the same either way.
   * share() adds further consumers, next to the series (or to onEdge).
   */
  onEdge?: (e: CompletedEdge) => void;
}

/** A paired (or virtual-node, or database) request between two services, as counted. */
export interface CompletedEdge {
  /** label values (cut to Tempo's maximum length) */
  readonly client: string;
  readonly server: string;
  /** index in CONNECTION_TYPES */
  readonly conn: number;
  readonly failed: boolean;
  readonly clientNs: number;
  readonly serverNs: number;
  /** start of the client span (unix ns, float), else of the server span */
  readonly startNs: number;
}

export interface ServiceGraphCounters {
  /** edges created (Tempo's ..._service_graphs_edges) */
  edges: number;
  /** edges paired (or completed at once: database calls) */
  completed: number;
  /** edges that expired without a pair and made no series (Tempo's expired_edges minus the virtual nodes) */
  expired: number;
  /** edges that expired and were emitted with a virtual node (user, or the peer) */
  virtualNodes: number;
  /** spans dropped because maxItems edges were pending */
  droppedSpans: number;
  /** completed edges counted in the overflow series because their own would exceed maxSeries */
  seriesDropped: number;
}

export class ServiceGraph {
  readonly bounds: readonly number[];
  readonly counters: ServiceGraphCounters = { edges: 0, completed: 0, expired: 0, virtualNodes: 0, droppedSpans: 0, seriesDropped: 0 };
  readonly #boundsNs: Float64Array;
  readonly #waitMs: number;
  #maxItems: number;
  readonly #maxSeries: number;
  /** whether completed edges are counted in the built-in series (no onEdge) */
  readonly #counts: boolean;
  /** onEdge, then the consumers added by share() */
  readonly #sinks: ((e: CompletedEdge) => void)[] = [];
  /** pending edges by Edge.key (chained by `same`) */
  readonly #byKey = new Map<number, Edge>();
  #head: Edge | undefined;
  #tail: Edge | undefined;
  #pending = 0;
  /** client -> server -> connection type slot */
  readonly #series = new Map<string, Map<string, (GraphSeries | undefined)[]>>();
  #seriesCount = 0;
  #overflow: GraphSeries | undefined;

  constructor(opts: ServiceGraphOptions = {}) {
    this.bounds = opts.buckets ?? SERVICE_GRAPH_BUCKETS;
    this.#boundsNs = boundsToNs(this.bounds);
    this.#waitMs = opts.waitMs ?? 10_000;
    this.#maxItems = opts.maxItems ?? 10_000;
    this.#maxSeries = opts.maxSeries ?? 10_000;
    this.#counts = opts.onEdge === undefined;
    if (opts.onEdge) this.#sinks.push(opts.onEdge);
  }

  /**
   * Hands every completed edge to `onEdge` too, so that a second consumer of the same spans
   * does not pair them again: `osprey up` feeds its spans to both the metrics generator and
   * the store, whose edge rollup takes this graph's edges (Rollups.shareGraph). Keeps at
   * least `maxItems` edges pending from now on: the larger of the two consumers' limits.
   */
  share(onEdge: (e: CompletedEdge) => void, maxItems = 0): void {
    this.#sinks.push(onEdge);
    if (maxItems > this.#maxItems) this.#maxItems = maxItems;
  }

  get waitMs(): number {
    return this.#waitMs;
  }

  get maxItems(): number {
    return this.#maxItems;
  }

  get pending(): number {
    return this.#pending;
  }

  get seriesCount(): number {
    return this.#seriesCount;
  }

  /** service: resource service.name, non-empty (the caller skips spans without one) */
  observe(service: string, span: Span, now: number): void {
    switch (span.kind) {
      case 'client':
      case 'producer':
        this.#client(service, span, now);
        return;
      case 'server':
      case 'consumer':
        this.#server(service, span, now);
        return;
      default:
        return;
    }
  }

  #client(service: string, span: Span, now: number): void {
    const found = this.#find(span, span.s0, span.s1);
    const e = found ?? new Edge(span, span.s0, span.s1, now + this.#waitMs);
    e.conn = span.kind === 'producer' ? Conn.MessagingSystem : Conn.Unknown;
    e.clientService = service;
    e.clientNs = span.durationNano > 0 ? span.durationNano : 0;
    e.startNs = startNs(span);
    if (span.status === 'error') e.failed = true;
    peerNode(e, span);
    databaseRequest(e, span.resource, span, span.durationNano);
    this.#upserted(e, found !== undefined, now);
  }

  #server(service: string, span: Span, now: number): void {
    const found = this.#find(span, span.p0, span.p1);
    const e = found ?? new Edge(span, span.p0, span.p1, now + this.#waitMs);
    e.conn = span.kind === 'consumer' ? Conn.MessagingSystem : Conn.Unknown;
    e.serverService = service;
    e.serverNs = span.durationNano > 0 ? span.durationNano : 0;
    if (Number.isNaN(e.startNs)) e.startNs = startNs(span);
    if (span.status === 'error') e.failed = true;
    peerNode(e, span);
    this.#upserted(e, found !== undefined, now);
  }

  /** Tempo's store.UpsertEdge after the update callback ran */
  #upserted(e: Edge, stored: boolean, now: number): void {
    const complete = e.clientService !== '' && e.serverService !== '';
    if (stored) {
      if (complete) {
        this.#remove(e);
        this.#complete(e, now);
      }
      return;
    }
    if (complete) {
      this.counters.edges++;
      this.#complete(e, now);
      return;
    }
    if (this.#pending >= this.#maxItems) {
      this.counters.droppedSpans++;
      return;
    }
    this.counters.edges++;
    this.#insert(e);
  }

  #find(s: Span, i0: number, i1: number): Edge | undefined {
    for (let e = this.#byKey.get(edgeKey(s.t0, s.t3, i0, i1)); e !== undefined; e = e.same) if (e.is(s, i0, i1)) return e;
    return undefined;
  }

  #insert(e: Edge): void {
    const head = this.#byKey.get(e.key);
    if (head === undefined) this.#byKey.set(e.key, e);
    else {
      e.same = head.same;
      head.same = e;
    }
    e.prev = this.#tail;
    if (this.#tail) this.#tail.next = e;
    else this.#head = e;
    this.#tail = e;
    this.#pending++;
  }

  #remove(e: Edge): void {
    const key = e.key;
    const head = this.#byKey.get(key);
    if (head === e) {
      if (e.same) this.#byKey.set(key, e.same);
      else this.#byKey.delete(key);
    } else {
      for (let p = head; p !== undefined; p = p.same) {
        if (p.same === e) {
          p.same = e.same;
          break;
        }
      }
    }
    if (e.prev) e.prev.next = e.next;
    else this.#head = e.next;
    if (e.next) e.next.prev = e.prev;
    else this.#tail = e.prev;
    e.prev = e.next = e.same = undefined;
    this.#pending--;
  }

  /** Tempo's store.Expire + onExpire: evicts every edge whose wait is over */
  expire(now: number): void {
    for (let e = this.#head; e !== undefined && now >= e.expireAt; e = this.#head) {
      this.#remove(e);
      e.conn = Conn.VirtualNode;
      if (e.clientService === '') {
        // no client: a root server span was called by something untraced (a user, a browser)
        if ((e.i0 | e.i1) === 0) {
          e.clientService = e.peerNode || 'user';
          this.counters.virtualNodes++;
          this.#complete(e, now);
        } else this.counters.expired++;
      } else if (e.serverService === '' && e.peerNode !== '') {
        // a call to something we get no server span from, named by its peer attribute
        e.serverService = e.peerNode;
        this.counters.virtualNodes++;
        this.#complete(e, now);
      } else this.counters.expired++;
    }
  }

  /** Tempo's onComplete */
  #complete(e: Edge, now: number): void {
    this.counters.completed++;
    const client = labelValue(e.clientService);
    const server = labelValue(e.serverService);
    const sinks = this.#sinks;
    if (sinks.length > 0) {
      const done: CompletedEdge = { client, server, conn: e.conn, failed: e.failed, clientNs: e.clientNs, serverNs: e.serverNs, startNs: e.startNs };
      for (let i = 0; i < sinks.length; i++) sinks[i]!(done);
      if (!this.#counts) return;
    }
    // containers are made only for a series that will exist: past maxSeries nothing new is allocated
    let byServer = this.#series.get(client);
    let slots = byServer?.get(server);
    let s = slots?.[e.conn];
    if (s === undefined && this.#seriesCount >= this.#maxSeries) {
      this.counters.seriesDropped++;
      s = this.#overflow ??= {
        labels: Object.freeze({ [OVERFLOW_LABEL]: 'true' }),
        total: 0,
        failed: 0,
        server: new NsHistogram(this.#boundsNs),
        client: new NsHistogram(this.#boundsNs),
        last: now,
      };
    }
    if (s === undefined) {
      if (byServer === undefined) {
        byServer = new Map();
        this.#series.set(client, byServer);
      }
      if (slots === undefined) {
        slots = new Array<GraphSeries | undefined>(CONNECTION_TYPES.length).fill(undefined);
        byServer.set(server, slots);
      }
      // new counter series start at 0 (see the note in spanmetrics.ts on Tempo's first-sample rule)
      const labels: Record<string, string> = { client, server };
      if (e.conn !== Conn.Unknown) labels.connection_type = CONNECTION_TYPES[e.conn] ?? '';
      s = {
        labels: Object.freeze(labels),
        total: 0,
        failed: 0,
        server: new NsHistogram(this.#boundsNs),
        client: new NsHistogram(this.#boundsNs),
        last: now,
      };
      slots[e.conn] = s;
      this.#seriesCount++;
    }
    s.last = now;
    s.total++;
    if (e.failed) s.failed++;
    s.server.observe(e.serverNs, this.#boundsNs);
    s.client.observe(e.clientNs, this.#boundsNs);
  }

  /** forgets series not updated since `before` (ms) */
  sweep(before: number): number {
    if (this.#overflow && this.#overflow.last < before) this.#overflow = undefined;
    const removed = sweepNested(this.#series, before);
    this.#seriesCount -= removed;
    return removed;
  }

  families(): MetricFamily[] {
    const all: GraphSeries[] = [];
    for (const byServer of this.#series.values()) for (const slots of byServer.values()) for (const s of slots) if (s) all.push(s);
    if (this.#overflow) all.push(this.#overflow);
    const hist = (name: string, help: string, pick: (s: GraphSeries) => NsHistogram): MetricFamily => ({
      name,
      help,
      type: 'histogram',
      bounds: this.bounds,
      samples: all.map((s) => {
        const h = pick(s);
        return { labels: s.labels, counts: h.counts, sum: h.sumNs / 1e9, count: h.count };
      }),
    });
    return [
      {
        name: 'traces_service_graph_request_total',
        help: 'Requests between two services (Tempo service graph).',
        type: 'counter',
        samples: all.map((s) => ({ labels: s.labels, value: s.total })),
      },
      {
        name: 'traces_service_graph_request_failed_total',
        help: 'Failed requests between two services (Tempo service graph).',
        type: 'counter',
        samples: all.map((s) => ({ labels: s.labels, value: s.failed })),
      },
      hist('traces_service_graph_request_server_seconds', 'Request duration seen by the server, seconds (Tempo service graph).', (s) => s.server),
      hist('traces_service_graph_request_client_seconds', 'Request duration seen by the client, seconds (Tempo service graph).', (s) => s.client),
    ];
  }
}

/** Tempo's upsertPeerNode: the first peer attribute among the span's own attributes */
function peerNode(e: Edge, span: Span): void {
  // none of these is a hot attribute (src/model): only spans with other attributes have one
  if (span.extra === undefined) return;
  for (const k of PEER_ATTRIBUTES) {
    const v = findAttr(k, undefined, span);
    if (v !== '') {
      e.peerNode = v;
      return;
    }
  }
}

/** Tempo's upsertDatabaseRequest (client side only): a call with a database attribute is a
 *  complete edge at once, its server named by peer.service, server.address,
 *  network.peer.address[:port], then the database name */
function databaseRequest(e: Edge, resource: Attributes, span: Span, durationNano: number): void {
  let dbName = '';
  for (const k of DATABASE_NAME_ATTRIBUTES) {
    dbName = findAttr(k, resource, span);
    if (dbName !== '') break;
  }
  if (dbName === '') return;
  e.conn = Conn.Database;
  e.serverNs = durationNano > 0 ? durationNano : 0;
  const peer = findAttr('peer.service', resource, span) || findAttr('server.address', resource, span);
  if (peer !== '') {
    e.serverService = peer;
    return;
  }
  const host = findAttr('network.peer.address', resource, span);
  if (host !== '') {
    const port = findAttr('network.peer.port', resource, span);
    e.serverService = port !== '' ? `${host}:${port}` : host;
    return;
  }
  e.serverService = dbName;
}

/** the pending-edge map key: a word of the id, or for a root (id 0, 0) the trace id's first and last words XORed (see the top) */
function edgeKey(t0: number, t3: number, i0: number, i1: number): number {
  // 30 bits: a small integer ("Smi") to V8, which a Map hashes and compares without boxing it
  // (a 32-bit word is a heap number half the time: 1.5-1.8x the cost of a lookup)
  return ((i0 | i1) === 0 ? t0 ^ t3 : i1) & 0x3fffffff;
}

/** a span's start in Unix ns as a float (µs precision: edges are bucketed by minute) */
function startNs(s: Span): number {
  return s.startHi * 4294967296 + s.startLo;
}
