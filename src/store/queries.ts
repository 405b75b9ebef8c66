// Reading spans: TraceQL search, trace by id, Tempo's trace search, tag names and values.
// SQL comes from compile.ts; rows become spans in core.ts.

import { BIGINT, LIST, UBIGINT, UINTEGER, VARCHAR, listValue } from '@duckdb/node-api';
import type { Span } from '../model/index.js';
import { INTRINSIC_TAGS, TraceQLError, parseTagName, spansetFilters, valueFields, type CompareExpr, type Expr, type FieldRef } from '../traceql/index.js';
import { attachExtras } from './extras.js';
import { SpansetCompiler } from './spanset.js';
import { runMetricsQuery, type MetricsRange, type QueryRangeResponse } from './metrics-query.js';
import type { Query } from '../traceql/index.js';
import {
  Params,
  cmp,
  codeListKey,
  compileFilter,
  jsonPointer,
  regexLiterals,
  resourceComparisons,
  resourcePredicate,
  windowSql,
  type CompileContext,
} from './compile.js';
import { HOT_KEYS } from './attrs.js';
import { clusters, spansOf, traceRanges, type TraceRange } from './trace-ranges.js';
import { SPAN_SELECT, normalizeTraceId, uuidHex, type Row, type StoreCore } from './core.js';

/** positions in a SPAN_SELECT row */
const SPAN_START = 0;
const SPAN_TRACE_ID = 2;
const SPAN_SPAN_ID = 3;
import { HOT_RESOURCE_ATTRS, HOT_SPAN_ATTRS, KIND_BY_CODE, SPAN_ENUMS, STATUS_BY_CODE, STATUS_CODE, UNKNOWN_SERVICE, decodeSql } from './schema.js';

/** hot attribute columns, in HOT_KEYS order */
const HOT_COLUMNS = HOT_KEYS.map((k) => (HOT_SPAN_ATTRS[k] as readonly [string, string])[0]);
import type { SearchOptions, TagOptions, TagScope, TagValue, TimeWindow, TraceSearchOptions, TraceSummary } from './types.js';

import { MAX_LIMIT } from './window.js';
export { MAX_LIMIT };
const ROOT_NOT_RECEIVED = '<root span not yet received>';
const TAG_SAMPLE_SPANS = 20_000;
const MAX_INLINE_RESOURCES = 256;
/** a trace search first reads the newest 1/FIRST_SLICE of its window (see findTraces) */
const FIRST_SLICE = 64n;
const MIN_SLICE_NS = 1_000_000_000n;
/** see mergeGapNs: about half a DuckDB row group (122,880 rows) */
const GAP_ROWS = 60_000;
const MIN_GAP_NS = 5_000_000_000n;
const EXTENT_TTL_MS = 10_000;

interface Found {
  /** newest first */
  top: { id: string; matched: number }[];
  picks: { tid: string; sid: bigint; st: bigint }[];
  /** each trace's start-time range (trace_index), when already read */
  ranges?: Map<string, TraceRange>;
  /** the picked spans' rows (SPAN_SELECT), ordered by start, when already read */
  rows?: Row[];
}

/** how much to widen the slice after finding `found` of `limit` traces in it */
function growth(found: number, limit: number): bigint {
  return BigInt(found === 0 ? 8 : Math.min(16, Math.max(2, Math.ceil((1.5 * limit) / found))));
}


export class Queries {
  private readonly validRegex = new Set<string>();
  /** the stored spans' start-time extent (trace_index), re-read at most every EXTENT_TTL_MS */
  private extent?: { at: number; lo: bigint; hi: bigint };
  /** spans a gap between traces must hold for them to be read by separate scans (mergeGapNs; tests lower it) */
  gapRows = GAP_ROWS;

  constructor(private readonly core: StoreCore) {}

  async search(opts: SearchOptions): Promise<Span[]> {
    const limit = checkLimit(opts.limit);
    if (limit === 0) return [];
    const { P, cond } = await this.spanCondition(opts);
    const win = windowSql(P, opts.startNs, opts.endNs);
    const order = opts.order === 'duration_desc' ? 'duration_ns DESC, start_ns DESC, span_id' : 'start_ns DESC, span_id';
    const sql = `SELECT ${SPAN_SELECT} FROM spans WHERE ${win} AND ${cond} ORDER BY ${order} LIMIT ${P.add(limit, UINTEGER)}`;
    return this.core.toSpans(await this.core.query(sql, P));
  }

