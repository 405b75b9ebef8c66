// Read paths for the web UI (src/server/ui-api.ts): a paged trace list that sorts by
// duration and counts its total, a latency-over-time heatmap, and the comparison of a
// selected region of that heatmap against the rest. Each is SQL over `spans`, on the
// condition a TraceQL search would use (Queries.where), so the UI's views and the search
// API agree on what matches.

import { BIGINT, DOUBLE, LIST, UINTEGER, VARCHAR, listValue } from '@duckdb/node-api';
import type { Query } from '../traceql/index.js';
import { Params, windowSql } from './compile.js';
import { uuidHex, type StoreCore } from './core.js';
import type { Queries } from './queries.js';
import { KIND_CODE, STATUS_CODE, UNKNOWN_SERVICE } from './schema.js';
import type { TimeWindow } from './types.js';
import { MAX_LIMIT } from './window.js';

export interface TracePageOptions extends TimeWindow {
  query: Query;
  /** 'start': newest matching span first; 'duration': slowest matching span first */
  order: 'start' | 'duration';
  limit: number;
  offset: number;
  /** only spans of `callee` (server side) whose parent is a client span of `caller`: the traces over a service-map edge */
  edge?: { caller: string; callee: string };
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

export interface TracePage {
  /** traces with a matching span in the window */
  total: number;
  traces: TraceRow[];
}

/** heatmap rows: quarter-octave duration buckets from 1 µs (bucket b holds [1µs·2^(b/4), 1µs·2^((b+1)/4))) */
export const HEAT_BASE_NS = 1000;
export const HEAT_PER_OCTAVE = 4;

export interface HeatmapOptions extends TimeWindow {
  query: Query;
  /** number of time columns (the window is cut into this many equal steps) */
  columns: number;
}

export interface Heatmap {
  startNs: bigint;
  stepNs: bigint;
  columns: number;
  /** [column, duration bucket, spans, errors] for every non-empty cell */
  cells: [number, number, number, number][];
}

export interface CompareOptions extends TimeWindow {
  query: Query;
  /** the selection: matching spans started in [selStartNs, selEndNs] with a duration in [minNs, maxNs] */
  selStartNs: bigint;
  selEndNs: bigint;
  minNs: number;
  maxNs: number;
}

export interface Comparison {
  selected: number;
  rest: number;
  /** per dimension, its values with their count inside the selection and outside it */
  dimensions: { name: string; values: { value: string; selected: number; rest: number }[] }[];
}

/** what a selection is compared on: span and resource columns with few values each */
const DIMENSIONS: readonly [name: string, sql: string][] = [
  ['service', 'service'],
  ['k8s.namespace.name', 'namespace'],
  ['name', 'name'],
  ['kind', `CASE kind WHEN 1 THEN 'internal' WHEN 2 THEN 'server' WHEN 3 THEN 'client' WHEN 4 THEN 'producer' WHEN 5 THEN 'consumer' ELSE 'unspecified' END`],
  ['status', `CASE status WHEN ${STATUS_CODE.error} THEN 'error' WHEN ${STATUS_CODE.ok} THEN 'ok' ELSE 'unset' END`],
  ['http.route', 'http_route'],
  ['http.response.status_code', 'CAST(CAST(http_status_code AS BIGINT) AS VARCHAR)'],
  ['http.request.method', 'http_method'],
  ['server.address', 'server_address'],
  ['osprey.link', 'osprey_link'],
];
/** values kept per dimension (the most frequent in the selection, then in the rest) */
const VALUES_PER_DIMENSION = 15;

/** the span is a server span of callee whose parent is a client span of caller in the same trace */
function edgeCondition(P: Params, caller: string, callee: string): string {
  return ` AND service = ${P.add(callee, VARCHAR)} AND kind = ${KIND_CODE.server} AND parent_span_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM spans c WHERE c.trace_id = spans.trace_id AND c.span_id = spans.parent_span_id
      AND c.service = ${P.add(caller, VARCHAR)} AND c.kind = ${KIND_CODE.client})`;
}

export class Analysis {
  constructor(
    private readonly core: StoreCore,
    private readonly queries: Queries,
  ) {}

