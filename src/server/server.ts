// The HTTP listener: osprey's own API (span JSON), Tempo's query API as Grafana
// calls it, Prometheus exposition. Binds 127.0.0.1 unless told otherwise.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { spanToJson } from '../agent/span.js';
import { toResourceSpans } from '../export/otlp-json.js';
import { MAX_LIMIT, type SpanStore, type TagScope } from '../store/index.js';
import { parseTraceQL, parseGoDuration, TraceQLError, type Query } from '../traceql/index.js';
import { HttpError } from './errors.js';

export interface ServerDeps {
  store: SpanStore;
  /** osprey status: what is attached, rates, every counter */
  status(): Record<string, unknown>;
  /** Prometheus text exposition */
  metrics(): string;
  /** HTML of the UI at / (undefined: --no-ui) */
  ui?: () => string;
  /** unix ns since when the agent has been capturing: rates are per second observed */
  observingSinceNs?: bigint;
}

export interface RunningServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, url: URL, params: string[]) => Promise<Reply>;
interface Reply {
  status?: number;
  type?: string;
  body: unknown;
}

export const TEMPO_COMPAT_VERSION = '2.7.0';

function json(body: unknown, status = 200): Reply {
  return { status, type: 'application/json', body };
}

/** unix seconds, unix ns or RFC3339 -> unix ns */
export function parseTime(v: string | null, name: string): bigint | undefined {
  if (v === null || v === '') return undefined;
  if (/^\d+$/.test(v)) {
    const n = BigInt(v);
    return n > 100_000_000_000_000n ? n : n * 1_000_000_000n;
  }
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new HttpError(400, `invalid ${name} "${v}"`, 'use unix seconds, unix nanoseconds or RFC3339');
  return BigInt(ms) * 1_000_000n;
}

function query(q: string | null): Query {
  try {
    return parseTraceQL(q && q.trim() ? q : '{}');
  } catch (err) {
    if (err instanceof TraceQLError) throw new HttpError(400, `invalid TraceQL: ${err.message}`, undefined, { cause: err });
    throw err;
  }
}

function limitOf(v: string | null, def: number): number {
  if (v === null || v === '') return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new HttpError(400, `invalid limit "${v}"`, 'a non-negative integer');
  return Math.min(n, MAX_LIMIT);
}

function since(url: URL): { startNs: bigint | undefined; endNs: bigint | undefined } {
  const endNs = parseTime(url.searchParams.get('end'), 'end');
  let startNs = parseTime(url.searchParams.get('start'), 'start');
  const s = url.searchParams.get('since');
  if (s && startNs === undefined) {
    const d = parseGoDuration(s);
    if (d === undefined || d < 0) throw new HttpError(400, `invalid since "${s}"`, 'a Go duration such as 30s, 5m, 1h');
    startNs = (endNs ?? BigInt(Date.now()) * 1_000_000n) - BigInt(Math.round(d));
  }
  return { startNs, endNs };
}

