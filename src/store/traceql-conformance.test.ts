// TraceQL conformance: a corpus of queries run through the SQL compilation (DuckStore)
// and through a small reference evaluator written here from Tempo's TraceQL
// documentation (test code only: it walks spans one by one, which the product never does).
// The oracle should have been Grafana Tempo itself; Tempo is AGPL-licensed and the
// project's package policy forbids fetching it (go-partial.tsv: "not-to-use"), so neither
// a live run nor recorded answers from it exist here. See docs/traceql.md.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parser } from '@grafana/lezer-traceql';
import { Span, type Attributes, type SpanEvent, type SpanInit, type SpanKind, type SpanLink, type SpanStatus } from '../model/index.js';
import { TraceQLError, isEventOrLinkField, parseTraceQL, type CompareExpr, type Expr, type FieldRef, type Literal, type PipelineStage, type ScalarExpr, type SpansetExpr, type ValueExpr } from '../traceql/index.js';
import { DuckStore } from './index.js';

const BASE = 1_700_000_000_000_000_000n;
const MS = 1_000_000n;

// ---- a deterministic data set: 40 traces, trees up to depth 4 ------------------------------
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
const SERVICES = ['frontend', 'cart', 'auth', 'db'];
const NAMES = ['GET /', 'GET /cart', 'POST /login', 'SELECT', 'INSERT', 'call auth'];
const KINDS: SpanKind[] = ['server', 'client', 'internal', 'producer', 'consumer'];
const STATUSES: SpanStatus[] = ['unset', 'ok', 'error'];

function dataset(): Span[] {
  const r = rng(42);
  // events and links from a generator of their own, so the spans stay what they were
  const r2 = rng(7);
  // and the methods from a third: standard ones (ENUM codes in the store) and others (stored in the JSON)
  const r3 = rng(11);
  // and the per-connection attributes from a fourth (codes of the `strings` table in the store, schema.ts SPAN_CODED)
  const r4 = rng(23);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const spans: Span[] = [];
  let sid = 1;
  for (let t = 1; t <= 40; t++) {
    const traceId = t.toString(16).padStart(32, '0');
    const t0 = BASE + BigInt(t) * 1000n * MS;
    const make = (parent: string, depth: number, start: bigint): void => {
      const spanId = (sid++).toString(16).padStart(16, '0');
      const attributes: Attributes = { 'http.response.status_code': pick([200, 200, 404, 500]) };
      if (r() < 0.4) attributes['db.system'] = pick(['postgres', 'redis']);
      if (r() < 0.3) attributes.retries = Math.floor(r() * 4);
      if (r() < 0.2) attributes.cached = r() < 0.5;
      const m = r3();
      if (m < 0.8) attributes['http.request.method'] = METHODS[Math.floor((m / 0.8) * METHODS.length)] as string;
      const c = r4();
      if (c < 0.7) attributes['client.address'] = CLIENTS[Math.floor((c / 0.7) * CLIENTS.length)] as string | number;
      if (r4() < 0.6) attributes['server.address'] = CLIENTS[Math.floor(r4() * 3)] as string;
      if (r4() < 0.5) attributes['user_agent.original'] = AGENTS[Math.floor(r4() * AGENTS.length)] as string;
      const status = pick(STATUSES);
      spans.push(Span.from({
        traceId,
        spanId,
        parentSpanId: parent,
        name: pick(NAMES),
        kind: depth === 0 ? 'server' : pick(KINDS),
        startTimeUnixNano: start,
        durationNano: Math.floor(r() * 900 + 1) * 1_000_000,
        status,
        statusMessage: status === 'error' ? pick(['timeout', 'refused']) : '',
        resource: { 'service.name': depth === 0 ? pick(['frontend', 'cart']) : pick(SERVICES), 'deployment.environment': pick(['prod', 'dev']) },
        attributes,
        ...extras(r2, status, start, t),
      }));
      if (depth >= 3) return;
      const kids = Math.floor(r() * (depth === 0 ? 4 : 3));
      // children start up to ~1 s after the root, so traces overlap in time and a time slice cuts through some
      for (let k = 0; k < kids; k++) make(spanId, depth + 1, start + BigInt(k + 1) * 130n * MS);
    };
    make('', 0, t0);
  }
  return spans;
}

