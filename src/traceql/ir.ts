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
  | 'parentSpanId';

/** `span.x` → 'span', `resource.x` → 'resource', `.x` → 'any' (span or resource). */
export type AttributeScope = 'span' | 'resource' | 'any';

export interface IntrinsicField {
  type: 'intrinsic';
  name: IntrinsicName;
}

export interface AttributeField {
  type: 'attribute';
  scope: AttributeScope;
  /** the attribute key with quoting removed, e.g. `http.route`, `a b` */
  name: string;
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

export type Expr =
  /** `{}` / `{ true }` → true; `{ false }` → false */
  | { type: 'const'; value: boolean }
  | CompareExpr
  | { type: 'and'; left: Expr; right: Expr }
  | { type: 'or'; left: Expr; right: Expr }
  | { type: 'not'; expr: Expr };

/**
 * A parsed query: the spans it selects are those for which `filter` holds.
 * (Spanset `||` between selectors is folded into `filter`, which is equivalent.)
 */
export interface Query {
  source: string;
  filter: Expr;
}
