// The append path: spans are validated and converted into DuckDB data chunks as they
// arrive, and each batch is committed with the Appender (one transaction per table and batch).
// The rollups (rollups.ts) see every span as it is converted and are committed with its batch.

import {
  DuckDBAppender,
  DuckDBConnection,
  DuckDBDataChunk,
  DuckDBEnumType,
  DuckDBTypeId,
  type DuckDBType,
} from '@duckdb/node-api';
import { HOT_ATTRIBUTES, Span, type Attributes, type HotValue, type SpanKind, type SpanStatus } from '../model/index.js';
import { AttrEncoder, HOT_TYPES, attrsJson } from './attrs.js';
import { CHUNK_ROWS, EnumColumn, I64Column, NumberColumn, U64HexColumn, UuidHexColumn, VarcharColumn, checkColumns, toDataChunk, type Column } from './chunks.js';
import { discardAppenders, makeResource, type ResourceEntry, type StoreCore } from './core.js';
import { ExtrasAppenders, ExtrasBatch, hasExtras } from './extras.js';
import type { Rollups } from './rollups.js';
import { KIND_CODE, MAX_SPAN_KEYS, SPAN_CODED, SPAN_COLUMNS, SPAN_ENUMS, SPAN_HOT_AT, STATUS_CODE, UNKNOWN_SERVICE } from './schema.js';
import type { StoreStats } from './types.js';

/** strings appended between two flushes of their appender: fewer than the 204,800 rows at which DuckDB's appender commits by itself */
const STRINGS_PER_FLUSH = 100_000;
/** rows per DuckDB row group (its default): the store checkpoints about this often, see maybeCheckpoint() */
const CHECKPOINT_ROWS = 122_880;
/** size of a row beyond its attributes and name, for the checkpoint byte budget (approximate) */
const ROW_OVERHEAD_BYTES = 96;
const INT64_MAX = 9223372036854775807n;
/** emptied span chunks kept for reuse (one batch fills one while the previous one is flushed) */
const MAX_SPARE_CHUNKS = 2;
/** 2^63 as a number: a duration (ns) this large does not fit BIGINT */
const INT64_MAX_NUMBER = Number(INT64_MAX);

/** the counters stats() reports as they are; the rest of StoreStats is read live */
export type Counters = Omit<StoreStats, 'buffered' | 'rows' | 'resources' | 'spansUnsynced'>;


export interface WriterOptions {
  flushSpans: number;
  flushIntervalMs: number;
  maxBuffered: number;
  /**
   * The bound on buffered spans while a checkpoint holds up the commits, and after it until
   * the backlog is back under maxBuffered (see whileCheckpointing). At least maxBuffered.
   */
  maxBufferedCheckpoint: number;
  /** span data committed between two checkpoints, bytes */
  checkpointBytes: number;
  /**
   * A file store without a write-ahead log: committed spans reach the file only at a
   * checkpoint, so one runs at most this long after a commit left spans unsynced (the most a
   * crash of the process can lose). Undefined: no time bound (a WAL keeps every commit, or
   * the store is in memory and a crash loses everything anyway).
   */
  checkpointIntervalMs?: number;
  /**
   * A file store attached with ROW_GROUP_SIZE rowGroupRows: under load the writer commits
   * whole row groups, which DuckDB compresses and writes at the commit (see scheduleFlush).
   * Undefined (or more than maxBuffered): batches of flushSpans, compressed by the next checkpoint.
   */
  rowGroupRows?: number;
  /** with rowGroupRows: the longest a span waits for its row group to fill (ms) */
  rowGroupWaitMs?: number;
}

export class SpanWriter {
  private spanAppender: DuckDBAppender | undefined;
  private resAppender: DuckDBAppender | undefined;
  private traceAppender: DuckDBAppender | undefined;
  private keyAppender: DuckDBAppender | undefined;
  private stringAppender: DuckDBAppender | undefined;
  /** span events, links and drop counts (extras.ts) */
  private readonly extras = new ExtrasAppenders();
  private spanTypes: DuckDBType[] = [];
  /**
   * emptied span chunks for the next batches: a SpanChunk's ~35 column buffers (~0.5 MB) are
   * made once, not once per batch (the garbage collector had to sweep and zero them anew)
   */
  private spareChunks: SpanChunk[] = [];
  private traceTypes: DuckDBType[] = [];
  private readonly attrEncoder = new AttrEncoder();
  /** hot attributes already noted as stored keys (span_keys) */
  private readonly hotSeen: boolean[] = HOT_ATTRIBUTES.map(() => false);
  /** the batch a span is being converted into (noteKey adds to its keys) */
  private keyBatch: Batch | undefined;
  /** keys and resources of batches that failed to commit: the next batch stores them */
  private unstoredKeys: (string | null)[] = [];
  private unstoredResources: ResourceEntry[] = [];
  private unstoredStrings: [number, string][] = [];
  private readonly sinceCheckpoint = { rows: 0, bytes: 0 };
  private readonly checkpointBytes: number;
  private readonly checkpointIntervalMs: number | undefined;
  private checkpointTimer: NodeJS.Timeout | undefined;
  private readonly flushSpans: number;
  private readonly flushIntervalMs: number;
  /** rows at which a batch is full: flushSpans, or a row group (rowGroupRows) */
  private readonly batchRows: number;
  private readonly rowGroupRows: number | undefined;
  private readonly rowGroupWaitMs: number;
  private readonly maxBuffered: number;
  private readonly maxBufferedCheckpoint: number;
  /** the bound append() applies now: maxBuffered, or maxBufferedCheckpoint (see whileCheckpointing) */
  private bufferLimit: number;
  /** checkpoints running now in the writer's queue */
  private checkpointsRunning = 0;