/** events and links for a span: an exception on most error spans, log events, links to other traces */
function extras(r: () => number, status: SpanStatus, start: bigint, t: number): Pick<SpanInit, 'events' | 'links'> {
  const out: Pick<SpanInit, 'events' | 'links'> = {};
  const events: SpanEvent[] = [];
  if (status === 'error' && r() < 0.8) {
    events.push({
      timeUnixNano: start + BigInt(Math.floor(r() * 50)) * MS,
      name: 'exception',
      attributes: { 'exception.type': r() < 0.5 ? 'TimeoutError' : 'IOError', 'exception.escaped': r() < 0.5 },
    });
  }
  const logs = r() < 0.3 ? 1 + Math.floor(r() * 3) : 0;
  for (let i = 0; i < logs; i++) {
    events.push({ timeUnixNano: start + BigInt(i * 20 + 1) * MS, name: 'log', attributes: r() < 0.7 ? { level: r() < 0.5 ? 'info' : 'warn', seq: i } : {} });
  }
  if (events.length) out.events = events;
  if (r() < 0.15) {
    const other = ((t * 7) % 40) + 1;
    const links: SpanLink[] = [{ traceId: other.toString(16).padStart(32, '0'), spanId: (other * 3).toString(16).padStart(16, '0'), attributes: r() < 0.5 ? { relation: 'follows' } : {} }];
    if (r() < 0.3) links.push({ traceId: 'ab'.repeat(16), spanId: 'cd'.repeat(8), attributes: { relation: 'batch', n: 2 } });
    out.links = links;
  }
  return out;
}

// ---- the reference evaluator ----------------------------------------------------------------
interface Ctx {
  byId: Map<string, Span>;
  children: Map<string, Span[]>;
  trace: Span[];
}
type Val = string | number | boolean | undefined;

function fieldValue(s: Span, f: FieldRef, c: Ctx): Val {
  if (f.type === 'attribute' && f.parent) {
    const p = s.parentSpanId ? c.byId.get(s.parentSpanId) : undefined;
    return p ? fieldValue(p, { ...f, parent: undefined }, c) : undefined;
  }
  if (f.type === 'attribute') {
    const span = s.attr(f.name);
    const res = s.resource[f.name];
    if (f.scope === 'span') return span;
    if (f.scope === 'resource') return res;
    return span ?? res;
  }
  const root = c.trace.find((x) => !x.parentSpanId || !c.byId.has(x.parentSpanId));
  switch (f.name) {
    case 'name':
      return s.name;
    case 'status':
      return s.status;
    case 'statusMessage':
      return s.statusMessage ?? '';
    case 'kind':
      return s.kind;
    case 'duration':
      return s.durationNano;
    case 'traceDuration': {
      const st = c.trace.map((x) => x.startTimeUnixNano);
      const en = c.trace.map((x) => x.startTimeUnixNano + BigInt(x.durationNano));
      return Number(en.reduce((a, b) => (b > a ? b : a)) - st.reduce((a, b) => (b < a ? b : a)));
    }
    case 'rootName':
      return root?.name;
    case 'rootServiceName':
      return root?.resource['service.name'];
    case 'traceId':
      return s.traceId;
    case 'spanId':
      return s.spanId;
    case 'parentSpanId':
      return s.parentSpanId || undefined;
    case 'childCount':
      return (c.children.get(s.spanId) ?? []).length;
    default:
      // event and link fields: several values per span (see compareAny)
      return undefined;
  }
}

/** the values an event or link field takes on a span: one per event (link) that has it */
function manyValues(s: Span, f: FieldRef): Val[] {
  if (f.type === 'attribute') {
    const list = f.scope === 'event' ? s.events ?? [] : s.links ?? [];
    return list.map((x) => x.attributes[f.name]).filter((v) => v !== undefined);
  }
  switch (f.name) {
    case 'eventName':
      return (s.events ?? []).map((e) => e.name);
    case 'eventTimeSinceStart':
      return (s.events ?? []).map((e) => Number(e.timeUnixNano - s.startTimeUnixNano));
    case 'linkTraceId':
      return (s.links ?? []).map((l) => l.traceId);
    case 'linkSpanId':
      return (s.links ?? []).map((l) => l.spanId);
    default:
      return [];
  }
}

function litValue(l: Literal): Val | null {
  switch (l.type) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'status':
    case 'kind':
      return l.value;
    case 'duration':
      return l.nanos;
    case 'nil':
      return null;
  }
}

function evalExpr(e: Expr, s: Span, c: Ctx): boolean {
  switch (e.type) {
    case 'const':
      return e.value;
    case 'and':
      return evalExpr(e.left, s, c) && evalExpr(e.right, s, c);
    case 'or':
      return evalExpr(e.left, s, c) || evalExpr(e.right, s, c);
    case 'not':
      return !evalExpr(e.expr, s, c);
    case 'valueCompare': {
      if (e.left.type === 'field' && e.right.type === 'field' && (e.op === '=' || e.op === '!=')) {
        const l = fieldValue(s, e.left.field, c);
        const r = fieldValue(s, e.right.field, c);
        if (l === undefined || r === undefined) return false;
        return e.op === '=' ? l === r : l !== r;
      }
      const l = numValue(e.left, s, c);
      const r = numValue(e.right, s, c);
      if (l === undefined || r === undefined || Number.isNaN(l) || Number.isNaN(r)) return false;
      return { '=': l === r, '!=': l !== r, '>': l > r, '>=': l >= r, '<': l < r, '<=': l <= r, '=~': false, '!~': false }[e.op];
    }
    case 'compare': {
      const l = litValue(e.value);
      if (isEventOrLinkField(e.field)) {
        // holds when it holds for one of the span's events (links); `= nil`: none has it
        const vs = manyValues(s, e.field);
        if (l === null) return e.op === '=' ? vs.length === 0 : vs.length > 0;
        return vs.some((v) => compareOne(v, e.op, l));
      }
      const v = fieldValue(s, e.field, c);
      if (l === null) return e.op === '=' ? v === undefined : v !== undefined;
      return compareOne(v, e.op, l);
    }
  }
}

