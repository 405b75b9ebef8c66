// The embedded span store: DuckDB (in memory or one file), written through the
// Appender in batches, queried with SQL compiled from TraceQL IR.
//
// Connections: one writer (appenders, used synchronously on the JS thread), one for
// maintenance (retention, checkpoints) and a small pool of readers. DuckDB runs
// queries on its own threads, so reads never wait for the JS thread.
//
// Durability: each flush is one committed transaction (WAL for a file database), so a
// crash (even SIGKILL) loses at most what was still buffered.

import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import {
  BIGINT,
  DuckDBAppender,
  DuckDBConnection,
  DuckDBDataChunk,
  DuckDBInstance,
  DuckDBTypeId,
  DuckDBUUIDValue,
  LIST,
  UINTEGER,
  VARCHAR,
  listValue,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import type { Attributes, Span, SpanKind, SpanStatus } from '../agent/span.js';
import { TraceQLError, type CompareExpr, type Expr } from '../traceql/index.js';
import {
  Params,
  compileFilter,
  jsonPointer,
  regexLiterals,
  resourceComparisons,
  resourcePredicate,
  windowSql,
  type CompileContext,
} from './compile.js';
import { AttrEncoder, HOT_KEYS, attrsJson } from './attrs.js';
import { CHUNK_ROWS, I64Column, NumberColumn, U64HexColumn, UuidHexColumn, VarcharColumn, checkColumns, toDataChunk, type Column } from './chunks.js';
import {
  DDL,
  KIND_BY_CODE,
  KIND_CODE,
  MAX_SPAN_KEYS,
  SCHEMA_VERSION,
  SPAN_COLUMNS,
  STATUS_BY_CODE,
  STATUS_CODE,
  UNKNOWN_SERVICE,
} from './schema.js';
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
  /** buffer limit; spans beyond it are dropped and counted (default 100,000) */
  maxBuffered?: number;
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
}

/** Largest `limit` honoured by search() and searchTraces(). */
export const MAX_LIMIT = 1_000_000;

const DEFAULT_MAX_AGE_MS = 24 * 3600 * 1000;
const DEFAULT_MAX_SPANS_MEMORY = 2_000_000;
const DEFAULT_MAX_SPANS_FILE = 10_000_000;
const DEFAULT_FILE_MEMORY_LIMIT = '128MB';
/** rows per DuckDB row group (its default): the store checkpoints about this often, see maybeCheckpoint() */
const CHECKPOINT_ROWS = 122_880;
/** ... or after about this much span data (at most half the memory limit), whichever comes first */
const CHECKPOINT_BYTES = 64 * 1024 * 1024;
/** size of a row beyond its attributes and name, for CHECKPOINT_BYTES (approximate) */
const ROW_OVERHEAD_BYTES = 96;
const HOT_METHOD = HOT_KEYS.indexOf('http.request.method');
const HOT_STATUS_CODE = HOT_KEYS.indexOf('http.response.status_code');
const HOT_ROUTE = HOT_KEYS.indexOf('http.route');
const HOT_PATH = HOT_KEYS.indexOf('url.path');
const ROOT_NOT_RECEIVED = '<root span not yet received>';
const TAG_SAMPLE_SPANS = 20_000;
const MAX_INLINE_RESOURCES = 256;
const HEX32 = /^[0-9a-fA-F]{32}$/;
const HEX16 = /^[0-9a-fA-F]{16}$/;
const INT64_MAX = 9223372036854775807n;
/** 2^63 as a number: a duration (ns) this large does not fit BIGINT */
const INT64_MAX_NUMBER = Number(INT64_MAX);

const INTRINSIC_TAGS = [
  'duration',
  'kind',
  'name',
  'rootName',
  'rootServiceName',
  'span:duration',
  'span:id',
  'span:kind',
  'span:name',
  'span:parentID',
  'span:status',
  'span:statusMessage',
  'status',
  'statusMessage',
  'trace:duration',
  'trace:id',
  'trace:rootName',
  'trace:rootService',
  'traceDuration',
];

/**
 * Database files open in this process. DuckDB's file lock only keeps *other* processes
 * out, so a second open of the same file here would corrupt it; it is refused instead.
 */
const openFiles = new Set<string>();

/** catalog of the compressed in-memory database (ATTACH ':memory:' AS … (COMPRESS)) */
const MEM_CATALOG = 'osprey_mem';

const SPAN_SELECT = 'start_ns, duration_ns, trace_id, span_id, parent_span_id, name, kind, status, status_message, res_id, attributes';

interface ResourceEntry {
  id: number;
  json: string;
  attrs: Attributes;
  service: string | null;
  namespace: string | null;
}

interface TraceExtent {
  min: bigint;
  max: bigint;
}

/** the counters stats() reports as they are; the rest of StoreStats is read live */
type Counters = Omit<StoreStats, 'buffered' | 'rows' | 'resources'>;

type Row = DuckDBValue[];

export class DuckStore implements SpanStore {
  private readonly instance: DuckDBInstance;
  private readonly writer: DuckDBConnection;
  private readonly maint: DuckDBConnection;
  /** absolute path of the database file; undefined in memory */
  private readonly file: string | undefined;
  /** set when the data lives in an attached (compressed) in-memory catalog */
  private readonly catalog: string | undefined;
  private readonly flushSpans: number;
  private readonly flushIntervalMs: number;
  private readonly maxBuffered: number;
  private readonly maxAgeMs: number;
  private readonly maxSpans: number;
  private readonly maxReaders: number;

  private spanAppender: DuckDBAppender | undefined;
  private resAppender: DuckDBAppender | undefined;
  private traceAppender: DuckDBAppender | undefined;
  private keyAppender: DuckDBAppender | undefined;
  private spanTypes: DuckDBType[] = [];
  private traceTypes: DuckDBType[] = [];
  private readonly attrEncoder = new AttrEncoder();
  /** the batch a span is being converted into (noteKey adds to its keys) */
  private keyBatch: Batch | undefined;
  /** keys and resources of batches that failed to commit: the next batch stores them */
  private unstoredKeys: (string | null)[] = [];
  private unstoredResources: ResourceEntry[] = [];
  private readonly sinceCheckpoint = { rows: 0, bytes: 0 };
  private readonly checkpointBytes: number;

  /** converted spans waiting for a flush, oldest first; appends go to the last one */
  private batches: Batch[] = [];
  /** rows in `batches` */
  private buffered = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private flushImmediate: NodeJS.Immediate | undefined;
  private flushChain: Promise<void> = Promise.resolve();
  private retentionTimer: NodeJS.Timeout | undefined;
  private retentionRunning: Promise<RetentionResult> | undefined;

  private readonly resByKey = new Map<string, ResourceEntry>();
  private resMemo = new WeakMap<object, { entry: ResourceEntry; keys: string[]; values: unknown[] }>();
  private readonly resById = new Map<number, ResourceEntry>();
  /** ids deleted by the last resource GC; forgotten by the next one (queries in flight may still resolve them) */
  private retiredResources: number[] = [];
  private nextResId = 1;

  private readonly idleReaders: DuckDBConnection[] = [];
  private readonly readerWaiters: ((c: DuckDBConnection) => void)[] = [];
  private readerCount = 0;
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly validRegex = new Set<string>();
  /** every span attribute key stored so far, unless there were too many */
  private readonly spanKeys = new Set<string>();
  private spanKeysOverflow = false;

