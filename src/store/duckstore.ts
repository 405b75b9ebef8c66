// The embedded span store: DuckDB (in memory or one file), written through the
// Appender in batches, queried with SQL compiled from TraceQL IR. DuckStore puts together:
//   core.ts       the instance, reader pool, resource registry, rows → spans
//   writer.ts     the append path (validation, data chunks, one commit per batch, checkpoints)
//   rollups.ts    RED and service-graph rollups kept at ingest (services(), edges())
//   queries.ts    search, trace by id, trace search, tags
//   retention.ts  age and count limits, pruning rollups and resources with the spans
//
// Connections: one writer (appenders, used synchronously on the JS thread), one for
// maintenance (retention, checkpoints) and a small pool of readers. DuckDB runs
// queries on its own threads, so reads never wait for the JS thread.
//
// Durability: each flush is one committed transaction per table (WAL for a file database),
// so a crash (even SIGKILL) loses at most what was still buffered.

import type { Query } from '../traceql/index.js';
import type { MetricsRange, QueryRangeResponse } from './metrics-query.js';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { BIGINT, DuckDBConnection, DuckDBInstance, VARCHAR } from '@duckdb/node-api';
import type { Span } from '../model/index.js';
import type { ServiceGraph } from '../metrics/servicegraph.js';
import { SPAN_SELECT, StoreCore, connectTo, nowNs } from './core.js';
import { Queries } from './queries.js';
import { Params } from './compile.js';
import { Analysis } from './analysis.js';
import { Retention } from './retention.js';
import { EXTRAS_DDL } from './extras.js';
import { ROLLUP_BUCKET_NS, ROLLUP_DDL, Rollups, type RollupOptions } from './rollups.js';
import { DDL, READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION, SPAN_COLUMNS, UNKNOWN_SERVICE } from './schema.js';
import type {
  EdgeStats,
  RetentionResult,
  SearchOptions,
  ServiceStats,
  SpanStore,
  StoreStats,
  TagOptions,
  TagScope,
  TagValue,
  TimeWindow,
  TraceSearchOptions,
  TraceSummary,
} from './types.js';
import { SpanWriter, type Counters } from './writer.js';

export { MAX_LIMIT } from './queries.js';
export { normalizeTraceId } from './core.js';

export interface RetentionOptions {
  /** delete spans that started longer ago than this (default 24 h; Infinity = never) */
  maxAgeMs?: number;
  /** keep at most this many spans, deleting the oldest (default 2,000,000 in memory, 10,000,000 in a file; Infinity = no limit) */
  maxSpans?: number;
  /** how often retention runs by itself (default 30 s; 0 = only on enforceRetention()) */
  intervalMs?: number;
}

export interface DuckStoreOptions {
  /** database file; undefined or ':memory:' = in memory. The parent directory is created. */
  path?: string;
  retention?: RetentionOptions;
  /** flush when this many spans are buffered (default 5000) */
  flushSpans?: number;
  /** flush buffered spans at least this often (default 1000 ms) */
  flushIntervalMs?: number;
  /**
   * buffer limit; spans beyond it are dropped and counted (default 100,000). While a checkpoint
   * holds up the commits, and until the backlog is back under this, maxBufferedCheckpoint
   * applies instead: under sustained overload that is the bound that holds.
   */
  maxBuffered?: number;
  /**
   * buffer limit while a checkpoint holds up the commits and until the backlog it left is
   * back under maxBuffered (default 3 x maxBuffered; see SpanWriter.whileCheckpointing)
   */
  maxBufferedCheckpoint?: number;
  /**
   * DuckDB memory_limit, e.g. '512MB'. Default: '128MB' for a file (the rest stays on disk;
   * bench/store-ingest.mjs measures ingest under it); DuckDB's own (80% of RAM) in memory,
   * where the data itself must fit.
   */
  memoryLimit?: string;
  /** DuckDB worker threads (default: DuckDB's, one per core) */
  threads?: number;
  /** reader connections (default 4) */
  readers?: number;
  /**
   * In-memory only: keep the data compressed like a file database does (default true;
   * about 6x less memory for typical spans, queries somewhat slower).
   */
  compressInMemory?: boolean;
  /** service-graph pairing of the rollups (defaults as /metrics: wait 10 s, expire every 2 s) */
  rollups?: RollupOptions;
  /**
   * A file store's write-ahead log (default false). Without it DuckDB writes committed spans
   * into the file only at checkpoints, so a crash of the process (kill -9, OOM; a normal
   * shutdown loses nothing) loses the spans since the last one: at most checkpointIntervalMs
   * or a row group's worth (122,880 spans). With it every flushed batch survives a crash, and
   * each span is serialised once more into the log: measured live (nginx keep-alive at 4k
   * req/s, docs/benchmarks.md session 11) ~4.5 µs more of the agent's CPU per request.
   */
  wal?: boolean;
  /** without a WAL: the longest a committed span waits for the checkpoint that writes it to the file (default 30 s) */
  checkpointIntervalMs?: number;
  /**
   * Without a WAL, under load (more than ROW_GROUP_ROWS spans per rowGroupWaitMs): the longest
   * a span waits for a whole row group, which is then compressed once, at its commit (default
   * 5000 ms; see SpanWriter.scheduleFlush). At lower rates spans wait flushIntervalMs as always,
   * and with a maxBuffered below ROW_GROUP_ROWS batches are of flushSpans as without row groups.
   */
  rowGroupWaitMs?: number;
}