  async count(opts: Omit<SearchOptions, 'limit' | 'order'>): Promise<number> {
    const { P, cond } = await this.spanCondition(opts);
    const win = windowSql(P, opts.startNs, opts.endNs);
    const rows = await this.core.query(`SELECT count(*) FROM spans WHERE ${win} AND ${cond}`, P);
    return Number(rows[0]?.[0] ?? 0);
  }

  async trace(traceId: string, window: TimeWindow = {}): Promise<Span[]> {
    const id = normalizeTraceId(traceId);
    if (id === undefined) return [];
    // where the trace's spans are in time (trace_index), so the spans scan skips the rest
    const P0 = new Params();
    const range = (await this.core.query(
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
    const spans = await this.core.toSpans(await this.core.query(sql, P));
    await attachExtras(this.core, id, startNs, endNs, spans);
    return spans;
  }

  async searchTraces(opts: TraceSearchOptions): Promise<TraceSummary[]> {
    const limit = checkLimit(opts.limit);
    const spss = Math.max(0, Math.min(Math.floor(opts.spansPerSpanSet ?? 3), 10_000));
    if (limit === 0) return [];
    // 1. the newest traces with a matching span, how many spans match in each, and the
    //    earliest `spss` of those spans
    const found = await this.findTraces(opts, limit, Math.max(spss, 1));
    if (found.top.length === 0) return [];
    const top = found.top;
    const ids = top.map((t) => t.id);
    const ranges = found.ranges ?? (await traceRanges(this.core, ids));

    // 2. per trace and service: extent, span and error counts, plus the trace's root: a
    //    span without a stored parent, true roots (no parent at all) first, then the earliest
    //    (each trace read on its own time range: trace-ranges.ts)
    const P2 = new Params();
    const gap = await this.mergeGapNs();
    const src = spansOf(P2, clusters(ranges, undefined, undefined, undefined, gap));
    const perService = src === undefined ? [] : await this.core.query(
      `WITH t AS MATERIALIZED (
         SELECT trace_id, span_id, parent_span_id, ${this.core.text('service', 'service')} AS service, ${this.core.text('name', 'name')} AS name,
                start_ns, duration_ns, status FROM ${src} spans),
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
    // 3. the picked spans' rows
    let matchedSpans: Row[] = [];
    if (spss > 0 && found.rows) matchedSpans = found.rows;
    else if (spss > 0 && found.picks.length > 0) {
      // each trace read where its picked spans start (trace-ranges.ts: the zone maps skip
      // the rest; a single window from the first pick to the last decoded every row group
      // in between when the traces lie far apart)
      const P4 = new Params();
      const at = new Map<string, TraceRange>();
      for (const p of found.picks) {
        const r = at.get(p.tid);
        if (!r) at.set(p.tid, { lo: p.st, hi: p.st });
        else {
          if (p.st < r.lo) r.lo = p.st;
          if (p.st > r.hi) r.hi = p.st;
        }
      }
      const src4 = spansOf(P4, clusters(at, undefined, undefined, undefined, gap)) as string;
      const rows = await this.core.query(
        `SELECT ${SPAN_SELECT} FROM ${src4} spans
         WHERE list_contains(CAST(${P4.add(listValue(found.picks.map((p) => p.sid)), LIST(UBIGINT))} AS UBIGINT[]), span_id)
         ORDER BY start_ns, span_id`,
        P4,
      );
      // (trace, span) pairs: the span id alone could repeat in another of the traces
      const want = new Set(found.picks.map((p) => `${p.tid}/${p.sid}`));
      matchedSpans = rows.filter((r) => want.has(`${uuidHex(r[2])}/${String(r[3])}`));
    }

    const out = new Map<string, TraceSummary>();
    const extent = new Map<string, { start: bigint; end: bigint }>();
    for (const { id, matched } of top) {
      out.set(id, {
        traceID: id,
        rootServiceName: ROOT_NOT_RECEIVED,
        rootTraceName: '',
        startTimeUnixNano: 0n,
        durationNano: 0,
        durationMs: 0,
        spanSet: { spans: [], matched },
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
    for (const span of await this.core.toSpans(matchedSpans)) out.get(span.traceId)?.spanSet.spans.push(span);
    return [...out.values()];
  }


  /**
   * How far apart two traces' ranges must be to be read by separate scans (trace-ranges.ts):
   * the time that holds GAP_ROWS spans at the store's average rate, at least 5 s. Scanning a
   * gap that small costs less than another scan of the same row groups (at 140 spans/s, 20
   * traces minutes apart lie in one row group: 20 scans of it cost 1.7x one window).
   */
  private async mergeGapNs(): Promise<bigint> {
    const now = Date.now();
    if (this.extent === undefined || now - this.extent.at > EXTENT_TTL_MS) {
      const r = (await this.core.query('SELECT min(min_ns), max(max_ns) FROM trace_index', new Params()))[0];
      if (typeof r?.[0] !== 'bigint' || typeof r[1] !== 'bigint') return MIN_GAP_NS;
      this.extent = { at: now, lo: r[0], hi: r[1] };
    }
    const rows = this.core.rows;
    const span = Number(this.extent.hi - this.extent.lo);
    if (rows <= 0 || span <= 0) return MIN_GAP_NS;
    const gap = BigInt(Math.min(Number.MAX_SAFE_INTEGER, Math.round((this.gapRows * span) / rows)));
    return gap > MIN_GAP_NS ? gap : MIN_GAP_NS;
  }

  /**
   * The `limit` traces whose last matching span is newest (ties by trace id), each with
   * its number of matching spans and its earliest `picks` matching spans.
   *
   * Evaluated newest slice first: the traces with a matching span in [S, end] are exactly
   * the ones ranked above every other, so once a slice holds `limit` of them the answer is
   * known without reading the rest of the window; otherwise the slice grows (by how many
   * were found) until it covers the window. A plain filter ranks on the slice and counts
   * the winners' matches afterwards; a spanset expression (structural, by(), count()...)
   * needs whole traces, so it is evaluated from the earliest start of any trace that has a
   * span in the slice (trace_index), which spans those traces entirely.
   */
  private async findTraces(opts: TraceSearchOptions, limit: number, picks: number): Promise<Found> {
    const q = opts.query;
    if (q.metrics) throw new TraceQLError('invalid', 'this is a metrics query; run it with /api/metrics/query_range (osprey metrics)', 0);
    const exprs = spansetFilters(q.spanset);
    for (const e of exprs) await this.checkRegexes(e);
    const resIds = await this.lookup(exprs);
    // the stored data's extent within the window
    const P0 = new Params();
    const ext = (await this.core.query(
      `SELECT min(min_ns), max(max_ns) FROM trace_index WHERE ${windowSql(P0, opts.startNs, undefined, 'max_ns')} AND ${windowSql(P0, undefined, opts.endNs, 'min_ns')}`,
      P0,
    ))[0];
    if (typeof ext?.[0] !== 'bigint' || typeof ext[1] !== 'bigint') return { top: [], picks: [] };
    const lo = opts.startNs !== undefined && opts.startNs > ext[0] ? opts.startNs : ext[0];
    const hi = opts.endNs !== undefined && opts.endNs < ext[1] ? opts.endNs : ext[1];
    let d = (hi - lo) / FIRST_SLICE;
    if (d < MIN_SLICE_NS) d = MIN_SLICE_NS;
    for (;;) {
      const sliceStart = hi - d;
      const full = sliceStart <= lo;
      const plain = q.filter && !traceLevel(q.filter) ? q.filter : undefined;
      if (plain) {
        const ids = await this.rankFilter(opts, plain, resIds, full ? undefined : sliceStart, limit);
        if (ids.length >= limit || full) return this.countFilter(opts, plain, resIds, ids, picks);
        d *= growth(ids.length, limit);
      } else {
        const found = await this.rankSpanset(opts, resIds, full ? undefined : sliceStart, limit, picks);
        if (found.top.length >= limit || full) return found;
        d *= growth(found.top.length, limit);
      }
    }
  }

  /** findTraces for a plain filter: the newest traces with a match in [sliceStart, end] */
  private async rankFilter(
    opts: TraceSearchOptions,
    filter: Expr,
    resIds: Lookups,
    sliceStart: bigint | undefined,
    limit: number,
  ): Promise<string[]> {
    const P = new Params();
    const from = sliceStart ?? opts.startNs;
    const ranked = await this.core.query(
      `SELECT trace_id, max(start_ns) AS last FROM spans
       WHERE ${windowSql(P, from, opts.endNs)} AND ${compileFilter(filter, this.compileContext(P, opts, resIds))}
       GROUP BY trace_id ORDER BY last DESC, trace_id LIMIT ${P.add(limit, UINTEGER)}`,
      P,
    );
    return ranked.map((r) => uuidHex(r[0]));
  }

  /** the matching spans of the traces `ids` over the whole window: how many, and the earliest `picks` */
  private async countFilter(
    opts: TraceSearchOptions,
    filter: Expr,
    resIds: Lookups,
    ids: string[],
    picks: number,
  ): Promise<Found> {
    if (ids.length === 0) return { top: [], picks: [] };
    // read only where each trace lies in time, within the window (trace-ranges.ts)
    const ranges = await traceRanges(this.core, ids);
    const P = new Params();
    // the picked spans' whole rows come along (searchTraces needs them; a second pass over
    // the same ranges cost as much again)
    const src = spansOf(P, clusters(ranges, opts.startNs, opts.endNs, undefined, await this.mergeGapNs()));
    const rows = src === undefined ? [] : await this.core.query(
      `SELECT ${SPAN_SELECT}, count(*) OVER (PARTITION BY trace_id) FROM ${src} spans
       WHERE ${compileFilter(filter, this.compileContext(P, opts, resIds))}
       QUALIFY row_number() OVER (PARTITION BY trace_id ORDER BY start_ns, span_id) <= ${P.add(picks, UINTEGER)}
       ORDER BY start_ns, span_id`,
      P,
    );
    const matched = new Map<string, number>();
    const out: Found = { top: [], picks: [], ranges, rows: [] };
    for (const r of rows) {
      const id = uuidHex(r[SPAN_TRACE_ID]);
      matched.set(id, Number(r[r.length - 1]));
      out.picks.push({ tid: id, sid: r[SPAN_SPAN_ID] as bigint, st: r[SPAN_START] as bigint });
      out.rows?.push(r.slice(0, -1));
    }
    out.top = ids.map((id) => ({ id, matched: matched.get(id) ?? 0 }));
    return out;
  }

  /** findTraces for a spanset expression (spanset.ts), over whole traces */
  private async rankSpanset(
    opts: TraceSearchOptions,
    resIds: Lookups,
    sliceStart: bigint | undefined,
    limit: number,
    picks: number,
  ): Promise<Found> {
    let from = opts.startNs;
    if (sliceStart !== undefined) {
      // the earliest span of any trace with a span in the slice
      const P0 = new Params();
      const r = (await this.core.query(
        `SELECT min(t.min_ns) FROM trace_index t WHERE ${windowSql(P0, opts.startNs, undefined, 't.max_ns')}
           AND t.trace_id IN (SELECT trace_id FROM trace_index WHERE ${windowSql(P0, sliceStart, undefined, 'max_ns')} AND ${windowSql(P0, undefined, opts.endNs, 'min_ns')})`,
        P0,
      ))[0];
      if (typeof r?.[0] !== 'bigint') return { top: [], picks: [] };
      if (from === undefined || r[0] > from) from = r[0];
    }
    const P = new Params();
    const c = new SpansetCompiler(this.compileContext(P, { startNs: from, endNs: opts.endNs }, resIds)).compile(opts.query.spanset);
    const having = sliceStart !== undefined ? `HAVING max(st) >= ${P.add(sliceStart, BIGINT)}` : '';
    const rows = await this.core.query(
      `${c.with},
       top AS MATERIALIZED (SELECT tid, count(DISTINCT rid) AS matched, max(st) AS last FROM ${c.rel}
         GROUP BY tid ${having} ORDER BY last DESC, tid LIMIT ${P.add(limit, UINTEGER)}),
       picked AS (SELECT DISTINCT r.tid, r.sid, r.st, r.rid FROM ${c.rel} r SEMI JOIN top t ON t.tid = r.tid)
       SELECT 0, tid, matched, last, NULL FROM top
       UNION ALL SELECT * FROM (SELECT 1, tid, NULL, st, sid FROM picked
         QUALIFY row_number() OVER (PARTITION BY tid ORDER BY st, sid, rid) <= ${P.add(picks, UINTEGER)})`,
      P,
    );
    const top: { id: string; matched: number; last: bigint }[] = [];
    const out: Found = { top: [], picks: [] };
    for (const [k, tid, n, st, sid] of rows) {
      if (k === 0) top.push({ id: uuidHex(tid), matched: Number(n), last: st as bigint });
      else out.picks.push({ tid: uuidHex(tid), sid: sid as bigint, st: st as bigint });
    }
    top.sort((a, b) => (a.last > b.last ? -1 : a.last < b.last ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    out.top = top.map(({ id, matched }) => ({ id, matched }));
    return out;
  }

  async tagNames(scope?: TagScope, opts: TagOptions = {}): Promise<string[]> {
    const limit = Math.max(0, Math.min(Math.floor(opts.limit ?? 1000), 100_000));
    const names = new Set<string>();
    if (scope === undefined || scope === 'intrinsic') for (const n of INTRINSIC_TAGS) names.add(n);
    if (scope === undefined || scope === 'resource') {
      const P = new Params();
      const rows = await this.core.query(
        `SELECT DISTINCT k FROM (SELECT unnest(json_keys(attributes)) AS k FROM resources
           WHERE id IN (SELECT DISTINCT res_id FROM spans WHERE ${windowSql(P, opts.startNs, opts.endNs)})) ORDER BY k LIMIT ${P.add(limit, UINTEGER)}`,
        P,
      );
      for (const [k] of rows) names.add(String(k));
    }
    if (scope === undefined || scope === 'span') {
      const P = new Params();
      const rows = await this.core.query(
        `SELECT DISTINCT k FROM (SELECT unnest(json_keys(attributes)) AS k FROM
           (SELECT attributes FROM spans WHERE ${windowSql(P, opts.startNs, opts.endNs)} ORDER BY start_ns DESC LIMIT ${P.add(TAG_SAMPLE_SPANS, UINTEGER)}))
         ORDER BY k LIMIT ${P.add(limit, UINTEGER)}`,
        P,
      );
      for (const [k] of rows) names.add(String(k));
      // hot attributes live in their columns (schema.ts): the keys whose column has a value in the sample
      const P2 = new Params();
      const present = (await this.core.query(
        `SELECT ${HOT_COLUMNS.map((c) => `count(${c}) > 0`).join(', ')} FROM
           (SELECT ${HOT_COLUMNS.join(', ')} FROM spans WHERE ${windowSql(P2, opts.startNs, opts.endNs)} ORDER BY start_ns DESC LIMIT ${P2.add(TAG_SAMPLE_SPANS, UINTEGER)})`,
        P2,
      ))[0];
      HOT_KEYS.forEach((k, i) => {
        if (present?.[i] === true) names.add(k);
      });
    }
    if (scope === 'event' || scope === 'link') {
      // keys of the newest events (links) in the window: few rows, most spans have none
      const P = new Params();
      const rows = await this.core.query(
        `SELECT DISTINCT k FROM (SELECT unnest(json_keys(attributes)) AS k FROM
           (SELECT attributes FROM ${scope === 'event' ? 'span_events' : 'span_links'} WHERE ${windowSql(P, opts.startNs, opts.endNs)} AND attributes IS NOT NULL
            ORDER BY start_ns DESC LIMIT ${P.add(TAG_SAMPLE_SPANS, UINTEGER)}))
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
          // codes made distinct first, then decoded and made distinct again (a string may have several)
          const rows = await this.core.query(
            `SELECT DISTINCT ${this.core.text('c.v', col)} AS v FROM (SELECT DISTINCT ${col} AS v FROM spans WHERE ${win}${root} AND ${col} IS NOT NULL) c
             ORDER BY v LIMIT ${lim}`,
            P,
          );
          return rows.map(([v]) => ({ type: 'string' as const, value: String(v) }));
        }
        case 'eventName': {
          const rows = await this.core.query(`SELECT DISTINCT name AS v FROM span_events WHERE ${win} ORDER BY v LIMIT ${lim}`, P);
          return rows.map(([v]) => ({ type: 'string' as const, value: String(v) }));
        }
        default:
          return [];
      }
    }
    const ptr = P.add(jsonPointer(tag.name), VARCHAR);
    if (tag.scope === 'event' || tag.scope === 'link') {
      const rows = await this.core.query(
        `SELECT DISTINCT v FROM (SELECT json_extract(attributes, ${ptr})::VARCHAR AS v FROM ${tag.scope === 'event' ? 'span_events' : 'span_links'}
           WHERE ${win} AND attributes IS NOT NULL ORDER BY start_ns DESC LIMIT ${P.add(TAG_SAMPLE_SPANS, UINTEGER)})
         WHERE v IS NOT NULL ORDER BY v LIMIT ${lim}`,
        P,
      );
      const out: TagValue[] = [];
      for (const [v] of rows) {
        const tv = jsonTextToTagValue(String(v));
        if (tv) out.push(tv);
      }
      return out;
    }
    const texts = new Set<string>();
    if (tag.scope !== 'span') {
      const rows = await this.core.query(
        `SELECT DISTINCT json_extract(attributes, ${ptr})::VARCHAR AS v FROM resources
         WHERE id IN (SELECT DISTINCT res_id FROM spans WHERE ${win}) AND v IS NOT NULL ORDER BY v LIMIT ${lim}`,
        P,
      );
      for (const [v] of rows) texts.add(String(v));
    }
    if (tag.scope !== 'resource' && (this.core.spanKeysOverflow || this.core.spanKeys.has(tag.name))) {
      const P2 = new Params();
      const ptr2 = P2.add(jsonPointer(tag.name), VARCHAR);
      const rows = await this.core.query(
        `SELECT DISTINCT v FROM (SELECT json_extract(attributes, ${ptr2})::VARCHAR AS v FROM
           (SELECT attributes FROM spans WHERE ${windowSql(P2, opts.startNs, opts.endNs)} ORDER BY start_ns DESC LIMIT ${P2.add(TAG_SAMPLE_SPANS, UINTEGER)}))
         WHERE v IS NOT NULL ORDER BY v LIMIT ${P2.add(limit, UINTEGER)}`,
        P2,
      );
      for (const [v] of rows) texts.add(String(v));
    }
    const out: TagValue[] = [];
    const seen = new Set<string>();
    const push = (tv: TagValue | undefined): void => {
      if (!tv || seen.has(`${tv.type}:${tv.value}`)) return;
      seen.add(`${tv.type}:${tv.value}`);
      out.push(tv);
    };
    const hotCol = HOT_SPAN_ATTRS[tag.name]?.[0];
    if (tag.scope !== 'resource' && hotCol !== undefined) {
      const P3 = new Params();
      const sample = `SELECT ${SPAN_ENUMS[hotCol] ? `${hotCol}::VARCHAR` : hotCol} AS v FROM spans WHERE ${windowSql(P3, opts.startNs, opts.endNs)} ORDER BY start_ns DESC LIMIT ${P3.add(TAG_SAMPLE_SPANS, UINTEGER)}`;
      // a coded column's codes decoded, then made distinct (a string may have several codes)
      const values = this.core.coded(hotCol) ? `SELECT ${decodeSql('c.v')} AS v FROM (${sample}) c` : sample;
      const rows = await this.core.query(
        `SELECT DISTINCT v FROM (${values})
         WHERE v IS NOT NULL ORDER BY v LIMIT ${P3.add(limit, UINTEGER)}`,
        P3,
      );
      for (const [v] of rows) {
        if (typeof v === 'string') push({ type: 'string', value: v });
        else if (typeof v === 'number' && Number.isFinite(v)) push({ type: Number.isInteger(v) ? 'int' : 'float', value: String(v) });
      }
    }
    for (const t of texts) push(jsonTextToTagValue(t));
    out.sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
    return out.slice(0, limit);
  }