function compareOne(v: Val, op: CompareExpr['op'], l: Val): boolean {
  if (v === undefined || typeof v !== typeof l) return false;
  switch (op) {
    case '=':
      return v === l;
    case '!=':
      return v !== l;
    case '>':
      return (v as number) > (l as number);
    case '>=':
      return (v as number) >= (l as number);
    case '<':
      return (v as number) < (l as number);
    case '<=':
      return (v as number) <= (l as number);
    case '=~':
      return new RegExp(`^(?:${String(l)})$`).test(String(v));
    case '!~':
      return !new RegExp(`^(?:${String(l)})$`).test(String(v));
  }
}

/** l op r as TraceQL computes it; undefined for a division by zero */
function arithmetic(op: '+' | '-' | '*' | '/' | '%' | '^', l: number, r: number): number | undefined {
  switch (op) {
    case '+': return l + r;
    case '-': return l - r;
    case '*': return l * r;
    case '/': return r === 0 ? undefined : l / r;
    case '%': return l % r;
    case '^': return l ** r;
  }
}

/** a value expression as a number; undefined when a field is missing or not a number */
function numValue(v: ValueExpr, s: Span, c: Ctx): number | undefined {
  switch (v.type) {
    case 'literal':
      return v.value.type === 'duration' ? v.value.nanos : v.value.type === 'number' ? v.value.value : undefined;
    case 'field': {
      const x = fieldValue(s, v.field, c);
      return typeof x === 'number' ? x : undefined;
    }
    case 'arith': {
      const l = numValue(v.left, s, c);
      const r = numValue(v.right, s, c);
      if (l === undefined || r === undefined) return undefined;
      return arithmetic(v.op, l, r);
    }
  }
}

type Row = { s: Span; g: string };
const key = (r: Row): string => `${r.s.spanId}|${r.g}`;
function uniq(rows: Row[]): Row[] {
  const m = new Map<string, Row>();
  for (const r of rows) m.set(key(r), r);
  return [...m.values()];
}

function isAncestor(a: Span, b: Span, c: Ctx): boolean {
  let p = b.parentSpanId ? c.byId.get(b.parentSpanId) : undefined;
  for (let i = 0; p && i < 100; i++) {
    if (p.spanId === a.spanId) return true;
    p = p.parentSpanId ? c.byId.get(p.parentSpanId) : undefined;
  }
  return false;
}

const REL: Record<string, (a: Span, b: Span, c: Ctx) => boolean> = {
  '>': (a, b) => b.parentSpanId === a.spanId,
  '<': (a, b) => a.parentSpanId === b.spanId,
  '>>': (a, b, c) => isAncestor(a, b, c),
  '<<': (a, b, c) => isAncestor(b, a, c),
  '~': (a, b) => a.spanId !== b.spanId && a.parentSpanId !== '' && a.parentSpanId === b.parentSpanId,
};
const INVERSE: Record<string, string> = { '>': '<', '<': '>', '>>': '<<', '<<': '>>', '~': '~' };

function evalSpanset(e: SpansetExpr, c: Ctx): Row[] {
  switch (e.type) {
    case 'filter':
      return c.trace.filter((s) => evalExpr(e.expr, s, c)).map((s) => ({ s, g: '' }));
    case 'setop': {
      const a = evalSpanset(e.left, c);
      const b = evalSpanset(e.right, c);
      if (e.op === 'and' && (a.length === 0 || b.length === 0)) return [];
      return uniq([...a, ...b]);
    }
    case 'structural': {
      const a = evalSpanset(e.left, c);
      const b = evalSpanset(e.right, c);
      const op = e.op;
      if (op.startsWith('&')) {
        const base = op.slice(1);
        const rel = REL[base] as (x: Span, y: Span, c: Ctx) => boolean;
        const inv = REL[INVERSE[base] as string] as (x: Span, y: Span, c: Ctx) => boolean;
        return uniq([...b.filter((y) => a.some((x) => rel(x.s, y.s, c))), ...a.filter((x) => b.some((y) => inv(y.s, x.s, c)))]);
      }
      if (op.startsWith('!')) {
        const rel = REL[op.slice(1)] as (x: Span, y: Span, c: Ctx) => boolean;
        return b.filter((y) => !a.some((x) => rel(x.s, y.s, c)));
      }
      const rel = REL[op] as (x: Span, y: Span, c: Ctx) => boolean;
      return b.filter((y) => a.some((x) => rel(x.s, y.s, c)));
    }
    case 'pipeline':
      return evalStage(evalSpanset(e.input, c), e.stage, c);
  }
}