/**
 * Rows per row group of a file store without a WAL (ATTACH ... ROW_GROUP_SIZE; DuckDB's
 * default is 122,880). The writer commits whole ones under load, so this is also the most
 * spans that wait for a commit. Smaller groups store less densely (bench/store-ingest.mjs, 400k
 * spans: +3-6% file size at 32,768 against the default; 16,384 measured +44% in a DuckDB-only
 * experiment on the same spans, 65,536 +9%).
 */
export const ROW_GROUP_ROWS = 32_768;
const DEFAULT_ROW_GROUP_WAIT_MS = 5000;


const DEFAULT_MAX_AGE_MS = 24 * 3600 * 1000;
const DEFAULT_MAX_BUFFERED = 100_000;
/** maxBufferedCheckpoint over maxBuffered: a ~2.3 s checkpoint at ~75k spans/s, measured (SpanWriter.whileCheckpointing), fits */
const DEFAULT_CHECKPOINT_BUFFER_FACTOR = 3;
const DEFAULT_MAX_SPANS_MEMORY = 2_000_000;
const DEFAULT_MAX_SPANS_FILE = 10_000_000;
const DEFAULT_FILE_MEMORY_LIMIT = '128MB';
/** spans read per query when rollups are rebuilt */
const REBUILD_SLICE = 50_000;
/** span data committed between two checkpoints (at most half the memory limit), see SpanWriter.maybeCheckpoint */
const CHECKPOINT_BYTES = 64 * 1024 * 1024;
/** without a WAL, the most a crash can lose (see DuckStoreOptions.wal) */
const DEFAULT_CHECKPOINT_INTERVAL_MS = 30_000;

/**
 * Database files open in this process. DuckDB's file lock only keeps *other* processes
 * out, so a second open of the same file here would corrupt it; it is refused instead.
 */
const openFiles = new Set<string>();

/** DuckStore.memory() */
export interface StoreMemory {
  /** DuckDB's memory_limit as it reports it, e.g. '122.0 MiB' */
  limit: string;
  limitBytes: number;
  /** held by DuckDB's buffer manager now (sum of duckdb_memory()) */
  usedBytes: number;
  /** spilled to temporary files */
  temporaryStorageBytes: number;
  /** usedBytes by duckdb_memory() tag (lower case), tags holding nothing left out */
  byTag: Record<string, number>;
}

/** catalog of the compressed in-memory database (ATTACH ':memory:' AS … (COMPRESS)) */
const MEM_CATALOG = 'osprey_mem';
/** catalog of a file store attached without a write-ahead log (ATTACH … (RECOVERY_MODE no_wal_writes)) */
const FILE_CATALOG = 'osprey_file';