  /**
   * The SQL condition on `spans` rows selected by the query: the compiled filter for a
   * plain filter, else membership in the spanset relation (spanset.ts), built per Params.
   */
  private async conditionFor(opts: SearchOptions | TraceSearchOptions | Omit<SearchOptions, 'limit' | 'order'>): Promise<(P: Params) => string> {
    const q = opts.query;
    if (q.metrics) throw new TraceQLError('invalid', 'this is a metrics query; run it with /api/metrics/query_range (osprey metrics)', 0);
    const exprs = spansetFilters(q.spanset);
    for (const e of exprs) await this.checkRegexes(e);
    const resIds = await this.lookup(exprs);
    const filter = q.filter;
    if (filter) return (P) => `${windowSql(P, opts.startNs, opts.endNs)} AND ${compileFilter(filter, this.compileContext(P, opts, resIds))}`;
    return (P) => {
      const c = new SpansetCompiler(this.compileContext(P, opts, resIds)).compile(q.spanset);
      return `rowid IN (${c.with} SELECT rid FROM ${c.rel})`;
    };
  }

  private async spanCondition(opts: Omit<SearchOptions, 'limit' | 'order'>): Promise<{ P: Params; cond: string }> {
    const f = await this.conditionFor(opts);
    const P = new Params();
    return { P, cond: f(P) };
  }

