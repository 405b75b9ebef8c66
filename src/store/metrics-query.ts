// TraceQL metrics queries (`{ } | rate() by (resource.service.name)`) → one SQL
// aggregation over the spans the query selects, bucketed by step. The answer has the
// shape of Tempo's QueryRangeResponse / QueryInstantResponse (JSON of tempopb).
//
// Semantics (Tempo's docs): rate = spans per second in each step; *_over_time of a
// duration is in seconds; quantile_over_time gives one series per quantile with label
// `p`; histogram_over_time counts spans per power-of-two bucket (label `__bucket`, the
// bucket's upper bound in seconds); ungrouped series carry `__name__` = the function;
// topk/bottomk keep the n highest/lowest series at each step (as in PromQL); a threshold at
// the end (`... by (x) > 10`, after topk when both are there) keeps only the data points that
// meet it, and a series none of whose points do is left out, exemplars included.
// Differences from Tempo, on purpose: quantiles are exact (DuckDB's quantile_cont over
// the step's values) where Tempo interpolates within log2 buckets, so they differ by up
// to the bucket width; a step's timestamp is the start of its interval.
//
// Exemplars (range queries, `exemplars` per series): in each step of each series one span is
// picked in the same aggregation (arg_max), the slowest one (for min_over_time/max_over_time of
// a field: the one with the lowest/highest value, the span that made the sample), and of those
// a window keeps the `exemplars` most extreme per series. Each carries Tempo's labels `trace:id`
// and `span:id`, the span's start as timestampMs, and as value the sample's own value for
// rate/count_over_time (so the point sits on the line), else the span's measured value (its
// duration in seconds for the duration functions). Tempo picks its exemplars at random, a few per
// slice of the range; the slowest span is the one a person looking at a latency graph wants.

import { BIGINT, DOUBLE, UINTEGER } from '@duckdb/node-api';
import { TraceQLError, fieldToString, meetsThreshold, spansetFilters, type FieldRef, type MetricsOp, type Query } from '../traceql/index.js';
import { Params, compileFilter, windowSql, type CompileContext } from './compile.js';
import { FieldValues, SpansetCompiler } from './spanset.js';
import { HOT_RESOURCE_ATTRS, HOT_SPAN_ATTRS, KIND_BY_CODE, STATUS_BY_CODE, decodeSql } from './schema.js';

export interface MetricsRange {
  startNs: bigint;
  endNs: bigint;
  /** step in ns (> 0); an instant query uses end - start */
  stepNs: bigint;
  /** most exemplars per series (default 0: none; at most MAX_EXEMPLARS) */
  exemplars?: number;
}

export type LabelValue = { stringValue: string } | { intValue: string } | { doubleValue: number } | { boolValue: boolean } | Record<string, never>;
export interface SeriesLabel {
  key: string;
  value: LabelValue;
}
export interface Exemplar {
  /** `trace:id` and `span:id`, lowercase hex */
  labels: SeriesLabel[];
  value: number;
  timestampMs: string;
}
export interface RangeSeries {
  labels: SeriesLabel[];
  samples: { timestampMs: string; value: number }[];
  exemplars: Exemplar[];
  promLabels: string;
}
export interface QueryRangeResponse {
  series: RangeSeries[];
  metrics: { inspectedSpans: string; completedJobs: number; totalJobs: number };
  status: 'COMPLETE';
}

