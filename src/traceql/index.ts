// TraceQL: text → typed IR. The store (src/store) compiles the IR to SQL.

export { meetsThreshold, parseTraceQL, MAX_QUERY_LENGTH } from './parse.js';
export { TraceQLError } from './errors.js';
export type { TraceQLErrorKind } from './errors.js';
export { parseGoDuration } from './duration.js';
export { INTRINSIC_TAGS, parseTagName } from './tags.js';
export type { ParsedTag } from './tags.js';
export { fieldToString, isEventOrLinkField, referencedFields, spansetFilters, valueFields, withCondition } from './fields.js';
export type {
  ArithOp,
  AttributeField,
  ValueCompareExpr,
  ValueExpr,
  AttributeScope,
  CompareExpr,
  ComparisonOp,
  Expr,
  FieldRef,
  IntrinsicField,
  IntrinsicName,
  Literal,
  MetricsFn,
  MetricsOp,
  ThresholdOp,
  PipelineStage,
  Query,
  ScalarExpr,
  SpansetExpr,
  StructuralOp,
  AggregateFn,
} from './ir.js';