export function routes(deps: ServerDeps): [string, RegExp, Handler][] {
  const { store } = deps;
  const traceById = async (id: string) => {
    if (!/^[0-9a-fA-F]{1,32}$/.test(id)) throw new HttpError(400, `invalid trace id "${id}"`, '32 hex characters');
    const spans = await store.trace(id.toLowerCase().padStart(32, '0'));
    if (!spans.length) throw new HttpError(404, `trace ${id} not found`);
    return spans;
  };
  return [
    ['GET', /^\/api\/echo$/, async () => ({ type: 'text/plain', body: 'echo' })],
    ['GET', /^\/ready$/, async () => ({ type: 'text/plain', body: 'ready' })],
    [
      'GET',
      /^\/api\/status\/buildinfo$/,
      async () =>
        json({ version: TEMPO_COMPAT_VERSION, revision: 'osprey-0.1.0', branch: 'main', buildDate: '', buildUser: 'osprey', goVersion: 'none' }),
    ],
    ['GET', /^\/api\/osprey\/status$/, async () => json(deps.status())],
    [
      'GET',
      /^\/api\/osprey\/spans$/,
      async (_req, url) => {
        const order = url.searchParams.get('order') === 'duration' ? 'duration_desc' : 'start_desc';
        const spans = await store.search({ query: query(url.searchParams.get('q')), ...since(url), limit: limitOf(url.searchParams.get('limit'), 100), order });
        return json({ spans: spans.map(spanToJson) });
      },
    ],
    ['GET', /^\/api\/osprey\/traces\/([^/]+)$/, async (_r, _u, [id]) => json({ spans: (await traceById(id!)).map(spanToJson) })],
    [
      'GET',
      /^\/api\/osprey\/services$/,
      async (_r, url) => {
        const w = since(url);
        const from = w.startNs ?? BigInt(Date.now() - 3600_000) * 1_000_000n;
        const to = w.endNs ?? BigInt(Date.now()) * 1_000_000n;
        const services = await store.services(from, to);
        // a window reaching back before capture started would dilute rates
        const observed = deps.observingSinceNs && deps.observingSinceNs > from ? deps.observingSinceNs : from;
        const seconds = Number(to - observed) / 1e9;
        for (const s of services) s.ratePerSec = seconds > 0 ? s.requestCount / seconds : 0;
        return json({ services });
      },
    ],
    [
      'GET',
      /^\/api\/osprey\/graph$/,
      async (_r, url) => {
        const w = since(url);
        return json({ edges: await store.edges(w.startNs ?? BigInt(Date.now() - 3600_000) * 1_000_000n, w.endNs) });
      },
    ],
    [
      'GET',
      /^\/api\/search$/,
      async (_r, url) => {
        const p = url.searchParams;
        const traces = await store.searchTraces({
          query: query(p.get('q')),
          ...since(url),
          limit: limitOf(p.get('limit'), 20),
          spansPerSpanSet: limitOf(p.get('spss'), 3),
        });
        return json({
          traces: traces.map((t) => {
            const spanSet = {
              spans: t.spanSet.spans.map((s) => ({
                spanID: s.spanId,
                name: s.name,
                startTimeUnixNano: s.startTimeUnixNano.toString(),
                durationNanos: String(s.durationNano),
              })),
              matched: t.spanSet.matched,
            };
            return {
              traceID: t.traceID,
              rootServiceName: t.rootServiceName,
              rootTraceName: t.rootTraceName,
              startTimeUnixNano: t.startTimeUnixNano.toString(),
              durationMs: t.durationMs,
              spanSet,
              spanSets: [spanSet],
              serviceStats: t.serviceStats,
            };
          }),
          metrics: { inspectedTraces: traces.length, completedJobs: 1, totalJobs: 1 },
        });
      },
    ],
    ['GET', /^\/api\/traces\/([^/]+)$/, async (_r, _u, [id]) => json({ batches: toResourceSpans(await traceById(id!)) })],
    ['GET', /^\/api\/v2\/traces\/([^/]+)$/, async (_r, _u, [id]) => json({ trace: { resourceSpans: toResourceSpans(await traceById(id!)) } })],
    [
      'GET',
      /^\/api\/search\/tags$/,
      async (_r, url) => {
        const scope = url.searchParams.get('scope');
        const names = await store.tagNames(scope ? scopeOf(scope) : undefined, since(url));
        return json({ tagNames: names, metrics: {} });
      },
    ],
    [
      'GET',
      /^\/api\/v2\/search\/tags$/,
      async (_r, url) => {
        const scope = url.searchParams.get('scope');
        const scopes: TagScope[] = scope && scope !== 'all' ? [scopeOf(scope)] : ['resource', 'span', 'intrinsic'];
        const w = since(url);
        return json({ scopes: await Promise.all(scopes.map(async (s) => ({ name: s, tags: await store.tagNames(s, w) }))), metrics: {} });
      },
    ],
    [
      'GET',
      /^\/api\/search\/tag\/([^/]+)\/values$/,
      async (_r, url, [name]) => json({ tagValues: (await store.tagValues(decodeURIComponent(name!), since(url))).map((v) => v.value), metrics: {} }),
    ],
    [
      'GET',
      /^\/api\/v2\/search\/tag\/([^/]+)\/values$/,
      async (_r, url, [name]) => json({ tagValues: await store.tagValues(decodeURIComponent(name!), since(url)), metrics: {} }),
    ],
    ['GET', /^\/metrics$/, async () => ({ type: 'text/plain; version=0.0.4; charset=utf-8', body: deps.metrics() })],
    [
      'GET',
      /^\/$/,
      async () => {
        if (!deps.ui) throw new HttpError(404, 'the web UI is disabled (--no-ui)');
        return { type: 'text/html; charset=utf-8', body: deps.ui() };
      },
    ],
  ];
}

function scopeOf(s: string): TagScope {
  if (s === 'span' || s === 'resource' || s === 'intrinsic') return s;
  throw new HttpError(400, `unknown scope "${s}"`, 'one of span, resource, intrinsic');
}

export async function startServer(deps: ServerDeps, listen: { host: string; port: number }): Promise<RunningServer> {
  const table = routes(deps);
  const server = createServer((req, res) => {
    void handle(table, req, res);
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return {
    url: `http://${host}:${a.port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(table: [string, RegExp, Handler][], req: IncomingMessage, res: ServerResponse): Promise<void> {
  let reply: Reply;
  try {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
    let matched: Handler | undefined;
    let params: string[] = [];
    let pathKnown = false;
    for (const [method, re, h] of table) {
      const m = re.exec(path);
      if (!m) continue;
      pathKnown = true;
      if (method !== req.method && !(method === 'GET' && req.method === 'HEAD')) continue;
      matched = h;
      params = m.slice(1);
      break;
    }
    if (!matched) throw pathKnown ? new HttpError(405, `${req.method} not allowed on ${path}`) : new HttpError(404, `no such endpoint: ${path}`);
    reply = await matched(req, url, params);
  } catch (err) {
    reply = onError(err);
  }
  const body = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body);
  res.writeHead(reply.status ?? 200, { 'content-type': reply.type ?? 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** the one place errors become responses: a message and a hint, never a stack */
function onError(err: unknown): Reply {
  if (err instanceof HttpError) return json({ error: err.message, ...(err.hint ? { hint: err.hint } : {}) }, err.status);
  const message = err instanceof Error ? err.message : String(err);
  return json({ error: `internal error: ${message}` }, 500);
}
