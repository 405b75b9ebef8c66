// Field values of stored spans for Tempo's API answers: the attributes a search result shows
// for each matched span (the fields the query refers to, as Tempo does), and tag values narrowed
// by a TraceQL filter (`/api/v2/search/tag/<tag>/values?q=`).
import type { AttrValue, Span } from '../model/index.js';
import type { SpanStore, TagValue, TimeWindow } from '../store/index.js';
import { parseTagName, parseTraceQL, referencedFields, TraceQLError, type FieldRef, type Query } from '../traceql/index.js';
import { anyValue, type OtlpKeyValue } from '../export/otlp-json.js';

/** one field of a span: attributes by scope (unscoped: span, then resource), per-span intrinsics */
export function fieldValue(s: Span, f: FieldRef): AttrValue | undefined {
  if (f.type === 'attribute') {
    if (f.scope === 'resource') return s.resource[f.name];
    // several per span (and not read by a search): not one span's value
    if (f.scope === 'event' || f.scope === 'link') return undefined;
    const v = s.attr(f.name);
    return v !== undefined || f.scope === 'span' ? v : s.resource[f.name];
  }
  switch (f.name) {
    case 'name':
      return s.name;
    case 'status':
      return s.status;
    case 'kind':
      return s.kind;
    case 'statusMessage':
      return s.statusMessage;
    default:
      // duration is the span's durationNanos; trace-level intrinsics are not one span's
      return undefined;
  }
}

/** the attributes Tempo's search shows on a matched span: the fields the query's conditions name */
export function matchedAttributes(s: Span, q: Query): OtlpKeyValue[] {
  const out: OtlpKeyValue[] = [];
  for (const f of referencedFields(q)) {
    if (f.type === 'intrinsic' && f.name === 'name') continue; // the span's name is shown already
    const v = fieldValue(s, f);
    if (v !== undefined) out.push({ key: f.type === 'attribute' ? f.name : f.name, value: anyValue(v) });
  }
  return out;
}

/** a tag name of the tag-values API (`resource.service.name`, `.x`, `span.y`, `name`, `status`, `span:name`…) as a field */
export function tagField(tag: string): FieldRef | undefined {
  const t = tag.trim();
  const p = parseTagName(t);
  if (!p) return undefined;
  // an unscoped `x:y` is an intrinsic of another scope (trace:…), not an attribute
  if (p.kind === 'attribute') return p.scope === 'any' && !t.startsWith('.') && t.includes(':') ? undefined : { type: 'attribute', scope: p.scope, name: p.name };
  if (p.name === 'name' || p.name === 'status' || p.name === 'kind' || p.name === 'statusMessage') return { type: 'intrinsic', name: p.name };
  // another intrinsic: `trace:…` is not per span; a bare name (rootName, duration) is read as an attribute of either scope
  return t.includes(':') ? undefined : { type: 'attribute', scope: 'any', name: t };
}

function typed(v: AttrValue, f: FieldRef): TagValue {
  if (f.type === 'intrinsic' && (f.name === 'status' || f.name === 'kind')) return { type: 'keyword', value: String(v) };
  if (typeof v === 'string') return { type: 'string', value: v };
  if (typeof v === 'boolean') return { type: 'bool', value: String(v) };
  return { type: Number.isInteger(v) ? 'int' : 'float', value: String(v) };
}

/** how many of the newest matching spans a filtered tag-values answer reads */
export const FILTER_SAMPLE_SPANS = 10_000;

export interface FilteredValues {
  values: TagValue[];
  /** why `q` narrowed nothing (it did not parse, or named nothing to narrow by); undefined: it did */
  ignored?: string;
}

/**
 * Tag values, narrowed to spans that match `q` when it parses (Tempo: a `q` that does not parse,
 * as an editor's half-typed query, gives the unfiltered list rather than an error). The values
 * come from the newest FILTER_SAMPLE_SPANS matching spans; the TraceQL the store compiles
 * selects them, so q may use whatever src/traceql parses.
 */
export async function tagValuesFor(store: SpanStore, tag: string, q: string | null, w: TimeWindow & { limit: number }): Promise<FilteredValues> {
  const field = tagField(tag);
  const all = async (why: string): Promise<FilteredValues> => ({ values: await store.tagValues(tag, w), ignored: why });
  if (q === null || q.trim() === '' || /^\{\s*\}$/.test(q.trim())) return { values: await store.tagValues(tag, w) };
  if (!field) return all(`the tag ${tag} is not a span field`);
  if (field.type === 'attribute' && (field.scope === 'event' || field.scope === 'link')) return all(`values of ${field.scope} attributes are not narrowed by q`);
  let query: Query;
  try {
    query = parseTraceQL(q);
  } catch (err) {
    if (err instanceof TraceQLError) return all(`q does not parse: ${err.message}`);
    throw err;
  }
  if (field.type === 'intrinsic' && (field.name === 'status' || field.name === 'kind')) return { values: await store.tagValues(tag, w) };
  const spans = await store.search({ query, startNs: w.startNs, endNs: w.endNs, limit: FILTER_SAMPLE_SPANS, order: 'start_desc' });
  const seen = new Map<string, TagValue>();
  for (const s of spans) {
    const v = fieldValue(s, field);
    if (v === undefined) continue;
    const tv = typed(v, field);
    seen.set(`${tv.type}\u0000${tv.value}`, tv);
  }
  const values = [...seen.values()].sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0)).slice(0, w.limit);
  return { values };
}