  async tracePage(opts: TracePageOptions): Promise<TracePage> {
    const limit = Math.max(0, Math.min(Math.floor(opts.limit), MAX_LIMIT));
    const offset = Math.max(0, Math.floor(opts.offset));
    const P = new Params();
    let where = await this.queries.where(P, opts);
    if (opts.edge) where += edgeCondition(P, opts.edge.caller, opts.edge.callee);
    // the slowest matching span of each trace stands for it (arg_max), and the count over
    // the groups is the total: one scan answers both the page and "how many"
    const order = opts.order === 'duration' ? 'top_dur DESC, last_ns DESC, trace_id' : 'last_ns DESC, trace_id';
    const rows = await this.core.query(
      `WITH g AS (
         SELECT trace_id, count(*) AS matched, max(start_ns) AS last_ns, max(duration_ns) AS top_dur,
                arg_max(span_id, duration_ns) AS top_span, arg_max(service, duration_ns) AS top_svc,
                arg_max(name, duration_ns) AS top_name, arg_max(start_ns, duration_ns) AS top_start
         FROM spans WHERE ${where} GROUP BY trace_id)
       SELECT trace_id, matched, top_dur, top_span, top_svc, top_name, top_start, count(*) OVER () AS total
       FROM g ORDER BY ${order} LIMIT ${P.add(limit, UINTEGER)} OFFSET ${P.add(offset, UINTEGER)}`,
      P,
    );
    let total = rows.length ? Number(rows[0]![7]) : 0;
    if (!rows.length && offset > 0) {
      const P2 = new Params();
      let w2 = await this.queries.where(P2, opts);
      if (opts.edge) w2 += edgeCondition(P2, opts.edge.caller, opts.edge.callee);
      total = Number((await this.core.query(`SELECT count(DISTINCT trace_id) FROM spans WHERE ${w2}`, P2))[0]?.[0] ?? 0);
    }
    if (!rows.length) return { total, traces: [] };
    const ids = rows.map((r) => uuidHex(r[0]));
    const stats = await this.traceStats(ids);
    const traces: TraceRow[] = rows.map((r, i) => {
      const id = ids[i]!;
      const s = stats.get(id);
      return {
        traceId: id,
        rootService: s?.rootService ?? UNKNOWN_SERVICE,
        rootName: s?.rootName ?? '',
        startNs: s?.startNs ?? (r[6] as bigint),
        durationNs: s?.durationNs ?? Number(r[2]),
        spanCount: s?.spanCount ?? 0,
        errorCount: s?.errorCount ?? 0,
        services: s?.services ?? [],
        matched: Number(r[1]),
        top: {
          spanId: (r[3] as bigint).toString(16).padStart(16, '0'),
          service: r[4] === null ? UNKNOWN_SERVICE : String(r[4]),
          name: String(r[5]),
          durationNs: Number(r[2]),
          startNs: r[6] as bigint,
        },
      };
    });
    return { total, traces };
  }

  /** per trace: extent, span and error counts, services, and its root */
  private async traceStats(ids: string[]): Promise<Map<string, Omit<TraceRow, 'traceId' | 'matched' | 'top'>>> {
    const idList = (P: Params): string => `(SELECT CAST(unnest(${P.add(listValue(ids), LIST(VARCHAR))}) AS UUID))`;
    const P0 = new Params();
    const range = (await this.core.query(`SELECT min(min_ns), max(max_ns) FROM trace_index WHERE trace_id IN ${idList(P0)}`, P0))[0];
    const lo = typeof range?.[0] === 'bigint' ? range[0] : undefined;
    const hi = typeof range?.[1] === 'bigint' ? range[1] : undefined;
    const P = new Params();
    const rows = await this.core.query(
      `WITH t AS MATERIALIZED (
         SELECT trace_id, span_id, parent_span_id, service, name, start_ns, duration_ns, status FROM spans
         WHERE trace_id IN ${idList(P)} AND ${windowSql(P, lo, hi)})
       SELECT t.trace_id, count(*), count(*) FILTER (WHERE t.status = ${P.add(STATUS_CODE.error, UINTEGER)}),
              min(t.start_ns), max(t.start_ns + t.duration_ns), list(DISTINCT coalesce(t.service, ${P.add(UNKNOWN_SERVICE, VARCHAR)})),
              first(t.service ORDER BY p.span_id IS NOT NULL, t.parent_span_id IS NOT NULL, t.start_ns),
              first(t.name ORDER BY p.span_id IS NOT NULL, t.parent_span_id IS NOT NULL, t.start_ns)
       FROM t LEFT JOIN t p ON p.trace_id = t.trace_id AND p.span_id = t.parent_span_id
       GROUP BY t.trace_id`,
      P,
      true,
    );
    const out = new Map<string, Omit<TraceRow, 'traceId' | 'matched' | 'top'>>();
    for (const [tid, n, errs, start, end, services, rootSvc, rootName] of rows) {
      out.set(String(tid).replace(/-/g, ''), {
        rootService: rootSvc === null || rootSvc === undefined ? UNKNOWN_SERVICE : String(rootSvc),
        rootName: String(rootName ?? ''),
        startNs: start as bigint,
        durationNs: Number((end as bigint) - (start as bigint)),
        spanCount: Number(n),
        errorCount: Number(errs),
        services: ((services as string[] | null) ?? []).slice().sort(),
      });
    }
    return out;
  }