  private rows = 0;
  private closed = false;
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
  };

  private constructor(
    instance: DuckDBInstance,
    writer: DuckDBConnection,
    maint: DuckDBConnection,
    file: string | undefined,
    catalog: string | undefined,
    o: DuckStoreOptions,
  ) {
    this.instance = instance;
    this.catalog = catalog;
    this.writer = writer;
    this.maint = maint;
    this.file = file;
    this.flushSpans = o.flushSpans ?? 5000;
    this.flushIntervalMs = o.flushIntervalMs ?? 1000;
    this.maxBuffered = o.maxBuffered ?? 100_000;
    this.maxAgeMs = o.retention?.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
    this.maxSpans = o.retention?.maxSpans ?? (file === undefined ? DEFAULT_MAX_SPANS_MEMORY : DEFAULT_MAX_SPANS_FILE);
    this.maxReaders = o.readers ?? 4;
    this.checkpointBytes = checkpointBytes(o.memoryLimit ?? (file !== undefined ? DEFAULT_FILE_MEMORY_LIMIT : undefined));
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
    let instance: DuckDBInstance;
    try {
      instance = await DuckDBInstance.create(file ?? ':memory:', config);
    } catch (e) {
      if (file !== undefined) openFiles.delete(file);
      throw e;
    }
    const catalog = !isFile && opts.compressInMemory !== false ? MEM_CATALOG : undefined;
    let writer: DuckDBConnection | undefined;
    let maint: DuckDBConnection | undefined;
    try {
      if (catalog) {
        const boot = await instance.connect();
        try {
          await boot.run(`ATTACH ':memory:' AS ${catalog} (COMPRESS)`);
        } finally {
          boot.closeSync();
        }
      }
      writer = await connectTo(instance, catalog);
      maint = await connectTo(instance, catalog);
      for (const stmt of DDL) await writer.run(stmt);
      const v = (await writer.runAndReadAll(`SELECT value FROM osprey_meta WHERE key = 'schema_version'`)).getRows();
      const found = v[0]?.[0];
      if (found === undefined) {
        await writer.run(`INSERT INTO osprey_meta VALUES ('schema_version', $1)`, [SCHEMA_VERSION], [VARCHAR]);
      } else if (found !== SCHEMA_VERSION) {
        throw new Error(`store ${path}: schema version ${String(found)}, this build reads version ${SCHEMA_VERSION}`);
      }
      const store = new DuckStore(instance, writer, maint, file, catalog, opts);
      await store.init();
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
    const res = (await this.writer.runAndReadAll('SELECT id, attributes FROM resources ORDER BY id')).getRows();
    for (const [id, json] of res) {
      const entry = makeResource(Number(id), String(json));
      this.resById.set(entry.id, entry);
      this.resByKey.set(entry.json, entry);
      if (entry.id >= this.nextResId) this.nextResId = entry.id + 1;
    }
    await this.loadKeys();
    const cols = (await this.writer.runAndReadAll(
      `SELECT column_name FROM information_schema.columns
       WHERE table_catalog = current_database() AND table_schema = 'main' AND table_name = 'spans' ORDER BY ordinal_position`,
    )).getRows().map((r) => String(r[0]));
    if (cols.join(',') !== SPAN_COLUMNS.join(',')) throw new Error(`spans table has unexpected columns: ${cols.join(', ')}`);
    const n = (await this.writer.runAndReadAll('SELECT count(*) FROM spans')).getRows()[0]?.[0];
    this.rows = Number(n ?? 0);
    await this.openAppenders();
  }

  /** reads the stored span attribute keys into spanKeys */
  private async loadKeys(): Promise<void> {
    const rows = (await this.writer.runAndReadAll('SELECT DISTINCT key FROM span_keys')).getRows();
    for (const [k] of rows) {
      if (k === null) this.spanKeysOverflow = true;
      else this.spanKeys.add(String(k));
    }
    if (this.spanKeysOverflow) this.spanKeys.clear();
  }

  private async openAppenders(): Promise<void> {
    this.spanAppender = await this.writer.createAppender('spans', 'main', this.catalog ?? null);
    this.resAppender = await this.writer.createAppender('resources', 'main', this.catalog ?? null);
    this.traceAppender = await this.writer.createAppender('trace_index', 'main', this.catalog ?? null);
    this.keyAppender = await this.writer.createAppender('span_keys', 'main', this.catalog ?? null);
    this.spanTypes = [];
    for (let i = 0; i < this.spanAppender.columnCount; i++) this.spanTypes.push(this.spanAppender.columnType(i));
    this.traceTypes = [];
    for (let i = 0; i < this.traceAppender.columnCount; i++) this.traceTypes.push(this.traceAppender.columnType(i));
  }

  private dropAppenders(): void {
    for (const a of [this.spanAppender, this.resAppender, this.traceAppender, this.keyAppender]) {
      try {
        a?.clear();
        a?.closeSync();
      } catch {
        // a broken appender may refuse to close; it is discarded either way
      }
    }
    this.spanAppender = undefined;
    this.resAppender = undefined;
    this.traceAppender = undefined;
    this.keyAppender = undefined;
  }

  // ---- writing ------------------------------------------------------------------------

  /**
   * Validates the spans and converts them into rows of DuckDB data chunks right away; the
   * next flush commits them. Converting on arrival rather than at flush time lets the Span
   * objects die young: holding 5000 of them until a flush made the garbage collector copy
   * and promote them, which cost ~2.7 µs per span (bench/store-ingest.mjs measures the
   * store the way bench/pipeline.mjs does, collector included).
   */
  append(spans: readonly Span[]): void {
    if (this.closed) {
      this.c.spansDropped += spans.length;
      return;
    }
    for (const s of spans) {
      if (!isValidSpan(s)) {
        this.c.spansRejected++;
        continue;
      }
      if (this.buffered >= this.maxBuffered) {
        this.c.spansDropped++;
        continue;
      }
      let b = this.batches[this.batches.length - 1];
      if (!b || b.rows >= this.flushSpans) {
        b = newBatch();
        this.batches.push(b);
      }
      try {
        this.writeRow(b, s);
      } catch {
        this.c.spansRejected++;
        continue;
      }
      this.buffered++;
      this.c.spansAppended++;
    }
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.buffered === 0 || this.closed) return;
    if (this.buffered >= this.flushSpans) {
      this.flushImmediate ??= setImmediate(() => {
        this.flushImmediate = undefined;
        this.flush().catch(() => undefined);
      });
    } else if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        this.flush().catch(() => undefined);
      }, this.flushIntervalMs);
      this.flushTimer.unref();
    }
  }

  flush(): Promise<void> {
    return this.exclusive(() => this.drain());
  }

  /** Runs fn after every write queued before it, and before any queued after: writes and resource GC never overlap. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.flushChain.then(fn);
    this.flushChain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async drain(): Promise<void> {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    let failure: Error | undefined;
    for (let b = this.batches.shift(); b; b = this.batches.shift()) {
      // appends from now on start a new batch
      const cur = b.cur;
      b.cur = undefined;
      this.buffered -= b.rows;
      try {
        cur?.seal(b.chunks);
        if (!this.spanAppender || !this.resAppender || !this.traceAppender || !this.keyAppender) await this.openAppenders();
        await this.writeBatch(b);
      } catch (e) {
        this.c.flushErrors++;
        this.c.spansDropped += b.rows - b.lost;
        this.dropAppenders();
        failure ??= e instanceof Error ? e : new Error(`flush failed: ${JSON.stringify(e)}`);
      }
      // let queries and I/O run between large batches
      if (this.batches.length > 0) await new Promise<void>((r) => setImmediate(r));
    }
    if (failure) throw failure;
  }

  /**
   * Commits one batch synchronously: new span attribute keys first, then new resources,
   * then the trace index, then all the spans in one transaction. (If the process dies in
   * between, the earlier parts only describe spans that never arrived, which is
   * harmless.) Keys and resources of a batch that failed are written with the next one:
   * later batches may already refer to them.
   *
   * How spans get into DuckDB, measured (CPU of all threads per span stored, agent-shaped
   * spans with 15-17 attributes, 2-core VM shared with other work, so +-20%):
   * - Before: Span objects buffered, converted at flush time through one shared setter
   *   for all columns (a megamorphic call site), DuckDB checkpointing every 16 MB of WAL:
   *   ~27 µs in memory, ~33 µs in a file (bench/store-ingest.mjs, 2M spans).
   * - Then: converted on append() (see there) with node-api's typed vectors, the trace
   *   index as data chunks too, one pass over each attribute map (attrs.ts), checkpoints
   *   once per row group (maybeCheckpoint): ~20 µs in memory, ~21 µs in a file.
   *   bench/pipeline.mjs moves less (~19-21 -> ~15-16 µs in replays alternating the two
   *   stores): its passes are too short for checkpoints to matter.
   * - Now: rows written into plain column buffers (chunks.ts: ids from hex without
   *   BigInt, short strings inline, one native call per column and per long string):
   *   16-22 µs in a file; pipeline replay with the store 36-37k -> 39-41k spans/s.
   * - Rejected: writing each batch as CSV to /dev/shm and loading it with read_csv. JS
   *   only formats one line per span (no native call per string), but DuckDB then spends
   *   4 µs (threads=1) to 5-7 µs (default threads: the calling thread spins while a
   *   worker scans) parsing and inserting against ~2.1 µs appending ready chunks; in the
   *   pipeline replay it cost ~26 µs per span against ~21 for data chunks (same run).
   * - What remains (pipeline replay, by removing one part at a time): building the
   *   attribute JSON ~3.6 µs, handing it to DuckDB and appending it ~5.6 µs (a ~410-byte
   *   string copied to UTF-8, into the chunk, the appender and the table, with string
   *   statistics on the way), the other string columns ~2-3 µs (before chunks.ts: one native
   *   call per value), ids and numbers ~1.5 µs, compression at checkpoints ~2-3 µs
   *   amortised; DuckDB's own append of a ready chunk is ~3 µs in a file.
   *   The 17 columns and the attribute JSON text are the schema; cutting much further
   *   means storing less per span or leaving JS for the conversion.
   */
  private async writeBatch(b: Batch): Promise<void> {
    const t0 = performance.now();
    const spanApp = this.spanAppender;
    const resApp = this.resAppender;
    const traceApp = this.traceAppender;
    const keyApp = this.keyAppender;
    if (!spanApp || !resApp || !traceApp || !keyApp) throw new Error('appenders are not open');
    const keys = this.unstoredKeys.length > 0 ? [...this.unstoredKeys, ...b.keys] : b.keys;
    const fresh = this.unstoredResources.length > 0 ? [...this.unstoredResources, ...b.fresh] : b.fresh;
    let keysStored = false;
    let resourcesStored = false;
    try {
      if (keys.length > 0) {
        for (const k of keys) {
          appendNullable(keyApp, k);
          keyApp.endRow();
        }
        keyApp.flushSync();
      }
      keysStored = true;
      this.unstoredKeys = [];
      if (fresh.length > 0) {
        for (const r of fresh) {
          resApp.appendUInteger(r.id);
          appendNullable(resApp, r.service);
          appendNullable(resApp, r.namespace);
          resApp.appendVarchar(r.json);
          resApp.endRow();
        }
        resApp.flushSync();
      }
      resourcesStored = true;
      this.unstoredResources = [];
      if (b.traces.size > 0) {
        for (const c of traceIndexChunks(this.traceTypes, b.traces)) traceApp.appendDataChunk(c);
        traceApp.flushSync();
      }
      if (b.chunks.length > 0) {
        for (const c of b.chunks) spanApp.appendDataChunk(c);
        spanApp.flushSync();
      }
    } catch (e) {
      if (!keysStored) this.unstoredKeys = keys;
      if (!resourcesStored) this.unstoredResources = fresh;
      throw e;
    }
    this.rows += b.rows - b.lost;
    this.c.flushes++;
    this.c.lastFlushMs = performance.now() - t0;
    this.sinceCheckpoint.rows += b.rows;
    this.sinceCheckpoint.bytes += b.bytes;
    await this.maybeCheckpoint();
  }

  /**
   * Checkpoints (compresses and, in a file, writes the data) once about a row group's
   * worth of spans, or CHECKPOINT_BYTES of them, has been committed since the last one.
   * A checkpoint rewrites the whole row group being filled, so DuckDB's default of a
   * checkpoint every 16 MB of WAL (~20k spans) compressed every row ~3.5 times, and a
   * file store paid for writing it as often. DuckDB's own checkpoint_threshold is set far
   * above this (see open()) and only acts as a backstop. Runs on DuckDB's threads; a
   * failed checkpoint is retried after the next flush.
   */
  private async maybeCheckpoint(): Promise<void> {
    const since = this.sinceCheckpoint;
    if (since.rows < CHECKPOINT_ROWS && since.bytes < this.checkpointBytes) return;
    try {
      await this.writer.run('CHECKPOINT');
      since.rows = 0;
      since.bytes = 0;
    } catch {
      // e.g. a concurrent checkpoint (retention); the next flush tries again
    }
  }

  /**
   * Writes one span as the next row of the batch. Everything that can throw runs before
   * the first write, so a refused span leaves no partial row.
   */
  private writeRow(b: Batch, s: Span): void {
    const ext = b.traces.get(s.traceId);
    const start = typeof s.startTimeUnixNano === 'bigint' ? s.startTimeUnixNano : BigInt(s.startTimeUnixNano);
    const dur = Math.max(0, Math.round(s.durationNano));
    if (dur >= INT64_MAX_NUMBER) throw new RangeError('duration out of range');
    const enc = this.attrEncoder;
    this.keyBatch = b;
    const json = enc.encode(s.attributes, this.noteKey);
    const method = enc.hot[HOT_METHOD];
    const code = enc.hot[HOT_STATUS_CODE];
    const route = enc.hot[HOT_ROUTE];
    const path = enc.hot[HOT_PATH];
    const res = this.resourceOf(s.resource, b.fresh);
    const msg = typeof s.statusMessage === 'string' && s.statusMessage !== '' ? s.statusMessage : null;
    const c = (b.cur ??= new SpanChunk(this.spanTypes));
    const i = c.n;
    c.start.setBig(i, start);
    c.duration.setCount(i, dur);
    c.traceId.set(i, s.traceId);
    c.spanId.set(i, s.spanId);
    c.parentSpanId.set(i, s.parentSpanId || null);
    c.name.set(i, s.name);
    c.kind.set(i, KIND_CODE[s.kind] ?? 0);
    c.status.set(i, STATUS_CODE[s.status] ?? 0);
    c.statusMessage.set(i, msg);
    c.resId.set(i, res.id);
    c.service.set(i, res.service);
    c.namespace.set(i, res.namespace);
    c.method.set(i, typeof method === 'string' ? method : null);
    c.statusCode.set(i, typeof code === 'number' && Number.isFinite(code) ? code : null);
    c.route.set(i, typeof route === 'string' ? route : null);
    c.path.set(i, typeof path === 'string' ? path : null);
    c.attributes.set(i, json);
    if (++c.n === CHUNK_ROWS) {
      try {
        c.seal(b.chunks);
      } catch (e) {
        // the chunk's other rows are gone with it (this one is refused by the caller)
        b.lost += CHUNK_ROWS - 1;
        this.c.spansDropped += CHUNK_ROWS - 1;
        throw e;
      }
    }
    b.rows++;
    b.bytes += json.length + s.name.length + ROW_OVERHEAD_BYTES;
    if (res.id !== b.lastResId) {
      b.resIds.add(res.id);
      b.lastResId = res.id;
    }
    if (!ext) b.traces.set(s.traceId, { min: start, max: start });
    else if (start < ext.min) ext.min = start;
    else if (start > ext.max) ext.max = start;
  }

  /** records a span attribute key met for the first time (see spanKeys); AttrEncoder calls it */
  private readonly noteKey = (k: string): void => {
    if (this.spanKeysOverflow || this.spanKeys.has(k)) return;
    const fresh = this.keyBatch?.keys;
    if (!fresh) return;
    if (this.spanKeys.size >= MAX_SPAN_KEYS) {
      this.spanKeysOverflow = true;
      this.spanKeys.clear();
      fresh.push(null);
      return;
    }
    this.spanKeys.add(k);
    fresh.push(k);
  };

  /**
   * The stored resource for a span's resource object. Agents share one object per
   * process, so the last object seen is remembered with a snapshot of its values and
   * reused while they are unchanged (cheaper than serialising it for every span).
   */
  private resourceOf(obj: Attributes, fresh: ResourceEntry[]): ResourceEntry {
    const isObj = typeof obj === 'object' && obj !== null;
    if (isObj) {
      const memo = this.resMemo.get(obj);
      if (memo && this.resByKey.get(memo.entry.json) === memo.entry && sameValues(obj, memo.keys, memo.values)) return memo.entry;
    }
    const json = attrsJson(obj);
    let res = this.resByKey.get(json);
    if (!res) {
      res = makeResource(this.nextResId++, json);
      this.resByKey.set(res.json, res);
      this.resById.set(res.id, res);
      fresh.push(res);
    }
    if (isObj) {
      const keys = Object.keys(obj);
      this.resMemo.set(obj, { entry: res, keys, values: keys.map((k) => obj[k]) });
    }
    return res;
  }

  // ---- reading --------------------------------------------------------------------------

  async search(opts: SearchOptions): Promise<Span[]> {
    const limit = checkLimit(opts.limit);
    if (limit === 0) return [];
    await this.checkRegexes(opts.query.filter);
    const resIds = await this.lookupResources(opts.query.filter);
    const P = new Params();
    const win = windowSql(P, opts.startNs, opts.endNs);
    const cond = compileFilter(opts.query.filter, this.compileContext(P, opts, resIds));
    const order = opts.order === 'duration_desc' ? 'duration_ns DESC, start_ns DESC, span_id' : 'start_ns DESC, span_id';
    const sql = `SELECT ${SPAN_SELECT} FROM spans WHERE ${win} AND ${cond} ORDER BY ${order} LIMIT ${P.add(limit, UINTEGER)}`;
    return this.toSpans(await this.query(sql, P));
  }

  async trace(traceId: string, window: TimeWindow = {}): Promise<Span[]> {
    const id = normalizeTraceId(traceId);
    if (id === undefined) return [];
    // where the trace's spans are in time (trace_index), so the spans scan skips the rest
    const P0 = new Params();
    const range = (await this.query(
      `SELECT min(min_ns), max(max_ns) FROM trace_index WHERE trace_id = CAST(${P0.add(id, VARCHAR)} AS UUID)`,
      P0,
    ))[0];
    const lo = range?.[0];
    const hi = range?.[1];
    if (typeof lo !== 'bigint' || typeof hi !== 'bigint') return [];
    const startNs = window.startNs !== undefined && window.startNs > lo ? window.startNs : lo;
    const endNs = window.endNs !== undefined && window.endNs < hi ? window.endNs : hi;
    if (startNs > endNs) return [];
    const P = new Params();
    const idParam = P.add(id, VARCHAR);
    const win = windowSql(P, startNs, endNs);
    const sql = `SELECT ${SPAN_SELECT} FROM spans WHERE trace_id = CAST(${idParam} AS UUID) AND ${win} ORDER BY start_ns, span_id`;
    return this.toSpans(await this.query(sql, P));
  }

  async searchTraces(opts: TraceSearchOptions): Promise<TraceSummary[]> {
    const limit = checkLimit(opts.limit);
    const spss = Math.max(0, Math.min(Math.floor(opts.spansPerSpanSet ?? 3), 10_000));
    if (limit === 0) return [];
    await this.checkRegexes(opts.query.filter);
    const resIds = await this.lookupResources(opts.query.filter);
    const ctxFor = (P: Params): string =>
      `${windowSql(P, opts.startNs, opts.endNs)} AND ${compileFilter(opts.query.filter, this.compileContext(P, opts, resIds))}`;

    // 1. the newest traces with a matching span, and how many spans match in each
    const P1 = new Params();
    const top = await this.query(
      `SELECT trace_id, count(*) AS matched, max(start_ns) AS last_ns FROM spans WHERE ${ctxFor(P1)}
       GROUP BY trace_id ORDER BY last_ns DESC, trace_id LIMIT ${P1.add(limit, UINTEGER)}`,
      P1,
    );
    if (top.length === 0) return [];
    const ids = top.map((r) => uuidHex(r[0]));
    const idList = (P: Params): string => `(SELECT CAST(unnest(${P.add(listValue(ids), LIST(VARCHAR))}) AS UUID))`;
    // the time range these traces occupy, to skip the rest of the table below
    const P0 = new Params();
    const range = (await this.query(`SELECT min(min_ns), max(max_ns) FROM trace_index WHERE trace_id IN ${idList(P0)}`, P0))[0];
    const lo = typeof range?.[0] === 'bigint' ? range[0] : undefined;
    const hi = typeof range?.[1] === 'bigint' ? range[1] : undefined;

    // 2. per trace and service: extent, span and error counts, plus the trace's root: a
    //    span without a stored parent, true roots (no parent at all) first, then the earliest
    const P2 = new Params();
    const perService = await this.query(
      `WITH t AS MATERIALIZED (
         SELECT trace_id, span_id, parent_span_id, service, name, start_ns, duration_ns, status FROM spans
         WHERE trace_id IN ${idList(P2)} AND ${windowSql(P2, lo, hi)}),
       roots AS (
         SELECT s.trace_id, first(s.service ORDER BY s.parent_span_id IS NOT NULL, s.start_ns) AS root_service,
                first(s.name ORDER BY s.parent_span_id IS NOT NULL, s.start_ns) AS root_name
         FROM t s
         WHERE s.parent_span_id IS NULL OR NOT EXISTS (SELECT 1 FROM t p WHERE p.trace_id = s.trace_id AND p.span_id = s.parent_span_id)
         GROUP BY s.trace_id)
       SELECT t.trace_id, t.service, count(*), count(*) FILTER (WHERE t.status = ${P2.add(STATUS_CODE.error, UINTEGER)}),
              min(t.start_ns), max(t.start_ns + t.duration_ns),
              any_value(r.trace_id IS NOT NULL), any_value(r.root_service), any_value(r.root_name)
       FROM t LEFT JOIN roots r ON r.trace_id = t.trace_id
       GROUP BY t.trace_id, t.service`,
      P2,
    );
    // 4. up to spss matching spans per trace, earliest first
    let matchedSpans: Row[] = [];
    if (spss > 0) {
      const P4 = new Params();
      // pick the rows on narrow columns first, then read whole rows for those only
      // (matches are spread over most vectors; reading `attributes` for all of them is slow)
      matchedSpans = await this.query(
        `SELECT ${SPAN_SELECT} FROM spans WHERE rowid IN (
           SELECT rowid FROM spans WHERE ${ctxFor(P4)} AND trace_id IN ${idList(P4)}
           QUALIFY row_number() OVER (PARTITION BY trace_id ORDER BY start_ns, span_id) <= ${P4.add(spss, UINTEGER)})
         ORDER BY start_ns, span_id`,
        P4,
      );
    }

    const out = new Map<string, TraceSummary>();
    const extent = new Map<string, { start: bigint; end: bigint }>();
    for (const r of top) {
      const id = uuidHex(r[0]);
      out.set(id, {
        traceID: id,
        rootServiceName: ROOT_NOT_RECEIVED,
        rootTraceName: '',
        startTimeUnixNano: 0n,
        durationNano: 0,
        durationMs: 0,
        spanSet: { spans: [], matched: Number(r[1]) },
        serviceStats: {},
      });
    }
    for (const [tid, svc, n, errs, start, end, hasRoot, rootSvc, rootName] of perService) {
      const id = uuidHex(tid);
      const t = out.get(id);
      if (!t) continue;
      if (hasRoot === true) {
        t.rootServiceName = rootSvc === null || rootSvc === undefined ? UNKNOWN_SERVICE : String(rootSvc);
        t.rootTraceName = String(rootName ?? '');
      }
      t.serviceStats[svc === null ? UNKNOWN_SERVICE : String(svc)] = { spanCount: Number(n), errorCount: Number(errs) };
      const e = extent.get(id);
      const s0 = start as bigint;
      const e0 = end as bigint;
      if (!e) extent.set(id, { start: s0, end: e0 });
      else {
        if (s0 < e.start) e.start = s0;
        if (e0 > e.end) e.end = e0;
      }
    }
    for (const [id, e] of extent) {
      const t = out.get(id);
      if (!t) continue;
      t.startTimeUnixNano = e.start;
      t.durationNano = Number(e.end - e.start);
      t.durationMs = Math.floor(t.durationNano / 1e6);
    }
    for (const span of await this.toSpans(matchedSpans)) out.get(span.traceId)?.spanSet.spans.push(span);
    return [...out.values()];
  }

  async services(sinceNs: bigint, untilNs?: bigint): Promise<ServiceStats[]> {
    const until = untilNs ?? nowNs();
    const P = new Params();
    const win = windowSql(P, sinceNs, until);
    const srv = P.add(KIND_CODE.server, UINTEGER);
    const err = P.add(STATUS_CODE.error, UINTEGER);
    // quantiles over the basis spans only: server spans, or all spans of a service without any
    const rows = await this.query(
      `WITH w AS (SELECT COALESCE(service, ${P.add(UNKNOWN_SERVICE, VARCHAR)}) AS svc, kind, status, duration_ns FROM spans WHERE ${win}),
       basis AS (SELECT svc, count(*) FILTER (WHERE kind = ${srv}) > 0 AS server_only FROM w GROUP BY svc)
       SELECT w.svc, count(*),
              count(*) FILTER (WHERE kind = ${srv}),
              count(*) FILTER (WHERE kind = ${srv} AND status = ${err}),
              count(*) FILTER (WHERE status = ${err}),
              quantile_cont(duration_ns, [0.5, 0.95, 0.99]) FILTER (WHERE NOT b.server_only OR kind = ${srv})
       FROM w JOIN basis b ON b.svc = w.svc GROUP BY w.svc ORDER BY w.svc`,
      P,
      true,
    );
    const seconds = Number(until - sinceNs) / 1e9;
    return rows.map(([svc, total, srvN, srvErr, allErr, quantiles]) => {
      const useServer = Number(srvN) > 0;
      const n = Number(useServer ? srvN : total);
      const errors = Number(useServer ? srvErr : allErr);
      const q = quantiles as number[] | null;
      return {
        service: String(svc),
        spanCount: Number(total),
        basis: useServer ? 'server' : 'all',
        requestCount: n,
        ratePerSec: seconds > 0 ? n / seconds : 0,
        errorCount: errors,
        errorPct: n > 0 ? (errors / n) * 100 : 0,
        p50Ns: Number(q?.[0] ?? 0),
        p95Ns: Number(q?.[1] ?? 0),
        p99Ns: Number(q?.[2] ?? 0),
      };
    });
  }

  async edges(sinceNs: bigint, untilNs?: bigint): Promise<EdgeStats[]> {
    const until = untilNs ?? nowNs();
    const P = new Params();
    const slack = 300_000_000_000n; // a server span may start a little before its client (clock skew) or after the window
    const cWin = windowSql(P, sinceNs, until, 'c.start_ns');
    const sWin = windowSql(P, sinceNs - slack, until + slack, 's.start_ns');
    const unknown = P.add(UNKNOWN_SERVICE, VARCHAR);
    const err = P.add(STATUS_CODE.error, UINTEGER);
    const rows = await this.query(
      `SELECT COALESCE(c.service, ${unknown}) AS caller, COALESCE(s.service, ${unknown}) AS callee, count(*),
              count(*) FILTER (WHERE c.status = ${err} OR s.status = ${err}),
              quantile_cont(c.duration_ns, [0.5, 0.95]), quantile_cont(s.duration_ns, [0.5, 0.95])
       FROM spans c JOIN spans s ON s.trace_id = c.trace_id AND s.parent_span_id = c.span_id
       WHERE c.kind = ${P.add(KIND_CODE.client, UINTEGER)} AND s.kind = ${P.add(KIND_CODE.server, UINTEGER)} AND ${cWin} AND ${sWin}
       GROUP BY caller, callee ORDER BY caller, callee`,
      P,
      true,
    );
    return rows.map(([caller, callee, n, errs, cq, sq]) => {
      const count = Number(n);
      const errorCount = Number(errs);
      const c = cq as number[] | null;
      const s = sq as number[] | null;
      return {
        caller: String(caller),
        callee: String(callee),
        count,
        errorCount,
        errorPct: count > 0 ? (errorCount / count) * 100 : 0,
        p50Ns: Number(c?.[0] ?? 0),
        p95Ns: Number(c?.[1] ?? 0),
        serverP50Ns: Number(s?.[0] ?? 0),
        serverP95Ns: Number(s?.[1] ?? 0),
      };
    });
  }

  async tagNames(scope?: TagScope, opts: TagOptions = {}): Promise<string[]> {
    const limit = Math.max(0, Math.min(Math.floor(opts.limit ?? 1000), 100_000));
    const names = new Set<string>();
    if (scope === undefined || scope === 'intrinsic') for (const n of INTRINSIC_TAGS) names.add(n);
    if (scope === undefined || scope === 'resource') {
      const P = new Params();
      const rows = await this.query(
        `SELECT DISTINCT k FROM (SELECT unnest(json_keys(attributes)) AS k FROM resources
           WHERE id IN (SELECT DISTINCT res_id FROM spans WHERE ${windowSql(P, opts.startNs, opts.endNs)})) ORDER BY k LIMIT ${P.add(limit, UINTEGER)}`,
        P,
      );
      for (const [k] of rows) names.add(String(k));
    }
    if (scope === undefined || scope === 'span') {
      const P = new Params();
      const rows = await this.query(
        `SELECT DISTINCT k FROM (SELECT unnest(json_keys(attributes)) AS k FROM
           (SELECT attributes FROM spans WHERE ${windowSql(P, opts.startNs, opts.endNs)} ORDER BY start_ns DESC LIMIT ${P.add(TAG_SAMPLE_SPANS, UINTEGER)}))
         ORDER BY k LIMIT ${P.add(limit, UINTEGER)}`,
        P,
      );
      for (const [k] of rows) names.add(String(k));
    }
    return [...names].sort().slice(0, limit);
  }

  async tagValues(name: string, opts: TagOptions = {}): Promise<TagValue[]> {
    const limit = Math.max(0, Math.min(Math.floor(opts.limit ?? 1000), 100_000));
    const tag = parseTagName(String(name));
    if (!tag || limit === 0) return [];
    const P = new Params();
    const win = windowSql(P, opts.startNs, opts.endNs);
    const lim = P.add(limit, UINTEGER);
    if (tag.kind === 'intrinsic') {
      switch (tag.name) {
        case 'status':
          return STATUS_BY_CODE.map((v) => ({ type: 'keyword' as const, value: v }));
        case 'kind':
          return KIND_BY_CODE.map((v) => ({ type: 'keyword' as const, value: v }));
        case 'name':
        case 'statusMessage':
        case 'rootName':
        case 'rootServiceName': {
          const col = tag.name === 'name' ? 'name' : tag.name === 'statusMessage' ? 'status_message' : tag.name === 'rootName' ? 'name' : 'service';
          const root = tag.name.startsWith('root') ? ' AND parent_span_id IS NULL' : '';
          const rows = await this.query(
            `SELECT DISTINCT ${col} AS v FROM spans WHERE ${win}${root} AND ${col} IS NOT NULL ORDER BY v LIMIT ${lim}`,
            P,
          );
          return rows.map(([v]) => ({ type: 'string' as const, value: String(v) }));
        }
        default:
          return [];
      }
    }
    const ptr = P.add(jsonPointer(tag.name), VARCHAR);
    const texts = new Set<string>();
    if (tag.scope !== 'span') {
      const rows = await this.query(
        `SELECT DISTINCT json_extract(attributes, ${ptr})::VARCHAR AS v FROM resources
         WHERE id IN (SELECT DISTINCT res_id FROM spans WHERE ${win}) AND v IS NOT NULL ORDER BY v LIMIT ${lim}`,
        P,
      );
      for (const [v] of rows) texts.add(String(v));
    }
    if (tag.scope !== 'resource' && (this.spanKeysOverflow || this.spanKeys.has(tag.name))) {
      const P2 = new Params();
      const ptr2 = P2.add(jsonPointer(tag.name), VARCHAR);
      const rows = await this.query(
        `SELECT DISTINCT v FROM (SELECT json_extract(attributes, ${ptr2})::VARCHAR AS v FROM
           (SELECT attributes FROM spans WHERE ${windowSql(P2, opts.startNs, opts.endNs)} ORDER BY start_ns DESC LIMIT ${P2.add(TAG_SAMPLE_SPANS, UINTEGER)}))
         WHERE v IS NOT NULL ORDER BY v LIMIT ${P2.add(limit, UINTEGER)}`,
        P2,
      );
      for (const [v] of rows) texts.add(String(v));
    }
    const out: TagValue[] = [];
    for (const t of texts) {
      const tv = jsonTextToTagValue(t);
      if (tv) out.push(tv);
    }
    out.sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
    return out.slice(0, limit);
  }

  stats(): StoreStats {
    return {
      ...this.c,
      buffered: this.buffered,
      rows: this.rows,
      resources: this.resByKey.size,
    };
  }

  // ---- retention ------------------------------------------------------------------------

  enforceRetention(): Promise<RetentionResult> {
    if (this.closed || this.closing) return Promise.reject(new Error('DuckStore is shut down'));
    this.retentionRunning ??= this.runRetention().finally(() => {
      this.retentionRunning = undefined;
    });
    return this.retentionRunning;
  }

  private async runRetention(): Promise<RetentionResult> {
    const result: RetentionResult = { deletedByAge: 0, deletedByCount: 0 };
    // counted as soon as each delete commits, even if a later step fails
    const deletedNow = (n: number): void => {
      this.rows = Math.max(0, this.rows - n);
      this.c.retentionDeletedSpans += n;
    };
    try {
      this.c.retentionRuns++;
      if (Number.isFinite(this.maxAgeMs)) {
        const cutoff = nowNs() - BigInt(Math.floor(this.maxAgeMs)) * 1_000_000n;
        const r = await this.maint.run('DELETE FROM spans WHERE start_ns < $1', [cutoff], [BIGINT]);
        result.deletedByAge = r.rowsChanged;
        deletedNow(r.rowsChanged);
        await this.maint.run('DELETE FROM trace_index WHERE max_ns < $1', [cutoff], [BIGINT]);
      }
      if (Number.isFinite(this.maxSpans)) {
        const total = Number((await this.maint.runAndReadAll('SELECT count(*) FROM spans')).getRows()[0]?.[0] ?? 0);
        const excess = total - this.maxSpans;
        if (excess > 0) {
          // the start time of the `excess`-th oldest span; everything up to it goes (ties may take a few more)
          const cut = (await this.maint.runAndReadAll(
            'SELECT max(start_ns) FROM (SELECT start_ns FROM spans ORDER BY start_ns LIMIT $1)',
            [BigInt(excess)],
            [BIGINT],
          )).getRows()[0]?.[0];
          if (typeof cut === 'bigint') {
            const r = await this.maint.run('DELETE FROM spans WHERE start_ns <= $1', [cut], [BIGINT]);
            result.deletedByCount = r.rowsChanged;
            deletedNow(r.rowsChanged);
            await this.maint.run('DELETE FROM trace_index WHERE max_ns <= $1', [cut], [BIGINT]);
          }
        }
      }
      if (result.deletedByAge + result.deletedByCount > 0) {
        await this.exclusive(() => this.collectResources());
        // reclaims deleted row groups (file and memory alike); between writes, so that a
        // commit never waits for it on the JS thread; a failure is retried next run
        await this.exclusive(() => this.maint.run('CHECKPOINT')).catch(() => undefined);
      }
      return result;
    } catch (e) {
      this.c.retentionErrors++;
      throw e;
    }
  }

  /** Deletes resources no span refers to any more (see retiredResources for the in-memory side). */
  private async collectResources(): Promise<void> {
    for (const id of this.retiredResources) this.resById.delete(id);
    this.retiredResources = [];
    const rows = (await this.maint.runAndReadAll(
      'SELECT id FROM resources WHERE id NOT IN (SELECT DISTINCT res_id FROM spans)',
    )).getRows();
    // spans appended but not flushed yet may use them too
    const pending = new Set<number>();
    for (const b of this.batches) for (const id of b.resIds) pending.add(id);
    const ids = rows.map((r) => Number(r[0])).filter((id) => !pending.has(id));
    if (ids.length === 0) return;
    // from now on new spans with these resources get new ids, so the delete below
    // (whose snapshot starts after this point) sees every span that still uses them
    for (const id of ids) {
      const e = this.resById.get(id);
      if (e && this.resByKey.get(e.json) === e) this.resByKey.delete(e.json);
    }
    const r = await this.maint.runAndReadAll(
      `DELETE FROM resources WHERE id IN (SELECT unnest($1::UINTEGER[])) AND id NOT IN (SELECT DISTINCT res_id FROM spans) RETURNING id`,
      [listValue(ids)],
      [LIST(UINTEGER)],
    );
    for (const [id] of r.getRows()) this.retiredResources.push(Number(id));
  }

  // ---- shutdown -------------------------------------------------------------------------

  shutdown(): Promise<void> {
    this.closing ??= this.doShutdown();
    return this.closing;
  }

  private async doShutdown(): Promise<void> {
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    if (this.flushImmediate) clearImmediate(this.flushImmediate);
    this.flushImmediate = undefined;
    await this.retentionRunning?.catch(() => undefined);
    await this.flush().catch(() => undefined);
    this.closed = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    // late appends (after closed) are counted as dropped; anything that raced in is dropped too
    this.c.spansDropped += this.buffered;
    this.batches = [];
    this.buffered = 0;
    await Promise.allSettled([...this.inflight]);
    try {
      this.spanAppender?.closeSync();
      this.resAppender?.closeSync();
      this.traceAppender?.closeSync();
      this.keyAppender?.closeSync();
    } catch {
      this.c.flushErrors++;
    }
    this.spanAppender = undefined;
    this.resAppender = undefined;
    this.traceAppender = undefined;
    this.keyAppender = undefined;
    if (this.file !== undefined) await this.maint.run('CHECKPOINT').catch(() => undefined);
    for (const c of [...this.idleReaders, this.writer, this.maint]) {
      try {
        c.closeSync();
      } catch {
        // closing anyway
      }
    }
    this.idleReaders.length = 0;
    try {
      this.instance.closeSync();
    } finally {
      if (this.file !== undefined) openFiles.delete(this.file);
    }
  }

  // ---- helpers --------------------------------------------------------------------------

  private async query(sql: string, P: Params, js = false): Promise<Row[]> {
    if (this.closed) throw new Error('DuckStore is shut down');
    const run = (async () => {
      const con = await this.acquire();
      try {
        const reader = await con.runAndReadAll(sql, P.values, P.types);
        return js ? (reader.getRowsJS() as Row[]) : reader.getRows();
      } finally {
        this.release(con);
      }
    })();
    this.inflight.add(run);
    try {
      return await run;
    } finally {
      this.inflight.delete(run);
    }
  }

  private async acquire(): Promise<DuckDBConnection> {
    const idle = this.idleReaders.pop();
    if (idle) return idle;
    if (this.readerCount < this.maxReaders) {
      this.readerCount++;
      try {
        return await connectTo(this.instance, this.catalog);
      } catch (e) {
        this.readerCount--;
        throw e;
      }
    }
    return new Promise((resolve) => this.readerWaiters.push(resolve));
  }

  private release(con: DuckDBConnection): void {
    const waiter = this.readerWaiters.shift();
    if (waiter) waiter(con);
    else this.idleReaders.push(con);
  }

  private compileContext(params: Params, w: TimeWindow, resourceIds?: Map<CompareExpr, number[]>): CompileContext {
    const keys = this.spanKeys;
    return {
      params,
      startNs: w.startNs,
      endNs: w.endNs,
      spanKeyMayExist: this.spanKeysOverflow ? undefined : (k) => keys.has(k),
      resourceIds,
    };
  }

  /**
   * Looks up, in one small query, which resources satisfy each resource-side condition,
   * so the span query gets constant id lists instead of joins. Lists longer than
   * MAX_INLINE_RESOURCES are left to a join.
   */
  private async lookupResources(filter: Expr): Promise<Map<CompareExpr, number[]> | undefined> {
    const comps = resourceComparisons(filter);
    if (comps.length === 0) return undefined;
    const P = new Params();
    const cols = comps.map((c) => `list(r.id ORDER BY r.id) FILTER (WHERE ${resourcePredicate(c, P) ?? 'FALSE'})`);
    const row = (await this.query(`SELECT ${cols.join(', ')} FROM resources r`, P, true))[0];
    const out = new Map<CompareExpr, number[]>();
    comps.forEach((c, i) => {
      const ids = (row?.[i] as unknown[] | null | undefined)?.map(Number) ?? [];
      if (ids.length <= MAX_INLINE_RESOURCES) out.set(c, ids);
    });
    return out;
  }

  /** DuckDB's regex engine is RE2 like Tempo's; refuse a bad pattern as a TraceQLError, not a SQL error. */
  private async checkRegexes(filter: SearchOptions['query']['filter']): Promise<void> {
    for (const { pattern, pos } of regexLiterals(filter)) {
      if (this.validRegex.has(pattern)) continue;
      const P = new Params();
      try {
        await this.query(`SELECT regexp_full_match('', ${P.add(pattern, VARCHAR)})`, P);
      } catch (e) {
        const msg = e instanceof Error ? e.message.replace(/^.*Error:\s*/, '') : String(e);
        throw new TraceQLError('invalid', `invalid regular expression ${JSON.stringify(pattern)}: ${msg}`, pos);
      }
      if (this.validRegex.size > 1000) this.validRegex.clear();
      this.validRegex.add(pattern);
    }
  }

  private async toSpans(rows: Row[]): Promise<Span[]> {
    const missing = new Set<number>();
    for (const r of rows) {
      const id = Number(r[9]);
      if (!this.resById.has(id)) missing.add(id);
    }
    const extra = new Map<number, ResourceEntry>();
    if (missing.size > 0) {
      const P = new Params();
      const got = await this.query(
        `SELECT id, attributes FROM resources WHERE id IN (SELECT unnest(${P.add(listValue([...missing]), LIST(UINTEGER))}))`,
        P,
      );
      for (const [id, json] of got) extra.set(Number(id), makeResource(Number(id), String(json)));
    }
    return rows.map((r) => {
      const [start, dur, tid, sid, pid, name, kind, status, msg, resId, attrs] = r;
      const res = this.resById.get(Number(resId)) ?? extra.get(Number(resId));
      const span: Span = {
        traceId: uuidHex(tid),
        spanId: (sid as bigint).toString(16).padStart(16, '0'),
        parentSpanId: pid === null ? '' : (pid as bigint).toString(16).padStart(16, '0'),
        name: String(name),
        kind: KIND_BY_CODE[Number(kind)] ?? 'unspecified',
        startTimeUnixNano: start as bigint,
        durationNano: Number(dur),
        status: STATUS_BY_CODE[Number(status)] ?? 'unset',
        resource: res ? { ...res.attrs } : {},
        attributes: JSON.parse(String(attrs)) as Attributes,
      };
      if (msg !== null && msg !== undefined) span.statusMessage = String(msg);
      return span;
    });
  }
}

