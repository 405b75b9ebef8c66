// Retention: by age (maxAgeMs) and by count (maxSpans, oldest first), pruning the rollups
// with the spans, then resources no span uses any more.

import { BIGINT, LIST, UINTEGER, listValue, type DuckDBConnection } from '@duckdb/node-api';
import { nowNs, type StoreCore } from './core.js';
import { pruneExtras } from './extras.js';
import { PRUNE_SQL, ROLLUP_BUCKET_NS, bucketStart, isErrorStatus, type Rollups } from './rollups.js';
import { UNKNOWN_SERVICE } from './schema.js';
import { STRINGS_CACHED } from './strings.js';
import type { Counters, SpanWriter } from './writer.js';
import type { RetentionResult } from './types.js';

export class Retention {
  private running: Promise<RetentionResult> | undefined;

  constructor(
    private readonly core: StoreCore,
    private readonly maint: DuckDBConnection,
    private readonly writer: SpanWriter,
    private readonly rollups: Rollups,
    private readonly c: Counters,
    private readonly maxAgeMs: number,
    private readonly maxSpans: number,
  ) {}

  /** the run in progress, if any (shutdown waits for it) */
  get inProgress(): Promise<RetentionResult> | undefined {
    return this.running;
  }

  enforce(): Promise<RetentionResult> {
    this.running ??= this.run().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async run(): Promise<RetentionResult> {
    const result: RetentionResult = { deletedByAge: 0, deletedByCount: 0 };
    // counted as soon as each delete commits, even if a later step fails
    const deletedNow = (n: number): void => {
      this.core.rows = Math.max(0, this.core.rows - n);
      this.c.retentionDeletedSpans += n;
    };
    try {
      this.c.retentionRuns++;
      if (Number.isFinite(this.maxAgeMs)) {
        // whole rollup buckets: spans are kept up to 10 s longer, and the rollups stay exact
        const cutoff = bucketStart(nowNs() - BigInt(Math.floor(this.maxAgeMs)) * 1_000_000n);
        const r = await this.maint.run('DELETE FROM spans WHERE start_ns < $1', [cutoff], [BIGINT]);
        result.deletedByAge = r.rowsChanged;
        deletedNow(r.rowsChanged);
        await this.maint.run('DELETE FROM trace_index WHERE max_ns < $1', [cutoff], [BIGINT]);
        await pruneExtras(this.maint, cutoff, false);
        await this.pruneRollups(cutoff);
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
            // whole buckets first, then the part of the bucket `cut` falls in: those spans
            // are read back and taken out of the RED rollup (with the code that added them)
            const b0 = bucketStart(cut);
            const r = await this.maint.run('DELETE FROM spans WHERE start_ns < $1', [b0], [BIGINT]);
            result.deletedByCount = r.rowsChanged;
            deletedNow(r.rowsChanged);
            const part = await this.maint.runAndReadAll(
              'DELETE FROM spans WHERE start_ns >= $1 AND start_ns <= $2 RETURNING res_id, kind, status, duration_ns',
              [b0, cut],
              [BIGINT, BIGINT],
            );
            const gone = part.getRows();
            result.deletedByCount += gone.length;
            deletedNow(gone.length);
            await this.maint.run('DELETE FROM trace_index WHERE max_ns <= $1', [cut], [BIGINT]);
            await pruneExtras(this.maint, cut, true);
            await this.pruneRollups(b0);
            if (gone.length > 0) {
              const bucket = Number(b0 / ROLLUP_BUCKET_NS);
              for (const [resId, kind, status, dur] of gone) {
                const service = this.core.resById.get(Number(resId))?.service ?? UNKNOWN_SERVICE;
                this.rollups.addSpan(service, bucket, Number(kind), isErrorStatus(Number(status)), Number(dur), -1);
              }
              await this.writer.commitRollups();
            }
          }
        }
      }
      if (result.deletedByAge + result.deletedByCount > 0) {
        await this.writer.exclusive(() => this.collectResources());
        await this.writer.exclusive(() => this.collectStrings());
        // reclaims deleted row groups (file and memory alike); between writes, so that a
        // commit never waits for it on the JS thread; a failure is retried next run
        await this.writer.exclusive(() => this.writer.whileCheckpointing(() => this.maint.run('CHECKPOINT'))).catch(() => undefined);
      }
      return result;
    } catch (e) {
      this.c.retentionErrors++;
      throw e;
    }
  }

  /**
   * Drops rollup buckets before `ns` (a bucket boundary). Edges of a bucket that retention
   * deletes only in part (by count) stay counted until the whole bucket goes.
   */
  private async pruneRollups(ns: bigint): Promise<void> {
    this.rollups.forgetBefore(ns);
    for (const sql of PRUNE_SQL) await this.maint.run(sql, [ns], [BIGINT]);
  }

  /**
   * Deletes the strings no span uses any more (schema.ts SPAN_CODED), once a cache's worth of
   * codes was given since the last time: only stores whose strings keep changing (span names
   * or user agents with ids in them) collect any, and the scan of every coded column runs that
   * rarely. Kept: the codes the writer hands out again without a lookup (cached), which include
   * those of spans waiting for a flush unless the cache started over since their batch began
   * (then this waits for a later run), and codes given from now on (id >= next).
   */
  private async collectStrings(): Promise<void> {
    const codes = this.core.strings;
    const cols = [...this.core.codedColumns];
    if (cols.length === 0 || codes.next - codes.collectedAt < STRINGS_CACHED) return;
    if (this.writer.batches.some((b) => b.codesEpoch !== codes.clears)) return;
    const next = codes.next;
    const used = cols.map((c) => `SELECT ${c} FROM spans WHERE ${c} IS NOT NULL`).join(' UNION ');
    await this.maint.run(
      `DELETE FROM strings WHERE id < $1 AND id NOT IN (SELECT unnest($2::UINTEGER[])) AND id NOT IN (${used})`,
      [next, listValue(codes.cached())],
      [UINTEGER, LIST(UINTEGER)],
    );
    codes.collectedAt = next;
  }

  /** Deletes resources no span refers to any more (see retiredResources for the in-memory side). */
  private async collectResources(): Promise<void> {
    for (const id of this.core.retiredResources) this.core.resById.delete(id);
    this.core.retiredResources = [];
    const rows = (await this.maint.runAndReadAll(
      'SELECT id FROM resources WHERE id NOT IN (SELECT DISTINCT res_id FROM spans)',
    )).getRows();
    // spans appended but not flushed yet may use them too
    const pending = new Set<number>();
    for (const b of this.writer.batches) for (const id of b.resIds) pending.add(id);
    const ids = rows.map((r) => Number(r[0])).filter((id) => !pending.has(id));
    if (ids.length === 0) return;
    // from now on new spans with these resources get new ids, so the delete below
    // (whose snapshot starts after this point) sees every span that still uses them
    for (const id of ids) {
      const e = this.core.resById.get(id);
      if (e && this.core.resByKey.get(e.json) === e) this.core.resByKey.delete(e.json);
    }
    const r = await this.maint.runAndReadAll(
      `DELETE FROM resources WHERE id IN (SELECT unnest($1::UINTEGER[])) AND id NOT IN (SELECT DISTINCT res_id FROM spans) RETURNING id`,
      [listValue(ids)],
      [LIST(UINTEGER)],
    );
    for (const [id] of r.getRows()) this.core.retiredResources.push(Number(id));
  }
}
