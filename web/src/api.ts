// The one place the UI talks to the server: every response is checked with zod here, so a
// view never renders a shape it did not expect (a mismatch is an error the view shows).
import { z } from 'zod';

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly hint?: string,
  ) {
    super(message);
  }
}

const ErrorBody = z.object({ error: z.string(), hint: z.string().optional() });

async function get<T>(path: string, schema: z.ZodType<T>, signal?: AbortSignal): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, { signal, headers: { accept: 'application/json' } });
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new ApiError(`cannot reach osprey: ${(e as Error).message}`, 0, 'is osprey up still running?');
  }
  const body: unknown = await res.json().catch(() => undefined);
  if (!res.ok) {
    const e = ErrorBody.safeParse(body);
    throw new ApiError(e.success ? e.data.error : `HTTP ${res.status}`, res.status, e.success ? e.data.hint : undefined);
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new ApiError(`unexpected answer from ${path.split('?')[0]}: ${parsed.error.issues[0]?.message ?? 'bad shape'}`, res.status);
  return parsed.data;
}

function qs(params: Record<string, string | number | undefined>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
}

/** a time range: `since` (Go duration back from now) or absolute start/end in unix ns */
export interface Range {
  since?: string;
  start?: string;
  end?: string;
}
const rangeParams = (r: Range) => (r.start ? { start: r.start, end: r.end } : { since: r.since ?? '1h' });

const AttrValue = z.union([z.string(), z.number(), z.boolean()]);
export const SpanJson = z.object({
  traceId: z.string(),
  spanId: z.string(),
  parentSpanId: z.string(),
  name: z.string(),
  kind: z.string(),
  startTimeUnixNano: z.string(),
  durationNano: z.number(),
  status: z.enum(['ok', 'error', 'unset']),
  statusMessage: z.string().optional(),
  resource: z.record(z.string(), AttrValue),
  attributes: z.record(z.string(), AttrValue),
});
export type SpanJson = z.infer<typeof SpanJson>;

const TraceRow = z.object({
  traceId: z.string(),
  rootService: z.string(),
  rootName: z.string(),
  startNs: z.string(),
  durationNs: z.number(),
  spanCount: z.number(),
  errorCount: z.number(),
  services: z.array(z.string()),
  matched: z.number(),
  top: z.object({ spanId: z.string(), service: z.string(), name: z.string(), durationNs: z.number(), startNs: z.string() }),
});
export type TraceRow = z.infer<typeof TraceRow>;
const TracePage = z.object({ more: z.boolean(), traces: z.array(TraceRow) });
export type TracePage = z.infer<typeof TracePage>;

/** a page of traces; the total is asked for separately (countTraces) so the rows are not held up by it */
export function searchTraces(p: { q: string; range: Range; order: 'start' | 'duration'; limit: number; offset: number; edge?: string }, signal?: AbortSignal) {
  return get(`/api/osprey/ui/traces${qs({ q: p.q, ...rangeParams(p.range), order: p.order, limit: p.limit, offset: p.offset, edge: p.edge, total: 'false' })}`, TracePage, signal);
}

export function countTraces(p: { q: string; range: Range; edge?: string }, signal?: AbortSignal) {
  return get(`/api/osprey/ui/traces/count${qs({ q: p.q, ...rangeParams(p.range), edge: p.edge })}`, z.object({ total: z.number() }), signal).then((r) => r.total);
}

export function getTrace(id: string, signal?: AbortSignal) {
  return get(`/api/osprey/traces/${encodeURIComponent(id)}`, z.object({ spans: z.array(SpanJson) }), signal).then((r) => r.spans);
}

const Service = z.object({
  service: z.string(),
  requestCount: z.number(),
  ratePerSec: z.number(),
  errorCount: z.number(),
  errorPct: z.number(),
  basis: z.string(),
  p50Ns: z.number(),
  p95Ns: z.number(),
  p99Ns: z.number(),
});
export type Service = z.infer<typeof Service>;
export function getServices(range: Range, signal?: AbortSignal) {
  return get(`/api/osprey/services${qs(rangeParams(range))}`, z.object({ services: z.array(Service) }), signal).then((r) => r.services);
}

const Edge = z.object({
  caller: z.string(),
  callee: z.string(),
  connectionType: z.string(),
  count: z.number(),
  errorCount: z.number(),
  errorPct: z.number(),
  p50Ns: z.number(),
  p95Ns: z.number(),
  serverP95Ns: z.number(),
});
export type Edge = z.infer<typeof Edge>;
export function getEdges(range: Range, signal?: AbortSignal) {
  return get(`/api/osprey/graph${qs(rangeParams(range))}`, z.object({ edges: z.array(Edge) }), signal).then((r) => r.edges);
}

const ServiceNamespace = z.object({ service: z.string(), namespace: z.string() });
export function getServiceNamespaces(signal?: AbortSignal) {
  return get('/api/osprey/ui/namespaces', z.object({ services: z.array(ServiceNamespace) }), signal).then((r) => r.services);
}

export function tagNames(signal?: AbortSignal) {
  const Scope = z.object({ name: z.string(), tags: z.array(z.string()) });
  return get(`/api/v2/search/tags${qs({ since: '24h' })}`, z.object({ scopes: z.array(Scope) }), signal).then((r) => r.scopes);
}

export function tagValues(name: string, signal?: AbortSignal) {
  const V = z.object({ type: z.string(), value: z.string() });
  return get(`/api/v2/search/tag/${encodeURIComponent(name)}/values${qs({ since: '24h', limit: 500 })}`, z.object({ tagValues: z.array(V) }), signal).then((r) => r.tagValues);
}

const Heatmap = z.object({
  startNs: z.string(),
  stepNs: z.string(),
  columns: z.number(),
  baseNs: z.number(),
  perOctave: z.number(),
  cells: z.array(z.tuple([z.number(), z.number(), z.number(), z.number()])),
});
export type Heatmap = z.infer<typeof Heatmap>;
export function getHeatmap(p: { q: string; start: string; end: string; columns: number }, signal?: AbortSignal) {
  return get(`/api/osprey/ui/heatmap${qs(p)}`, Heatmap, signal);
}

const Comparison = z.object({
  selected: z.number(),
  rest: z.number(),
  dimensions: z.array(z.object({ name: z.string(), values: z.array(z.object({ value: z.string(), selected: z.number(), rest: z.number() })) })),
});
export type Comparison = z.infer<typeof Comparison>;
export function getComparison(p: { q: string; start: string; end: string; selStart: string; selEnd: string; minNs: number; maxNs: number }, signal?: AbortSignal) {
  return get(`/api/osprey/ui/compare${qs(p)}`, Comparison, signal);
}

const ServiceTime = z.object({ service: z.string(), selfNs: z.number(), spans: z.number(), errors: z.number() });
export type ServiceTime = z.infer<typeof ServiceTime>;
const Typical = z.object({
  root: z.object({ service: z.string(), name: z.string(), durationNs: z.number(), startNs: z.string() }),
  peers: z.number(),
  medianNs: z.number().nullable(),
  trace: z.object({ traceId: z.string(), durationNs: z.number(), services: z.array(ServiceTime) }),
  typical: z.object({ traceId: z.string(), durationNs: z.number(), services: z.array(ServiceTime) }).nullable(),
});
export type Typical = z.infer<typeof Typical>;
/** this trace next to the typical one of the same root service and name: exclusive time per service */
export function getTypical(id: string, signal?: AbortSignal) {
  return get(`/api/osprey/ui/typical/${encodeURIComponent(id)}`, Typical, signal);
}
