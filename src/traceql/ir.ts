// The typed IR a TraceQL query is parsed into. It says *what* to match, not how:
// the store compiles it to SQL (src/store/compile.ts). Everything here is plain data
// (JSON-serialisable apart from nothing) so it can be logged, cached or compared.

import type { SpanKind, SpanStatus } from '../model/index.js';

/**
 * Intrinsic fields (TraceQL `name`/`span:name`, `duration`/`span:duration`, ...).
 * - `traceDuration`, `rootName`, `rootServiceName` are trace-level: every span of a
 *   trace sees the same value.
 * - `traceId`, `spanId`, `parentSpanId` are lowercase hex strings.
 */
export type IntrinsicName =
  | 'name'
  | 'status'
  | 'statusMessage'
  | 'kind'
  | 'duration'
  | 'traceDuration'
  | 'rootName'
  | 'rootServiceName'
  | 'traceId'
  | 'spanId'
  | 'parentSpanId'
  /** number of direct children stored for the span */
  | 'childCount'
  /**
   * Of the span's events and links (`event:name`, `event:timeSinceStart`, `link:traceID`,
   * `link:spanID`): a comparison holds when it holds for at least one of them.
   */
  | 'eventName'
  | 'eventTimeSinceStart'
  | 'linkTraceId'
  | 'linkSpanId';

/**
 * `span.x` → 'span', `resource.x` → 'resource', `.x` → 'any' (span or resource),
 * `event.x` / `link.x` → an attribute of one of the span's events / links (a comparison
 * holds when it holds for at least one of them; `= nil` when none has the attribute).
 */
export type AttributeScope = 'span' | 'resource' | 'any' | 'event' | 'link';

export interface IntrinsicField {
  type: 'intrinsic';
  name: IntrinsicName;
}

export interface AttributeField {
  type: 'attribute';
  scope: AttributeScope;
  /** the attribute key with quoting removed, e.g. `http.route`, `a b` */
  name: string;
  /**
   * `parent.span.x` / `parent.resource.x` / `parent.x`: the attribute of the span's parent
   * (a span whose parent is not stored has none). Only in span conditions.
   */
  parent?: true;
}

export type FieldRef = IntrinsicField | AttributeField;

export type Literal =
  | { type: 'string'; value: string }
  | { type: 'number'; value: number }
  | { type: 'boolean'; value: boolean }
  /** a Go duration literal, in nanoseconds (may be negative or fractional) */
  | { type: 'duration'; nanos: number }
  | { type: 'status'; value: SpanStatus }
  | { type: 'kind'; value: SpanKind }
  /** `nil`: `= nil` means absent, `!= nil` means present (attributes only) */
  | { type: 'nil' };

export type ComparisonOp = '=' | '!=' | '>' | '>=' | '<' | '<=' | '=~' | '!~';

export interface CompareExpr {
  type: 'compare';
  field: FieldRef;
  op: ComparisonOp;
  value: Literal;
  /** offset of the comparison in the query text */
  pos: number;
}

export type ArithOp = '+' | '-' | '*' | '/' | '%' | '^';

/** A value inside `{ }`: a field, a literal, or arithmetic over them (numbers; durations in ns). */
export type ValueExpr =
  | { type: 'field'; field: FieldRef }
  | { type: 'literal'; value: Literal }
  | { type: 'arith'; op: ArithOp; left: ValueExpr; right: ValueExpr };

/**
 * A comparison that is not `field op literal`: arithmetic (`span.a + span.b > 10`,
 * `duration * 2 > 1s`) or two fields (`span.a = span.b`). With arithmetic or an order
 * operator both sides are numbers (a non-numeric or missing value makes it false); `=`
 * and `!=` between two fields compare value and type.
 */
export interface ValueCompareExpr {
  type: 'valueCompare';
  left: ValueExpr;
  op: ComparisonOp;
  right: ValueExpr;
  pos: number;
}