function evalStage(rows: Row[], st: PipelineStage, c: Ctx): Row[] {
  switch (st.type) {
    case 'select':
      return rows;
    case 'coalesce':
      return uniq(rows.map((r) => ({ s: r.s, g: '' })));
    case 'filter':
      return rows.filter((r) => evalExpr(st.expr, r.s, c));
    case 'by':
      return uniq(rows.map((r) => ({ s: r.s, g: st.fields.map((f) => JSON.stringify(fieldValue(r.s, f, c)) ?? 'null').join('\u001f') })));
    case 'scalarFilter': {
      const groups = new Map<string, Row[]>();
      for (const r of rows) groups.set(r.g, [...(groups.get(r.g) ?? []), r]);
      const out: Row[] = [];
      for (const g of groups.values()) {
        const l = scalar(st.left, g, c);
        const r = scalar(st.right, g, c);
        if (l === undefined || r === undefined || Number.isNaN(l) || Number.isNaN(r)) continue;
        const ok = { '=': l === r, '!=': l !== r, '>': l > r, '>=': l >= r, '<': l < r, '<=': l <= r, '=~': false, '!~': false }[st.op];
        if (ok) out.push(...g);
      }
      return out;
    }
  }
}

function scalar(e: ScalarExpr, rows: Row[], c: Ctx): number | undefined {
  switch (e.type) {
    case 'number':
      return e.value;
    case 'arith': {
      const l = scalar(e.left, rows, c);
      const r = scalar(e.right, rows, c);
      if (l === undefined || r === undefined) return undefined;
      return arithmetic(e.op, l, r);
    }
    case 'aggregate': {
      if (e.fn === 'count') return rows.length;
      const xs = rows.map((r) => fieldValue(r.s, e.field as FieldRef, c)).filter((v): v is number => typeof v === 'number');
      if (xs.length === 0) return undefined;
      switch (e.fn) {
        case 'sum': return xs.reduce((a, b) => a + b, 0);
        case 'avg': return xs.reduce((a, b) => a + b, 0) / xs.length;
        case 'min': return Math.min(...xs);
        case 'max': return Math.max(...xs);
      }
    }
  }
}

/** per trace: the selected span ids */
function reference(spans: Span[], query: string): Map<string, Set<string>> {
  const q = parseTraceQL(query);
  const traces = new Map<string, Span[]>();
  for (const s of spans) traces.set(s.traceId, [...(traces.get(s.traceId) ?? []), s]);
  const out = new Map<string, Set<string>>();
  for (const [id, trace] of traces) {
    const byId = new Map(trace.map((s) => [s.spanId, s]));
    const children = new Map<string, Span[]>();
    for (const s of trace) if (s.parentSpanId) children.set(s.parentSpanId, [...(children.get(s.parentSpanId) ?? []), s]);
    const rows = evalSpanset(q.spanset, { byId, children, trace });
    if (rows.length) out.set(id, new Set(rows.map((r) => r.s.spanId)));
  }
  return out;
}

function quantile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = (s.length - 1) * p;
  const lo = Math.floor(h);
  return (s[lo] as number) + ((s[Math.min(lo + 1, s.length - 1)] as number) - (s[lo] as number)) * (h - lo);
}

// ---- the corpus ------------------------------------------------------------------------------
/** request methods of the dataset: DuckStore keeps the first four as ENUM codes, the others in the JSON (schema.ts SPAN_ENUMS) */
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PROPFIND', 'get', 'PURGE'];
/** client (and server) addresses: strings are codes in the store, a number stays in the JSON */
const CLIENTS: readonly (string | number)[] = ['10.0.0.1', '10.0.0.2', 'db.local', '', 7];
const AGENTS = ['curl/8.5.0', 'Go-http-client/1.1', 'say "hi"\\ é'];

