// RED and service-graph rollups, kept at ingest so services() and edges() read a few
// thousand pre-aggregated rows instead of scanning (and, for edges, self-joining) the spans.
//
// One computation for /metrics, the CLI and the API: the store uses the metrics module's own
// code (src/metrics) — the service a span counts under for the graph (spanService), the
// client/server pairing with its wait, expiry, virtual nodes and database edges (ServiceGraph
// with an onEdge sink instead of its cumulative series), and the latency histogram (NsHistogram
// on Tempo's span-metrics buckets, 2 ms … 16.384 s, the buckets /metrics exposes for
// traces_spanmetrics_latency). What differs is only where the counts go: /metrics keeps
// cumulative series, the store keeps them per ROLLUP_BUCKET_NS of span start time. When both
// run in one process (`osprey up`) the pairing runs once: shareGraph() makes the edge rollup
// a second consumer of the metrics generator's graph, which sees every span the store is
// given; the store's own graph then only pairs the spans a rebuild reads back.
//
// Percentiles in services() and edges() are ESTIMATED from those buckets (histogramQuantile,
// like Prometheus' histogram_quantile: linear inside the bucket, so within a factor of 2,
// usually much closer); counts and duration sums are exact.
//
// Buckets of the last two minutes of span start time stay open in memory (spans arrive
// roughly in start order, up to a request's duration late) and are written, one row per
// bucket and series, by the flush that follows; queries add the open buckets to the stored
// rows. A span arriving for a bucket already written makes one more row for it; queries sum.
// Tables (hN = count in Tempo bucket N, the last +Inf; counts are DOUBLE: exact below 2^53,
// and their sums stay DOUBLE, several times faster to aggregate than BIGINT's HUGEINT sums):
//   red_rollup(bucket_ns, service, kind, n, errors, sum_ns, h0…h14)
//   edge_rollup(bucket_ns, client, server, conn, n, failed, client_sum_ns, server_sum_ns, c0…c14, s0…s14)

import { BIGINT, type DuckDBAppender, type DuckDBConnection } from '@duckdb/node-api';
import type { Span } from '../model/index.js';
import { histogramQuantile } from '../metrics/latency.js';
import { NsHistogram, SPAN_METRICS_BUCKETS, boundsToNs, spanService } from '../metrics/series.js';
import { CONNECTION_TYPES, ServiceGraph, type CompletedEdge } from '../metrics/servicegraph.js';
import { Params } from './compile.js';
import { discardAppenders, type Row } from './core.js';
import { KIND_CODE, STATUS_CODE } from './schema.js';
import type { EdgeStats, ServiceStats } from './types.js';
import { ROLLUP_BUCKET_NS, bucketStart } from './window.js';

/** rollup time bucket: 1 min of span start time (window.ts, shared with the DuckDB-free server) */
export { ROLLUP_BUCKET_NS, bucketStart };
const BUCKET = Number(ROLLUP_BUCKET_NS);
const BUCKET_MS = BUCKET / 1e6;
/** histogram buckets: Tempo's span-metrics defaults, as /metrics */
const BOUNDS_NS = boundsToNs(SPAN_METRICS_BUCKETS);
const H = BOUNDS_NS.length + 1;
const KINDS = 6;
const CONNS = CONNECTION_TYPES.length;
const SERVER = KIND_CODE.server;
const ERROR = STATUS_CODE.error;
/** buckets this far behind the newest one seen are written (and forgotten) by the next flush */
const OPEN_BUCKETS = 2;

const cols = (p: string): string[] => Array.from({ length: H }, (_, i) => `${p}${i}`);
const RED_H = cols('h');
const EDGE_C = cols('c');
const EDGE_S = cols('s');

