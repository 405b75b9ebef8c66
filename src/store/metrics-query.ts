// TraceQL metrics queries (`{ } | rate() by (resource.service.name)`) → one SQL
// aggregation over the spans the query selects, bucketed by step. The answer has the
// shape of Tempo's QueryRangeResponse / QueryInstantResponse (JSON of tempopb).
//
// Semantics (Tempo's docs): rate = spans per second in each step; *_over_time of a
// duration is in seconds; quantile_over_time gives one series per quantile with label
// `p`; histogram_over_time counts spans per power-of-two bucket (label `__bucket`, the
// bucket's upper bound in seconds); ungrouped series carry `__name__` = the function;
// topk/bottomk keep the n highest/lowest series at each step (as in PromQL).
// Differences from Tempo, on purpose: quantiles are exact (DuckDB's quantile_cont over
// the step's values) where Tempo interpolates within log2 buckets, so they differ by up
// to the bucket width; a step's timestamp is the start of its interval.

import { BIGINT, DOUBLE, UINTEGER } from '@duckdb/node-api';
import { TraceQLError, fieldToString, spansetFilters, type FieldRef, type MetricsOp, type Query } from '../traceql/index.js';
import { Params, compileFilter, windowSql, type CompileContext } from './compile.js';
import { FieldValues, SpansetCompiler } from './spanset.js';
import { HOT_RESOURCE_ATTRS, HOT_SPAN_ATTRS, KIND_BY_CODE, STATUS_BY_CODE } from './schema.js';

export interface MetricsRange {
  startNs: bigint;
  endNs: bigint;
  /** step in ns (> 0); an instant query uses end - start */
  stepNs: bigint;
}

export type LabelValue = { stringValue: string } | { intValue: string } | { doubleValue: number } | { boolValue: boolean } | Record<string, never>;
export interface SeriesLabel {
  key: string;
  value: LabelValue;
}
export interface RangeSeries {
  labels: SeriesLabel[];
  samples: { timestampMs: string; value: number }[];
  promLabels: string;
}
export interface QueryRangeResponse {
  series: RangeSeries[];
  metrics: { inspectedSpans: string; completedJobs: number; totalJobs: number };
  status: 'COMPLETE';
}

/** Most series an answer holds (a `by` over a high-cardinality field is cut here, and said so). */
export const MAX_SERIES = 1000;
/** Most steps in a range */
export const MAX_STEPS = 11_000;

/** What the metrics query runner needs from the store. */
export interface MetricsStoreAccess {
  query(sql: string, P: Params): Promise<unknown[][]>;
  context(P: Params, w: { startNs?: bigint; endNs?: bigint }, filters: import('../traceql/index.js').Expr[]): Promise<CompileContext>;
}

const DURATION_FIELDS = new Set(['duration', 'traceDuration']);