export class DuckStore implements SpanStore {
  private readonly core: StoreCore;
  private readonly writer: SpanWriter;
  private readonly queries: Queries;
  /** the web UI's read paths (analysis.ts) */
  readonly analysis: Analysis;
  private readonly rollups: Rollups;
  private readonly retention: Retention;
  private retentionTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private readonly c: Counters = {
    spansAppended: 0,
    spansDropped: 0,
    spansRejected: 0,
    retentionDeletedSpans: 0,
    retentionRuns: 0,
    retentionErrors: 0,
    flushes: 0,
    flushErrors: 0,
    lastFlushMs: 0,
    checkpoints: 0,
    checkpointErrors: 0,
    lastCheckpointMs: 0,
  };

  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly writeCon: DuckDBConnection,
    private readonly maint: DuckDBConnection,
    /** absolute path of the database file; undefined in memory */
    private readonly file: string | undefined,
    catalog: string | undefined,
    o: DuckStoreOptions,
  ) {
    this.core = new StoreCore(instance, catalog, o.readers ?? 4);
    this.rollups = new Rollups(catalog, o.rollups);
    const noWal = fileWithoutWal(file, o);
    this.writer = new SpanWriter(this.core, writeCon, this.rollups, this.c, {
      flushSpans: o.flushSpans ?? 5000,
      flushIntervalMs: o.flushIntervalMs ?? 1000,
      maxBuffered: o.maxBuffered ?? DEFAULT_MAX_BUFFERED,
      maxBufferedCheckpoint: o.maxBufferedCheckpoint ?? DEFAULT_CHECKPOINT_BUFFER_FACTOR * (o.maxBuffered ?? DEFAULT_MAX_BUFFERED),
      checkpointBytes: checkpointBytes(o.memoryLimit ?? (file !== undefined ? DEFAULT_FILE_MEMORY_LIMIT : undefined)),
      checkpointIntervalMs: noWal ? (o.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS) : undefined,
      rowGroupRows: noWal ? ROW_GROUP_ROWS : undefined,
      rowGroupWaitMs: o.rowGroupWaitMs ?? DEFAULT_ROW_GROUP_WAIT_MS,
    });
    this.queries = new Queries(this.core);
    this.analysis = new Analysis(this.core, this.queries);
    const maxSpans = o.retention?.maxSpans ?? (file === undefined ? DEFAULT_MAX_SPANS_MEMORY : DEFAULT_MAX_SPANS_FILE);
    this.retention = new Retention(this.core, maint, this.writer, this.rollups, this.c, o.retention?.maxAgeMs ?? DEFAULT_MAX_AGE_MS, maxSpans);
  }

  static async open(opts: DuckStoreOptions = {}): Promise<DuckStore> {
    checkOptions(opts);
    const path = opts.path === undefined || opts.path === '' ? ':memory:' : opts.path;
    const isFile = path !== ':memory:';
    const file = isFile ? resolve(path) : undefined;
    if (file !== undefined) {
      if (openFiles.has(file)) throw new Error(`store ${file} is already open in this process`);
      mkdirSync(dirname(file), { recursive: true });
      openFiles.add(file);
    }
    const config: Record<string, string> = {};
    const memoryLimit = opts.memoryLimit ?? (file !== undefined ? DEFAULT_FILE_MEMORY_LIMIT : undefined);
    if (memoryLimit !== undefined) config['memory_limit'] = memoryLimit;
    // the store checkpoints by itself (see maybeCheckpoint); DuckDB's own threshold, on
    // the size of the WAL, is only a backstop
    config['checkpoint_threshold'] = `${Math.ceil((4 * checkpointBytes(memoryLimit)) / 2 ** 20)}MiB`;
    if (opts.threads !== undefined) config['threads'] = String(opts.threads);
    // A file store without a WAL is attached to an in-memory instance: RECOVERY_MODE is an
    // option of ATTACH only. Spilled data goes where DuckDB puts it for a database file.
    const noWal = fileWithoutWal(file, opts);
    if (noWal) config['temp_directory'] = `${file}.tmp`;
    let instance: DuckDBInstance;
    try {
      instance = await DuckDBInstance.create(file !== undefined && !noWal ? file : ':memory:', config);
    } catch (e) {
      if (file !== undefined) openFiles.delete(file);
      throw e;
    }
    const catalog = noWal ? FILE_CATALOG : !isFile && opts.compressInMemory !== false ? MEM_CATALOG : undefined;
    let writer: DuckDBConnection | undefined;
    let maint: DuckDBConnection | undefined;
    try {
      if (catalog) {
        const boot = await instance.connect();
        try {
          // a WAL left by a run with --store-wal on is replayed here all the same (checked on DuckDB 1.5)
          // a store made with another row group size keeps its row groups; new ones get this size
          if (noWal) await boot.run(`ATTACH ${sqlString(file)} AS ${catalog} (RECOVERY_MODE no_wal_writes, ROW_GROUP_SIZE ${ROW_GROUP_ROWS})`);
          else await boot.run(`ATTACH ':memory:' AS ${catalog} (COMPRESS)`);
        } finally {
          boot.closeSync();
        }
      }
      writer = await connectTo(instance, catalog);
      maint = await connectTo(instance, catalog);
      for (const stmt of [...DDL, ...ROLLUP_DDL, ...EXTRAS_DDL]) {
        try {
          await writer.run(stmt);
        } catch (err) {
          // newer storage formats (storage_compatibility_version v1.3+) refuse a fixed dictionary
          // or FSST method as deprecated: such a table is made with DuckDB's own choice instead
          if (!/USING COMPRESSION/.test(stmt) || !/deprecated/i.test(String((err as Error).message))) throw err;
          await writer.run(stmt.replace(/ USING COMPRESSION (dictionary|fsst)\b/g, ''));
        }
      }
      const v = (await writer.runAndReadAll(`SELECT value FROM osprey_meta WHERE key = 'schema_version'`)).getRows();
      const found = v[0]?.[0];
      if (found === undefined) {
        await writer.run(`INSERT INTO osprey_meta VALUES ('schema_version', $1)`, [SCHEMA_VERSION], [VARCHAR]);
      } else if (typeof found !== 'string' || !READABLE_SCHEMA_VERSIONS.includes(found)) {
        throw new Error(`store ${path}: schema version ${String(found)}, this build reads versions ${READABLE_SCHEMA_VERSIONS.slice(0, -1).join(', ')} and ${READABLE_SCHEMA_VERSIONS.at(-1)}`);
      }
      const store = new DuckStore(instance, writer, maint, file, catalog, opts);
      await store.init();
      // without a WAL only a checkpoint puts the tables (of a new file) and the state init()
      // left into the file
      if (noWal) await writer.run('CHECKPOINT');
      const every = opts.retention?.intervalMs ?? 30_000;
      if (every > 0) {
        store.retentionTimer = setInterval(() => {
          store.enforceRetention().catch(() => undefined);
        }, every);
        store.retentionTimer.unref();
      }
      return store;
    } catch (e) {
      for (const close of [() => writer?.closeSync(), () => maint?.closeSync(), () => instance.closeSync()]) {
        try {
          close();
        } catch {
          // already failing
        }
      }
      if (file !== undefined) openFiles.delete(file);
      throw e;
    }
  }

  private async init(): Promise<void> {
    await this.core.load(this.writeCon);
    const cols = (await this.writeCon.runAndReadAll(
      `SELECT column_name FROM information_schema.columns
       WHERE table_catalog = current_database() AND table_schema = 'main' AND table_name = 'spans' ORDER BY ordinal_position`,
    )).getRows().map((r) => String(r[0]));
    if (cols.join(',') !== SPAN_COLUMNS.join(',')) throw new Error(`spans table has unexpected columns: ${cols.join(', ')}`);
    const n = (await this.writeCon.runAndReadAll('SELECT count(*) FROM spans')).getRows()[0]?.[0];
    this.core.rows = Number(n ?? 0);
    await this.writer.openAppenders();
    // rollups of open buckets live in memory until written: after a crash, rebuild the
    // buckets after the last one written (a clean shutdown writes them all)
    const clean = (await this.writeCon.runAndReadAll(`SELECT value FROM osprey_meta WHERE key = 'rollups_clean'`)).getRows()[0]?.[0];
    if (clean !== 'true' && this.core.rows > 0) await this.rebuildRollups();
    await this.setRollupsClean(false);
  }

  private async setRollupsClean(clean: boolean): Promise<void> {
    await this.writeCon.run(`DELETE FROM osprey_meta WHERE key = 'rollups_clean'`);
    await this.writeCon.run(`INSERT INTO osprey_meta VALUES ('rollups_clean', $1)`, [String(clean)], [VARCHAR]);
  }

  /**
   * Recomputes the rollups of the spans that started in or after the bucket following the
   * last one written (all spans when `all` or when none was written), with the same code
   * append() uses. Returns how many spans it read.
   */
  async rebuildRollups(all = false): Promise<number> {
    return this.writer.exclusive(async () => {
      const last = all ? undefined : (await this.writeCon.runAndReadAll('SELECT max(bucket_ns) FROM red_rollup')).getRows()[0]?.[0];
      const from = typeof last === 'bigint' ? last + ROLLUP_BUCKET_NS : -(2n ** 62n);
      for (const sql of ['DELETE FROM red_rollup WHERE bucket_ns >= $1', 'DELETE FROM edge_rollup WHERE bucket_ns >= $1']) {
        await this.writeCon.run(sql, [from], [BIGINT]);
      }
      let read = 0;
      // in slices of start time, oldest first, as they were appended
      let lo = from;
      for (;;) {
        const rows = (await this.writeCon.runAndReadAll(
          `SELECT ${SPAN_SELECT} FROM spans WHERE start_ns >= $1 ORDER BY start_ns LIMIT ${REBUILD_SLICE}`,
          [lo],
          [BIGINT],
        )).getRows();
        if (rows.length === 0) break;
        // the slice's last start time may continue in the next slice: stop before it, unless that is all there is
        const lastStart = rows[rows.length - 1]?.[0] as bigint;
        const whole = rows.length < REBUILD_SLICE ? rows : rows.filter((r) => (r[0] as bigint) < lastStart);
        const take = whole.length > 0 ? whole : rows;
        for (const s of await this.core.toSpans(take)) {
          const svc = s.resource['service.name'];
          this.rollups.restore(typeof svc === 'string' ? svc : UNKNOWN_SERVICE, s, s.durationNano);
        }
        read += take.length;
        if (rows.length < REBUILD_SLICE) break;
        lo = whole.length > 0 ? lastStart : lastStart + 1n;
      }
      this.rollups.write(true);
      return read;
    });
  }

  // ---- writing: writer.ts -----------------------------------------------------------------

  append(spans: readonly Span[]): void {
    this.writer.append(spans);
  }

  /**
   * Takes the service-graph edges from `graph` (the metrics generator's), which the caller
   * feeds every span it appends here, instead of pairing the same spans a second time
   * (Rollups.shareGraph).
   */
  shareServiceGraph(graph: ServiceGraph): void {
    this.rollups.shareGraph(graph);
  }

  flush(): Promise<void> {
    return this.writer.flush();
  }

  // ---- reading: queries.ts, rollups.ts -----------------------------------------------------

  search(opts: SearchOptions): Promise<Span[]> {
    return this.queries.search(opts);
  }

  count(opts: Omit<SearchOptions, 'limit' | 'order'>): Promise<number> {
    return this.queries.count(opts);
  }

  trace(traceId: string, window: TimeWindow = {}): Promise<Span[]> {
    return this.queries.trace(traceId, window);
  }

  searchTraces(opts: TraceSearchOptions): Promise<TraceSummary[]> {
    return this.queries.searchTraces(opts);
  }

  metricsQuery(query: Query, range: MetricsRange): Promise<QueryRangeResponse> {
    return this.queries.metrics(query, range);
  }

  /** RED per service from the rollups: the window is widened to whole 1-minute buckets; percentiles are estimated */
  services(sinceNs: bigint, untilNs?: bigint): Promise<ServiceStats[]> {
    return this.rollups.services((sql, P, js) => this.core.query(sql, P, js), sinceNs, untilNs ?? nowNs());
  }

  /** Service-graph edges from the rollups, paired as /metrics pairs them (see services() for the window) */
  edges(sinceNs: bigint, untilNs?: bigint): Promise<EdgeStats[]> {
    return this.rollups.edges((sql, P, js) => this.core.query(sql, P, js), sinceNs, untilNs ?? nowNs());
  }

  tagNames(scope?: TagScope, opts: TagOptions = {}): Promise<string[]> {
    return this.queries.tagNames(scope, opts);
  }

  tagValues(name: string, opts: TagOptions = {}): Promise<TagValue[]> {
    return this.queries.tagValues(name, opts);
  }

  /**
   * DuckDB's own accounting: its memory_limit and what its buffer manager holds now, by tag
   * (duckdb_memory(): the buffer pool's table blocks, metadata, hash tables...). Memory DuckDB
   * allocates outside the buffer manager (its allocator's caches, query state) is not counted.
   */
  async memory(): Promise<StoreMemory> {
    const rows = await this.core.query(
      `SELECT tag, memory_usage_bytes, temporary_storage_bytes, current_setting('memory_limit') FROM duckdb_memory() ORDER BY tag`,
      new Params(),
      true,
    );
    const byTag: Record<string, number> = {};
    let used = 0;
    let temp = 0;
    for (const r of rows) {
      const b = Number(r[1]);
      used += b;
      temp += Number(r[2]);
      if (b > 0) byTag[String(r[0]).toLowerCase()] = b;
    }
    const limit = rows[0] ? String(rows[0][3]) : '';
    return { limit, limitBytes: parseMemoryLimit(limit) ?? 0, usedBytes: used, temporaryStorageBytes: temp, byTag };
  }

  stats(): StoreStats {
    return {
      ...this.c,
      buffered: this.writer.buffered,
      spansUnsynced: this.writer.unsynced,
      rows: this.core.rows,
      resources: this.core.resByKey.size,
    };
  }

  // ---- retention: retention.ts -------------------------------------------------------------

  enforceRetention(): Promise<RetentionResult> {
    if (this.core.closed || this.closing) return Promise.reject(new Error('DuckStore is shut down'));
    return this.retention.enforce();
  }

  // ---- shutdown -------------------------------------------------------------------------

  shutdown(): Promise<void> {
    this.closing ??= this.doShutdown();
    return this.closing;
  }

  private async doShutdown(): Promise<void> {
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    this.rollups.stop();
    await this.retention.inProgress?.catch(() => undefined);
    await this.flush().catch(() => undefined);
    // the open rollup buckets too, so that a restart finds them complete
    await this.writer
      .commitRollups(true)
      .then(() => this.setRollupsClean(true))
      .catch(() => undefined);
    this.core.closed = true;
    // late appends (after closed) are counted as dropped; anything that raced in is dropped too
    await Promise.allSettled([...this.core.inflight]);
    this.writer.close();
    if (this.file !== undefined) await this.maint.run('CHECKPOINT').catch(() => undefined);
    for (const c of [...this.core.idleReaders, this.writeCon, this.maint]) {
      try {
        c.closeSync();
      } catch {
        // closing anyway
      }
    }
    this.core.idleReaders.length = 0;
    try {
      this.instance.closeSync();
    } finally {
      if (this.file !== undefined) openFiles.delete(this.file);
    }
  }
}