  /** converted spans waiting for a flush, oldest first; appends go to the last one */
  batches: Batch[] = [];
  /** rows in `batches` */
  buffered = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private flushImmediate: NodeJS.Immediate | undefined;
  private flushChain: Promise<void> = Promise.resolve();
  private resMemo = new WeakMap<object, { entry: ResourceEntry; keys: string[]; values: unknown[] }>();

  constructor(
    private readonly core: StoreCore,
    private readonly writer: DuckDBConnection,
    private readonly rollups: Rollups,
    private readonly c: Counters,
    o: WriterOptions,
  ) {
    this.flushSpans = o.flushSpans;
    this.flushIntervalMs = o.flushIntervalMs;
    // a buffer smaller than a row group never holds a full one: spans past maxBuffered would be
    // dropped while the batch waits for it, so such a store commits batches of flushSpans
    this.rowGroupRows = o.rowGroupRows !== undefined && o.rowGroupRows <= o.maxBuffered ? o.rowGroupRows : undefined;
    this.rowGroupWaitMs = o.rowGroupWaitMs ?? o.flushIntervalMs;
    this.batchRows = this.rowGroupRows ?? o.flushSpans;
    this.maxBuffered = o.maxBuffered;
    this.maxBufferedCheckpoint = Math.max(o.maxBuffered, o.maxBufferedCheckpoint);
    this.bufferLimit = o.maxBuffered;
    this.checkpointBytes = o.checkpointBytes;
    this.checkpointIntervalMs = o.checkpointIntervalMs;
  }

  /** committed spans a crash of the process would lose: those since the last checkpoint, 0 with a WAL or in memory */
  get unsynced(): number {
    return this.checkpointIntervalMs === undefined ? 0 : this.sinceCheckpoint.rows;
  }

  /** the batch appends go to */
  private currentBatch(): Batch {
    let b = this.batches[this.batches.length - 1];
    if (!b || b.rows >= this.batchRows) {
      b = newBatch(this.core.strings.clears, performance.now());
      this.batches.push(b);
    }
    return b;
  }

  /** writes the closed rollup buckets (all with `all`: shutdown) between other writes */
  commitRollups(all = false): Promise<void> {
    return this.exclusive(async () => {
      if (!this.rollups.ready) await this.openAppenders();
      this.rollups.write(all);
    });
  }

