import type { MetricsRange, QueryRangeResponse } from './metrics-query.js';
// The store's contract. DuckStore (DuckDB, embedded) implements it; the server, the
// CLI and the metrics code depend on this interface only.

import type { Span } from '../model/index.js';
import type { Query } from '../traceql/index.js';
import type { Analysis } from './analysis.js';

/** Time window on span start time, unix nanoseconds, both ends inclusive; omitted = unbounded. */
export interface TimeWindow {
  startNs?: bigint;
  endNs?: bigint;
}

export type SearchOrder = 'start_desc' | 'duration_desc';

export interface SearchOptions extends TimeWindow {
  query: Query;
  /** maximum number of spans returned (0 → none; capped at MAX_LIMIT) */
  limit: number;
  /** default 'start_desc' (newest first); 'duration_desc' = slowest first */
  order?: SearchOrder;
}

export interface TraceSearchOptions extends TimeWindow {
  query: Query;
  /** maximum number of traces (Tempo `limit`, default there 20) */
  limit: number;
  /** matching spans returned per trace (Tempo `spss`, default 3) */
  spansPerSpanSet?: number;
}

/** One trace of a Tempo `/api/search` answer. */
export interface TraceSummary {
  /** 32 lowercase hex */
  traceID: string;
  /** service of the root span; `<root span not yet received>` when no root is stored */
  rootServiceName: string;
  rootTraceName: string;
  /** earliest start over the trace's stored spans */
  startTimeUnixNano: bigint;
  /** max(end) - min(start) over the trace's stored spans */
  durationNano: number;
  /** durationNano / 1e6, rounded down (Tempo's `durationMs`) */
  durationMs: number;
  spanSet: {
    /** up to `spansPerSpanSet` matching spans, earliest first */
    spans: Span[];
    /** number of matching spans in the trace (within the window) */
    matched: number;
  };
  /** per service of the trace: its stored spans and how many are errors */
  serviceStats: Record<string, { spanCount: number; errorCount: number }>;
}

/** RED for one service (resource `service.name`). */
export interface ServiceStats {
  service: string;
  /** all spans of the service in the window */
  spanCount: number;
  /** which spans the figures below are computed from: its server spans, or all its spans if it has none */
  basis: 'server' | 'all';
  /** number of basis spans */
  requestCount: number;
  /** requestCount per second of the window */
  ratePerSec: number;
  /** basis spans with status error */
  errorCount: number;
  /** errorCount / requestCount × 100 (0 when no requests) */
  errorPct: number;
  /** sum of the basis spans' durations, nanoseconds (exact) */
  durationSumNs: number;
  /**
   * how p50/p95/p99 were computed: 'estimated' = from quarter-octave latency buckets
   * (src/metrics/latency.ts: within one bucket, ≤ 19%, interpolated inside it)
   */
  quantiles: 'estimated';
  /** duration quantiles of the basis spans, nanoseconds (see `quantiles`) */
  p50Ns: number;
  p95Ns: number;
  p99Ns: number;
}

/**
 * A caller → callee edge of the service graph, paired exactly as /metrics pairs them
 * (Tempo's service-graphs processor, src/metrics/servicegraph.ts): a client (producer) span
 * of `caller` and the server (consumer) span of `callee` whose parent it is; also virtual
 * nodes (`user` → a root server span, a client call → its `peer.service`) and database calls.
 */
export interface EdgeStats {
  caller: string;
  callee: string;
  /** Tempo's connection_type: '' (plain), 'messaging_system', 'database' or 'virtual_node' */
  connectionType: string;
  count: number;
  /** pairs where the client or the server span has status error */
  errorCount: number;
  errorPct: number;
  /** sums of the client-side and server-side durations, nanoseconds (exact) */
  clientSumNs: number;
  serverSumNs: number;
  /** quantiles below are estimated from latency buckets (see ServiceStats.quantiles) */
  quantiles: 'estimated';
  /** client-side duration quantiles, nanoseconds */
  p50Ns: number;
  p95Ns: number;
  /** server-side duration quantiles, nanoseconds */
  serverP50Ns: number;
  serverP95Ns: number;
}