/** Most series an answer holds (a `by` over a high-cardinality field is cut here, and said so). */
export const MAX_SERIES = 1000;
/** compare(): each side (selection, baseline) is counted on a sample of about this many spans */
export const COMPARE_SAMPLE = 25_000;
const SAMPLE_SCALE = 1_000_000;
/** Most steps in a range */
export const MAX_STEPS = 11_000;
/** Most exemplars a series may ask for */
export const MAX_EXEMPLARS = 100;

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
  const maxExemplars = Math.min(Math.max(0, Math.floor(range.exemplars ?? 0)), MAX_EXEMPLARS);
  const pick = maxExemplars > 0 ? exemplarPick(m, measured) : undefined;
  let sql = `${prefix} SELECT ${bucket} AS b${labelSelect ? `, ${labelSelect}` : ''}, ${value} AS v${pick ? `, ${pick.agg} AS ex` : ''} ${from} ${v.resourceJoin()}
    GROUP BY ALL`;
  if (m.fn !== 'quantile_over_time') {
    sql = `SELECT * FROM (${sql}) WHERE v IS NOT NULL`;
    if (m.top) {
      sql += ` QUALIFY row_number() OVER (PARTITION BY b ORDER BY v ${m.top.fn === 'topk' ? 'DESC' : 'ASC'}, ${groupCols.join(', ') || 'b'}) <= ${P.add(m.top.n, UINTEGER)}`;
    }
  }
  if (pick) {
    // each step's pick, kept for the `maxExemplars` most extreme steps of its series
    const rank = `row_number() OVER (${groupCols.length ? `PARTITION BY ${groupCols.join(', ')} ` : ''}ORDER BY ex.k ${pick.order} NULLS LAST, b)`;
    const keep = `ex.k IS NOT NULL AND ${rank} <= ${P.add(maxExemplars, UINTEGER)}`;
    sql = `SELECT b${groupCols.map((c) => `, ${c}`).join('')}, v,
      CASE WHEN ${keep} THEN replace(CAST(ex.t AS VARCHAR), '-', '') END AS ex_trace,
      CASE WHEN ${keep} THEN lower(lpad(to_hex(ex.s), 16, '0')) END AS ex_span,
      ex.st AS ex_start, ex.x AS ex_value FROM (${sql})`;
  }
  sql += ' ORDER BY ALL';
  const rows = await store.query(sql, P);

  const keys = [...m.by.map(fieldToString), ...(extraLabel ? [extraLabel.key] : [])];
  const series = new Map<string, RangeSeries>();
  const add = (labels: SeriesLabel[], b: bigint, val: number, ex: unknown[]): void => {
    // a threshold drops the data points that fail it; a series left with none is not returned
    if (!Number.isFinite(val) || !meetsThreshold(m.threshold, val)) return;
    const id = JSON.stringify(labels);
    let s = series.get(id);
    if (!s) {
      if (series.size >= MAX_SERIES) return;
      s = { labels, samples: [], exemplars: [], promLabels: promLabels(labels) };
      series.set(id, s);
    }
    s.samples.push({ timestampMs: String((start + b * range.stepNs) / 1_000_000n), value: val });
    const [trace, span, startNs, measuredValue] = ex;
    if (typeof trace === 'string' && typeof span === 'string') {
      const value = pick?.value === 'sample' ? val : Number(measuredValue);
      s.exemplars.push({
        labels: [
          { key: 'trace:id', value: { stringValue: trace } },
          { key: 'span:id', value: { stringValue: span } },
        ],
        value: Number.isFinite(value) ? value : val,
        timestampMs: String(BigInt(startNs as bigint | number) / 1_000_000n),
      });
    }
  };
  for (const r of rows) {
    const b = BigInt(r[0] as bigint | number);
    const base: SeriesLabel[] = keys.length === 0 ? [{ key: '__name__', value: { stringValue: m.fn } }] : keys.map((k, i) => ({ key: k, value: labelValue(r[1 + i]) }));
    const val = r[1 + labels.length];
    const ex = pick ? r.slice(2 + labels.length, 6 + labels.length) : [];
    if (m.fn === 'quantile_over_time') {
      const list = (val as { items?: unknown[] } | null)?.items ?? (Array.isArray(val) ? val : []);
      (m.quantiles ?? []).forEach((p, i) => add([...base, { key: 'p', value: { doubleValue: p } }], b, Number(list[i]), ex));
    } else {
      add(base, b, Number(val), ex);
    }
  }
  return { series: [...series.values()], metrics: { inspectedSpans: '0', completedJobs: 1, totalJobs: 1 }, status: 'COMPLETE' };
}

