// The web UI's trace list: a page of traces with a matching span, newest or slowest first,
// and, asked for separately, how many traces match in all.
//
// Why it is not one GROUP BY trace_id: grouping every matching span by trace builds one
// hash-table entry per trace (333k entries for 1M spans, ~300 ms on two cores) only to keep
// 50 of them. A trace's place in the list is decided by ONE of its spans: newest first, by
// its latest matching span; slowest first, by its slowest. So the spans themselves, ordered
// by start (or duration) with a LIMIT, list the traces in page order: the first k spans of
// that order name the first traces (their distinct ids, in order of first appearance).
// DuckDB answers `ORDER BY col DESC LIMIT k` with a top-N heap over two narrow columns
// (~20 ms for 1M spans) instead of a hash table. k grows until it names enough traces
// (traces with many matching spans need more), and past SCAN_CAP the group-by runs instead.
// Only then are the page's traces read whole (traceStats), on the time range trace_index
// gives for them. The total (a count of distinct trace ids, ~130 ms at 1M) is its own query,
// so a view shows the rows first and the count when it arrives.

import { LIST, UINTEGER, VARCHAR, listValue } from '@duckdb/node-api';
import { Params, windowSql } from './compile.js';
import { uuidHex, type StoreCore } from './core.js';
import { STATUS_CODE, UNKNOWN_SERVICE } from './schema.js';
import type { TimeWindow } from './types.js';
import { MAX_LIMIT } from './window.js';

export interface TraceListOptions extends TimeWindow {
  /** 'start': newest matching span first; 'duration': slowest matching span first */
  order: 'start' | 'duration';
  limit: number;
  offset: number;
}

export interface TraceRow {
  traceId: string;
  /** service and name of the root: a span whose parent is not stored, true roots first */
  rootService: string;
  rootName: string;
  startNs: bigint;
  /** max(end) - min(start) over the trace's stored spans */
  durationNs: number;
  spanCount: number;
  errorCount: number;
  services: string[];
  /** matching spans in the trace */
  matched: number;
  /** the slowest matching span: what the row is sorted by with order 'duration' */
  top: { spanId: string; service: string; name: string; durationNs: number; startNs: bigint };
}

export interface TraceList {
  traces: TraceRow[];
  /** more traces match after this page */
  more: boolean;
}

/**
 * A trace's root, over its spans `t` LEFT JOINed to their parents `p` in the same trace:
 * `first(x ORDER BY ROOT_FIRST)`. A span whose parent is not stored counts as a root (eBPF
 * often sees a traceparent from an untraced caller); true roots (no parent id) first, then
 * the earliest.
 */
export const ROOT_FIRST = 'p.span_id IS NOT NULL, t.parent_span_id IS NOT NULL, t.start_ns';

export interface TimeRange {
  lo: bigint | undefined;
  hi: bigint | undefined;
}

/** the condition on `spans` (window and query) a list is over; called once per query, for its own Params */
export type Where = (P: Params) => string;

/** spans read by one top-N step at first: 4 per trace wanted (the agent's traces have 2-6 spans) */
const SPANS_PER_TRACE = 4;
const MIN_SCAN = 256;
/** past this many spans in the top-N, the traces have too many matching spans each: group instead */
const SCAN_CAP = 65_536;

export class TracePages {
  constructor(private readonly core: StoreCore) {}

  async list(where: Where, opts: TraceListOptions): Promise<TraceList> {
    const limit = Math.max(0, Math.min(Math.floor(opts.limit), MAX_LIMIT));
    const offset = Math.max(0, Math.min(Math.floor(opts.offset), MAX_LIMIT));
    if (limit === 0) return { traces: [], more: false };
    // one more than the page, to know whether there is a next one
    const want = offset + limit + 1;
    const ids = (await this.orderedTraceIds(where, opts.order, want)).slice(offset);
    const more = ids.length > limit;
    const page = ids.slice(0, limit);
    if (page.length === 0) return { traces: [], more: false };
    const rows = await this.describe(where, page, await this.timeRange(page));
    const traces: TraceRow[] = [];
    for (const id of page) {
      const t = rows.get(id);
      if (t) traces.push(t);
    }
    return { traces, more };
  }

  /** traces with a matching span */
  async count(where: Where): Promise<number> {
    const P = new Params();
    const rows = await this.core.query(`SELECT count(DISTINCT trace_id) FROM spans WHERE ${where(P)}`, P);
    return Number(rows[0]?.[0] ?? 0);
  }

