// RED and service-graph rollups, kept at ingest so services() and edges() read a few
// thousand pre-aggregated rows instead of scanning (and, for edges, self-joining) the spans.
//
// One computation for /metrics, the CLI and the API: the service a span counts under
// (spanService for the graph; the stored resource's service.name for RED, as search sees
// it), the client/server pairing, its expiry, virtual nodes and database edges are the
// metrics module's own code (src/metrics: ServiceGraph with an onEdge sink). What differs is
// only where the counts go: /metrics keeps cumulative series, the store keeps them per
// ROLLUP_BUCKET_NS of span start time, committed with the spans of the same batch.
//
// Latencies are kept as quarter-octave histograms (src/metrics/latency.ts, whose bounds
// include Tempo's), so the percentiles services() and edges() return are ESTIMATED from the
// buckets (within one bin, ≤ 19%, interpolated inside it); counts and sums are exact.
//
// Tables (one row per bucket × series × latency bin; `n` may be negative: retention
// subtracts the spans it deletes from a bucket it only partly deletes):
//   red_rollup(bucket_ns, service, kind, error, bin, n, sum_ns)
//   edge_rollup(bucket_ns, client, server, conn, failed, side, bin, n, sum_ns)   side 0 = client, 1 = server
// A bucket gets new rows with every flush that touches it; queries sum them.

import { BIGINT, type DuckDBAppender, type DuckDBConnection } from '@duckdb/node-api';
import type { Span } from '../agent/span.js';
import { LATENCY_BINS, latencyBin, quantileFromBins } from '../metrics/latency.js';
import { spanService } from '../metrics/series.js';
import { CONNECTION_TYPES, ServiceGraph, type CompletedEdge } from '../metrics/servicegraph.js';
import { Params } from './compile.js';
import type { Row } from './core.js';
import { KIND_CODE, STATUS_CODE } from './schema.js';
import type { EdgeStats, ServiceStats } from './types.js';

/** rollup time bucket: 10 s of span start time */
export const ROLLUP_BUCKET_NS = 10_000_000_000n;
const BUCKET = Number(ROLLUP_BUCKET_NS);
const KINDS = 6;
const SERVER = KIND_CODE.server;
const ERROR = STATUS_CODE.error;