export const SEARCH_CORPUS: readonly string[] = [
  '{ span.http.request.method = "GET" }',
  '{ .http.request.method = "PROPFIND" }',
  '{ span.http.request.method != "GET" }',
  '{ span.http.request.method != "PURGE" }',
  '{ span.http.request.method =~ "P.*" }',
  '{ span.http.request.method !~ "P.*" }',
  '{ span.http.request.method > "Pa" }',
  '{ span.http.request.method <= "PUT" }',
  '{ span.http.request.method = nil }',
  '{ span.http.request.method != nil && status = error }',
  '{ span.http.request.method = "get" || span.http.request.method = "DELETE" }',
  '{ span.client.address = "10.0.0.1" }',
  '{ .client.address = "db.local" && kind = server }',
  '{ span.client.address != "10.0.0.1" }',
  '{ span.client.address = "" }',
  '{ span.client.address = 7 }',
  '{ span.client.address =~ `10\\..*` }',
  '{ span.client.address !~ "10.*" }',
  '{ span.client.address > "10.0.0.1" }',
  '{ span.client.address = nil }',
  '{ span.client.address != nil }',
  '{ span.client.address = span.server.address }',
  '{ span.client.address != span.server.address }',
  '{ span.user_agent.original = "say \\"hi\\"\\\\ é" }',
  '{ span.user_agent.original =~ ".*client.*" || span.server.address = "10.0.0.2" }',
  '{ span.server.address = "db.local" } >> { span.client.address = "10.0.0.2" }',
  '{ }',
  '{ true }',
  '{ false }',
  '{ name = "GET /" }',
  '{ span:name = "SELECT" }',
  '{ name != "SELECT" }',
  '{ name =~ "GET.*" }',
  '{ name =~ "GET" }',
  '{ name !~ ".*T.*" }',
  '{ status = error }',
  '{ span:status != ok }',
  '{ statusMessage = "timeout" }',
  '{ span:statusMessage =~ "re.*" }',
  '{ kind = client }',
  '{ span:kind = server && status = error }',
  '{ duration > 500ms }',
  '{ span:duration <= 100ms }',
  '{ duration >= 200ms && duration < 300ms }',
  '{ traceDuration > 900ms }',
  '{ trace:duration < 500ms }',
  '{ rootName = "GET /" }',
  '{ trace:rootName != "GET /" }',
  '{ rootServiceName = "cart" }',
  '{ trace:rootService = "frontend" && kind = client }',
  '{ span:parentID = nil }',
  '{ span:parentID != nil }',
  '{ span:childCount > 1 }',
  '{ span:childCount = 0 }',
  '{ span.http.response.status_code = 500 }',
  '{ span.http.response.status_code >= 400 }',
  '{ .http.response.status_code != 200 }',
  '{ span.db.system = "postgres" }',
  '{ span.db.system = nil }',
  '{ span.db.system != nil }',
  '{ .db.system =~ "p.*" }',
  '{ span.retries > 1 }',
  '{ span.cached = true }',
  '{ span.cached != true }',
  '{ resource.service.name = "db" }',
  '{ .service.name = "auth" }',
  '{ resource.deployment.environment = "prod" }',
  '{ resource.deployment.environment = "prod" && span.db.system = "redis" }',
  '{ !(status = error) }',
  '{ status = error || kind = consumer }',
  '{ (name = "SELECT" || name = "INSERT") && resource.service.name = "db" }',
  '{ span.http.response.status_code = "500" }',
  '{ status = error } && { name = "SELECT" }',
  '{ status = error } || { name = "SELECT" }',
  '{ resource.service.name = "frontend" } && { resource.service.name = "db" } && { status = error }',
  '{ kind = server } > { kind = client }',
  '{ resource.service.name = "frontend" } >> { status = error }',
  '{ status = error } < { }',
  '{ status = error } << { span:parentID = nil }',
  '{ name = "SELECT" } ~ { name = "INSERT" }',
  '{ kind = server } &> { kind = client }',
  '{ resource.service.name = "cart" } &>> { status = error }',
  '{ status = error } &< { }',
  '{ status = error } &<< { kind = server }',
  '{ name = "SELECT" } &~ { }',
  '{ } !> { kind = client }',
  '{ kind = server } !>> { status = error }',
  '{ } !< { span:parentID != nil }',
  '{ status = error } !<< { }',
  '{ name = "SELECT" } !~ { }',
  '({ kind = server } > { kind = client }) > { }',
  '{ } >> ({ status = error } && { status = ok })',
  '{ } | count() > 6',
  '{ status = error } | count() >= 2',
  '{ } | avg(duration) > 500ms',
  '{ } | max(duration) < 800ms',
  '{ } | min(duration) <= 20ms',
  '{ } | sum(duration) > 3s',
  '{ } | sum(span.retries) > 2',
  '{ } | count() * 2 > 10',
  '{ } | max(duration) - min(duration) > 850ms',
  '{ } | avg(span.http.response.status_code) > 300',
  '{ } | by(resource.service.name) | count() > 3',
  '{ status = error } | by(name) | count() > 1',
  '{ } | by(resource.service.name) | count() > 3 | coalesce()',
  '{ kind = client } | select(span.db.system, duration)',
  '{ } | { status = error }',
  '{ kind = server } > { } | count() > 2',
  '{ } | by(span.db.system) | avg(duration) > 600ms',
  // arithmetic and field-to-field comparisons inside { }
  '{ duration * 2 > 1s }',
  '{ duration / 1000000 >= 450 }',
  '{ span.retries + span.http.response.status_code > 402 }',
  '{ span.http.response.status_code - 100 * span.retries = 200 }',
  '{ span.retries * 100ms < duration - 500ms }',
  '{ -span.retries < -1 }',
  '{ span.http.response.status_code % 400 = 100 }',
  '{ span.retries ^ 2 >= 4 }',
  '{ span.retries > span.cached }',
  '{ span.retries = span.retries }',
  '{ resource.service.name = .service.name && span.retries != span.http.response.status_code }',
  '{ span.db.system != nil && span.retries * 2 > 2 } > { }',
  // the parent's attributes
  '{ parent.span.db.system = "postgres" }',
  '{ parent.resource.service.name = "frontend" && resource.service.name != "frontend" }',
  '{ parent.http.response.status_code >= 500 }',
  '{ parent.span.cached = true || parent.span.retries > 2 }',
  '{ parent.span.db.system = nil }',
  '{ parent.span.db.system != nil }',
  '{ !(parent.resource.deployment.environment = "prod") }',
  '{ parent.resource.service.name = "cart" } | count() > 1',
  // span events and links
  '{ event:name = "exception" }',
  '{ event:name != "log" }',
  '{ event:name =~ "exc.*" }',
  '{ event.exception.type = "TimeoutError" }',
  '{ event.exception.escaped = true && status = error }',
  '{ event.level = nil }',
  '{ event.level != nil }',
  '{ event.seq >= 1 }',
  '{ event.level = "warn" || event:name = "exception" }',
  '{ !(event:name = "exception") && status = error }',
  '{ event:timeSinceStart > 20ms }',
  '{ event:timeSinceStart <= 1ms }',
  '{ event:name = "exception" } >> { event:name = "log" }',
  '{ event:name = "exception" } | count() > 1',
  '{ link:traceID = "abababababababababababababababab" }',
  '{ link:traceID != "abababababababababababababababab" }',
  '{ link:spanID = "cdcdcdcdcdcdcdcd" }',
  '{ link.relation = "follows" }',
  '{ link.n > 1 }',
  '{ link.relation = nil && kind = server }',
  '{ resource.service.name = "db" && link.relation != nil }',
];

