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
  LIST,
  UBIGINT,
  UINTEGER,
  UTINYINT,
  VARCHAR,
  listValue,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import { isEventOrLinkField, type AttributeField, type CompareExpr, type ComparisonOp, type Expr, type IntrinsicName, type Literal, type ValueCompareExpr, type ValueExpr } from '../traceql/index.js';
import { FieldValues } from './values.js';
import { HOT_RESOURCE_ATTRS, HOT_SPAN_ATTRS, KIND_CODE, SPAN_ENUMS, STATUS_CODE, codedCmp } from './schema.js';

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
  /**
   * false when no stored span has this attribute key (so span-side conditions on it are
   * decided without reading attributes); undefined = unknown, always check
   */
  spanKeyMayExist?: (key: string) => boolean;
  /**
   * resources matching each comparison's resource side (see resourcePredicate), looked
   * up beforehand: a constant id list keeps the main query free of joins, so DuckDB can
   * pick the top rows before reading wide columns
   */
  resourceIds?: Map<CompareExpr, number[]>;
  /**
   * the values of a hot string column that is an ENUM in this store (schema.ts SPAN_ENUMS),
   * null when the column is a VARCHAR (a store made before: every string value is in it);
   * undefined = unknown, always read the JSON too
   */
  enumValues?: (column: string) => ReadonlySet<string> | null | undefined;
  /** whether a string column holds codes of the `strings` table in this store (schema.ts SPAN_CODED); undefined = none does */
  coded?: (column: string) => boolean;
  /**
   * the codes of the strings that satisfy a comparison (codeListKey), looked up before the
   * query (Queries.lookupCodes); a comparison without one looks its codes up in the query
   */
  codeLists?: ReadonlyMap<string, readonly number[]>;
}

/** the key of CompileContext.codeLists: the codes of the strings s with `s op value` (the same for every coded column) */
export function codeListKey(op: ComparisonOp, value: string): string {
  return `${op}\0${value}`;
}

/** `col op value` on a column that holds codes when `coded`: by the codes looked up beforehand when there are, else by a lookup in the query */
function codedColumnCmp(ctx: CompileContext, coded: boolean, col: string, op: ComparisonOp, value: string, p: () => string): string {
  if (!coded) return cmp(col, op, p());
  const codes = ctx.codeLists?.get(codeListKey(op, value));
  if (codes === undefined) return codedCmp(true, col, (x) => cmp(x, op, p()));
  return inList(ctx.params, codes, col);
}

/**
 * `col` is one of `ids` (constants looked up before the query). One id is an equality, which
 * DuckDB checks against each row group's min and max and compares in the scan; list_contains
 * is a function call per row (1M spans, `service = code` 4.0 ms against 7.5 ms).
 */
function inList(P: Params, ids: readonly number[], col: string): string {
  if (ids.length === 0) return 'FALSE';
  if (ids.length === 1) return `(${col} = ${P.add(ids[0] as number, UINTEGER)})`;
  return `list_contains(${P.add(listValue([...ids]), LIST(UINTEGER))}, ${col})`;
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
      if (isEventOrLinkField(e.field)) return eventOrLink(e, ctx);
      if (e.field.type === 'intrinsic') return intrinsic(e.field.name, e.op, e.value, ctx);
      if (e.field.parent) return parentAttribute(e as CompareExpr & { field: AttributeField }, ctx);
      return attribute(e as CompareExpr & { field: AttributeField }, ctx);
    case 'valueCompare':
      return valueCompare(e, ctx);
  }
}

/**
 * `parent.x op v`: the span's parent (same trace, its id = this span's parent id, within
 * the window) satisfies `x op v`. The inner condition's unqualified columns resolve to
 * the parent row `p`; `spans.` is the outer span. A span without a stored parent has no
 * parent attributes: only `parent.x = nil` holds for it.
 */
function parentAttribute(c: CompareExpr & { field: AttributeField }, ctx: CompileContext): string {
  const { parent: _parent, ...field } = c.field;
  const absent = c.value.type === 'nil' && c.op === '=';
  const inner: CompareExpr = absent ? { ...c, field, op: '!=' } : { ...c, field };
  const win = windowSql(ctx.params, ctx.startNs, ctx.endNs, 'p.start_ns');
  const exists = `EXISTS (SELECT 1 FROM spans p WHERE ${win} AND p.trace_id = spans.trace_id AND p.span_id = spans.parent_span_id AND ${attribute(inner as CompareExpr & { field: AttributeField }, ctx)})`;
  return absent ? `(NOT ${exists})` : exists;
}