// ---- module helpers ---------------------------------------------------------------------

/** A connection whose default catalog is the store's. */
async function connectTo(instance: DuckDBInstance, catalog: string | undefined): Promise<DuckDBConnection> {
  const con = await instance.connect();
  if (catalog) {
    try {
      await con.run(`USE ${catalog}`);
    } catch (e) {
      con.closeSync();
      throw e;
    }
  }
  return con;
}

function checkOptions(o: DuckStoreOptions): void {
  const posInt = (v: number | undefined, what: string, min = 1): void => {
    if (v !== undefined && !(Number.isInteger(v) && v >= min)) throw new RangeError(`DuckStore: ${what} must be an integer >= ${min}`);
  };
  posInt(o.flushSpans, 'flushSpans');
  posInt(o.flushIntervalMs, 'flushIntervalMs');
  posInt(o.maxBuffered, 'maxBuffered');
  posInt(o.threads, 'threads');
  posInt(o.readers, 'readers');
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

/** span data committed between two checkpoints (see maybeCheckpoint): at most half the memory limit */
function checkpointBytes(memoryLimit: string | undefined): number {
  const limit = memoryLimit === undefined ? undefined : parseMemoryLimit(memoryLimit);
  return Math.max(1 << 20, Math.min(CHECKPOINT_BYTES, limit === undefined ? Infinity : limit / 2));
}

function checkLimit(limit: number): number {
  if (typeof limit !== 'number' || Number.isNaN(limit) || limit < 0) throw new RangeError('limit must be a number >= 0');
  return Math.min(Math.floor(limit), MAX_LIMIT);
}

const KINDS: ReadonlySet<string> = new Set<SpanKind>(['server', 'client', 'internal', 'producer', 'consumer', 'unspecified']);
const STATUSES: ReadonlySet<string> = new Set<SpanStatus>(['ok', 'error', 'unset']);

function isValidSpan(s: unknown): s is Span {
  if (typeof s !== 'object' || s === null) return false;
  const x = s as Record<string, unknown>;
  if (typeof x['traceId'] !== 'string' || !HEX32.test(x['traceId'])) return false;
  if (typeof x['spanId'] !== 'string' || !HEX16.test(x['spanId'])) return false;
  const p = x['parentSpanId'];
  if (!(p === '' || p === undefined || (typeof p === 'string' && HEX16.test(p)))) return false;
  if (typeof x['name'] !== 'string') return false;
  const start = x['startTimeUnixNano'];
  if (typeof start === 'bigint') {
    if (start < 0n || start > INT64_MAX) return false;
  } else if (!(typeof start === 'number' && Number.isSafeInteger(start) && start >= 0)) return false;
  const d = x['durationNano'];
  if (typeof d !== 'number' || !Number.isFinite(d)) return false;
  if (typeof x['kind'] !== 'string' || !KINDS.has(x['kind'])) return false;
  if (typeof x['status'] !== 'string' || !STATUSES.has(x['status'])) return false;
  return true;
}

/** true when obj has exactly `keys` (same order) with the same values */
function sameValues(obj: Record<string, unknown>, keys: string[], values: unknown[]): boolean {
  let n = 0;
  for (const k in obj) {
    if (k !== keys[n] || obj[k] !== values[n]) return false;
    n++;
  }
  return n === keys.length;
}

function makeResource(id: number, json: string): ResourceEntry {
  const attrs = JSON.parse(json) as Attributes;
  const svc = attrs['service.name'];
  const ns = attrs['k8s.namespace.name'];
  return { id, json, attrs, service: typeof svc === 'string' ? svc : null, namespace: typeof ns === 'string' ? ns : null };
}

/** Spans converted by append(), committed together by the next flush. */
interface Batch {
  /** full chunks */
  readonly chunks: DuckDBDataChunk[];
  /** the chunk being filled */
  cur: SpanChunk | undefined;
  rows: number;
  /** rows counted in `rows` but lost with a chunk that could not be made (also in spansDropped) */
  lost: number;
  /** approximate size of the rows */
  bytes: number;
  readonly traces: Map<string, TraceExtent>;
  /** resources first used by this batch */
  readonly fresh: ResourceEntry[];
  /** span attribute keys first met in this batch (null: too many keys from here on) */
  readonly keys: (string | null)[];
  /** resources its rows refer to (resource GC keeps them) */
  readonly resIds: Set<number>;
  lastResId: number;
}

function newBatch(): Batch {
  return { chunks: [], cur: undefined, rows: 0, lost: 0, bytes: 0, traces: new Map(), fresh: [], keys: [], resIds: new Set(), lastResId: -1 };
}

/** Rows of `spans` being written into column buffers (SPAN_COLUMNS order), sealed into a data chunk every CHUNK_ROWS rows. */
class SpanChunk {
  /** rows written so far */
  n = 0;
  readonly start = new I64Column();
  readonly duration = new I64Column();
  readonly traceId = new UuidHexColumn();
  readonly spanId = new U64HexColumn();
  readonly parentSpanId = new U64HexColumn();
  readonly name = new VarcharColumn();
  readonly kind = new NumberColumn(DuckDBTypeId.UTINYINT);
  readonly status = new NumberColumn(DuckDBTypeId.UTINYINT);
  readonly statusMessage = new VarcharColumn();
  readonly resId = new NumberColumn(DuckDBTypeId.UINTEGER);
  readonly service = new VarcharColumn();
  readonly namespace = new VarcharColumn();
  readonly method = new VarcharColumn();
  readonly statusCode = new NumberColumn(DuckDBTypeId.DOUBLE);
  readonly route = new VarcharColumn();
  readonly path = new VarcharColumn();
  readonly attributes = new VarcharColumn();
  private readonly columns: readonly Column[] = [
    this.start,
    this.duration,
    this.traceId,
    this.spanId,
    this.parentSpanId,
    this.name,
    this.kind,
    this.status,
    this.statusMessage,
    this.resId,
    this.service,
    this.namespace,
    this.method,
    this.statusCode,
    this.route,
    this.path,
    this.attributes,
  ];

  constructor(private readonly types: readonly DuckDBType[]) {
    checkColumns(types, this.columns);
  }

  /** adds the rows written so far to `out` as a data chunk; the buffers are then empty (also when this throws) */
  seal(out: DuckDBDataChunk[]): void {
    if (this.n === 0) return;
    try {
      out.push(toDataChunk(this.types, this.columns, this.n));
    } finally {
      this.n = 0;
    }
  }
}

/** trace_index rows (trace id, earliest and latest span start) as data chunks */
function traceIndexChunks(types: readonly DuckDBType[], traces: Map<string, TraceExtent>): DuckDBDataChunk[] {
  const out: DuckDBDataChunk[] = [];
  const id = new UuidHexColumn();
  const min = new I64Column();
  const max = new I64Column();
  const columns = [id, min, max];
  checkColumns(types, columns);
  let n = 0;
  for (const [traceId, t] of traces) {
    id.set(n, traceId);
    min.setBig(n, t.min);
    max.setBig(n, t.max);
    if (++n === CHUNK_ROWS) {
      out.push(toDataChunk(types, columns, n));
      n = 0;
    }
  }
  if (n > 0) out.push(toDataChunk(types, columns, n));
  return out;
}

function appendNullable(a: DuckDBAppender, v: string | null): void {
  if (v === null) a.appendNull();
  else a.appendVarchar(v);
}

function uuidHex(v: DuckDBValue | undefined): string {
  if (v instanceof DuckDBUUIDValue) return v.toUint128().toString(16).padStart(32, '0');
  return String(v).replace(/-/g, '');
}

/** Lowercase 32-hex trace id, left-padded like Tempo does for short ids; undefined when not hex. */
export function normalizeTraceId(id: string): string | undefined {
  if (typeof id !== 'string') return undefined;
  const h = id.trim().toLowerCase();
  if (!/^[0-9a-f]{1,32}$/.test(h)) return undefined;
  return h.padStart(32, '0');
}

function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

type ParsedTag =
  | { kind: 'intrinsic'; name: 'status' | 'kind' | 'name' | 'statusMessage' | 'rootName' | 'rootServiceName' | 'other' }
  | { kind: 'attribute'; scope: 'span' | 'resource' | 'any'; name: string };

const INTRINSIC_TAG_NAMES: Readonly<Record<string, ParsedTag & { kind: 'intrinsic' }>> = {
  name: { kind: 'intrinsic', name: 'name' },
  'span:name': { kind: 'intrinsic', name: 'name' },
  status: { kind: 'intrinsic', name: 'status' },
  'span:status': { kind: 'intrinsic', name: 'status' },
  kind: { kind: 'intrinsic', name: 'kind' },
  'span:kind': { kind: 'intrinsic', name: 'kind' },
  statusMessage: { kind: 'intrinsic', name: 'statusMessage' },
  'span:statusMessage': { kind: 'intrinsic', name: 'statusMessage' },
  rootName: { kind: 'intrinsic', name: 'rootName' },
  'trace:rootName': { kind: 'intrinsic', name: 'rootName' },
  rootServiceName: { kind: 'intrinsic', name: 'rootServiceName' },
  'trace:rootService': { kind: 'intrinsic', name: 'rootServiceName' },
};

/** `resource.service.name`, `span.x`, `.x`, `span."a b"`, an intrinsic, or a bare attribute name (either scope). */
function parseTagName(raw: string): ParsedTag | undefined {
  const name = raw.trim();
  if (name === '') return undefined;
  const intrinsic = INTRINSIC_TAG_NAMES[name];
  if (intrinsic) return intrinsic;
  if (INTRINSIC_TAGS.includes(name)) return { kind: 'intrinsic', name: 'other' };
  let scope: 'span' | 'resource' | 'any' = 'any';
  let key = name;
  if (name.startsWith('span.')) {
    scope = 'span';
    key = name.slice(5);
  } else if (name.startsWith('resource.')) {
    scope = 'resource';
    key = name.slice(9);
  } else if (name.startsWith('.')) {
    key = name.slice(1);
  }
  if (key.length >= 2 && key.startsWith('"') && key.endsWith('"')) key = key.slice(1, -1).replace(/\\(["\\])/g, '$1');
  if (key === '') return undefined;
  return { kind: 'attribute', scope, name: key };
}

function jsonTextToTagValue(text: string): TagValue | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v === 'string') return { type: 'string', value: v };
  if (typeof v === 'boolean') return { type: 'bool', value: String(v) };
  if (typeof v === 'number') return { type: Number.isInteger(v) && !/[.eE]/.test(text) ? 'int' : 'float', value: String(v) };
  return undefined;
}