  /** stops the timers; what is buffered is dropped and counted (after the last flush) */
  close(): void {
    if (this.flushImmediate) clearImmediate(this.flushImmediate);
    this.flushImmediate = undefined;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.checkpointTimer) clearTimeout(this.checkpointTimer);
    this.checkpointTimer = undefined;
    this.c.spansDropped += this.buffered;
    this.batches = [];
    this.buffered = 0;
    this.bufferLimit = this.maxBuffered;
    try {
      this.spanAppender?.closeSync();
      this.resAppender?.closeSync();
      this.traceAppender?.closeSync();
      this.keyAppender?.closeSync();
      this.stringAppender?.closeSync();
      this.extras.close();
    } catch {
      this.c.flushErrors++;
    }
    this.spanAppender = undefined;
    this.resAppender = undefined;
    this.traceAppender = undefined;
    this.keyAppender = undefined;
    this.stringAppender = undefined;
    this.rollups.dropAppenders();
  }

  async openAppenders(): Promise<void> {
    this.spanAppender = await this.writer.createAppender('spans', 'main', this.core.catalog ?? null);
    this.resAppender = await this.writer.createAppender('resources', 'main', this.core.catalog ?? null);
    this.traceAppender = await this.writer.createAppender('trace_index', 'main', this.core.catalog ?? null);
    this.keyAppender = await this.writer.createAppender('span_keys', 'main', this.core.catalog ?? null);
    this.stringAppender = await this.writer.createAppender('strings', 'main', this.core.catalog ?? null);
    await this.rollups.openAppenders(this.writer);
    await this.extras.open(this.writer, this.core.catalog);
    this.spanTypes = [];
    this.spareChunks = [];
    for (let i = 0; i < this.spanAppender.columnCount; i++) this.spanTypes.push(this.spanAppender.columnType(i));
    // which hot columns are ENUMs in this table, with its values (the queries' `=` needs them)
    const types = this.spanTypes;
    this.core.enumColumns = new Map(
      Object.keys(SPAN_ENUMS).map((col) => {
        const t = types[SPAN_COLUMNS.indexOf(col)];
        return [col, t instanceof DuckDBEnumType ? new Set(t.values) : null];
      }),
    );
    // and which hold codes (SPAN_CODED): the queries decode those
    this.core.codedColumns = new Set([...SPAN_CODED].filter((col) => types[SPAN_COLUMNS.indexOf(col)]?.typeId === DuckDBTypeId.UINTEGER));
    this.traceTypes = [];
    for (let i = 0; i < this.traceAppender.columnCount; i++) this.traceTypes.push(this.traceAppender.columnType(i));
  }

  dropAppenders(): void {
    this.rollups.dropAppenders();
    this.extras.drop();
    discardAppenders([this.spanAppender, this.resAppender, this.traceAppender, this.keyAppender, this.stringAppender]);
    this.spanAppender = undefined;
    this.resAppender = undefined;
    this.traceAppender = undefined;
    this.keyAppender = undefined;
    this.stringAppender = undefined;
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
    if (this.core.closed) {
      this.c.spansDropped += spans.length;
      return;
    }
    for (const s of spans) {
      if (!isValidSpan(s)) {
        this.c.spansRejected++;
        continue;
      }
      if (this.buffered >= this.bufferLimit) {
        this.c.spansDropped++;
        continue;
      }
      const b = this.currentBatch();
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

  /**
   * When the buffered spans are committed. Without rowGroupRows: once flushSpans are waiting,
   * else flushIntervalMs after the first.
   *
   * With rowGroupRows (a file store): a batch holds up to a row group, and a full one is
   * committed at once, alone. DuckDB compresses and writes a transaction's full row groups at
   * its commit (checked on 1.5: `persistent` in pragma_storage_info before any CHECKPOINT),
   * so the spans are compressed once, where smaller commits go into an uncompressed row group
   * in memory that the next checkpoint scans, compresses and writes (and every commit copies).
   * Measured (bench/store-ingest.mjs, 400k spans, 3 alternated pairs): 8.1 -> 6.7 µs of CPU per
   * span stored, file +3-6%. A batch that is not full is committed flushIntervalMs after its
   * first span, as without row groups, unless the rate it fills at would fill it within
   * rowGroupWaitMs of its start: then it waits for that, and is committed at that bound
   * whatever it holds. So a span waits at most rowGroupWaitMs, and that long only under load
   * (above rowGroupRows per rowGroupWaitMs: 32,768 per 5 s by default, ~6,550 spans/s); below
   * it, flushIntervalMs as without row groups. flushSpans does not apply.
   */
  private scheduleFlush(): void {
    if (this.buffered === 0 || this.core.closed) return;
    const rowGroups = this.rowGroupRows !== undefined;
    const now = rowGroups ? this.batches.length > 1 || this.batches[0]!.rows >= this.batchRows : this.buffered >= this.flushSpans;
    if (now) {
      this.flushImmediate ??= setImmediate(() => {
        this.flushImmediate = undefined;
        (rowGroups ? this.exclusive(() => this.drain(false)) : this.flush()).catch(() => undefined);
      });
    }
    // with row groups the immediate commits the full batches only: the one being filled needs
    // the timer all the same (one append of more than a row group leaves a partial one)
    if ((!now || rowGroups) && !this.flushTimer) this.armFlushTimer(this.flushIntervalMs);
  }

  private armFlushTimer(ms: number): void {
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      const wait = this.rowGroupWait();
      if (wait > 0) this.armFlushTimer(wait);
      else this.flush().catch(() => undefined);
    }, ms);
    this.flushTimer.unref();
  }

  /**
   * ms the batch being filled should wait for its row group (0: commit it now). The full
   * batches before it are not a reason to commit it early: scheduleFlush queued their commit,
   * and they are still there only while something (a checkpoint) holds up the writer's queue.
   */
  private rowGroupWait(): number {
    const b = this.batches[this.batches.length - 1];
    if (this.rowGroupRows === undefined || b === undefined) return 0;
    const age = performance.now() - b.startedAt;
    const left = this.rowGroupWaitMs - age;
    // full by the bound at the rate it has filled at so far: wait (re-checked every flushIntervalMs)
    if (left <= 0 || b.rows * this.rowGroupWaitMs < this.rowGroupRows * age) return 0;
    return Math.min(this.flushIntervalMs, left);
  }

  flush(): Promise<void> {
    return this.exclusive(() => this.drain(true));
  }

  /** Runs fn after every write queued before it, and before any queued after: writes and resource GC never overlap. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.flushChain.then(fn);
    this.flushChain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** commits the waiting batches (with `all` false: the full ones only, see scheduleFlush) */
  private async drain(all: boolean): Promise<void> {
    if (all && this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    let failure: Error | undefined;
    for (let b = this.nextBatch(all); b; b = this.nextBatch(all)) {
      // appends from now on start a new batch
      const cur = b.cur;
      b.cur = undefined;
      this.buffered -= b.rows;
      this.lowerLimitWhenDrained();
      let committing = false;
      try {
        if (cur !== undefined) {
          try {
            cur.seal(b.chunks);
          } finally {
            // sealed or not, its buffers are empty now; a few kept (a backlog of batches
            // must not leave megabytes of spare buffers behind)
            if (cur.types === this.spanTypes && this.spareChunks.length < MAX_SPARE_CHUNKS) this.spareChunks.push(cur);
          }
        }
        if (!this.spanAppender || !this.resAppender || !this.traceAppender || !this.keyAppender || !this.stringAppender || !this.rollups.ready || !this.extras.ready) {
          await this.openAppenders();
        }
        committing = true;
        await this.writeBatch(b);
      } catch (e) {
        // what the batch met first and later batches may use: stored with the next one
        // (writeBatch keeps what it did not store itself)
        if (!committing) {
          this.unstoredKeys.push(...b.keys);
          this.unstoredResources.push(...b.fresh);
          this.unstoredStrings.push(...b.strs);
        }
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

  private nextBatch(all: boolean): Batch | undefined {
    const b = this.batches[0];
    if (b === undefined || (!all && b.rows < this.batchRows)) return undefined;
    return this.batches.shift();
  }

  /**
   * Commits one batch synchronously: new span attribute keys first, then new resources and
   * string codes, then the trace index, then all the spans in one transaction. (If the process
   * dies in between, the earlier parts only describe spans that never arrived, which is
   * harmless.) Keys, resources and codes of a batch that failed are written with the next one:
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
   * - Session 4 (schema version 2): the agent's attributes all in 19 typed columns, no
   *   JSON (AttrEncoder 737 -> 156 ms per 500k spans in a profile of store-ingest), plus
   *   the rollups (~0.5 µs per span, most of it the service graph's pairing). DuckDB's
   *   append (flushSync) grew with the columns (728 -> 953 ms per 500k) and the long
   *   strings now take one native call each in more columns (url.full, user_agent...):
   *   store-ingest in memory 9.6-9.7 -> 8.7-8.9 µs per span; the pipeline replay with
   *   the store did not move (94-95k spans/s per core). What is left is DuckDB's own
   *   append and the per-string copies.
   */
  private async writeBatch(b: Batch): Promise<void> {
    const t0 = performance.now();
    const spanApp = this.spanAppender;
    const resApp = this.resAppender;
    const traceApp = this.traceAppender;
    const keyApp = this.keyAppender;
    const strApp = this.stringAppender;
    if (!spanApp || !resApp || !traceApp || !keyApp || !strApp) throw new Error('appenders are not open');
    const keys = this.unstoredKeys.length > 0 ? [...this.unstoredKeys, ...b.keys] : b.keys;
    const fresh = this.unstoredResources.length > 0 ? [...this.unstoredResources, ...b.fresh] : b.fresh;
    const strs = this.unstoredStrings.length > 0 ? [...this.unstoredStrings, ...b.strs] : b.strs;
    let keysStored = false;
    let resourcesStored = false;
    let stringsStored = false;
    /** the strings not stored yet */
    let strsLeft = strs;
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
      // in slices, each forgotten once stored: DuckDB's appender commits by itself every 204,800
      // rows, and a failure after that must not leave those to be appended again (a code twice
      // in `strings` fails every lookup of it), which happens only after many failed flushes
      while (strsLeft.length > 0) {
        const n = Math.min(strsLeft.length, STRINGS_PER_FLUSH);
        for (let i = 0; i < n; i++) {
          const [id, str] = strsLeft[i] as [number, string];
          strApp.appendUInteger(id);
          strApp.appendVarchar(str);
          strApp.endRow();
        }
        strApp.flushSync();
        strsLeft = strsLeft.slice(n);
      }
      stringsStored = true;
      this.unstoredStrings = [];
      if (b.traces.size > 0) {
        for (const c of b.traces.toChunks(this.traceTypes)) traceApp.appendDataChunk(c);
        traceApp.flushSync();
      }
      // events and links before their spans, like the trace index: rows of spans that never
      // arrive are never joined to anything
      if (b.extras !== undefined) this.extras.write(b.extras);
      if (b.chunks.length > 0) {
        for (const c of b.chunks) spanApp.appendDataChunk(c);
        spanApp.flushSync();
      }
      // after the spans: a crash in between loses rollup rows of committed spans at worst
      // (and the open buckets, rebuilt from the spans on open: DuckStore.rebuildRollups)
      this.rollups.write();
    } catch (e) {
      if (!keysStored) this.unstoredKeys = keys;
      if (!resourcesStored) this.unstoredResources = fresh;
      if (!stringsStored) this.unstoredStrings = strsLeft;
      throw e;
    }
    this.core.rows += b.rows - b.lost;
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
   *
   * Without a write-ahead log (a file store's default, see DuckStore.open) a commit is in
   * memory until the next checkpoint, so one also runs checkpointIntervalMs after the first
   * commit since the last one: a crash loses at most that much. At the paced bench's ~8k
   * spans/s the row bound comes first (~15 s); below ~4k spans/s the time bound compresses a
   * row group more than once, at a rate where that costs little.
   */
  private async maybeCheckpoint(): Promise<void> {
    const since = this.sinceCheckpoint;
    if (since.rows < CHECKPOINT_ROWS && since.bytes < this.checkpointBytes) {
      this.armCheckpointTimer();
      return;
    }
    await this.checkpoint();
  }

  private async checkpoint(): Promise<void> {
    const since = this.sinceCheckpoint;
    // what this checkpoint covers: commits made while it runs wait for the next one
    const rows = since.rows;
    const bytes = since.bytes;
    try {
      await this.whileCheckpointing(() => this.writer.run('CHECKPOINT'));
      since.rows -= rows;
      since.bytes -= bytes;
      this.c.checkpoints++;
      if (this.checkpointTimer && since.rows === 0) {
        clearTimeout(this.checkpointTimer);
        this.checkpointTimer = undefined;
      }
    } catch {
      // e.g. a concurrent checkpoint (retention); the next flush (or the timer) tries again
      this.c.checkpointErrors++;
      this.armCheckpointTimer();
    }
  }

  /**
   * Runs a CHECKPOINT (fn) in the writer's queue with the larger bound on buffered spans. A
   * commit waits for a running checkpoint (DuckDB 1.5), so nothing leaves the buffer while
   * one runs, and at saturation one runs long: DuckDB's thread that compresses the row group
   * is one of the background threads (--background-nice) and gets a small share of the busy
   * cores. Measured (nginx keep-alive unpaced, ~30k req/s, ~60-75k spans/s, 2 cores): a row
   * group's checkpoint took ~0.7 s of CPU over 2-2.3 s, and the backlog went from a few
   * thousand spans to 100,000 and beyond; between checkpoints the writer keeps up and a
   * backlog drains in a few hundred milliseconds. The larger bound lasts until the backlog
   * is back under maxBuffered, so that it drains instead of dropping what arrives meanwhile.
   */
  async whileCheckpointing<T>(fn: () => Promise<T>): Promise<T> {
    this.checkpointsRunning++;
    this.bufferLimit = this.maxBufferedCheckpoint;
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.c.lastCheckpointMs = performance.now() - t0;
      this.checkpointsRunning--;
      this.lowerLimitWhenDrained();
    }
  }

  /** back to maxBuffered once no checkpoint runs and the backlog is under it */
  private lowerLimitWhenDrained(): void {
    if (this.checkpointsRunning === 0 && this.buffered <= this.maxBuffered) this.bufferLimit = this.maxBuffered;
  }

  /** the time bound on unsynced spans (no WAL only): armed by the first commit after a checkpoint */
  private armCheckpointTimer(): void {
    if (this.checkpointIntervalMs === undefined || this.checkpointTimer || this.core.closed || this.sinceCheckpoint.rows === 0) return;
    this.checkpointTimer = setTimeout(() => {
      this.checkpointTimer = undefined;
      this.exclusive(() => (this.core.closed || this.sinceCheckpoint.rows === 0 ? Promise.resolve() : this.checkpoint())).catch(() => undefined);
    }, this.checkpointIntervalMs);
    this.checkpointTimer.unref();
  }

  /**
   * Writes one span as the next row of the batch. Everything that can throw runs before
   * the first write, so a refused span leaves no partial row.
   */
  private writeRow(b: Batch, s: Span): void {
    const dur = Math.max(0, Math.round(s.durationNano));
    if (dur >= INT64_MAX_NUMBER) throw new RangeError('duration out of range');
    this.keyBatch = b;
    // hot attributes are fields of the span; only the others (`extra`) become JSON
    const enc = this.attrEncoder;
    let json = s.extra === undefined ? null : enc.encode(s.extra, this.noteKey);
    const res = this.resourceOf(s.resource, b.fresh);
    const msg = typeof s.statusMessage === 'string' && s.statusMessage !== '' ? s.statusMessage : null;
    // events and links (OTLP spans only): one check for a span without them
    if (hasExtras(s)) {
      if (!this.extras.types) throw new Error('event/link appenders are not open');
      (b.extras ??= new ExtrasBatch(this.extras.types)).add(s);
    }
    const c = (b.cur ??= this.spareChunks.pop() ?? new SpanChunk(this.spanTypes));
    const i = c.n;
    c.start.setWords(i, s.startHi, s.startLo);
    c.duration.setCount(i, dur);
    c.traceId.setWords(i, s.t0, s.t1, s.t2, s.t3);
    c.spanId.setWords(i, s.s0, s.s1);
    if ((s.p0 | s.p1) === 0) c.parentSpanId.setNull(i);
    else c.parentSpanId.setWords(i, s.p0, s.p1);
    const codes = this.core.strings;
    if (c.name instanceof NumberColumn) c.name.set(i, codes.code(s.name, b.strs));
    else c.name.set(i, s.name);
    c.kind.set(i, KIND_CODE[s.kind] ?? 0);
    c.status.set(i, STATUS_CODE[s.status] ?? 0);
    c.statusMessage.set(i, msg);
    c.resId.set(i, res.id);
    if (c.service instanceof NumberColumn) c.service.set(i, res.service === null ? null : codes.code(res.service, b.strs));
    else c.service.set(i, res.service);
    if (c.namespace instanceof NumberColumn) c.namespace.set(i, res.namespace === null ? null : codes.code(res.namespace, b.strs));
    else c.namespace.set(i, res.namespace);
    let hotBytes = 0;
    /** string values an ENUM column has no code for: they go to the JSON (schema.ts SPAN_ENUMS) */
    let outside: Attributes | undefined;
    const extra = s.extra !== undefined;
    // one loop per kind of column: each setter call below sees one class of column (one loop
    // over all of them made these calls megamorphic)
    {
      const { at, cols } = c.numbers;
      for (let k = 0; k < at.length; k++) {
        const v = this.hotValue(s, at[k]!, extra);
        if (typeof v === 'number') cols[k]!.set(i, v);
        else cols[k]!.setNull(i);
      }
    }
    {
      const { at, cols } = c.codes;
      for (let k = 0; k < at.length; k++) {
        const v = this.hotValue(s, at[k]!, extra);
        if (typeof v !== 'string') cols[k]!.setNull(i);
        else {
          cols[k]!.set(i, codes.code(v, b.strs));
          hotBytes += 2;
        }
      }
    }
    {
      const { at, cols } = c.enums;
      for (let k = 0; k < at.length; k++) {
        const v = this.hotValue(s, at[k]!, extra);
        const code = typeof v === 'string' ? cols[k]!.codes.get(v) : undefined;
        if (code !== undefined) {
          cols[k]!.set(i, code);
          hotBytes++;
        } else {
          cols[k]!.setNull(i);
          if (typeof v === 'string') (outside ??= {})[HOT_ATTRIBUTES[at[k]!]![0]] = v;
        }
      }
    }
    {
      const { at, cols } = c.strings;
      for (let k = 0; k < at.length; k++) {
        const v = this.hotValue(s, at[k]!, extra);
        if (typeof v !== 'string') cols[k]!.setNull(i);
        else {
          cols[k]!.set(i, v);
          hotBytes += v.length;
        }
      }
    }
    if (outside !== undefined) {
      // appended to the JSON text as JSON.stringify writes it (the text compile.ts searches)
      const more = JSON.stringify(outside);
      json = json === null ? more : `${json.slice(0, -1)},${more.slice(1)}`;
    }
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
    b.bytes += (json?.length ?? 0) + hotBytes + s.name.length + ROW_OVERHEAD_BYTES;
    if (b.extras !== undefined && b.extras.bytes > 0) {
      b.bytes += b.extras.bytes;
      b.extras.bytes = 0;
    }
    if (res.id !== b.lastResId) {
      b.resIds.add(res.id);
      b.lastResId = res.id;
    }
    b.traces.add(s);
    this.rollups.observe(res.service ?? UNKNOWN_SERVICE, s, dur);
  }

  /**
   * Hot attribute h of s: its field, or, for a hot key put straight into `extra` (not through
   * setAttr), the encoder's copy of it (a value whose type is not the column's is in `extra`
   * only). The first one written since the writer started notes its key (spanKeys).
   */
  private hotValue(s: Span, h: number, extra: boolean): HotValue {
    let v = s.hot(h);
    if (v === undefined && extra) v = this.attrEncoder.hot[h] as HotValue;
    if (v !== undefined && !this.hotSeen[h]) {
      this.hotSeen[h] = true;
      this.noteKey(HOT_ATTRIBUTES[h]![0]);
    }
    return v;
  }

  /** records a span attribute key met for the first time (see spanKeys); AttrEncoder calls it */
  private readonly noteKey = (k: string): void => {
    if (this.core.spanKeysOverflow || this.core.spanKeys.has(k)) return;
    const fresh = this.keyBatch?.keys;
    if (!fresh) return;
    if (this.core.spanKeys.size >= MAX_SPAN_KEYS) {
      this.core.spanKeysOverflow = true;
      this.core.spanKeys.clear();
      fresh.push(null);
      return;
    }
    this.core.spanKeys.add(k);
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
      if (memo && this.core.resByKey.get(memo.entry.json) === memo.entry && sameValues(obj, memo.keys, memo.values)) return memo.entry;
    }
    const json = attrsJson(obj);
    let res = this.core.resByKey.get(json);
    if (!res) {
      res = makeResource(this.core.nextResId++, json);
      this.core.resByKey.set(res.json, res);
      this.core.resById.set(res.id, res);
      fresh.push(res);
    }
    if (isObj) {
      const keys = Object.keys(obj);
      this.resMemo.set(obj, { entry: res, keys, values: keys.map((k) => obj[k]) });
    }
    return res;
  }
}

const KINDS: ReadonlySet<string> = new Set<SpanKind>(['server', 'client', 'internal', 'producer', 'consumer', 'unspecified']);
const STATUSES: ReadonlySet<string> = new Set<SpanStatus>(['ok', 'error', 'unset']);

/** whether s can be stored: a Span whose ids are valid (non-zero) and whose fields have their types */
function isValidSpan(s: unknown): s is Span {
  if (!(s instanceof Span)) return false;
  if ((s.t0 | s.t1 | s.t2 | s.t3) === 0 || (s.s0 | s.s1) === 0) return false;
  if (typeof s.name !== 'string') return false;
  // start: the words of a BIGINT >= 0
  if (!(s.startHi >= 0 && s.startHi < 2 ** 31 && s.startLo >= 0 && s.startLo < 2 ** 32)) return false;
  if (!Number.isInteger(s.startHi) || !Number.isInteger(s.startLo)) return false;
  const d = s.durationNano;
  if (typeof d !== 'number' || !Number.isFinite(d)) return false;
  if (typeof s.kind !== 'string' || !KINDS.has(s.kind)) return false;
  if (typeof s.status !== 'string' || !STATUSES.has(s.status)) return false;
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
  /** where each trace's spans of the batch start (trace_index rows) */
  readonly traces: TraceExtents;
  /** resources first used by this batch */
  readonly fresh: ResourceEntry[];
  /** span attribute keys first met in this batch (null: too many keys from here on) */
  readonly keys: (string | null)[];
  /** resources its rows refer to (resource GC keeps them) */
  readonly resIds: Set<number>;
  lastResId: number;
  /** the events, links and drop counts of its spans, when any has some */
  extras: ExtrasBatch | undefined;
  /** string codes first given in this batch (id, string) */
  readonly strs: [number, string][];
  /** StringCodes.clears when the batch began: the codes its rows use are cached unless the maps started over since */
  readonly codesEpoch: number;
  /** performance.now() at its first row */
  readonly startedAt: number;
}

function newBatch(codesEpoch: number, startedAt: number): Batch {
  return { chunks: [], cur: undefined, rows: 0, lost: 0, bytes: 0, traces: new TraceExtents(), fresh: [], keys: [], resIds: new Set(), lastResId: -1, extras: undefined, strs: [], codesEpoch, startedAt };
}

/** some of a SpanChunk's hot columns: their indices in HOT_ATTRIBUTES, and the columns */
interface HotGroup<C extends Column> {
  readonly at: readonly number[];
  readonly cols: readonly C[];
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
  /** name, service and namespace: codes (NumberColumn) in a table that has them as such (schema.ts SPAN_CODED) */
  readonly name: VarcharColumn | NumberColumn;
  readonly kind = new NumberColumn(DuckDBTypeId.UTINYINT);
  readonly status = new NumberColumn(DuckDBTypeId.UTINYINT);
  readonly statusMessage = new VarcharColumn();
  readonly resId = new NumberColumn(DuckDBTypeId.UINTEGER);
  readonly service: VarcharColumn | NumberColumn;
  readonly namespace: VarcharColumn | NumberColumn;
  /** hot attribute columns, in HOT_KEYS order: VARCHAR, DOUBLE, or ENUM for the columns a store made since session 12 has as such */
  readonly hot: readonly Column[];
  /**
   * The hot columns by how a value goes in (their indices, and the columns in the same order):
   * numbers, string codes, ENUM codes, strings. writeRow fills each group in a loop of its own,
   * so that each call of a column's setter sees one class of column (one loop over all of them
   * made every such call megamorphic).
   */
  readonly numbers: HotGroup<NumberColumn>;
  readonly codes: HotGroup<NumberColumn>;
  readonly enums: HotGroup<EnumColumn>;
  readonly strings: HotGroup<VarcharColumn>;
  readonly attributes = new VarcharColumn();
  private readonly columns: readonly Column[];

  constructor(readonly types: readonly DuckDBType[]) {
    const text = (col: string): VarcharColumn | NumberColumn =>
      types[SPAN_COLUMNS.indexOf(col)]?.typeId === DuckDBTypeId.UINTEGER ? new NumberColumn(DuckDBTypeId.UINTEGER) : new VarcharColumn();
    this.name = text('name');
    this.service = text('service');
    this.namespace = text('namespace');
    this.hot = HOT_TYPES.map((t, h) => {
      const type = types[SPAN_HOT_AT + h];
      if (type instanceof DuckDBEnumType) return new EnumColumn(type.values);
      if (t === 'string' && type?.typeId === DuckDBTypeId.UINTEGER) return new NumberColumn(DuckDBTypeId.UINTEGER);
      return t === 'string' ? new VarcharColumn() : new NumberColumn(DuckDBTypeId.DOUBLE);
    });
    // a UINTEGER column for a string attribute holds string codes (schema.ts SPAN_CODED)
    const coded = this.hot.map((c, h) => HOT_TYPES[h] === 'string' && c instanceof NumberColumn);
    const group = <C extends Column>(pick: (c: Column, h: number) => boolean): HotGroup<C> => {
      const at = this.hot.flatMap((c, h) => (pick(c, h) ? [h] : []));
      return { at, cols: at.map((h) => this.hot[h] as C) };
    };
    this.numbers = group((c, h) => c instanceof NumberColumn && !coded[h]);
    this.codes = group((c, h) => c instanceof NumberColumn && coded[h]!);
    this.enums = group((c) => c instanceof EnumColumn);
    this.strings = group((c) => c instanceof VarcharColumn);
    this.columns = [
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
      ...this.hot,
      this.attributes,
    ];
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
/**
 * Min and max start of each trace's spans in a batch, keyed by trace id words (no hex
 * string per span): a map on the first word, a short list for the rare words shared.
 */
class TraceExtents {
  /** by 30 bits of the trace id's first word: a small integer to V8's Map (see servicegraph.ts edgeKey) */
  private readonly byW0 = new Map<number, TraceExtent | TraceExtent[]>();
  size = 0;

  add(s: Span): void {
    const key = s.t0 & 0x3fffffff;
    const got = this.byW0.get(key);
    let e: TraceExtent | undefined;
    if (got !== undefined) {
      if (Array.isArray(got)) {
        for (const x of got) if (sameTrace(x, s)) e = x;
      } else if (sameTrace(got, s)) e = got;
    }
    if (e === undefined) {
      const fresh = new TraceExtent(s);
      this.size++;
      if (got === undefined) this.byW0.set(key, fresh);
      else if (Array.isArray(got)) got.push(fresh);
      else this.byW0.set(key, [got, fresh]);
      return;
    }
    const hi = s.startHi;
    const lo = s.startLo;
    if (hi < e.minHi || (hi === e.minHi && lo < e.minLo)) {
      e.minHi = hi;
      e.minLo = lo;
    } else if (hi > e.maxHi || (hi === e.maxHi && lo > e.maxLo)) {
      e.maxHi = hi;
      e.maxLo = lo;
    }
  }

  /** the trace_index rows */
  toChunks(types: readonly DuckDBType[]): DuckDBDataChunk[] {
    const out: DuckDBDataChunk[] = [];
    const id = new UuidHexColumn();
    const min = new I64Column();
    const max = new I64Column();
    const columns = [id, min, max];
    checkColumns(types, columns);
    let n = 0;
    const row = (t: TraceExtent): void => {
      id.setWords(n, t.w0, t.w1, t.w2, t.w3);
      min.setWords(n, t.minHi, t.minLo);
      max.setWords(n, t.maxHi, t.maxLo);
      if (++n === CHUNK_ROWS) {
        out.push(toDataChunk(types, columns, n));
        n = 0;
      }
    };
    for (const v of this.byW0.values()) {
      if (Array.isArray(v)) for (const t of v) row(t);
      else row(v);
    }
    if (n > 0) out.push(toDataChunk(types, columns, n));
    return out;
  }
}

class TraceExtent {
  readonly w0: number;
  readonly w1: number;
  readonly w2: number;
  readonly w3: number;
  minHi: number;
  minLo: number;
  maxHi: number;
  maxLo: number;
  constructor(s: Span) {
    this.w0 = s.t0;
    this.w1 = s.t1;
    this.w2 = s.t2;
    this.w3 = s.t3;
    this.minHi = this.maxHi = s.startHi;
    this.minLo = this.maxLo = s.startLo;
  }
}

function sameTrace(e: TraceExtent, s: Span): boolean {
  return e.w1 === s.t1 && e.w2 === s.t2 && e.w3 === s.t3 && e.w0 === s.t0;
}

function appendNullable(a: DuckDBAppender, v: string | null): void {
  if (v === null) a.appendNull();
  else a.appendVarchar(v);
}