/** arithmetic and field-to-field comparisons (see ValueCompareExpr) */
function valueCompare(e: ValueCompareExpr, ctx: CompileContext): string {
  const v = new FieldValues(ctx, 'spans');
  if (e.left.type === 'field' && e.right.type === 'field' && (e.op === '=' || e.op === '!=')) {
    // JSON text carries the type: "500" and 500 differ, as in a comparison with a literal
    return `COALESCE(${cmp(v.text(e.left.field), e.op, v.text(e.right.field))}, FALSE)`;
  }
  const num = (x: ValueExpr): string => {
    switch (x.type) {
      case 'field':
        return v.number(x.field);
      case 'literal':
        return x.value.type === 'duration' ? ctx.params.add(x.value.nanos, DOUBLE) : ctx.params.add(x.value.type === 'number' ? x.value.value : NaN, DOUBLE);
      case 'arith': {
        const l = num(x.left);
        const r = num(x.right);
        if (x.op === '^') return `pow(${l}, ${r})`;
        if (x.op === '%') return `fmod(${l}, ${r})`;
        if (x.op === '/') return `((${l}) / NULLIF(${r}, 0))`;
        return `((${l}) ${x.op} (${r}))`;
      }
    }
  };
  return `COALESCE(${cmp(num(e.left), e.op, num(e.right))}, FALSE)`;
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
    case 'valueCompare':
      return [];
  }
}

// ---- comparisons ----------------------------------------------------------------------

/** `x op p` as SQL (TraceQL's operators) */
export function cmp(x: string, op: ComparisonOp, p: string): string {
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
      return codedColumnCmp(ctx, ctx.coded?.('name') === true, 'name', op, str(lit), () => P.add(str(lit), VARCHAR));
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
      const col = name === 'rootName' ? 'name' : 'service';
      const c = codedColumnCmp(ctx, ctx.coded?.(col) === true, `r.${col}`, op, str(lit), () => P.add(str(lit), VARCHAR));
      const win = windowSql(P, ctx.startNs, ctx.endNs, 'r.start_ns');
      const pwin = windowSql(P, ctx.startNs, ctx.endNs, 'p.start_ns');
      return `(trace_id IN (SELECT r.trace_id FROM spans r WHERE ${win} AND ${c} AND ${rootPredicate('r', pwin)}))`;
    }
    case 'traceId':
      return cmp('trace_id', op, `CAST(${P.add(str(lit), VARCHAR)} AS UUID)`);
    case 'spanId':
      return cmp('span_id', op, P.add(BigInt(`0x${str(lit)}`), UBIGINT));
    case 'eventName':
    case 'eventTimeSinceStart':
    case 'linkTraceId':
    case 'linkSpanId':
      // compileFilter sends these to eventOrLink()
      return 'FALSE';
    case 'childCount': {
      // children stored in the window; a span's children start at or after it, so only
      // the window's end bounds them
      const win = windowSql(P, ctx.startNs, ctx.endNs, 'c.start_ns');
      return durationCmp(`(SELECT count(*) FROM spans c WHERE ${win} AND c.trace_id = spans.trace_id AND c.parent_span_id = spans.span_id)`, op, lit.type === 'number' ? lit.value : NaN, P);
    }
    case 'parentSpanId':
      if (lit.type === 'nil') return op === '=' ? '(parent_span_id IS NULL)' : '(parent_span_id IS NOT NULL)';
      return cmp('parent_span_id', op, P.add(BigInt(`0x${str(lit)}`), UBIGINT));
  }
}

/**
 * A condition on the span's events or links (extras.ts): the span has at least one event
 * (link) for which it holds; `x = nil` holds when none has the attribute (so also for a
 * span without any). An EXISTS over the small table, matched on the span's ids and start
 * (the rows repeat it) and bounded by the search window, which DuckDB runs as a semi-join.
 */