export async function runMetricsQuery(store: MetricsStoreAccess, q: Query, range: MetricsRange): Promise<QueryRangeResponse> {
  const m = q.metrics;
  if (!m) throw new TraceQLError('invalid', 'not a metrics query: end it with a metrics function such as | rate()', q.source.length);
  if (range.stepNs <= 0n) throw new RangeError('step must be > 0');
  const start = range.startNs - (range.startNs % range.stepNs);
  const steps = (range.endNs - start) / range.stepNs + 1n;
  if (steps > BigInt(MAX_STEPS)) throw new RangeError(`too many steps (${steps}, at most ${MAX_STEPS}): give a larger step`);
  const P = new Params();
  const filters = [...spansetFilters(q.spanset), ...(m.compare ? [m.compare.selection] : [])];
  const ctx = await store.context(P, { startNs: start, endNs: range.endNs }, filters);
  // the selected spans as `s` rows
  let from: string;
  // (a subquery: the filter's column names are unqualified, and resources has some of them)
  const win = windowSql(P, start, range.endNs);
  let prefix = '';
  if (q.filter) {
    from = `FROM (SELECT * FROM spans WHERE ${win} AND ${compileFilter(q.filter, ctx)}) s`;
  } else {
    const c = new SpansetCompiler(ctx).compile(q.spanset);
    prefix = c.with;
    from = `FROM (SELECT * FROM spans WHERE ${win} AND rowid IN (SELECT rid FROM ${c.rel})) s`;
  }
  const startP = P.add(start, BIGINT);
  const stepP = P.add(range.stepNs, BIGINT);
  const bucket = `((s.start_ns - ${startP}) // ${stepP})`;
  if (m.fn === 'compare') return compare(store, P, prefix, from, bucket, m, ctx, start, range.stepNs);

  const v = new FieldValues(ctx);
  const labelCols = m.by.map((f) => v.text(f));
  let extraLabel: { key: string; sql: string } | undefined;
  let value: string;
  const measured = (f: FieldRef | undefined): string => {
    if (!f) throw new TraceQLError('invalid', `${m.fn}() needs a field`, 0);
    const x = v.number(f);
    return f.type === 'intrinsic' && DURATION_FIELDS.has(f.name) ? `(${x} / 1e9)` : x;
  };
  const stepSeconds = Number(range.stepNs) / 1e9;
  switch (m.fn) {
    case 'rate':
      value = `count(*) / ${P.add(stepSeconds, DOUBLE)}`;
      break;
    case 'count_over_time':
      value = 'CAST(count(*) AS DOUBLE)';
      break;
    case 'sum_over_time':
    case 'min_over_time':
    case 'max_over_time':
    case 'avg_over_time':
      value = `CAST(${m.fn.slice(0, 3)}(${measured(m.field)}) AS DOUBLE)`;
      break;
    case 'histogram_over_time': {
      // power-of-two buckets: 2^ceil(log2(x)); durations are bucketed in ns, labelled in seconds
      const f = m.field as FieldRef;
      const isDur = f.type === 'intrinsic' && DURATION_FIELDS.has(f.name);
      const x = v.number(f);
      const b = `pow(2, ceil(log2(greatest(${x}, 1))))`;
      extraLabel = { key: '__bucket', sql: `(${isDur ? `${b} / 1e9` : b})::VARCHAR` };
      value = 'CAST(count(*) AS DOUBLE)';
      break;
    }
    case 'quantile_over_time': {
      const qs = (m.quantiles ?? []).map((x) => Number(x));
      value = `quantile_cont(${measured(m.field)}, [${qs.map((x) => P.add(x, DOUBLE)).join(', ')}])`;
      break;
    }
  }
  const labels = [...labelCols, ...(extraLabel ? [extraLabel.sql] : [])];
  const labelSelect = labels.map((l, i) => `${l} AS l${i}`).join(', ');
  const groupCols = labels.map((_, i) => `l${i}`);
  let sql = `${prefix} SELECT ${bucket} AS b${labelSelect ? `, ${labelSelect}` : ''}, ${value} AS v ${from} ${v.resourceJoin()}
    GROUP BY ALL`;
  if (m.fn !== 'quantile_over_time') {
    sql = `SELECT * FROM (${sql}) WHERE v IS NOT NULL`;
    if (m.top) {
      sql += ` QUALIFY row_number() OVER (PARTITION BY b ORDER BY v ${m.top.fn === 'topk' ? 'DESC' : 'ASC'}, ${groupCols.join(', ') || 'b'}) <= ${P.add(m.top.n, UINTEGER)}`;
    }
  }
  sql += ' ORDER BY ALL';
  const rows = await store.query(sql, P);

  const keys = [...m.by.map(fieldToString), ...(extraLabel ? [extraLabel.key] : [])];
  const series = new Map<string, RangeSeries>();
  const add = (labels: SeriesLabel[], b: bigint, val: number): void => {
    if (!Number.isFinite(val)) return;
    const id = JSON.stringify(labels);
    let s = series.get(id);
    if (!s) {
      if (series.size >= MAX_SERIES) return;
      s = { labels, samples: [], promLabels: promLabels(labels) };
      series.set(id, s);
    }
    s.samples.push({ timestampMs: String((start + b * range.stepNs) / 1_000_000n), value: val });
  };
  for (const r of rows) {
    const b = BigInt(r[0] as bigint | number);
    const base: SeriesLabel[] = keys.length === 0 ? [{ key: '__name__', value: { stringValue: m.fn } }] : keys.map((k, i) => ({ key: k, value: labelValue(r[1 + i]) }));
    const val = r[1 + labels.length];
    if (m.fn === 'quantile_over_time') {
      const list = (val as { items?: unknown[] } | null)?.items ?? (Array.isArray(val) ? val : []);
      (m.quantiles ?? []).forEach((p, i) => add([...base, { key: 'p', value: { doubleValue: p } }], b, Number(list[i])));
    } else {
      add(base, b, Number(val));
    }
  }
  return { series: [...series.values()], metrics: { inspectedSpans: '0', completedJobs: 1, totalJobs: 1 }, status: 'COMPLETE' };
}

/** Instant form: one value per series over the whole range. */
export function toInstant(r: QueryRangeResponse): { series: { labels: SeriesLabel[]; value: number; promLabels: string }[] } {
  return { series: r.series.map((s) => ({ labels: s.labels, value: s.samples.reduce((a, x) => a + x.value, 0), promLabels: s.promLabels })) };
}

function labelValue(cell: unknown): LabelValue {
  if (cell === null || cell === undefined) return {};
  // label cells are JSON text (FieldValues.text)
  const raw = typeof cell === 'string' ? cell : JSON.stringify(cell);
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return { stringValue: raw };
  }
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'number') return Number.isInteger(v) && !/[.eE]/.test(raw) ? { intValue: String(v) } : { doubleValue: v };
  if (v === null) return {};
  return { stringValue: raw };
}

function promLabels(labels: SeriesLabel[]): string {
  const text = (v: LabelValue): string => {
    if ('stringValue' in v) return JSON.stringify(v.stringValue);
    if ('intValue' in v) return v.intValue;
    if ('doubleValue' in v) return String(v.doubleValue);
    if ('boolValue' in v) return String(v.boolValue);
    return 'nil';
  };
  return `{${labels.map((l) => `${l.key}=${text(l.value)}`).join(', ')}}`;
}