  /** the first `want` trace ids in list order (fewer when fewer match) */
  private async orderedTraceIds(where: Where, order: TraceListOptions['order'], want: number): Promise<string[]> {
    // ties: the later span first, then the smaller trace id; the same order pages are cut in
    const by = order === 'duration' ? 'duration_ns DESC, start_ns DESC, trace_id' : 'start_ns DESC, trace_id';
    for (let k = Math.max(MIN_SCAN, want * SPANS_PER_TRACE); k <= SCAN_CAP; k *= 4) {
      const P = new Params();
      const rows = await this.core.query(`SELECT trace_id FROM spans WHERE ${where(P)} ORDER BY ${by} LIMIT ${P.add(k, UINTEGER)}`, P);
      const ids = distinctInOrder(rows.map((r) => uuidHex(r[0])));
      if (ids.length >= want || rows.length < k) return ids.slice(0, want);
    }
    // traces with thousands of matching spans each: one group per trace after all
    const P = new Params();
    const key = order === 'duration' ? 'max(duration_ns) DESC, arg_max(start_ns, duration_ns) DESC' : 'max(start_ns) DESC';
    const rows = await this.core.query(
      `SELECT trace_id FROM spans WHERE ${where(P)} GROUP BY trace_id ORDER BY ${key}, trace_id LIMIT ${P.add(want, UINTEGER)}`,
      P,
    );
    return rows.map((r) => uuidHex(r[0]));
  }

  /** where the traces' spans lie in time (trace_index), so the scans below skip the rest */
  async timeRange(ids: string[]): Promise<TimeRange> {
    const P = new Params();
    const row = (await this.core.query(`SELECT min(min_ns), max(max_ns) FROM trace_index WHERE trace_id IN ${idList(P, ids)}`, P))[0];
    return { lo: typeof row?.[0] === 'bigint' ? row[0] : undefined, hi: typeof row?.[1] === 'bigint' ? row[1] : undefined };
  }

  /**
   * The page's traces, read whole in one pass: extent, span and error counts, services,
   * the root (a span whose parent is not stored; true roots first, then the earliest), and
   * which of its spans match (`where` evaluated on the trace's rows only) with the slowest.
   */
  private async describe(where: Where, ids: string[], { lo, hi }: TimeRange): Promise<Map<string, TraceRow>> {
    const P = new Params();
    const m = 't.m';
    const rows = await this.core.query(
      `WITH t AS MATERIALIZED (
         SELECT trace_id, span_id, parent_span_id, ${this.core.text('x.service', 'service')} AS service, ${this.core.text('x.name', 'name')} AS name,
                start_ns, duration_ns, status, m
         FROM (SELECT trace_id, span_id, parent_span_id, service, name, start_ns, duration_ns, status, coalesce(${where(P)}, FALSE) AS m FROM spans
               WHERE trace_id IN ${idList(P, ids)} AND ${windowSql(P, lo, hi)}) x)
       SELECT t.trace_id, count(*), count(*) FILTER (WHERE t.status = ${P.add(STATUS_CODE.error, UINTEGER)}),
              min(t.start_ns), max(t.start_ns + t.duration_ns), list(DISTINCT coalesce(t.service, ${P.add(UNKNOWN_SERVICE, VARCHAR)})),
              first(t.service ORDER BY ${ROOT_FIRST}), first(t.name ORDER BY ${ROOT_FIRST}),
              count(*) FILTER (WHERE ${m}), max(t.duration_ns) FILTER (WHERE ${m}),
              arg_max(t.span_id, t.duration_ns) FILTER (WHERE ${m}), arg_max(t.service, t.duration_ns) FILTER (WHERE ${m}),
              arg_max(t.name, t.duration_ns) FILTER (WHERE ${m}), arg_max(t.start_ns, t.duration_ns) FILTER (WHERE ${m})
       FROM t LEFT JOIN t p ON p.trace_id = t.trace_id AND p.span_id = t.parent_span_id
       GROUP BY t.trace_id`,
      P,
      true,
    );
    const out = new Map<string, TraceRow>();
    for (const [tid, n, errs, start, end, services, rootSvc, rootName, matched, topDur, topSpan, topSvc, topName, topStart] of rows) {
      const traceId = String(tid).replace(/-/g, '');
      out.set(traceId, {
        traceId,
        rootService: rootSvc === null || rootSvc === undefined ? UNKNOWN_SERVICE : String(rootSvc),
        rootName: String(rootName ?? ''),
        startNs: start as bigint,
        durationNs: Number((end as bigint) - (start as bigint)),
        spanCount: Number(n),
        errorCount: Number(errs),
        services: ((services as string[] | null) ?? []).slice().sort(),
        matched: Number(matched),
        top: {
          spanId: typeof topSpan === 'bigint' ? topSpan.toString(16).padStart(16, '0') : '',
          service: topSvc === null || topSvc === undefined ? UNKNOWN_SERVICE : String(topSvc),
          name: String(topName ?? ''),
          durationNs: Number(topDur ?? 0),
          startNs: typeof topStart === 'bigint' ? topStart : (start as bigint),
        },
      });
    }
    return out;
  }
}

/** `(SELECT ... )` of the ids as UUIDs, for `trace_id IN` */
export function idList(P: Params, ids: string[]): string {
  return `(SELECT CAST(unnest(${P.add(listValue(ids), LIST(VARCHAR))}) AS UUID))`;
}

function distinctInOrder(ids: string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const id of ids) {
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(id);
  }
  return out;
}
