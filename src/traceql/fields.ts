// Small helpers over the IR, for callers that present results (the Tempo search API
// returns the fields a query refers to as span attributes).

import type { Expr, FieldRef, IntrinsicName, Query, SpansetExpr, ValueExpr } from './ir.js';

const INTRINSIC_TEXT: Readonly<Record<IntrinsicName, string>> = {
  name: 'name',
  status: 'status',
  statusMessage: 'statusMessage',
  kind: 'kind',
  duration: 'duration',
  traceDuration: 'traceDuration',
  rootName: 'rootName',
  rootServiceName: 'rootServiceName',
  traceId: 'trace:id',
  spanId: 'span:id',
  parentSpanId: 'span:parentID',
  childCount: 'span:childCount',
  eventName: 'event:name',
  eventTimeSinceStart: 'event:timeSinceStart',
  linkTraceId: 'link:traceID',
  linkSpanId: 'link:spanID',
};

/** fields of a span's events or links: several values per span, so usable only in comparisons with a value */
export function isEventOrLinkField(f: FieldRef): boolean {
  if (f.type === 'attribute') return f.scope === 'event' || f.scope === 'link';
  return f.name === 'eventName' || f.name === 'eventTimeSinceStart' || f.name === 'linkTraceId' || f.name === 'linkSpanId';
}

/** TraceQL spelling of a field: `name`, `span.http.route`, `resource.service.name`, `.x`, `span."a b"`. */
export function fieldToString(f: FieldRef): string {
  if (f.type === 'intrinsic') return INTRINSIC_TEXT[f.name];
  const name = /^[A-Za-z0-9_.:/-]+$/.test(f.name) && !f.name.startsWith('.') && !f.name.endsWith('.')
    ? f.name
    : `"${f.name.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  const scoped = f.scope === 'any' ? `.${name}` : `${f.scope}.${name}`;
  return f.parent ? `parent${scoped.startsWith('.') ? scoped : `.${scoped}`}` : scoped;
}

/** The distinct fields a query's conditions refer to, in order of first appearance. */
export function referencedFields(q: Query): FieldRef[] {
  const seen = new Set<string>();
  const out: FieldRef[] = [];
  const add = (f: FieldRef): void => {
    const key = fieldToString(f);
    if (!seen.has(key)) {
      seen.add(key);
      out.push(f);
    }
  };
  const walk = (e: Expr): void => {
    switch (e.type) {
      case 'const':
        return;
      case 'compare':
        add(e.field);
        return;
      case 'valueCompare':
        for (const f of [...valueFields(e.left), ...valueFields(e.right)]) add(f);
        return;
      case 'and':
      case 'or':
        walk(e.left);
        walk(e.right);
        return;
      case 'not':
        walk(e.expr);
        return;
    }
  };
  for (const e of spansetFilters(q.spanset)) walk(e);
  return out;
}

/** The fields a value expression reads. */
export function valueFields(v: ValueExpr): FieldRef[] {
  switch (v.type) {
    case 'field':
      return [v.field];
    case 'literal':
      return [];
    case 'arith':
      return [...valueFields(v.left), ...valueFields(v.right)];
  }
}

/** Every span condition of a spanset expression, in order (filters and `| { }` stages). */
export function spansetFilters(s: SpansetExpr): Expr[] {
  switch (s.type) {
    case 'filter':
      return [s.expr];
    case 'setop':
    case 'structural':
      return [...spansetFilters(s.left), ...spansetFilters(s.right)];
    case 'pipeline':
      return [...spansetFilters(s.input), ...(s.stage.type === 'filter' ? [s.stage.expr] : [])];
  }
}

/** `query` with `extra` required of every span it selects (e.g. Tempo's legacy minDuration). */
export function withCondition(q: Query, extra: Expr): Query {
  const spanset: SpansetExpr = q.spanset.type === 'filter'
    ? { type: 'filter', expr: { type: 'and', left: q.spanset.expr, right: extra } }
    : { type: 'pipeline', input: q.spanset, stage: { type: 'filter', expr: extra } };
  const out: Query = { ...q, spanset };
  if (q.filter) out.filter = { type: 'and', left: q.filter, right: extra };
  else delete out.filter;
  return out;
}