// ---- module helpers ---------------------------------------------------------------------

function checkOptions(o: DuckStoreOptions): void {
  const posInt = (v: number | undefined, what: string, min = 1): void => {
    if (v !== undefined && !(Number.isInteger(v) && v >= min)) throw new RangeError(`DuckStore: ${what} must be an integer >= ${min}`);
  };
  posInt(o.flushSpans, 'flushSpans');
  posInt(o.flushIntervalMs, 'flushIntervalMs');
  posInt(o.rowGroupWaitMs, 'rowGroupWaitMs');
  posInt(o.maxBuffered, 'maxBuffered');
  posInt(o.maxBufferedCheckpoint, 'maxBufferedCheckpoint');
  posInt(o.threads, 'threads');
  posInt(o.readers, 'readers');
  posInt(o.checkpointIntervalMs, 'checkpointIntervalMs');
  posInt(o.retention?.intervalMs, 'retention.intervalMs', 0);
  for (const [k, v] of [['maxAgeMs', o.retention?.maxAgeMs], ['maxSpans', o.retention?.maxSpans]] as const) {
    if (v !== undefined && !(v === Infinity || (Number.isFinite(v) && v > 0))) {
      throw new RangeError(`DuckStore: retention.${k} must be > 0 (Infinity = no limit)`);
    }
  }
  if (o.memoryLimit !== undefined && parseMemoryLimit(o.memoryLimit) === undefined) {
    throw new RangeError(`DuckStore: memoryLimit must look like '512MB' or '2GB'`);
  }
}

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** Bytes of a DuckDB memory size like '128MB' or '1.5GiB' (units as DuckDB reads them); undefined if malformed. */
export function parseMemoryLimit(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i.exec(typeof s === 'string' ? s.trim() : '');
  if (!m) return undefined;
  const bytes = Number(m[1]) * (SIZE_UNITS[(m[2] as string).toLowerCase()] ?? NaN);
  return Number.isFinite(bytes) && bytes > 0 ? bytes : undefined;
}

/**
 * A file store without a write-ahead log (the default: see DuckStoreOptions.wal), whose spans
 * reach the file at checkpoints. A type guard, so that a `file` it answers true for is a string.
 */
function fileWithoutWal(file: string | undefined, o: DuckStoreOptions): file is string {
  return file !== undefined && o.wal !== true;
}

/** span data committed between two checkpoints (see maybeCheckpoint): at most half the memory limit */
function checkpointBytes(memoryLimit: string | undefined): number {
  const limit = memoryLimit === undefined ? undefined : parseMemoryLimit(memoryLimit);
  return Math.max(1 << 20, Math.min(CHECKPOINT_BYTES, limit === undefined ? Infinity : limit / 2));
}

/** a SQL string literal */
function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}
