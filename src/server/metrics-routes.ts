// Tempo's TraceQL metrics endpoints: /api/metrics/query_range and /api/metrics/query.
// The store runs the query (src/store/metrics-query.ts); this module reads the parameters
// Tempo takes (q, start, end, since, step, exemplars) and answers QueryRangeResponse /
// QueryInstantResponse JSON. A query that is not a metrics query, or bad TraceQL, is a 400
// with the position.

import { MAX_EXEMPLARS, MAX_STEPS, toInstant, type SpanStore } from '../store/index.js';
import { TraceQLError, parseGoDuration, parseTraceQL, type Query } from '../traceql/index.js';
import { HttpError, badParam } from './errors.js';
import { clip, countOf, windowOf } from './params.js';

/** exemplars per series of a range query when the request names none (Grafana sends `exemplars`) */
export const DEFAULT_EXEMPLARS = 10;

type Reply = { status?: number; type: string; body: unknown };
type Handler = (req: unknown, url: URL, groups: string[]) => Promise<Reply>;

const HINT = 'a metrics query ends in a function such as { } | rate() by (resource.service.name); see https://grafana.com/docs/tempo/latest/traceql/metrics-queries/';

function metricsQuery(q: string | null): Query {
  if (q === null || q.trim() === '') throw badParam('missing q (a TraceQL metrics query)', HINT);
  let query: Query;
  try {
    query = parseTraceQL(q);
  } catch (err) {
    if (err instanceof TraceQLError) throw new HttpError(400, `invalid TraceQL: ${err.message}`, HINT, { cause: err });
    throw err;
  }
  if (!query.metrics) throw new HttpError(400, `invalid TraceQL: not a metrics query at ${q.length}`, HINT);
  return query;
}

function range(p: URLSearchParams, instant: boolean): { startNs: bigint; endNs: bigint; stepNs: bigint } {
  const w = windowOf(p);
  const endNs = w.endNs ?? BigInt(Date.now()) * 1_000_000n;
  const startNs = w.startNs ?? endNs - 3600n * 1_000_000_000n;
  if (startNs > endNs) throw badParam('start is after end', 'give start <= end');
  if (instant) return { startNs, endNs, stepNs: endNs - startNs + 1n };
  const s = p.get('step');
  let stepNs: bigint;
  if (s === null || s === '') {
    // Tempo's default: about 240 points over the range, at least 1 ms
    stepNs = (endNs - startNs) / 240n;
    if (stepNs < 1_000_000n) stepNs = 1_000_000n;
  } else {
    const d = /^\d+(\.\d+)?$/.test(s) ? Number(s) * 1e9 : parseGoDuration(s);
    if (d === undefined || !(d > 0)) throw badParam(`invalid step "${clip(s)}"`, 'a Go duration such as 15s, or seconds');
    stepNs = BigInt(Math.round(d));
  }
  if ((endNs - startNs) / stepNs + 1n > BigInt(MAX_STEPS)) throw badParam(`step too small: more than ${MAX_STEPS} points`, 'give a larger step');
  return { startNs, endNs, stepNs };
}

export function metricsRoutes(store: SpanStore): [string, RegExp, Handler][] {
  const run = async (url: URL, instant: boolean): Promise<Reply> => {
    const p = url.searchParams;
    const q = metricsQuery(p.get('q') ?? p.get('query'));
    let res;
    try {
      // exemplars belong to range queries (an instant answer has no points to hang them on)
      const exemplars = instant ? 0 : countOf(p, 'exemplars', DEFAULT_EXEMPLARS, MAX_EXEMPLARS);
      res = await store.metricsQuery(q, { ...range(p, instant), exemplars });
    } catch (err) {
      if (err instanceof TraceQLError) throw new HttpError(400, `invalid TraceQL: ${err.message}`, HINT, { cause: err });
      if (err instanceof RangeError) throw badParam(err.message);
      throw err;
    }
    return { type: 'application/json', body: instant ? toInstant(res) : res };
  };
  return [
    ['GET', /^\/api\/metrics\/query_range$/, (_r, url) => run(url, false)],
    ['GET', /^\/api\/metrics\/query$/, (_r, url) => run(url, true)],
  ];
}