/** `event` / `link`: attribute keys of span events / links (Tempo's scopes of those names) */
export type TagScope = 'span' | 'resource' | 'intrinsic' | 'event' | 'link';

export interface TagOptions extends TimeWindow {
  /** maximum number of names/values returned (default 1000) */
  limit?: number;
}

/** A tag value typed like Tempo's v2 tag values API. */
export interface TagValue {
  type: 'string' | 'int' | 'float' | 'bool' | 'keyword';
  value: string;
}

export interface StoreStats {
  /** spans accepted into the buffer */
  spansAppended: number;
  /** spans lost: buffer full (maxBuffered), failed flushes, appends after shutdown */
  spansDropped: number;
  /** spans refused as malformed (bad ids, timestamps...) */
  spansRejected: number;
  /** spans waiting in the buffer */
  buffered: number;
  retentionDeletedSpans: number;
  retentionRuns: number;
  retentionErrors: number;
  flushes: number;
  flushErrors: number;
  /** duration of the last flush, milliseconds */
  lastFlushMs: number;
  /** checkpoints the writer ran (a file store writes committed spans into the file at each) */
  checkpoints: number;
  /** checkpoints that failed (retried after the next flush) */
  checkpointErrors: number;
  /** duration of the last checkpoint in the writer's queue (commits wait for it), milliseconds */
  lastCheckpointMs: number;
  /**
   * committed spans not yet in the database file, which a crash of the process (kill -9, OOM)
   * would lose: a file store without a write-ahead log syncs at checkpoints. 0 with a WAL and
   * in memory (where nothing survives the process anyway)
   */
  spansUnsynced: number;
  /** spans stored (committed) */
  rows: number;
  /** distinct resources stored */
  resources: number;
}

export interface RetentionResult {
  deletedByAge: number;
  deletedByCount: number;
}

export interface SpanStore {
  /** Buffers spans; they are written in batches (by size or time). Never throws on bad input: bad spans are counted. */
  append(spans: readonly Span[]): void;
  /** Writes everything buffered so far; resolves once it is committed. */
  flush(): Promise<void>;
  search(opts: SearchOptions): Promise<Span[]>;
  /** How many stored spans match, exactly, in the window (rollups are per minute; this is not) */
  count(opts: Omit<SearchOptions, 'limit' | 'order'>): Promise<number>;
  /** All stored spans of a trace, earliest first; [] when unknown or when the id is not hex. */
  trace(traceId: string, window?: TimeWindow): Promise<Span[]>;
  searchTraces(opts: TraceSearchOptions): Promise<TraceSummary[]>;
  /** A TraceQL metrics query (`{ } | rate() by (...)`) in Tempo's QueryRangeResponse shape. */
  metricsQuery(query: Query, range: MetricsRange): Promise<QueryRangeResponse>;
  services(sinceNs: bigint, untilNs?: bigint): Promise<ServiceStats[]>;
  edges(sinceNs: bigint, untilNs?: bigint): Promise<EdgeStats[]>;
  /** Attribute names (and intrinsic names for scope 'intrinsic'); all scopes when omitted. Sorted. */
  tagNames(scope?: TagScope, opts?: TagOptions): Promise<string[]>;
  /**
   * Values of a tag. `name` is a TraceQL field (`resource.service.name`, `span.http.route`,
   * `.x`, `name`, `status`, `kind`...) or a bare attribute name (`service.name`: either scope).
   */
  tagValues(name: string, opts?: TagOptions): Promise<TagValue[]>;
  stats(): StoreStats;
  /** the web UI's read paths (paged trace list, heatmap, selection comparison); absent in stores without them */
  readonly analysis?: Analysis;
  enforceRetention(): Promise<RetentionResult>;
  /** Flushes and closes. Idempotent. */
  shutdown(): Promise<void>;
}