  /** A TraceQL metrics query over [startNs, endNs] in steps (metrics-query.ts). */
  async metrics(q: Query, range: MetricsRange): Promise<QueryRangeResponse> {
    return runMetricsQuery(
      {
        query: (sql, P) => this.core.query(sql, P),
        context: async (P, w, filters) => {
          for (const e of filters) await this.checkRegexes(e);
          return this.compileContext(P, w, await this.lookup(filters));
        },
      },
      q,
      range,
    );
  }

  /**
   * The SQL condition (window AND query) a search of `opts` puts on `spans`, with its
   * parameters in P: for other read paths (src/store/analysis.ts) to build on.
   */
  async where(P: Params, opts: Omit<SearchOptions, 'limit' | 'order'>): Promise<string> {
    return (await this.whereFor(opts))(P);
  }

  /** the same condition for several queries: resources and regexes are looked up once, each query adds its own parameters */
  async whereFor(opts: Omit<SearchOptions, 'limit' | 'order'>): Promise<(P: Params) => string> {
    const cond = await this.conditionFor(opts);
    return (P) => `${windowSql(P, opts.startNs, opts.endNs)} AND ${cond(P)}`;
  }

  private compileContext(params: Params, w: TimeWindow, lookups?: Lookups): CompileContext {
    const keys = this.core.spanKeys;
    return {
      params,
      startNs: w.startNs,
      endNs: w.endNs,
      spanKeyMayExist: this.core.spanKeysOverflow ? undefined : (k) => keys.has(k),
      resourceIds: lookups?.res,
      enumValues: this.core.enumValues,
      coded: this.core.coded,
      codeLists: lookups?.codes,
    };
  }