/**
 * compare({selection}, topN): for each attribute, the topN values' span counts per step
 * in the selection and in the rest (the baseline), and each side's total.
 */
async function compare(
  store: MetricsStoreAccess,
  P: Params,
  prefix: string,
  from: string,
  bucket: string,
  m: MetricsOp,
  ctx: CompileContext,
  start: bigint,
  stepNs: bigint,
): Promise<QueryRangeResponse> {
  const c = m.compare as NonNullable<MetricsOp['compare']>;
  const sel = compileFilter(c.selection, ctx).replace(/\bspans\.(trace_id|span_id)\b/g, 's.$1');
  const selWin = c.startNs !== undefined || c.endNs !== undefined ? ` AND ${windowSql(P, c.startNs, c.endNs, 's.start_ns')}` : '';
  const hot = Object.entries(HOT_SPAN_ATTRS).map(([k, [col, t]]) =>
    `SELECT b, sel, 'span.${k}' AS k, ${t === 'string' ? `to_json(${col})::VARCHAR` : `${col}::VARCHAR`} AS v FROM base WHERE ${col} IS NOT NULL`);
  const hotRes = Object.entries(HOT_RESOURCE_ATTRS).map(([k, [col]]) => `SELECT b, sel, 'resource.${k}' AS k, to_json(${col})::VARCHAR AS v FROM base WHERE ${col} IS NOT NULL`);
  const kw = (col: string, words: readonly string[]): string => `to_json(CASE ${col} ${words.map((w, i) => `WHEN ${i} THEN '${w}'`).join(' ')} END)::VARCHAR`;
  const pointer = (key: string): string => `'/' || replace(replace(${key}, '~', '~0'), '/', '~1')`;
  const body = `${prefix ? `${prefix},` : 'WITH'} base AS MATERIALIZED (
      SELECT ${bucket} AS b, COALESCE((${sel})${selWin}, FALSE) AS sel, s.* ${from}),
    kv AS (
      SELECT b, sel, 'name' AS k, to_json(name)::VARCHAR AS v FROM base
      UNION ALL SELECT b, sel, 'status', ${kw('status', STATUS_BY_CODE)} FROM base
      UNION ALL SELECT b, sel, 'kind', ${kw('kind', KIND_BY_CODE)} FROM base
      UNION ALL ${[...hot, ...hotRes].join('\n      UNION ALL ')}
      UNION ALL SELECT b, sel, 'span.' || key, json_extract(attributes, ${pointer('key')})::VARCHAR FROM (SELECT b, sel, attributes, unnest(json_keys(attributes)) AS key FROM base WHERE attributes IS NOT NULL)
      UNION ALL SELECT b, sel, 'resource.' || key, json_extract(r.attributes, ${pointer('key')})::VARCHAR
        FROM (SELECT b, sel, res_id FROM base) x JOIN (SELECT id, attributes, unnest(json_keys(attributes)) AS key FROM resources) r ON r.id = x.res_id
        WHERE key NOT IN (${Object.keys(HOT_RESOURCE_ATTRS).map((k) => `'${k}'`).join(', ')})),
    counts AS (SELECT k, v, sel, b, count(*) AS n FROM kv GROUP BY ALL),
    top AS (SELECT k, v, sel FROM counts GROUP BY k, v, sel QUALIFY row_number() OVER (PARTITION BY k, sel ORDER BY sum(n) DESC, v) <= ${P.add(c.topN, UINTEGER)})
    SELECT c.k, c.v, c.sel, c.b, c.n, FALSE AS total FROM counts c SEMI JOIN top t ON t.k = c.k AND t.v = c.v AND t.sel = c.sel
    UNION ALL SELECT k, NULL, sel, b, sum(n), TRUE FROM counts GROUP BY k, sel, b
    ORDER BY ALL`;
  const rows = await store.query(body, P);
  const series = new Map<string, RangeSeries>();
  for (const [k, v, s, b, n, total] of rows) {
    const type = `${s === true ? 'selection' : 'baseline'}${total === true ? '_total' : ''}`;
    const labels: SeriesLabel[] = [{ key: '__meta_type', value: { stringValue: type } }, { key: String(k), value: total === true ? {} : labelValue(v) }];
    const id = JSON.stringify(labels);
    let ser = series.get(id);
    if (!ser) {
      if (series.size >= MAX_SERIES * 4) continue;
      ser = { labels, samples: [], promLabels: promLabels(labels) };
      series.set(id, ser);
    }
    ser.samples.push({ timestampMs: String((start + BigInt(b as bigint) * stepNs) / 1_000_000n), value: Number(n) });
  }
  return { series: [...series.values()], metrics: { inspectedSpans: '0', completedJobs: 1, totalJobs: 1 }, status: 'COMPLETE' };
}
