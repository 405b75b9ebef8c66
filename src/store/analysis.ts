// Read paths for the web UI (src/server/ui-api.ts): a paged trace list that sorts by
// duration and counts its total, a latency-over-time heatmap, and the comparison of a
// selected region of that heatmap against the rest. Each is SQL over `spans`, on the
// condition a TraceQL search would use (Queries.where), so the UI's views and the search
// API agree on what matches.

import { BIGINT, DOUBLE, UINTEGER, VARCHAR } from '@duckdb/node-api';
import type { Query } from '../traceql/index.js';
import { Params, jsonPointer } from './compile.js';
import type { StoreCore } from './core.js';
import { TracePages, type TraceList, type TraceListOptions, type TraceRow, type Where } from './trace-page.js';
import type { Queries } from './queries.js';
import { TypicalTraces, type TypicalTrace } from './typical.js';
import { KIND_CODE, STATUS_CODE, UNKNOWN_SERVICE, codedCmp, decodeSql } from './schema.js';
import type { TimeWindow } from './types.js';

export interface TracePageOptions extends TraceListOptions {
  query: Query;
  /** only spans of `callee` (server side) whose parent is a client span of `caller`: the traces over a service-map edge */
  edge?: { caller: string; callee: string };
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
  ['http.request.method', orJson('http_method', 'http.request.method')],
  // a coded column in new stores: decoded in compare()
  ['server.address', 'server_address'],
  ['osprey.link', orJson('osprey_link', 'osprey.link')],
];

/** an ENUM column's value, or the JSON's for a value outside its set (schema.ts SPAN_ENUMS) */
function orJson(col: string, key: string): string {
  return `coalesce(CAST(${col} AS VARCHAR), json_extract_string(attributes, '${jsonPointer(key)}'))`;
}
/** values kept per dimension (the most frequent in the selection, then in the rest) */
const VALUES_PER_DIMENSION = 15;

/** the span is a server span of callee whose parent is a client span of caller in the same trace */
function edgeCondition(P: Params, caller: string, callee: string, coded: boolean): string {
  const is = (col: string, v: string): string => codedCmp(coded, col, (x) => `${x} = ${P.add(v, VARCHAR)}`);
  return ` AND ${is('service', callee)} AND kind = ${KIND_CODE.server} AND parent_span_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM spans c WHERE c.trace_id = spans.trace_id AND c.span_id = spans.parent_span_id
      AND ${is('c.service', caller)} AND c.kind = ${KIND_CODE.client})`;
}

export class Analysis {
  constructor(
    private readonly core: StoreCore,
    private readonly queries: Queries,
  ) {
    this.pages = new TracePages(core);
    this.typicals = new TypicalTraces(core, this.pages);
  }

  private readonly pages: TracePages;
  private readonly typicals: TypicalTraces;

  /** the typical trace of the same root service and name around this one (typical.ts); undefined: not stored */
  async typicalTrace(traceId: string, aroundNs: bigint = 3600n * 1_000_000_000n): Promise<TypicalTrace | undefined> {
    return this.typicals.find(traceId, aroundNs);
  }

  /** the condition of a trace list: the search's, and the service-map edge when given */
  private async listWhere(opts: Omit<TracePageOptions, 'order' | 'limit' | 'offset'>): Promise<Where> {
    const where = await this.queries.whereFor(opts);
    const edge = opts.edge;
    return edge ? (P) => where(P) + edgeCondition(P, edge.caller, edge.callee, this.core.coded('service')) : where;
  }

  /** a page of traces and, concurrently, how many match in all */
  async tracePage(opts: TracePageOptions): Promise<TracePage> {
    const [list, total] = await Promise.all([this.traceList(opts), this.traceCount(opts)]);
    return { total, traces: list.traces };
  }

  /** a page of traces, without the total (trace-page.ts) */
  async traceList(opts: TracePageOptions): Promise<TraceList> {
    return this.pages.list(await this.listWhere(opts), opts);
  }

  /** traces with a matching span in the window */
  async traceCount(opts: Omit<TracePageOptions, 'order' | 'limit' | 'offset'>): Promise<number> {
    return this.pages.count(await this.listWhere(opts));
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
    // a coded column is counted per code and decoded after (adding up a string's codes): a
    // lookup per span row doubled the CPU of a comparison over 1M spans
    const per = DIMENSIONS.map(([name, sql], i) => {
      const counts = `count(*) FILTER (WHERE sel) AS s, count(*) FILTER (WHERE NOT sel) AS r FROM m WHERE d${i} IS NOT NULL`;
      if (!this.core.coded(sql)) return `SELECT ${P.add(name, VARCHAR)} AS dim, CAST(d${i} AS VARCHAR) AS v, ${counts} GROUP BY v`;
      return `SELECT ${P.add(name, VARCHAR)} AS dim, v, sum(s)::BIGINT AS s, sum(r)::BIGINT AS r FROM
         (SELECT ${decodeSql('c')} AS v, s, r FROM (SELECT d${i} AS c, ${counts} GROUP BY c)) WHERE v IS NOT NULL GROUP BY v`;
    });
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