/**
 * How a step's exemplar is picked (see the top of this file): `agg` aggregates the step's spans
 * into {t trace id, s span id, st start, x measured value, k ranking key} of one span; `order`
 * ranks a series' picks; `value` says what an exemplar's value is.
 */
function exemplarPick(m: MetricsOp, measured: (f: FieldRef | undefined) => string): { agg: string; order: 'ASC' | 'DESC'; value: 'sample' | 'measured' } {
  const x = m.field ? measured(m.field) : '(s.duration_ns / 1e9)';
  const byValue = m.fn === 'min_over_time' || m.fn === 'max_over_time';
  const key = byValue ? x : 's.duration_ns';
  const fn = m.fn === 'min_over_time' ? 'arg_min' : 'arg_max';
  return {
    agg: `${fn}({'t': s.trace_id, 's': s.span_id, 'st': s.start_ns, 'x': ${x}, 'k': ${key}}, ${key})`,
    order: m.fn === 'min_over_time' ? 'ASC' : 'DESC',
    value: m.fn === 'rate' || m.fn === 'count_over_time' ? 'sample' : 'measured',
  };
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
  const sel = compileFilter(c.selection, ctx).replace(/\bspans\.(\w+)/g, 's.$1');
  const selWin = c.startNs !== undefined || c.endNs !== undefined ? ` AND ${windowSql(P, c.startNs, c.endNs, 's.start_ns')}` : '';
  // Counts every (step, side, value) of every intrinsic, hot column and resource: one
  // typed aggregation per column over the kept rows, values turned into JSON text only
  // after grouping (no (key, value) row per span and attribute; DuckDB's GROUPING SETS
  // would do it in one operator but needs far more than 128MB for 23 sets); only the JSON
  // attributes are unnested, and resource attributes are expanded from per-resource counts. A side with more than
  // COMPARE_SAMPLE spans is counted on a deterministic sample of about that many (by
  // span id hash) and scaled by its exact span count per step: the value counts of a
  // large baseline are estimates, the step totals exact; this bounds time and memory
  // (the store's default DuckDB memory limit is 128MB).
  const hotSpan = Object.entries(HOT_SPAN_ATTRS);
  const cols = ['name', 'status', 'kind', ...hotSpan.map(([, [col]]) => col), 'res_id'];
  const rowsSql = `SELECT ${bucket} AS b, COALESCE((${sel})${selWin}, FALSE) AS sel, s.span_id AS sid, ${cols.map((x) => `s.${x}`).join(', ')}, s.attributes ${from}`;
  const sides = await store.query(`${prefix} SELECT sel, count(*) FROM (${rowsSql}) GROUP BY sel`, P);
  const keep = (side: boolean): string => {
    const n = Number(sides.find((r) => r[0] === side)?.[1] ?? 0);
    return P.add(n > COMPARE_SAMPLE ? Math.floor((SAMPLE_SCALE * COMPARE_SAMPLE) / n) : SAMPLE_SCALE, UINTEGER);
  };
  const kw = (col: string, words: readonly string[]): string => `to_json(CASE ${col} ${words.map((w, i) => `WHEN ${i} THEN '${w}'`).join(' ')} END)::VARCHAR`;
  const pointer = (key: string): string => `'/' || replace(replace(${key}, '~', '~0'), '/', '~1')`;
  const fromGroups = (k: string, value: (x: string) => string, col: string): string =>
    `SELECT ${k} AS k, ${value('x')} AS v, sel, b, n FROM (SELECT ${col} AS x, sel, b, count(*) AS n FROM kept WHERE ${col} IS NOT NULL GROUP BY ALL)`;
  const branches = [
    fromGroups(`'name'`, (x) => `to_json(${ctx.coded?.('name') ? decodeSql(x) : x})::VARCHAR`, 'name'),
    fromGroups(`'status'`, (x) => kw(x, STATUS_BY_CODE), 'status'),
    fromGroups(`'kind'`, (x) => kw(x, KIND_BY_CODE), 'kind'),
    // a coded column is grouped by code and decoded after; `counts` adds up a string's codes
    ...hotSpan.map(([k, [col, t]]) =>
      fromGroups(`'span.${k}'`, (x) => (t !== 'string' ? `${x}::VARCHAR` : `to_json(${ctx.coded?.(col) ? decodeSql(x) : x})::VARCHAR`), col),
    ),
    ...Object.entries(HOT_RESOURCE_ATTRS).map(([k, [col]]) =>
      `SELECT 'resource.${k}', to_json(r.${col})::VARCHAR, g.sel, g.b, g.n FROM per_res g JOIN resources r ON r.id = g.res_id WHERE r.${col} IS NOT NULL`),
    `SELECT 'resource.' || r.key, json_extract(r.attributes, ${pointer('r.key')})::VARCHAR, g.sel, g.b, g.n
       FROM per_res g JOIN (SELECT id, attributes, unnest(json_keys(attributes)) AS key FROM resources) r ON r.id = g.res_id
       WHERE r.key NOT IN (${Object.keys(HOT_RESOURCE_ATTRS).map((k) => `'${k}'`).join(', ')})`,
    `SELECT 'span.' || key, json_extract(attributes, ${pointer('key')})::VARCHAR, sel, b, 1
       FROM (SELECT b, sel, attributes, unnest(json_keys(attributes)) AS key FROM kept WHERE attributes IS NOT NULL)`,
  ];
  const body = `${prefix ? `${prefix},` : 'WITH'} base AS NOT MATERIALIZED (${rowsSql}),
    totals AS (SELECT sel, b, count(*) AS total FROM base GROUP BY ALL),
    kept AS MATERIALIZED (SELECT * FROM base WHERE hash(sid) % ${SAMPLE_SCALE} < CASE WHEN sel THEN ${keep(true)} ELSE ${keep(false)} END),
    sampled AS (SELECT sel, b, count(*) AS m FROM kept GROUP BY ALL),
    per_res AS MATERIALIZED (SELECT res_id, sel, b, count(*) AS n FROM kept GROUP BY ALL),
    kv AS (${branches.join('\n      UNION ALL ')}),
    counts AS (SELECT x.k, x.v, x.sel, x.b, x.n * t.total / m.m AS n
      FROM (SELECT k, v, sel, b, sum(n) AS n FROM kv WHERE v IS NOT NULL GROUP BY ALL) x
      JOIN totals t ON t.sel = x.sel AND t.b = x.b JOIN sampled m ON m.sel = x.sel AND m.b = x.b),
    top AS (SELECT k, v, sel FROM counts GROUP BY k, v, sel QUALIFY row_number() OVER (PARTITION BY k, sel ORDER BY sum(n) DESC, v) <= ${P.add(c.topN, UINTEGER)})
    SELECT c.k, c.v, c.sel, c.b, round(c.n), FALSE AS total FROM counts c SEMI JOIN top t ON t.k = c.k AND t.v = c.v AND t.sel = c.sel
    UNION ALL SELECT k, NULL, sel, b, round(sum(n)), TRUE FROM counts GROUP BY k, sel, b
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
      ser = { labels, samples: [], exemplars: [], promLabels: promLabels(labels) };
      series.set(id, ser);
    }
    ser.samples.push({ timestampMs: String((start + BigInt(b as bigint) * stepNs) / 1_000_000n), value: Number(n) });
  }
  return { series: [...series.values()], metrics: { inspectedSpans: '0', completedJobs: 1, totalJobs: 1 }, status: 'COMPLETE' };
}