export type Expr =
  /** `{}` / `{ true }` → true; `{ false }` → false */
  | { type: 'const'; value: boolean }
  | CompareExpr
  | ValueCompareExpr
  | { type: 'and'; left: Expr; right: Expr }
  | { type: 'or'; left: Expr; right: Expr }
  | { type: 'not'; expr: Expr };

/** Structural operators between spansets (see compile.ts for their meaning). */
export type StructuralOp =
  | '>' | '>>' | '<' | '<<' | '~'
  | '&>' | '&>>' | '&<' | '&<<' | '&~'
  | '!>' | '!>>' | '!<' | '!<<' | '!~';

/** Aggregates over a spanset in a pipeline: `count()`, `avg(duration)`... */
export type AggregateFn = 'count' | 'avg' | 'min' | 'max' | 'sum';

export type ScalarExpr =
  | { type: 'aggregate'; fn: AggregateFn; field?: FieldRef; pos: number }
  /** a number; durations are in nanoseconds */
  | { type: 'number'; value: number; duration: boolean }
  | { type: 'arith'; op: '+' | '-' | '*' | '/' | '%' | '^'; left: ScalarExpr; right: ScalarExpr };

export type PipelineStage =
  /** `| { cond }`: keeps the spans of each spanset that satisfy cond */
  | { type: 'filter'; expr: Expr }
  /** `| count() > 2`: keeps the spansets for which the comparison holds */
  | { type: 'scalarFilter'; left: ScalarExpr; op: ComparisonOp; right: ScalarExpr }
  /** `| by(f, ...)`: splits each spanset by the fields' values */
  | { type: 'by'; fields: FieldRef[] }
  /** `| select(f, ...)`: fields to return with the spans (the set is unchanged) */
  | { type: 'select'; fields: FieldRef[] }
  /** `| coalesce()`: merges the spansets of a trace back into one */
  | { type: 'coalesce' };

/** What a query selects, trace by trace. */
export type SpansetExpr =
  | { type: 'filter'; expr: Expr }
  /** spanset `&&` (both sides match in the trace: the spans of both) and `||` (either) */
  | { type: 'setop'; op: 'and' | 'or'; left: SpansetExpr; right: SpansetExpr }
  | { type: 'structural'; op: StructuralOp; left: SpansetExpr; right: SpansetExpr; pos: number }
  | { type: 'pipeline'; input: SpansetExpr; stage: PipelineStage };

export type MetricsFn =
  | 'rate'
  | 'count_over_time'
  | 'sum_over_time'
  | 'min_over_time'
  | 'max_over_time'
  | 'avg_over_time'
  | 'quantile_over_time'
  | 'histogram_over_time'
  | 'compare';

export interface MetricsOp {
  fn: MetricsFn;
  /** the measured field (`duration`, `span.x`) of *_over_time, quantile and histogram */
  field?: FieldRef;
  /** quantile_over_time's quantiles, each in [0, 1] */
  quantiles?: number[];
  by: FieldRef[];
  /** compare(): the selection, how many values per attribute, optional time range (ns) */
  compare?: { selection: Expr; topN: number; startNs?: bigint; endNs?: bigint };
  /** `| topk(n)` / `| bottomk(n)` after the metrics function */
  top?: { fn: 'topk' | 'bottomk'; n: number };
  /** a comparison at the very end (`{ } | rate() by (x) > 10`): only data points that meet it are kept */
  threshold?: { op: ThresholdOp; value: number };
}

export type ThresholdOp = '>' | '>=' | '<' | '<=' | '=' | '!=';

/**
 * A parsed query. `spanset` is what it selects; `filter` is set when that is a plain
 * span filter (one or more `{ }` joined by `||` or `|`), the common, fast case;
 * `metrics` is set for metrics queries (`{ } | rate() by (...)`).
 */
export interface Query {
  source: string;
  spanset: SpansetExpr;
  filter?: Expr;
  metrics?: MetricsOp;
  /** fields named in select(...) and by(...), for presenting results */
  selected?: FieldRef[];
}