function lezerOk(q: string): boolean {
  let bad = false;
  parser.parse(q).iterate({ enter: (n) => { if (n.type.isError) bad = true; } });
  return !bad;
}

describe('TraceQL conformance (SQL vs the reference evaluator)', () => {
  let store: DuckStore;
  const spans = dataset();
  before(async () => {
    // the data set is from 2023: no retention (its 24 h age limit would empty the store mid-run)
    store = await DuckStore.open({ retention: { maxAgeMs: Infinity, intervalMs: 0 } });
    store.append(spans);
    await store.flush();
  });
  after(async () => {
    await store.shutdown();
  });

  it('has a corpus of at least 60 queries, each valid TraceQL to lezer-traceql', () => {
    assert.ok(SEARCH_CORPUS.length >= 60);
    // span:childCount is Tempo's but not in lezer-traceql 1.0.0 (the parser maps it, see parse.ts)
    const bad = SEARCH_CORPUS.filter((q) => !q.includes('span:childCount') && !lezerOk(q));
    assert.deepEqual(bad, []);
  });

  let equal = 0;
  for (const q of SEARCH_CORPUS) {
    it(`search ${q}`, async () => {
      const want = reference(spans, q);
      // the event and link queries each select something (an empty answer would agree by default)
      if (/event[.:]|link[.:]/.test(q)) assert.ok(want.size > 0, 'the data set has spans for this query');
      const got = new Map<string, Set<string>>();
      for (const s of await store.search({ query: parseTraceQL(q), limit: 100_000 })) {
        got.set(s.traceId, (got.get(s.traceId) ?? new Set()).add(s.spanId));
      }
      const norm = (m: Map<string, Set<string>>): [string, string[]][] => [...m].map(([k, v]) => [k, [...v].sort()] as [string, string[]]).sort();
      assert.deepEqual(norm(got), norm(want));
      // the trace search agrees on trace ids and matched counts
      const traces = await store.searchTraces({ query: parseTraceQL(q), limit: 1000, spansPerSpanSet: 2 });
      assert.deepEqual(traces.map((t) => [t.traceID, t.spanSet.matched] as [string, number]).sort(), [...want].map(([k, v]) => [k, v.size] as [string, number]).sort());
      // a few newest only (the search reads the newest time slice first and widens it):
      // the traces whose last matching span is newest, over all time and within a window
      const window = { startNs: BASE + 7_500n * MS, endNs: BASE + 33_200n * MS };
      for (const w of [{}, window] as { startNs?: bigint; endNs?: bigint }[]) {
        const inWindow = spans.filter((s) => (w.startNs === undefined || s.startTimeUnixNano >= w.startNs) && (w.endNs === undefined || s.startTimeUnixNano <= w.endNs));
        const ref = reference(inWindow, q);
        const startOf = new Map(inWindow.map((s) => [s.spanId, s.startTimeUnixNano]));
        const newest = [...ref].map(([id, ss]) => ({ id, n: ss.size, last: [...ss].map((x) => startOf.get(x) as bigint).reduce((a, b) => (b > a ? b : a)) }))
          .sort((a, b) => (a.last > b.last ? -1 : a.last < b.last ? 1 : a.id < b.id ? -1 : 1)).slice(0, 3);
        const few = await store.searchTraces({ query: parseTraceQL(q), limit: 3, spansPerSpanSet: 1, ...w });
        assert.deepEqual(few.map((t) => [t.traceID, t.spanSet.matched]), newest.map((t) => [t.id, t.n]), `limit 3 ${String(w.startNs ?? '-')}..${String(w.endNs ?? '-')}`);
        // the span returned is the earliest matching one
        for (const t of few) {
          const first = [...(ref.get(t.traceID) ?? [])].sort((a, b) => Number((startOf.get(a) as bigint) - (startOf.get(b) as bigint)) || (a < b ? -1 : 1))[0];
          assert.deepEqual(t.spanSet.spans.map((x) => x.spanId), [first]);
        }
      }
      equal++;
    });
  }
  it('reports', () => {
    console.log(`# TraceQL search corpus: ${equal}/${SEARCH_CORPUS.length} queries equal to the reference evaluator`);
  });

  // metrics: each query's series against the reference (spans per step, grouped, in seconds)
  const STEP = 10_000n * MS;
  const RANGE = { startNs: BASE, endNs: BASE + 41_000n * MS, stepNs: STEP };
  // the third element: a threshold's test of a data point (Tempo's `... > 10`, not in lezer-traceql 1.0.0)
  const METRICS_CORPUS: [string, (xs: Span[]) => number | number[], ((x: number) => boolean)?][] = [
    ['{ } | count_over_time()', (xs) => xs.length],
    ['{ status = error } | rate()', (xs) => xs.length / 10],
    ['{ } | count_over_time() by (resource.service.name)', (xs) => xs.length],
    ['{ } | count_over_time() by (span.http.request.method)', (xs) => xs.length],
    ['{ } | count_over_time() by (span.client.address)', (xs) => xs.length],
    ['{ span.user_agent.original != nil } | count_over_time() by (span.user_agent.original, span.server.address)', (xs) => xs.length],
    ['{ kind = client } | count_over_time() by (name, status)', (xs) => xs.length],
    ['{ } | sum_over_time(duration) by (resource.service.name)', (xs) => xs.reduce((a, s) => a + s.durationNano / 1e9, 0)],
    ['{ } | min_over_time(duration)', (xs) => Math.min(...xs.map((s) => s.durationNano / 1e9))],
    ['{ } | max_over_time(duration) by (kind)', (xs) => Math.max(...xs.map((s) => s.durationNano / 1e9))],
    ['{ } | avg_over_time(span.http.response.status_code)', (xs) => xs.reduce((a, s) => a + Number(s.attr('http.response.status_code')), 0) / xs.length],
    ['{ } | quantile_over_time(duration, 0.5, 0.9)', (xs) => [0.5, 0.9].map((p) => quantile(xs.map((s) => s.durationNano / 1e9), p))],
    ['{ } | histogram_over_time(duration)', (xs) => xs.length],
    ['{ kind = server } > { } | count_over_time() by (resource.service.name)', (xs) => xs.length],
    ['{ } | count_over_time() by (resource.service.name) > 3', (xs) => xs.length, (x) => x > 3],
    ['{ } | count_over_time() by (resource.service.name) != 8', (xs) => xs.length, (x) => x !== 8],
    ['{ } | quantile_over_time(duration, 0.5, 0.9) <= 0.45', (xs) => [0.5, 0.9].map((p) => quantile(xs.map((s) => s.durationNano / 1e9), p)), (x) => x <= 0.45],
    ['{ status = error } | rate() >= 1.9', (xs) => xs.length / 10, (x) => x >= 1.9],
  ];
  for (const [mq, fn, keep] of METRICS_CORPUS) {
    it(`metrics ${mq}`, async () => {
      const q = parseTraceQL(mq);
      const m = q.metrics;
      assert.ok(m);
      const selected = new Set([...reference(spans, mq.replace(/\|[^|]*$/, ''))].flatMap(([, v]) => [...v]));
      const groups = new Map<string, Span[]>();
      for (const s of spans) {
        if (!selected.has(s.spanId)) continue;
        const b = (s.startTimeUnixNano - RANGE.startNs) / STEP;
        const labels = m.by.map((f) => fieldValue(s, f, { byId: new Map(), children: new Map(), trace: [s] }));
        if (m.fn === 'histogram_over_time') labels.push(2 ** Math.ceil(Math.log2(s.durationNano)) / 1e9);
        const k = JSON.stringify([String(b), ...labels]);
        groups.set(k, [...(groups.get(k) ?? []), s]);
      }
      const want: string[] = [];
      let dropped = 0;
      for (const [k, xs] of groups) {
        const [b, ...labels] = JSON.parse(k) as [string, ...Val[]];
        const v = fn(xs);
        const vs = Array.isArray(v) ? v : [v];
        vs.forEach((x, i) => (keep && !keep(x) ? dropped++ : want.push(`${JSON.stringify([...labels, ...(Array.isArray(v) ? [m.quantiles?.[i]] : [])])}@${Number(RANGE.startNs / MS + BigInt(b) * (STEP / MS))}=${x.toPrecision(9)}`)));
      }
      // a threshold case must keep some points and drop others, or it proves nothing
      if (keep) assert.ok(want.length > 0 && dropped > 0, `threshold keeps ${want.length}, drops ${dropped}`);
      const res = await store.metricsQuery(q, RANGE);
      const got: string[] = [];
      for (const ser of res.series) {
        const labels = ser.labels.filter((l) => l.key !== '__name__').map((l) => {
          const v = l.value as Record<string, unknown>;
          return 'stringValue' in v ? v.stringValue : 'intValue' in v ? Number(v.intValue) : 'doubleValue' in v ? v.doubleValue : 'boolValue' in v ? v.boolValue : undefined;
        });
        for (const x of ser.samples) got.push(`${JSON.stringify(labels)}@${x.timestampMs}=${x.value.toPrecision(9)}`);
      }
      assert.deepEqual(got.sort(), want.sort());
    });
  }

  it('metrics: topk keeps the n largest series at each step; compare splits selection and baseline', async () => {
    const all = await store.metricsQuery(parseTraceQL('{ } | count_over_time() by (resource.service.name)'), RANGE);
    const top = await store.metricsQuery(parseTraceQL('{ } | count_over_time() by (resource.service.name) | topk(2)'), RANGE);
    const at = new Map<string, number[]>();
    for (const s of all.series) for (const x of s.samples) at.set(x.timestampMs, [...(at.get(x.timestampMs) ?? []), x.value]);
    const topAt = new Map<string, number[]>();
    for (const s of top.series) for (const x of s.samples) topAt.set(x.timestampMs, [...(topAt.get(x.timestampMs) ?? []), x.value]);
    for (const [ts, vs] of at) assert.deepEqual((topAt.get(ts) ?? []).sort((a, b) => b - a), vs.sort((a, b) => b - a).slice(0, 2), ts);
    // a threshold after topk filters the top series' points
    const topMin = await store.metricsQuery(parseTraceQL('{ } | count_over_time() by (resource.service.name) | topk(2) > 5'), RANGE);
    const kept = topMin.series.flatMap((s) => s.samples.map((x) => x.value)).sort((a, b) => b - a);
    assert.deepEqual(kept, [...topAt.values()].flat().filter((x) => x > 5).sort((a, b) => b - a));

    const cmp = await store.metricsQuery(parseTraceQL('{ } | compare({ status = error })'), RANGE);
    const total = (type: string, key: string): number =>
      cmp.series.filter((s) => s.labels[0]?.value && (s.labels[0].value as { stringValue: string }).stringValue === type && s.labels[1]?.key === key)
        .reduce((a, s) => a + s.samples.reduce((x, y) => x + y.value, 0), 0);
    const errors = spans.filter((s) => s.status === 'error').length;
    assert.equal(total('selection_total', 'name'), errors);
    assert.equal(total('baseline_total', 'name'), spans.length - errors);
    assert.equal(total('selection', 'status'), errors);
    const dbErr = spans.filter((s) => s.status === 'error' && s.resource['service.name'] === 'db').length;
    const dbSeries = cmp.series.find((s) => s.labels[1]?.key === 'resource.service.name' && (s.labels[1].value as { stringValue?: string }).stringValue === 'db' && (s.labels[0]?.value as { stringValue: string }).stringValue === 'selection');
    assert.equal(dbSeries?.samples.reduce((a, x) => a + x.value, 0), dbErr);
  });

  it('refuses bad queries with a position and a message', () => {
    const cases: [string, RegExp, number][] = [
      ['{ status = 5 }', /status must be compared with one of/, 11],
      ['{ .a = 1 } | rate() | count() > 1', /only topk\(n\) or bottomk\(n\)/, 22],
      ['{ } | topk(3)', /must follow a metrics function/, 6],
      ['{ } | quantile_over_time(duration, 2)', /between 0 and 1/, 35],
      ['{ a = 1 }', /attribute names need a scope/, 2],
      ['{ name + 1 > 2 }', /needs numbers or durations, name is not one/, 2],
      ['{ span.a * "x" > 2 }', /needs numbers or durations, got "\\"x\\""/, 11],
      ['{ span.a =~ span.b }', /unsupported: =~ between two fields/, 9],
      ['{ parent.span.a + 1 > 2 }', /unsupported: parent scope in arithmetic/, 2],
      ['{ } | by(parent.span.a)', /unsupported: parent scope outside a span condition/, 9],
      ['{ } | by(event.exception.type)', /unsupported: event.exception.type outside a span condition/, 9],
      ['{ event:timeSinceStart * 2 > 1s }', /unsupported: event:timeSinceStart in arithmetic/, 2],
      ['{ link.a = span.a }', /unsupported: link.a compared with another field/, 2],
      ['{ link:traceID = "xyz" }', /link:traceID must be compared with up to 32 hex digits/, 17],
      ['{ instrumentation.name = "x" }', /unsupported: instrumentation scope/, 2],
      ['{ } | compare({ status = error }) > 1', /compare\(\) has no threshold/, 34],
      ['{ } | count() > 1 > 2', /syntax error: unexpected end of query/, 21],
    ];
    for (const [q, re, pos] of cases) {
      assert.throws(() => parseTraceQL(q), (e: unknown) => e instanceof TraceQLError && re.test(e.message) && e.pos === pos, q);
    }
  });
});