function eventOrLink(c: CompareExpr, ctx: CompileContext): string {
  const P = ctx.params;
  const f = c.field;
  const isEvent = f.type === 'attribute' ? f.scope === 'event' : f.name === 'eventName' || f.name === 'eventTimeSinceStart';
  const a = isEvent ? 'ev' : 'lk';
  const table = isEvent ? 'span_events' : 'span_links';
  const exists = (cond: string): string => {
    const win = windowSql(P, ctx.startNs, ctx.endNs, `${a}.start_ns`);
    return `EXISTS (SELECT 1 FROM ${table} ${a} WHERE ${win} AND ${a}.trace_id = spans.trace_id AND ${a}.span_id = spans.span_id AND ${a}.start_ns = spans.start_ns AND ${cond})`;
  };
  const lit = c.value;
  if (f.type === 'intrinsic') {
    switch (f.name) {
      case 'eventName':
        return exists(cmp(`${a}.name`, c.op, P.add(str(lit), VARCHAR)));
      case 'eventTimeSinceStart': {
        const d = durationCmp(`(${a}.time_ns - ${a}.start_ns)`, c.op, nanos(lit), P);
        return d === 'FALSE' ? d : exists(d);
      }
      case 'linkTraceId':
        return exists(cmp(`${a}.link_trace_id`, c.op, `CAST(${P.add(str(lit), VARCHAR)} AS UUID)`));
      case 'linkSpanId':
        return exists(cmp(`${a}.link_span_id`, c.op, P.add(BigInt(`0x${str(lit) || '0'}`), UBIGINT)));
      default:
        return 'FALSE';
    }
  }
  const ptr = (): string => P.add(jsonPointer(f.name), VARCHAR);
  if (lit.type === 'nil') {
    const has = exists(`json_extract(${a}.attributes, ${ptr()}) IS NOT NULL`);
    return c.op === '=' ? `(NOT ${has})` : has;
  }
  const t = attrLiteral(lit);
  if (!t) return 'FALSE';
  const exact = cmp(typedJson(`${a}.attributes`, ptr(), t.t), c.op, P.add(t.value, t.type));
  const needle = lit.type === 'string' ? jsonNeedle(c.op, lit.value) : undefined;
  return exists(needle ? `contains(${a}.attributes, ${P.add(needle, VARCHAR)}) AND ${exact}` : exact);
}

/**
 * A root span: no parent, or a parent that is not stored (the caller was not traced,
 * e.g. an uninstrumented client that sent a traceparent) within the window `pwin` (a
 * condition on `p`: trace-level values are computed from the window's spans).
 */