  /** which namespace each service runs in (from the stored resources; a service may be in several) */
  async serviceNamespaces(): Promise<{ service: string; namespace: string }[]> {
    const P = new Params();
    const rows = await this.core.query(
      `SELECT DISTINCT coalesce(service, ${P.add(UNKNOWN_SERVICE, VARCHAR)}), namespace FROM resources WHERE namespace IS NOT NULL ORDER BY 1, 2`,
      P,
    );
    return rows.map((r) => ({ service: String(r[0]), namespace: String(r[1]) }));
  }

  async heatmap(opts: HeatmapOptions & { startNs: bigint; endNs: bigint }): Promise<Heatmap> {
    const columns = Math.max(1, Math.min(Math.floor(opts.columns), 2000));
    const span = opts.endNs - opts.startNs;
    const stepNs = span > 0n ? (span + BigInt(columns) - 1n) / BigInt(columns) : 1n;
    const P = new Params();
    const where = await this.queries.where(P, opts);
    const t0 = P.add(opts.startNs, BIGINT);
    const step = P.add(stepNs, BIGINT);
    const rows = await this.core.query(
      `SELECT CAST((start_ns - ${t0}) // ${step} AS INTEGER) AS x,
              CAST(floor(log2(greatest(duration_ns, ${HEAT_BASE_NS}) / ${HEAT_BASE_NS}.0) * ${HEAT_PER_OCTAVE}) AS INTEGER) AS y,
              count(*), count(*) FILTER (WHERE status = ${P.add(STATUS_CODE.error, UINTEGER)})
       FROM spans WHERE ${where} GROUP BY ALL ORDER BY x, y`,
      P,
    );
    return {
      startNs: opts.startNs,
      stepNs,
      columns,
      cells: rows.map((r) => [Number(r[0]), Number(r[1]), Number(r[2]), Number(r[3])]),
    };
  }

  async compare(opts: CompareOptions): Promise<Comparison> {
    const P = new Params();
    const where = await this.queries.where(P, opts);
    const sel = `(start_ns BETWEEN ${P.add(opts.selStartNs, BIGINT)} AND ${P.add(opts.selEndNs, BIGINT)}
                  AND duration_ns BETWEEN ${P.add(opts.minNs, DOUBLE)} AND ${P.add(opts.maxNs, DOUBLE)})`;
    const dimCols = DIMENSIONS.map(([, sql], i) => `${sql} AS d${i}`).join(', ');
    const per = DIMENSIONS.map(
      ([name], i) =>
        `SELECT ${P.add(name, VARCHAR)} AS dim, CAST(d${i} AS VARCHAR) AS v, count(*) FILTER (WHERE sel) AS s, count(*) FILTER (WHERE NOT sel) AS r
         FROM m WHERE d${i} IS NOT NULL GROUP BY v`,
    );
    const rows = await this.core.query(
      `WITH m AS MATERIALIZED (SELECT ${sel} AS sel, ${dimCols} FROM spans WHERE ${where}),
       totals AS (SELECT '' AS dim, '' AS v, count(*) FILTER (WHERE sel) AS s, count(*) FILTER (WHERE NOT sel) AS r FROM m)
       SELECT * FROM totals UNION ALL ${per.join(' UNION ALL ')}`,
      P,
    );
    const [, , selected, rest] = rows[0] ?? [];
    const byDim = new Map<string, { value: string; selected: number; rest: number }[]>();
    for (const [dim, v, s, r] of rows.slice(1)) {
      const list = byDim.get(String(dim)) ?? [];
      list.push({ value: String(v), selected: Number(s), rest: Number(r) });
      byDim.set(String(dim), list);
    }
    return {
      selected: Number(selected ?? 0),
      rest: Number(rest ?? 0),
      dimensions: DIMENSIONS.map(([name]) => ({
        name,
        values: (byDim.get(name) ?? []).sort((a, b) => b.selected - a.selected || b.rest - a.rest).slice(0, VALUES_PER_DIMENSION),
      })).filter((d) => d.values.length > 0),
    };
  }
}