export const ROLLUP_DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS red_rollup (
    bucket_ns BIGINT NOT NULL,
    service VARCHAR NOT NULL,
    kind UTINYINT NOT NULL,
    error BOOLEAN NOT NULL,
    bin UTINYINT NOT NULL,
    n INTEGER NOT NULL,
    sum_ns DOUBLE NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS edge_rollup (
    bucket_ns BIGINT NOT NULL,
    client VARCHAR NOT NULL,
    server VARCHAR NOT NULL,
    conn UTINYINT NOT NULL,
    failed BOOLEAN NOT NULL,
    side UTINYINT NOT NULL,
    bin UTINYINT NOT NULL,
    n INTEGER NOT NULL,
    sum_ns DOUBLE NOT NULL
  )`,
];

/** a count and a duration sum */
interface Acc {
  n: number;
  sum: number;
}

/**
 * Rollup rows accumulated for one batch of spans. Keys are numbers, not strings: per span
 * that is two Map lookups and two additions.
 *   red:   service → ((bucket·KINDS + kind)·2 + error)·LATENCY_BINS + bin
 *   edges: client \0 server → (((bucket·4 + conn)·2 + failed)·2 + side)·LATENCY_BINS + bin
 * (bucket = start / 10 s ≈ 2e8 today: the keys stay far below 2^53.)
 */
export class RollupBatch {
  readonly red = new Map<string, Map<number, Acc>>();
  readonly edges = new Map<string, Map<number, Acc>>();

  get empty(): boolean {
    return this.red.size === 0 && this.edges.size === 0;
  }

  /** one span (weight -1 takes it out again) */
  addSpan(service: string, bucket: number, kind: number, error: boolean, durNs: number, weight = 1): void {
    let m = this.red.get(service);
    if (m === undefined) {
      m = new Map();
      this.red.set(service, m);
    }
    add(m, ((bucket * KINDS + kind) * 2 + (error ? 1 : 0)) * LATENCY_BINS + latencyBin(durNs), weight, durNs * weight);
  }

  addEdge(e: CompletedEdge): void {
    const key = `${e.client}\u0000${e.server}`;
    let m = this.edges.get(key);
    if (m === undefined) {
      m = new Map();
      this.edges.set(key, m);
    }
    const bucket = Number.isFinite(e.startNs) ? Math.floor(e.startNs / BUCKET) : 0;
    const base = ((bucket * CONNECTION_TYPES.length + e.conn) * 2 + (e.failed ? 1 : 0)) * 2;
    add(m, base * LATENCY_BINS + latencyBin(e.clientNs), 1, e.clientNs);
    add(m, (base + 1) * LATENCY_BINS + latencyBin(e.serverNs), 1, e.serverNs);
  }
}

function add(m: Map<number, Acc>, key: number, n: number, sum: number): void {
  const a = m.get(key);
  if (a === undefined) m.set(key, { n, sum });
  else {
    a.n += n;
    a.sum += sum;
  }
}

export interface RollupOptions {
  /** service graph: how long an edge waits for its other half, ms (default 10 s, as /metrics) */
  waitMs?: number;
  /** service graph: most pending edges (default 10000, as /metrics) */
  maxItems?: number;
  /** how often waiting edges are expired, ms (default 2 s, as /metrics; 0 = only on tick()) */
  intervalMs?: number;
  /** wall clock in ms (tests) */
  now?: () => number;
}

export class Rollups {
  /** pairs client and server spans exactly as /metrics does (src/metrics/servicegraph.ts) */
  readonly graph: ServiceGraph;
  private batchFor: (() => RollupBatch) | undefined;
  private redApp: DuckDBAppender | undefined;
  private edgeApp: DuckDBAppender | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(
    private readonly catalog: string | undefined,
    o: RollupOptions = {},
  ) {
    this.now = o.now ?? Date.now;
    this.graph = new ServiceGraph({
      waitMs: o.waitMs,
      maxItems: o.maxItems,
      onEdge: (e) => this.batchFor?.().addEdge(e),
    });
    const every = o.intervalMs ?? 2000;
    if (every > 0) {
      this.timer = setInterval(() => this.tick(), every);
      this.timer.unref();
    }
  }

  /** where completed edges go: the batch being appended to (the writer's) */
  attach(batchFor: () => RollupBatch): void {
    this.batchFor = batchFor;
  }

  /** expires waiting edges (virtual nodes are completed then, as in /metrics) */
  tick(): void {
    this.graph.expire(this.now());
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** a span being stored: `service` is its stored service (resource service.name or unknown_service) */
  observe(b: RollupBatch, service: string, s: Span, start: bigint, durNs: number): void {
    b.addSpan(service, Number(start / ROLLUP_BUCKET_NS), KIND_CODE[s.kind] ?? 0, s.status === 'error', durNs);
    // the graph names services as /metrics does and skips spans without service.name
    const label = spanService(s.resource);
    if (label !== '') this.graph.observe(label, s, this.now());
  }

  get ready(): boolean {
    return this.redApp !== undefined && this.edgeApp !== undefined;
  }

  async openAppenders(con: DuckDBConnection): Promise<void> {
    this.redApp = await con.createAppender('red_rollup', 'main', this.catalog ?? null);
    this.edgeApp = await con.createAppender('edge_rollup', 'main', this.catalog ?? null);
  }

  dropAppenders(): void {
    for (const a of [this.redApp, this.edgeApp]) {
      try {
        a?.clear();
        a?.closeSync();
      } catch {
        // discarded either way
      }
    }
    this.redApp = undefined;
    this.edgeApp = undefined;
  }

  /** commits a batch's rollup rows (synchronously, on the writer connection) */
  write(b: RollupBatch): void {
    if (b.empty) return;
    const red = this.redApp;
    const edge = this.edgeApp;
    if (!red || !edge) throw new Error('rollup appenders are not open');
    if (b.red.size > 0) {
      for (const [service, m] of b.red) {
        for (const [key, a] of m) {
          if (a.n === 0) continue;
          const bin = key % LATENCY_BINS;
          let rest = (key - bin) / LATENCY_BINS;
          const error = rest % 2;
          rest = (rest - error) / 2;
          const kind = rest % KINDS;
          const bucket = (rest - kind) / KINDS;
          red.appendBigInt(BigInt(bucket) * ROLLUP_BUCKET_NS);
          red.appendVarchar(service);
          red.appendUTinyInt(kind);
          red.appendBoolean(error === 1);
          red.appendUTinyInt(bin);
          red.appendInteger(a.n);
          red.appendDouble(a.sum);
          red.endRow();
        }
      }
      red.flushSync();
    }
    if (b.edges.size > 0) {
      for (const [pair, m] of b.edges) {
        const cut = pair.indexOf('\u0000');
        const client = pair.slice(0, cut);
        const server = pair.slice(cut + 1);
        for (const [key, a] of m) {
          const bin = key % LATENCY_BINS;
          let rest = (key - bin) / LATENCY_BINS;
          const side = rest % 2;
          rest = (rest - side) / 2;
          const failed = rest % 2;
          rest = (rest - failed) / 2;
          const conn = rest % CONNECTION_TYPES.length;
          const bucket = (rest - conn) / CONNECTION_TYPES.length;
          edge.appendBigInt(BigInt(bucket) * ROLLUP_BUCKET_NS);
          edge.appendVarchar(client);
          edge.appendVarchar(server);
          edge.appendUTinyInt(conn);
          edge.appendBoolean(failed === 1);
          edge.appendUTinyInt(side);
          edge.appendUTinyInt(bin);
          edge.appendInteger(a.n);
          edge.appendDouble(a.sum);
          edge.endRow();
        }
      }
      edge.flushSync();
    }
  }
}

/** first bucket a window [sinceNs, …] touches: windows are widened to whole buckets */
export function bucketStart(ns: bigint): bigint {
  const r = ns % ROLLUP_BUCKET_NS;
  return r < 0n ? ns - r - ROLLUP_BUCKET_NS : ns - r;
}

type Query = (sql: string, P: Params, js?: boolean) => Promise<Row[]>;

/**
 * RED per service over the buckets that overlap [sinceNs, untilNs] (a window is widened to
 * whole 10 s buckets of span start time). Percentiles are estimated from the latency bins.
 */
export async function servicesFromRollups(query: Query, sinceNs: bigint, untilNs: bigint): Promise<ServiceStats[]> {
  const P = new Params();
  const lo = P.add(bucketStart(sinceNs), BIGINT);
  const hi = P.add(untilNs, BIGINT);
  const rows = await query(
    `SELECT service, kind = ${SERVER} AS srv, error, bin, sum(n)::DOUBLE, sum(sum_ns) FROM red_rollup
     WHERE bucket_ns >= ${lo} AND bucket_ns <= ${hi} GROUP BY ALL`,
    P,
    true,
  );
  interface Svc {
    all: Float64Array;
    srv: Float64Array;
    total: number;
    srvN: number;
    srvErr: number;
    allErr: number;
    srvSum: number;
    allSum: number;
  }
  const by = new Map<string, Svc>();
  for (const [svc, srv, err, bin, n, sum] of rows) {
    const name = String(svc);
    let s = by.get(name);
    if (!s) {
      s = { all: new Float64Array(LATENCY_BINS), srv: new Float64Array(LATENCY_BINS), total: 0, srvN: 0, srvErr: 0, allErr: 0, srvSum: 0, allSum: 0 };
      by.set(name, s);
    }
    const count = Number(n);
    const b = Number(bin);
    s.all[b]! += count;
    s.total += count;
    s.allSum += Number(sum);
    if (err === true) s.allErr += count;
    if (srv === true) {
      s.srv[b]! += count;
      s.srvN += count;
      s.srvSum += Number(sum);
      if (err === true) s.srvErr += count;
    }
  }
  const seconds = Number(untilNs - sinceNs) / 1e9;
  const out: ServiceStats[] = [];
  for (const [service, s] of [...by].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    if (s.total <= 0) continue;
    const useServer = s.srvN > 0;
    const n = useServer ? s.srvN : s.total;
    const errors = useServer ? s.srvErr : s.allErr;
    const bins = useServer ? s.srv : s.all;
    out.push({
      service,
      spanCount: s.total,
      basis: useServer ? 'server' : 'all',
      requestCount: n,
      ratePerSec: seconds > 0 ? n / seconds : 0,
      errorCount: errors,
      errorPct: n > 0 ? (errors / n) * 100 : 0,
      durationSumNs: useServer ? s.srvSum : s.allSum,
      quantiles: 'estimated',
      p50Ns: quantileFromBins(bins, 0.5),
      p95Ns: quantileFromBins(bins, 0.95),
      p99Ns: quantileFromBins(bins, 0.99),
    });
  }
  return out;
}

/** Service-graph edges over the buckets that overlap [sinceNs, untilNs] (see servicesFromRollups). */
export async function edgesFromRollups(query: Query, sinceNs: bigint, untilNs: bigint): Promise<EdgeStats[]> {
  const P = new Params();
  const lo = P.add(bucketStart(sinceNs), BIGINT);
  const hi = P.add(untilNs, BIGINT);
  const rows = await query(
    `SELECT client, server, conn, failed, side, bin, sum(n)::DOUBLE, sum(sum_ns) FROM edge_rollup
     WHERE bucket_ns >= ${lo} AND bucket_ns <= ${hi} GROUP BY ALL`,
    P,
    true,
  );
  interface E {
    caller: string;
    callee: string;
    conn: number;
    count: number;
    failed: number;
    client: Float64Array;
    server: Float64Array;
    clientSum: number;
    serverSum: number;
  }
  const by = new Map<string, E>();
  for (const [client, server, conn, failed, side, bin, n, sum] of rows) {
    const key = `${String(client)}\u0000${String(server)}\u0000${Number(conn)}`;
    let e = by.get(key);
    if (!e) {
      e = {
        caller: String(client),
        callee: String(server),
        conn: Number(conn),
        count: 0,
        failed: 0,
        client: new Float64Array(LATENCY_BINS),
        server: new Float64Array(LATENCY_BINS),
        clientSum: 0,
        serverSum: 0,
      };
      by.set(key, e);
    }
    const count = Number(n);
    if (Number(side) === 0) {
      e.count += count;
      if (failed === true) e.failed += count;
      e.client[Number(bin)]! += count;
      e.clientSum += Number(sum);
    } else {
      e.server[Number(bin)]! += count;
      e.serverSum += Number(sum);
    }
  }
  const cmp = (a: E, b: E): number => (a.caller < b.caller ? -1 : a.caller > b.caller ? 1 : a.callee < b.callee ? -1 : a.callee > b.callee ? 1 : a.conn - b.conn);
  return [...by.values()]
    .filter((e) => e.count > 0)
    .sort(cmp)
    .map((e) => ({
      caller: e.caller,
      callee: e.callee,
      connectionType: CONNECTION_TYPES[e.conn] ?? '',
      count: e.count,
      errorCount: e.failed,
      errorPct: (e.failed / e.count) * 100,
      clientSumNs: e.clientSum,
      serverSumNs: e.serverSum,
      quantiles: 'estimated' as const,
      p50Ns: quantileFromBins(e.client, 0.5),
      p95Ns: quantileFromBins(e.client, 0.95),
      serverP50Ns: quantileFromBins(e.server, 0.5),
      serverP95Ns: quantileFromBins(e.server, 0.95),
    }));
}

/** SQL (on the maintenance connection) that drops the rollup buckets entirely before `ns` */
export const PRUNE_SQL: readonly string[] = ['DELETE FROM red_rollup WHERE bucket_ns < $1', 'DELETE FROM edge_rollup WHERE bucket_ns < $1'];

/** whether a status code is an error (rollup definition, shared with retention's subtraction) */
export const isErrorStatus = (code: number): boolean => code === ERROR;