  /** the resources (lookupResources) and the string codes (lookupCodes) a query's conditions refer to */
  private async lookup(filters: Expr[]): Promise<Lookups> {
    const [res, codes] = await Promise.all([this.lookupResources(filters), this.lookupCodes(filters)]);
    return res === undefined && codes === undefined ? undefined : { res, codes };
  }

  /**
   * Looks up, in one small query, the codes of the strings that satisfy each comparison of a
   * string with a coded column (schema.ts SPAN_CODED), so the span query gets constant lists
   * (compile.ts codeListKey): DuckDB filters a column by a constant list in the scan and reads
   * the other columns of the matching rows only, where `col IN (SELECT id FROM strings ...)` is
   * a join that reads every column of every row first (search() over 1M spans: ~110 ms against
   * ~6). Lists longer than MAX_INLINE_CODES are left to the subquery.
   */
  private async lookupCodes(filters: Expr[]): Promise<Map<string, number[]> | undefined> {
    if (this.core.codedColumns.size === 0) return undefined;
    const keys = new Map<string, CompareExpr>();
    for (const c of filters.flatMap((f) => stringComparisons(f))) keys.set(codeListKey(c.op, (c.value as { value: string }).value), c);
    if (keys.size === 0) return undefined;
    const P = new Params();
    const entries = [...keys];
    const cols = entries.map(([, c]) => {
      const v = P.add((c.value as { value: string }).value, VARCHAR);
      return `list(id ORDER BY id) FILTER (WHERE ${cmp('s', c.op, v)})`;
    });
    const row = (await this.core.query(`SELECT ${cols.join(', ')} FROM strings`, P, true))[0];
    const out = new Map<string, number[]>();
    entries.forEach(([k], i) => {
      const ids = (row?.[i] as unknown[] | null | undefined)?.map(Number) ?? [];
      if (ids.length <= MAX_INLINE_CODES) out.set(k, ids);
    });
    return out;
  }

