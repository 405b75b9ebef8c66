// The web UI's own endpoints, under /api/osprey/ui/: what the views need beyond the
// osprey and Tempo APIs. A paged trace list sorted by recency or duration with its total
// (or without, and the total from /traces/count, so the rows are not held up by the count),
// a latency heatmap, and a comparison of a brushed heatmap region against the rest of
// the matches. All computed by the store in SQL (src/store/analysis.ts).
import type { IncomingMessage } from 'node:http';
import { parseGoDuration, parseTraceQL, TraceQLError, type Query } from '../traceql/index.js';
import { timePerService, type Span } from '../model/index.js';
import { UNKNOWN_SERVICE, type Analysis, type SpanStore } from '../store/index.js';
import { MAX_LIMIT } from '../store/window.js';
import { HttpError, badParam } from './errors.js';
import { choiceOf, countOf, parseTime, windowOf } from './params.js';

type Handler = (req: IncomingMessage, url: URL, params: string[]) => Promise<{ status?: number; type?: string; body: unknown }>;

function query(q: string | null): Query {
  try {
    return parseTraceQL(q && q.trim() ? q : '{}');
  } catch (err) {
    if (err instanceof TraceQLError) throw new HttpError(400, `invalid TraceQL: ${err.message}`, 'see https://grafana.com/docs/tempo/latest/traceql/', { cause: err });
    throw err;
  }
}

function analysisOf(store: SpanStore | undefined): Analysis {
  if (!store) throw new HttpError(404, 'this osprey keeps no spans: it runs export-only (osprey up --no-store)', 'query the backend the spans are exported to');
  if (!store.analysis) throw new HttpError(501, 'this store has no UI analysis queries', 'use /api/osprey/spans and /api/search');
  return store.analysis;
}

/** a window with both ends: `end` defaults to now, `start` to an hour before it */
function closedWindow(p: URLSearchParams): { startNs: bigint; endNs: bigint } {
  const w = windowOf(p);
  const endNs = w.endNs ?? BigInt(Date.now()) * 1_000_000n;
  const startNs = w.startNs ?? endNs - 3600n * 1_000_000_000n;
  if (startNs > endNs) throw badParam('start is after end', 'give start <= end');
  return { startNs, endNs };
}

function nsParam(p: URLSearchParams, name: string, def: number): number {
  const v = p.get(name);
  if (v === null || v === '') return def;
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || !Number.isFinite(n)) throw badParam(`invalid ${name} "${v.slice(0, 40)}"`, 'nanoseconds, a non-negative number');
  return n;
}

/** `edge=caller>callee`: the calls over one service-map edge */
function edgeOf(p: URLSearchParams): { caller: string; callee: string } | undefined {
  const v = p.get('edge');
  if (v === null || v === '') return undefined;
  const i = v.indexOf('>');
  if (i <= 0 || i === v.length - 1) throw badParam(`invalid edge "${v.slice(0, 80)}"`, 'caller>callee, two service names');
  return { caller: v.slice(0, i), callee: v.slice(i + 1) };
}

const json = (body: unknown) => ({ type: 'application/json', body });

/** a trace's exclusive time per service (src/model/service-time.ts) */
function serviceTimes(spans: Span[]) {
  return timePerService(spans, (s) => {
    const svc = s.resource['service.name'];
    return typeof svc === 'string' ? svc : UNKNOWN_SERVICE;
  });
}

export function uiApiRoutes(store: SpanStore | undefined): [string, RegExp, Handler][] {
  return [
    ['GET', /^\/api\/osprey\/ui\/namespaces$/, async () => json({ services: await analysisOf(store).serviceNamespaces() })],
    [
      'GET',
      /^\/api\/osprey\/ui\/traces$/,
      async (_r, url) => {
        const p = url.searchParams;
        const opts = {
          query: query(p.get('q')),
          ...windowOf(p),
          order: choiceOf(p, 'order', ['start', 'duration'], 'start'),
          limit: countOf(p, 'limit', 50, 1000),
          offset: countOf(p, 'offset', 0, MAX_LIMIT),
          edge: edgeOf(p),
        };
        // total=false: the page alone (the UI asks /traces/count separately, so the rows come first)
        const withTotal = choiceOf(p, 'total', ['true', 'false'], 'true') === 'true';
        const a = analysisOf(store);
        const [page, total] = await Promise.all([a.traceList(opts), withTotal ? a.traceCount(opts) : undefined]);
        return json({
          ...(total === undefined ? {} : { total }),
          more: page.more,
          traces: page.traces.map((t) => ({
            ...t,
            startNs: t.startNs.toString(),
            top: { ...t.top, startNs: t.top.startNs.toString() },
          })),
        });
      },
    ],
    [
      'GET',
      /^\/api\/osprey\/ui\/traces\/count$/,
      async (_r, url) => {
        const p = url.searchParams;
        return json({ total: await analysisOf(store).traceCount({ query: query(p.get('q')), ...windowOf(p), edge: edgeOf(p) }) });
      },
    ],
    [
      'GET',
      /^\/api\/osprey\/ui\/typical\/([^/]+)$/,
      async (_r, url, [id]) => {
        const around = url.searchParams.get('around') ?? '1h';
        const d = parseGoDuration(around);
        if (d === undefined || d <= 0) throw badParam(`invalid around "${around.slice(0, 40)}"`, 'a Go duration such as 30m, 1h, 6h');
        const a = analysisOf(store);
        const t = await a.typicalTrace(id ?? '', BigInt(Math.round(d)));
        if (!t) throw new HttpError(404, `trace ${String(id).slice(0, 40)} not found`, 'it may have aged out of retention, or the id is mistyped');
        const breakdown = async (traceId: string) => serviceTimes(await store!.trace(traceId));
        const [mine, typical] = await Promise.all([breakdown(id!), t.typical ? breakdown(t.typical.traceId) : undefined]);
        return json({
          root: { ...t.root, startNs: t.root.startNs.toString() },
          peers: t.peers,
          medianNs: t.medianNs ?? null,
          trace: { traceId: id!.toLowerCase(), durationNs: t.root.durationNs, services: mine },
          typical: t.typical && typical ? { ...t.typical, services: typical } : null,
        });
      },
    ],
    [
      'GET',
      /^\/api\/osprey\/ui\/heatmap$/,
      async (_r, url) => {
        const p = url.searchParams;
        const h = await analysisOf(store).heatmap({ query: query(p.get('q')), ...closedWindow(p), columns: countOf(p, 'columns', 120, 2000) });
        return json({ startNs: h.startNs.toString(), stepNs: h.stepNs.toString(), columns: h.columns, baseNs: 1000, perOctave: 4, cells: h.cells });
      },
    ],
    [
      'GET',
      /^\/api\/osprey\/ui\/compare$/,
      async (_r, url) => {
        const p = url.searchParams;
        const w = closedWindow(p);
        const selStartNs = parseTime(p.get('selStart'), 'selStart') ?? w.startNs;
        const selEndNs = parseTime(p.get('selEnd'), 'selEnd') ?? w.endNs;
        const minNs = nsParam(p, 'minNs', 0);
        const maxNs = nsParam(p, 'maxNs', Number.MAX_SAFE_INTEGER);
        if (selStartNs > selEndNs || minNs > maxNs) throw badParam('empty selection', 'give selStart <= selEnd and minNs <= maxNs');
        return json(await analysisOf(store).compare({ query: query(p.get('q')), ...w, selStartNs, selEndNs, minNs, maxNs }));
      },
    ],
  ];
}