export const ROLLUP_DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS red_rollup (
    bucket_ns BIGINT NOT NULL,
    service VARCHAR NOT NULL,
    kind UTINYINT NOT NULL,
    n DOUBLE NOT NULL,
    errors DOUBLE NOT NULL,
    sum_ns DOUBLE NOT NULL,
    ${RED_H.map((c) => `${c} DOUBLE NOT NULL`).join(', ')}
  )`,
  `CREATE TABLE IF NOT EXISTS edge_rollup (
    bucket_ns BIGINT NOT NULL,
    client VARCHAR NOT NULL,
    server VARCHAR NOT NULL,
    conn UTINYINT NOT NULL,
    n DOUBLE NOT NULL,
    failed DOUBLE NOT NULL,
    client_sum_ns DOUBLE NOT NULL,
    server_sum_ns DOUBLE NOT NULL,
    ${[...EDGE_C, ...EDGE_S].map((c) => `${c} DOUBLE NOT NULL`).join(', ')}
  )`,
];

interface RedCell {
  readonly hist: NsHistogram;
  errors: number;
}

interface EdgeCell {
  readonly client: NsHistogram;
  readonly server: NsHistogram;
  failed: number;
}

/**
 * one open bucket: per service a slot per kind; per client, per server a slot per connection
 * type (maps of the services' own strings: no key string made per edge)
 */
interface Bucket {
  readonly red: Map<string, (RedCell | undefined)[]>;
  readonly edges: Map<string, Map<string, (EdgeCell | undefined)[]>>;
}

export interface RollupOptions {
  /** service graph: how long an edge waits for its other half, ms (default 10 s, as /metrics) */
  waitMs?: number;
  /**
   * service graph: most pending edges (default 100,000). /metrics keeps Tempo's 10,000; the
   * store allows more because every root server span waits out waitMs for a caller that never
   * comes (it then becomes a `user` edge), and a full pending set drops new client spans,
   * which would lose edges as soon as ingest exceeds ~1,000 root spans/s. Both count what
   * they drop (graph.counters.droppedSpans). ~150 bytes per pending edge.
   */
  maxItems?: number;
  /** how often waiting edges are expired, ms (default 2 s, as /metrics; 0 = only on tick()) */
  intervalMs?: number;
  /** wall clock in ms (tests) */
  now?: () => number;
}

export class Rollups {
  /** pairs client and server spans exactly as /metrics does (src/metrics/servicegraph.ts) */
  readonly graph: ServiceGraph;
  /** the graph that pairs the stored spans instead of `graph` (shareGraph) */
  private shared: ServiceGraph | undefined;
  /** open buckets by index (start / ROLLUP_BUCKET_NS) */
  private readonly open = new Map<number, Bucket>();
  private newest = -Infinity;
  private redApp: DuckDBAppender | undefined;
  private edgeApp: DuckDBAppender | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(
    private readonly catalog: string | undefined,
    o: RollupOptions = {},
  ) {
    this.now = o.now ?? Date.now;
    this.graph = new ServiceGraph({ waitMs: o.waitMs, maxItems: o.maxItems ?? 100_000, onEdge: (e) => this.addEdge(e) });
    const every = o.intervalMs ?? 2000;
    if (every > 0) {
      this.timer = setInterval(() => this.tick(), every);
      this.timer.unref();
    }
  }

  /** expires waiting edges (virtual nodes are completed then, as in /metrics) */
  tick(): void {
    this.graph.expire(this.now());
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private bucket(idx: number): Bucket {
    let b = this.open.get(idx);
    if (b === undefined) {
      b = { red: new Map(), edges: new Map() };
      this.open.set(idx, b);
      if (idx > this.newest) this.newest = idx;
    }
    return b;
  }

  /**
   * Takes the completed edges from `graph` instead of pairing the stored spans again. Its
   * owner must give it every span this store is given (osprey up's sink feeds both the store
   * and the metrics generator), with the same wait; the graph keeps at least this store's
   * pending-edge limit from now on. The edge rollup then also counts the edges of spans the
   * store drops when it falls behind, as /metrics does.
   */
  shareGraph(graph: ServiceGraph): void {
    if (this.shared) throw new Error('the rollups already share a service graph');
    if (graph.waitMs !== this.graph.waitMs) throw new Error(`the shared service graph waits ${graph.waitMs} ms for a pair, the rollups ${this.graph.waitMs} ms`);
    graph.share((e) => this.addEdge(e), this.graph.maxItems);
    this.shared = graph;
  }

  /** a span being stored: `service` is its stored service (resource service.name or unknown_service) */
  observe(service: string, s: Span, durNs: number): void {
    this.addSpan(service, Math.floor(s.startMs / BUCKET_MS), KIND_CODE[s.kind] ?? 0, s.status === 'error', durNs, 1);
    if (this.shared === undefined) this.pair(s);
  }

  /** a stored span read back to rebuild the rollups: paired here, the shared graph sees only new spans */
  restore(service: string, s: Span, durNs: number): void {
    this.addSpan(service, Math.floor(s.startMs / BUCKET_MS), KIND_CODE[s.kind] ?? 0, s.status === 'error', durNs, 1);
    this.pair(s);
  }

  private pair(s: Span): void {
    // the graph names services as /metrics does and skips spans without service.name
    const label = spanService(s.resource);
    if (label !== '') this.graph.observe(label, s, this.now());
  }

  /** counts a span into bucket `idx` (weight -1 takes it out: retention) */
  addSpan(service: string, idx: number, kind: number, error: boolean, durNs: number, weight: number): void {
    const b = this.bucket(idx);
    let slots = b.red.get(service);
    if (slots === undefined) {
      slots = new Array<RedCell | undefined>(KINDS).fill(undefined);
      b.red.set(service, slots);
    }
    const cell = (slots[kind] ??= { hist: new NsHistogram(BOUNDS_NS), errors: 0 });
    cell.hist.observe(durNs, BOUNDS_NS, weight);
    if (error) cell.errors += weight;
  }

  private addEdge(e: CompletedEdge): void {
    const b = this.bucket(Number.isFinite(e.startNs) ? Math.floor(e.startNs / BUCKET) : 0);
    let servers = b.edges.get(e.client);
    if (servers === undefined) b.edges.set(e.client, (servers = new Map<string, (EdgeCell | undefined)[]>()));
    let slots = servers.get(e.server);
    if (slots === undefined) {
      slots = new Array<EdgeCell | undefined>(CONNS).fill(undefined);
      servers.set(e.server, slots);
    }
    const cell = (slots[e.conn] ??= { client: new NsHistogram(BOUNDS_NS), server: new NsHistogram(BOUNDS_NS), failed: 0 });
    cell.client.observe(e.clientNs, BOUNDS_NS);
    cell.server.observe(e.serverNs, BOUNDS_NS);
    if (e.failed) cell.failed++;
  }

  get ready(): boolean {
    return this.redApp !== undefined && this.edgeApp !== undefined;
  }

  async openAppenders(con: DuckDBConnection): Promise<void> {
    this.redApp = await con.createAppender('red_rollup', 'main', this.catalog ?? null);
    this.edgeApp = await con.createAppender('edge_rollup', 'main', this.catalog ?? null);
  }

  dropAppenders(): void {
    discardAppenders([this.redApp, this.edgeApp]);
    this.redApp = undefined;
    this.edgeApp = undefined;
  }

  /**
   * Writes the buckets that are no longer open (all of them with `all`: shutdown) and
   * forgets them. Synchronous, on the writer connection, after a batch's spans: a bucket's
   * rows describe committed spans, plus at worst spans of batches still buffered.
   */
  write(all = false): void {
    const red = this.redApp;
    const edge = this.edgeApp;
    if (!red || !edge) throw new Error('rollup appenders are not open');
    const done: number[] = [];
    for (const idx of this.open.keys()) if (all || idx <= this.newest - OPEN_BUCKETS) done.push(idx);
    if (done.length === 0) return;
    let redRows = 0;
    let edgeRows = 0;
    for (const idx of done) {
      const b = this.open.get(idx) as Bucket;
      const bucketNs = BigInt(idx) * ROLLUP_BUCKET_NS;
      for (const [service, slots] of b.red) {
        for (let k = 0; k < slots.length; k++) {
          const cell = slots[k];
          if (cell === undefined) continue;
          const h = cell.hist;
          if (h.count === 0 && h.sumNs === 0 && cell.errors === 0) continue;
          red.appendBigInt(bucketNs);
          red.appendVarchar(service);
          red.appendUTinyInt(k);
          red.appendDouble(h.count);
          red.appendDouble(cell.errors);
          red.appendDouble(h.sumNs);
          for (let i = 0; i < H; i++) red.appendDouble(h.counts[i] ?? 0);
          red.endRow();
          redRows++;
        }
      }
      for (const [client, servers] of b.edges) {
        for (const [server, slots] of servers) {
          for (let k = 0; k < slots.length; k++) {
            const e = slots[k];
            if (e === undefined) continue;
            edge.appendBigInt(bucketNs);
            edge.appendVarchar(client);
            edge.appendVarchar(server);
            edge.appendUTinyInt(k);
            edge.appendDouble(e.client.count);
            edge.appendDouble(e.failed);
            edge.appendDouble(e.client.sumNs);
            edge.appendDouble(e.server.sumNs);
            for (let i = 0; i < H; i++) edge.appendDouble(e.client.counts[i] ?? 0);
            for (let i = 0; i < H; i++) edge.appendDouble(e.server.counts[i] ?? 0);
            edge.endRow();
            edgeRows++;
          }
        }
      }
    }
    if (redRows > 0) red.flushSync();
    if (edgeRows > 0) edge.flushSync();
    for (const idx of done) this.open.delete(idx);
  }

  /** forgets open buckets before `ns` (retention deleted their spans) */
  forgetBefore(ns: bigint): void {
    for (const idx of [...this.open.keys()]) if (BigInt(idx) * ROLLUP_BUCKET_NS < ns) this.open.delete(idx);
  }

  /** the open buckets that overlap [lo, hi] (bucket starts, ns) */
  private openIn(lo: bigint, hi: bigint): Bucket[] {
    const out: Bucket[] = [];
    for (const [idx, b] of this.open) {
      const ns = BigInt(idx) * ROLLUP_BUCKET_NS;
      if (ns >= lo && ns <= hi) out.push(b);
    }
    return out;
  }

  /**
   * RED per service over the rollup buckets that overlap [sinceNs, untilNs]: a window is
   * widened to whole 1-minute buckets of span start time, and rates are per second of the
   * time covered (bucket start of sinceNs … untilNs). Percentiles are estimated.
   */
  async services(query: Query, sinceNs: bigint, untilNs: bigint): Promise<ServiceStats[]> {
    const lo = bucketStart(sinceNs);
    const P = new Params();
    const rows = await query(
      `SELECT service, kind = ${SERVER} AS srv, sum(errors), sum(n), sum(sum_ns), ${RED_H.map((c) => `sum(${c})`).join(', ')}
       FROM red_rollup WHERE bucket_ns >= ${P.add(lo, BIGINT)} AND bucket_ns <= ${P.add(untilNs, BIGINT)} GROUP BY ALL`,
      P,
      true,
    );
    interface Svc {
      all: NsHistogram;
      srv: NsHistogram;
      allErr: number;
      srvErr: number;
    }
    const by = new Map<string, Svc>();
    const add = (service: string, srv: boolean, errors: number, counts: ArrayLike<number>, sum: number, n: number): void => {
      let s = by.get(service);
      if (!s) {
        s = { all: new NsHistogram(BOUNDS_NS), srv: new NsHistogram(BOUNDS_NS), allErr: 0, srvErr: 0 };
        by.set(service, s);
      }
      s.all.merge(counts, sum, n);
      s.allErr += errors;
      if (srv) {
        s.srv.merge(counts, sum, n);
        s.srvErr += errors;
      }
    };
    for (const r of rows) add(String(r[0]), r[1] === true, Number(r[2]), (r as number[]).slice(5), Number(r[4]), Number(r[3]));
    for (const b of this.openIn(lo, untilNs)) {
      for (const [service, slots] of b.red) {
        slots.forEach((cell, kind) => {
          if (cell) add(service, kind === SERVER, cell.errors, cell.hist.counts, cell.hist.sumNs, cell.hist.count);
        });
      }
    }
    const seconds = Number(untilNs - lo) / 1e9;
    const out: ServiceStats[] = [];
    for (const [service, s] of [...by].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
      if (s.all.count <= 0) continue;
      const useServer = s.srv.count > 0;
      const h = useServer ? s.srv : s.all;
      const n = h.count;
      const errors = useServer ? s.srvErr : s.allErr;
      out.push({
        service,
        spanCount: s.all.count,
        basis: useServer ? 'server' : 'all',
        requestCount: n,
        ratePerSec: seconds > 0 ? n / seconds : 0,
        errorCount: errors,
        errorPct: n > 0 ? (errors / n) * 100 : 0,
        durationSumNs: h.sumNs,
        quantiles: 'estimated',
        p50Ns: histogramQuantile(BOUNDS_NS, h.counts, 0.5),
        p95Ns: histogramQuantile(BOUNDS_NS, h.counts, 0.95),
        p99Ns: histogramQuantile(BOUNDS_NS, h.counts, 0.99),
      });
    }
    return out;
  }

  /** Service-graph edges over the rollup buckets that overlap [sinceNs, untilNs] (see services()). */
  async edges(query: Query, sinceNs: bigint, untilNs: bigint): Promise<EdgeStats[]> {
    const lo = bucketStart(sinceNs);
    const P = new Params();
    const rows = await query(
      `SELECT client, server, conn, sum(failed), sum(n), sum(client_sum_ns), sum(server_sum_ns),
              ${[...EDGE_C, ...EDGE_S].map((c) => `sum(${c})`).join(', ')}
       FROM edge_rollup WHERE bucket_ns >= ${P.add(lo, BIGINT)} AND bucket_ns <= ${P.add(untilNs, BIGINT)} GROUP BY ALL`,
      P,
      true,
    );
    interface E {
      caller: string;
      callee: string;
      conn: number;
      failed: number;
      client: NsHistogram;
      server: NsHistogram;
    }
    const by = new Map<string, E>();
    const add = (client: string, server: string, conn: number, failed: number, c: ArrayLike<number>, s: ArrayLike<number>, n: number, cSum: number, sSum: number): void => {
      const key = `${client}\u0000${server}\u0000${conn}`;
      let e = by.get(key);
      if (!e) {
        e = { caller: client, callee: server, conn, failed: 0, client: new NsHistogram(BOUNDS_NS), server: new NsHistogram(BOUNDS_NS) };
        by.set(key, e);
      }
      e.client.merge(c, cSum, n);
      e.server.merge(s, sSum, n);
      e.failed += failed;
    };
    for (const r of rows) {
      const v = r as number[];
      add(String(r[0]), String(r[1]), Number(r[2]), Number(r[3]), v.slice(7, 7 + H), v.slice(7 + H), Number(r[4]), Number(r[5]), Number(r[6]));
    }
    for (const b of this.openIn(lo, untilNs)) {
      for (const [client, servers] of b.edges) {
        for (const [server, slots] of servers) {
          slots.forEach((cell, k) => {
            if (cell) add(client, server, k, cell.failed, cell.client.counts, cell.server.counts, cell.client.count, cell.client.sumNs, cell.server.sumNs);
          });
        }
      }
    }
    const cmp = (a: E, b: E): number => (a.caller < b.caller ? -1 : a.caller > b.caller ? 1 : a.callee < b.callee ? -1 : a.callee > b.callee ? 1 : a.conn - b.conn);
    return [...by.values()]
      .filter((e) => e.client.count > 0)
      .sort(cmp)
      .map((e) => ({
        caller: e.caller,
        callee: e.callee,
        connectionType: CONNECTION_TYPES[e.conn] ?? '',
        count: e.client.count,
        errorCount: e.failed,
        errorPct: (e.failed / e.client.count) * 100,
        clientSumNs: e.client.sumNs,
        serverSumNs: e.server.sumNs,
        quantiles: 'estimated' as const,
        p50Ns: histogramQuantile(BOUNDS_NS, e.client.counts, 0.5),
        p95Ns: histogramQuantile(BOUNDS_NS, e.client.counts, 0.95),
        serverP50Ns: histogramQuantile(BOUNDS_NS, e.server.counts, 0.5),
        serverP95Ns: histogramQuantile(BOUNDS_NS, e.server.counts, 0.95),
      }));
  }
}

type Query = (sql: string, P: Params, js?: boolean) => Promise<Row[]>;

/** SQL (on the maintenance connection) that drops the rollup buckets entirely before `ns` */
export const PRUNE_SQL: readonly string[] = ['DELETE FROM red_rollup WHERE bucket_ns < $1', 'DELETE FROM edge_rollup WHERE bucket_ns < $1'];

/** whether a stored status code is an error (the rollups' definition; retention subtracts with it) */
export const isErrorStatus = (code: number): boolean => code === ERROR;