  /**
   * Looks up, in one small query, which resources satisfy each resource-side condition,
   * so the span query gets constant id lists instead of joins. Lists longer than
   * MAX_INLINE_RESOURCES are left to a join.
   */
  private async lookupResources(filters: Expr[]): Promise<Map<CompareExpr, number[]> | undefined> {
    const comps = filters.flatMap((f) => resourceComparisons(f));
    if (comps.length === 0) return undefined;
    const P = new Params();
    const cols = comps.map((c) => `list(r.id ORDER BY r.id) FILTER (WHERE ${resourcePredicate(c, P) ?? 'FALSE'})`);
    const row = (await this.core.query(`SELECT ${cols.join(', ')} FROM resources r`, P, true))[0];
    const out = new Map<CompareExpr, number[]>();
    comps.forEach((c, i) => {
      const ids = (row?.[i] as unknown[] | null | undefined)?.map(Number) ?? [];
      if (ids.length <= MAX_INLINE_RESOURCES) out.set(c, ids);
    });
    return out;
  }

  /** DuckDB's regex engine is RE2 like Tempo's; refuse a bad pattern as a TraceQLError, not a SQL error. */
  private async checkRegexes(filter: Expr): Promise<void> {
    for (const { pattern, pos } of regexLiterals(filter)) {
      if (this.validRegex.has(pattern)) continue;
      const P = new Params();
      try {
        await this.core.query(`SELECT regexp_full_match('', ${P.add(pattern, VARCHAR)})`, P);
      } catch (e) {
        const msg = e instanceof Error ? e.message.replace(/^.*Error:\s*/, '') : String(e);
        throw new TraceQLError('invalid', `invalid regular expression ${JSON.stringify(pattern)}: ${msg}`, pos);
      }
      if (this.validRegex.size > 1000) this.validRegex.clear();
      this.validRegex.add(pattern);
    }
  }

}