export function rootPredicate(alias: string, pwin = 'TRUE'): string {
  return `(${alias}.parent_span_id IS NULL OR NOT EXISTS (SELECT 1 FROM spans p WHERE ${pwin} AND p.trace_id = ${alias}.trace_id AND p.span_id = ${alias}.parent_span_id))`;
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

/** The typed view of a literal compared with an attribute; undefined for status/kind keywords (never equal). */
function attrLiteral(lit: Literal): { t: 'string' | 'number' | 'boolean'; value: DuckDBValue; type: DuckDBType } | undefined {
  switch (lit.type) {
    case 'string':
      return { t: 'string', value: lit.value, type: VARCHAR };
    case 'number':
      return { t: 'number', value: lit.value, type: DOUBLE };
    case 'duration':
      return { t: 'number', value: lit.nanos, type: DOUBLE };
    case 'boolean':
      return { t: 'boolean', value: lit.value, type: BOOLEAN };
    default:
      return undefined;
  }
}

/**
 * The predicate on `r.attributes` (table `resources r`) for the resource side of an
 * attribute comparison: for `= nil` / `!= nil` it selects resources *without* the key.
 * Undefined when the resource side needs no lookup (a typed hot column, or a keyword).
 */
export function resourcePredicate(c: CompareExpr, P: Params): string | undefined {
  if (c.field.type !== 'attribute' || (c.field.scope !== 'resource' && c.field.scope !== 'any')) return undefined;
  const key = c.field.name;
  if (c.value.type === 'nil') return `(json_extract(r.attributes, ${P.add(jsonPointer(key), VARCHAR)}) IS NULL)`;
  const a = attrLiteral(c.value);
  if (!a) return undefined;
  const hot = HOT_RESOURCE_ATTRS[key];
  if (hot && hot[1] === a.t) return undefined;
  const ptr = P.add(jsonPointer(key), VARCHAR);
  return cmp(typedJson('r.attributes', ptr, a.t), c.op, P.add(a.value, a.type));
}

/** The comparisons whose resource side resourcePredicate() describes, in order. */
export function resourceComparisons(e: Expr): CompareExpr[] {
  switch (e.type) {
    case 'const':
      return [];
    case 'and':
    case 'or':
      return [...resourceComparisons(e.left), ...resourceComparisons(e.right)];
    case 'not':
      return resourceComparisons(e.expr);
    case 'compare':
      return resourcePredicate(e, new Params()) === undefined ? [] : [e];
    case 'valueCompare':
      return [];
  }
}

function attribute(c: CompareExpr & { field: AttributeField }, ctx: CompileContext): string {
  const P = ctx.params;
  const { scope, name: key } = c.field;
  const { op, value: lit } = c;
  // added on first use only: DuckDB refuses parameters the statement does not reference
  let ptrParam: string | undefined;
  const ptr = (): string => (ptrParam ??= P.add(jsonPointer(key), VARCHAR));
  const spanMayHave = ctx.spanKeyMayExist ? ctx.spanKeyMayExist(key) : true;
  /** spans whose resource satisfies resourcePredicate(c): from the ids looked up beforehand, or a subquery */
  const resourceMatch = (): string => {
    const ids = ctx.resourceIds?.get(c);
    if (ids) return inList(P, ids, 'res_id');
    return `(res_id IN (SELECT r.id FROM resources r WHERE ${resourcePredicate(c, P) ?? 'FALSE'}))`;
  };
  if (lit.type === 'nil') {
    // a hot attribute is in its column or (with another type) in the JSON, never in both
    const hotCol = HOT_SPAN_ATTRS[key]?.[0];
    const jsonAbsent = (): string => (spanMayHave ? `(json_extract(attributes, ${ptr()}) IS NULL)` : 'TRUE');
    const spanAbsent = (): string => (hotCol ? `(${hotCol} IS NULL AND ${jsonAbsent()})` : jsonAbsent());
    const absent = scope === 'span' ? spanAbsent() : scope === 'resource' ? resourceMatch() : `(${spanAbsent()} AND ${resourceMatch()})`;
    return op === '=' ? absent : `(NOT ${absent})`;
  }
  const a = attrLiteral(lit);
  if (!a) return 'FALSE'; // status/kind keywords never equal an attribute value
  // the value parameter too is added only if some branch below uses it
  let vParam: string | undefined;
  const v = (): string => (vParam ??= P.add(a.value, a.type));
  const inJson = (): string => {
    if (!spanMayHave) return 'FALSE';
    const exact = cmp(typedJson('attributes', ptr(), a.t), op, v());
    // a substring the JSON text must contain is much cheaper to test than parsing it
    const needle = lit.type === 'string' ? jsonNeedle(op, lit.value) : undefined;
    return needle ? `(contains(attributes, ${P.add(needle, VARCHAR)}) AND ${exact})` : exact;
  };
  const onSpan = (): string => {
    const hot = HOT_SPAN_ATTRS[key];
    if (!hot || hot[1] !== a.t) return inJson();
    // a coded column holds every string of the attribute, as codes
    if (ctx.coded?.(hot[0])) return codedColumnCmp(ctx, true, hot[0], op, String(a.value), v);
    if (SPAN_ENUMS[hot[0]] === undefined) return cmp(hot[0], op, v());
    // an ENUM column holds only the values of its set (the table's own, which an older store
    // may have fewer of), the others are in the JSON (writer.ts); a VARCHAR column holds them all
    const set = ctx.enumValues ? ctx.enumValues(hot[0]) : undefined;
    if (set === null || (set !== undefined && op === '=' && lit.type === 'string' && set.has(lit.value))) return cmp(hot[0], op, v());
    const inJ = inJson();
    // as text: an ENUM orders by its list, TraceQL's < and > by the string
    const inCol = cmp(`${hot[0]}::VARCHAR`, op, v());
    return inJ === 'FALSE' ? inCol : `(${inCol} OR ${inJ})`;
  };
  const onResource = (): string => {
    const hot = HOT_RESOURCE_ATTRS[key];
    if (hot && hot[1] === a.t) return codedColumnCmp(ctx, ctx.coded?.(hot[0]) === true, hot[0], op, String(a.value), v);
    return resourceMatch();
  };
  if (scope === 'span') return onSpan();
  if (scope === 'resource') return onResource();
  const span = onSpan();
  return span === 'FALSE' ? onResource() : `(${span} OR ${onResource()})`;
}

/**
 * Text that the attributes JSON (written by JSON.stringify) must contain when a string
 * attribute satisfies `op value`: the encoded value for `=`, `"` + the regex's literal
 * prefix for `=~`. Undefined when there is no useful necessary substring.
 */
export function jsonNeedle(op: ComparisonOp, value: string): string | undefined {
  if (op === '=') return JSON.stringify(value);
  if (op === '=~') {
    const prefix = regexLiteralPrefix(value);
    return prefix.length >= 3 ? `"${prefix}` : undefined;
  }
  return undefined;
}

/**
 * The literal text every match of a fully anchored RE2 regex starts with, conservatively:
 * plain characters (ones JSON.stringify leaves as they are) and escaped punctuation, up to
 * the first operator; a trailing character made optional by `*`, `?` or `{` is dropped;
 * any `|` in the pattern means no prefix.
 */
export function regexLiteralPrefix(re: string): string {
  if (re.includes('|')) return '';
  let out = '';
  for (let i = 0; i < re.length; i++) {
    const c = re[i] as string;
    if (/[A-Za-z0-9 _\-/:,;=@#%&'<>!~`]/.test(c)) {
      out += c;
      continue;
    }
    const next = re[i + 1];
    if (c === '\\' && next !== undefined && /[.\-+*?()[\]{}^$/]/.test(next)) {
      const after = re[i + 2];
      if (after === '*' || after === '?' || after === '{') break;
      out += next;
      i++;
      continue;
    }
    if (c === '*' || c === '?' || c === '{') out = out.slice(0, -1);
    break;
  }
  return out;
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
