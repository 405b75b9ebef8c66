// TraceQL IR → a SQL predicate over the `spans` table. Every value taken from the
// query (strings, numbers, regexes, attribute names) goes in as a bound parameter;
// the SQL text itself only ever contains fixed fragments and `$n` placeholders.
//
// Semantics (Tempo's): a comparison holds only when the field exists with the
// literal's type, so `!=` does not match spans lacking the attribute and comparing
// mismatched types is false. Unscoped `.x` matches the span or the resource attribute.

import {
  BIGINT,
  BOOLEAN,
  DOUBLE,
  UBIGINT,
  UTINYINT,
  VARCHAR,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import type { AttributeScope, ComparisonOp, Expr, IntrinsicName, Literal } from '../traceql/index.js';
import { HOT_RESOURCE_ATTRS, HOT_SPAN_ATTRS, KIND_CODE, STATUS_CODE } from './schema.js';

const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

/** Positional parameters ($1, $2, ...) collected while compiling. */
export class Params {
  readonly values: DuckDBValue[] = [];
  readonly types: DuckDBType[] = [];

  add(value: DuckDBValue, type: DuckDBType): string {
    this.values.push(value);
    this.types.push(type);
    return `$${this.values.length}`;
  }
}

export interface CompileContext {
  params: Params;
  /** the search window, applied to trace-level subqueries too */
  startNs?: bigint;
  endNs?: bigint;
}

/** `col >= $a AND col <= $b` for the window (TRUE when unbounded). */
export function windowSql(params: Params, startNs: bigint | undefined, endNs: bigint | undefined, col = 'start_ns'): string {
  const parts: string[] = [];
  if (startNs !== undefined) parts.push(`${col} >= ${params.add(clampI64(startNs), BIGINT)}`);
  if (endNs !== undefined) parts.push(`${col} <= ${params.add(clampI64(endNs), BIGINT)}`);
  return parts.length ? parts.join(' AND ') : 'TRUE';
}

/** SQL boolean expression over unqualified `spans` columns. Never NULL at the top level of a WHERE (NULL = no match). */
export function compileFilter(e: Expr, ctx: CompileContext): string {
  switch (e.type) {
    case 'const':
      return e.value ? 'TRUE' : 'FALSE';
    case 'and':
      return `(${compileFilter(e.left, ctx)} AND ${compileFilter(e.right, ctx)})`;
    case 'or':
      return `(${compileFilter(e.left, ctx)} OR ${compileFilter(e.right, ctx)})`;
    case 'not':
      // a comparison on a missing field is NULL (= false); its negation must be true
      return `(NOT COALESCE(${compileFilter(e.expr, ctx)}, FALSE))`;
    case 'compare':
      return e.field.type === 'intrinsic'
        ? intrinsic(e.field.name, e.op, e.value, ctx)
        : attribute(e.field.scope, e.field.name, e.op, e.value, ctx);
  }
}

/** The regex literals of a query, for validation before running it. */
export function regexLiterals(e: Expr): { pattern: string; pos: number }[] {
  switch (e.type) {
    case 'const':
      return [];
    case 'and':
    case 'or':
      return [...regexLiterals(e.left), ...regexLiterals(e.right)];
    case 'not':
      return regexLiterals(e.expr);
    case 'compare':
      return (e.op === '=~' || e.op === '!~') && e.value.type === 'string' ? [{ pattern: e.value.value, pos: e.pos }] : [];
  }
}

// ---- comparisons ----------------------------------------------------------------------

function cmp(x: string, op: ComparisonOp, p: string): string {
  switch (op) {
    case '=':
      return `(${x} = ${p})`;
    case '!=':
      return `(${x} <> ${p})`;
    case '>':
    case '>=':
    case '<':
    case '<=':
      return `(${x} ${op} ${p})`;
    case '=~':
      return `regexp_full_match(${x}, ${p})`;
    case '!~':
      return `(NOT regexp_full_match(${x}, ${p}))`;
  }
}

function intrinsic(name: IntrinsicName, op: ComparisonOp, lit: Literal, ctx: CompileContext): string {
  const P = ctx.params;
  switch (name) {
    case 'name':
      return cmp('name', op, P.add(str(lit), VARCHAR));
    case 'statusMessage':
      return cmp(`COALESCE(status_message, '')`, op, P.add(str(lit), VARCHAR));
    case 'status':
      if (lit.type !== 'status') return 'FALSE';
      return cmp('status', op, P.add(STATUS_CODE[lit.value], UTINYINT));
    case 'kind':
      if (lit.type !== 'kind') return 'FALSE';
      return cmp('kind', op, P.add(KIND_CODE[lit.value], UTINYINT));
    case 'duration':
      return durationCmp('duration_ns', op, nanos(lit), P);
    case 'traceDuration': {
      const having = durationCmp('max(s2.start_ns + s2.duration_ns) - min(s2.start_ns)', op, nanos(lit), P);
      const win = windowSql(P, ctx.startNs, ctx.endNs, 's2.start_ns');
      return `(trace_id IN (SELECT s2.trace_id FROM spans s2 WHERE ${win} GROUP BY s2.trace_id HAVING ${having}))`;
    }
    case 'rootName':
    case 'rootServiceName': {
      const col = name === 'rootName' ? 'r.name' : 'r.service';
      const c = cmp(col, op, P.add(str(lit), VARCHAR));
      const win = windowSql(P, ctx.startNs, ctx.endNs, 'r.start_ns');
      return `(trace_id IN (SELECT r.trace_id FROM spans r WHERE ${win} AND ${c} AND ${rootPredicate('r')}))`;
    }
    case 'traceId':
      return cmp('trace_id', op, `CAST(${P.add(str(lit), VARCHAR)} AS UUID)`);
    case 'spanId':
      return cmp('span_id', op, P.add(BigInt(`0x${str(lit)}`), UBIGINT));
    case 'parentSpanId':
      if (lit.type === 'nil') return op === '=' ? '(parent_span_id IS NULL)' : '(parent_span_id IS NOT NULL)';
      return cmp('parent_span_id', op, P.add(BigInt(`0x${str(lit)}`), UBIGINT));
  }
}

/**
 * A root span: no parent, or a parent that is not stored (the caller was not traced,
 * e.g. an uninstrumented client that sent a traceparent).
 */
export function rootPredicate(alias: string): string {
  return `(${alias}.parent_span_id IS NULL OR NOT EXISTS (SELECT 1 FROM spans p WHERE p.trace_id = ${alias}.trace_id AND p.span_id = ${alias}.parent_span_id))`;
}

/** Integer comparison against a possibly fractional bound, keeping the column un-cast. */
function durationCmp(x: string, op: ComparisonOp, d: number, P: Params): string {
  if (!Number.isFinite(d)) return 'FALSE';
  const isInt = Number.isInteger(d);
  switch (op) {
    case '=':
      return isInt ? cmp(x, op, P.add(clampI64(BigInt(d)), BIGINT)) : 'FALSE';
    case '!=':
      return isInt ? cmp(x, op, P.add(clampI64(BigInt(d)), BIGINT)) : `(${x} IS NOT NULL)`;
    case '>':
    case '<=':
      return cmp(x, op, P.add(clampI64(BigInt(Math.floor(d))), BIGINT));
    case '<':
    case '>=':
      return cmp(x, op, P.add(clampI64(BigInt(Math.ceil(d))), BIGINT));
    case '=~':
    case '!~':
      return 'FALSE';
  }
}

function attribute(scope: AttributeScope, key: string, op: ComparisonOp, lit: Literal, ctx: CompileContext): string {
  const P = ctx.params;
  // added on first use only: DuckDB refuses parameters the statement does not reference
  let ptrParam: string | undefined;
  const ptr = (): string => (ptrParam ??= P.add(jsonPointer(key), VARCHAR));
  if (lit.type === 'nil') {
    const spanAbsent = (): string => `(json_extract(attributes, ${ptr()}) IS NULL)`;
    const resAbsent = (): string => `(res_id IN (SELECT r.id FROM resources r WHERE json_extract(r.attributes, ${ptr()}) IS NULL))`;
    const absent = scope === 'span' ? spanAbsent() : scope === 'resource' ? resAbsent() : `(${spanAbsent()} AND ${resAbsent()})`;
    return op === '=' ? absent : `(NOT ${absent})`;
  }
  let t: 'string' | 'number' | 'boolean';
  let v: string;
  switch (lit.type) {
    case 'string':
      t = 'string';
      v = P.add(lit.value, VARCHAR);
      break;
    case 'number':
      t = 'number';
      v = P.add(lit.value, DOUBLE);
      break;
    case 'duration':
      t = 'number';
      v = P.add(lit.nanos, DOUBLE);
      break;
    case 'boolean':
      t = 'boolean';
      v = P.add(lit.value, BOOLEAN);
      break;
    default:
      return 'FALSE'; // status/kind keywords never equal an attribute value
  }
  const onSpan = (): string => {
    const hot = HOT_SPAN_ATTRS[key];
    if (hot && hot[1] === t) return cmp(hot[0], op, v);
    return cmp(typedJson('attributes', ptr(), t), op, v);
  };
  const onResource = (): string => {
    const hot = HOT_RESOURCE_ATTRS[key];
    if (hot && hot[1] === t) return cmp(hot[0], op, v);
    return `(res_id IN (SELECT r.id FROM resources r WHERE ${cmp(typedJson('r.attributes', ptr(), t), op, v)}))`;
  };
  if (scope === 'span') return onSpan();
  if (scope === 'resource') return onResource();
  return `(${onSpan()} OR ${onResource()})`;
}

/** The attribute's value as SQL of type `t`, or NULL when absent or of another JSON type. */
function typedJson(col: string, ptr: string, t: 'string' | 'number' | 'boolean'): string {
  switch (t) {
    case 'string':
      return `(CASE WHEN json_type(${col}, ${ptr}) = 'VARCHAR' THEN json_extract_string(${col}, ${ptr}) END)`;
    case 'number':
      // JSON text of a number casts; of a string ("…"), a boolean or an object it does not
      return `TRY_CAST(json_extract(${col}, ${ptr})::VARCHAR AS DOUBLE)`;
    case 'boolean':
      return `(CASE json_extract(${col}, ${ptr})::VARCHAR WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE END)`;
  }
}

/** RFC 6901 JSON pointer to a top-level key (any characters, `~` and `/` escaped). */
export function jsonPointer(key: string): string {
  return `/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
}

function str(lit: Literal): string {
  return lit.type === 'string' ? lit.value : '';
}

function nanos(lit: Literal): number {
  if (lit.type === 'duration') return lit.nanos;
  if (lit.type === 'number') return lit.value;
  return NaN;
}

function clampI64(v: bigint): bigint {
  return v > INT64_MAX ? INT64_MAX : v < INT64_MIN ? INT64_MIN : v;
}