/** whether a filter reads trace-level values (they need the whole trace, not a slice of it) */
function traceLevel(e: Expr): boolean {
  switch (e.type) {
    case 'const':
      return false;
    case 'and':
    case 'or':
      return traceLevel(e.left) || traceLevel(e.right);
    case 'not':
      return traceLevel(e.expr);
    case 'compare':
      return traceLevelField(e.field);
    case 'valueCompare':
      return [...valueFields(e.left), ...valueFields(e.right)].some(traceLevelField);
  }
}

/** a field read from other spans of the trace (the parent's attributes, the root, the children...) */
function traceLevelField(f: FieldRef): boolean {
  if (f.type === 'attribute') return f.parent === true;
  return ['traceDuration', 'rootName', 'rootServiceName', 'childCount'].includes(f.name);
}

function checkLimit(limit: number): number {
  if (typeof limit !== 'number' || Number.isNaN(limit) || limit < 0) throw new RangeError('limit must be a number >= 0');
  return Math.min(Math.floor(limit), MAX_LIMIT);
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

/** resource ids and string codes looked up before a query is compiled (Queries.lookup) */
type Lookups = { res?: Map<CompareExpr, number[]>; codes?: Map<string, number[]> } | undefined;

/** most codes inlined into a query (Queries.lookupCodes); a longer list stays a subquery */
const MAX_INLINE_CODES = 10_000;

/** the comparisons of a string literal with a field that may be a coded column (over-collecting costs only a lookup) */
function stringComparisons(e: Expr): CompareExpr[] {
  switch (e.type) {
    case 'const':
    case 'valueCompare':
      return [];
    case 'and':
    case 'or':
      return [...stringComparisons(e.left), ...stringComparisons(e.right)];
    case 'not':
      return stringComparisons(e.expr);
    case 'compare': {
      if (e.value.type !== 'string') return [];
      const f = e.field;
      if (f.type === 'intrinsic') return f.name === 'name' || f.name === 'rootName' || f.name === 'rootServiceName' ? [e] : [];
      return HOT_SPAN_ATTRS[f.name] !== undefined || HOT_RESOURCE_ATTRS[f.name] !== undefined ? [e] : [];
    }
  }
}

