// The HTTP listener: osprey's own API (span JSON), Tempo's query API as Grafana
// calls it (trace by id also in protobuf: tempo-proto.ts), the OTLP/HTTP receiver
// (otlp-receiver.ts), Prometheus exposition. Binds 127.0.0.1 unless told otherwise.
// Bad input is answered, never thrown: unknown path 404, wrong method 405 with Allow,
// a parameter that does not parse 400, TraceQL metrics (not built yet) 400; each body
// is JSON {"error","hint"?} and each refusal is counted (osprey_http_bad_requests_total).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { spanToJson, type Span } from '../model/index.js';
import { toResourceSpans } from '../export/otlp-json.js';
import { exposition } from '../metrics/prometheus.js';
import { metricsRoutes } from './metrics-routes.js';
import type { SpanStore } from '../store/index.js';
import { MAX_LIMIT, bucketStart as rollupWindowStart } from '../store/window.js';
import { parseTraceQL, TraceQLError, type Query } from '../traceql/index.js';
import { BAD_REQUEST_REASONS, HttpError, type BadRequestReason } from './errors.js';
import { uiApiRoutes } from './ui-api.js';
import { UI_PATHS, UiFiles } from './ui.js';
import { choiceOf, clip, countOf, legacySearch, scopeOf, storeScope, TEMPO_SCOPES, windowOf, withLegacy } from './params.js';
import { OtlpReceiver, type OtlpReceiverOptions } from './otlp-receiver.js';
import { encodeTrace, encodeTraceByIdResponse, wantsProtobuf } from './tempo-proto.js';
import { matchedAttributes, tagValuesFor } from './tempo-fields.js';

export { parseTime } from './params.js';

export interface ServerDeps {
  /** undefined: export-only mode (`osprey up --no-store`), span queries answer 404 with a hint */
  store?: SpanStore;
  /** osprey status: what is attached, rates, every counter */
  status(): Record<string, unknown>;
  /** Prometheus text exposition */
  metrics(): string;
  /** HTML of the UI at / when the built UI is missing (undefined: --no-ui) */
  ui?: () => string;
  /** the built web UI (web/dist), served at / and every non-API path; needs `ui` set */
  uiDir?: string;
  /** unix ns since when the agent has been capturing: rates are per second observed */
  observingSinceNs?: bigint;
  /**
   * where spans received over OTLP (POST /v1/traces) go: in `osprey up` the agent's sink (store,
   * RED metrics, export). Default: the store; with neither, /v1/traces answers 503.
   */
  ingest?: (spans: Span[]) => void;
  /** OTLP receiver limits (otlp-receiver.ts) */
  otlp?: Pick<OtlpReceiverOptions, 'maxBodyBytes' | 'maxInFlightBytes'>;
}

export interface RunningServer {
  url: string;
  server: Server;
  /** requests refused, by reason, and requests that failed inside osprey */
  counters: ServerCounters;
  /** the OTLP receiver behind /v1/*: the OTLP/gRPC receiver (otlp-grpc.ts) hands it its messages too */
  otlp: OtlpReceiver;
  close(): Promise<void>;
}

export interface ServerCounters {
  badRequests: Record<BadRequestReason, number>;
  internalErrors: number;
}

type Handler = (req: IncomingMessage, url: URL, params: string[]) => Promise<Reply>;
interface Reply {
  status?: number;
  type?: string;
  headers?: Record<string, string>;
  /** a string or bytes are sent as they are, anything else as JSON */
  body: unknown;
}
type Route = [method: string, path: RegExp, handler: Handler];

export const TEMPO_COMPAT_VERSION = '2.7.0';

function json(body: unknown, status = 200): Reply {
  return { status, type: 'application/json', body };
}

function query(q: string | null): Query {
  try {
    return parseTraceQL(q && q.trim() ? q : '{}');
  } catch (err) {
    if (err instanceof TraceQLError) throw traceQLError(err);
    throw err;
  }
}

function traceQLError(err: TraceQLError): HttpError {
  return new HttpError(400, `invalid TraceQL: ${err.message}`, 'see https://grafana.com/docs/tempo/latest/traceql/', { cause: err });
}

const TRACE_ID = /^[0-9a-fA-F]{1,32}$/;
const TRACE_ID_HINT = 'a trace id is up to 32 hex characters (0-9, a-f)';

/** a path segment, %-decoded; a bad escape is a 400 */
function segment(raw: string, what: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, `malformed URL encoding in the ${what} "${clip(raw)}"`, 'escape bytes as %XX of UTF-8', { reason: 'bad_encoding' });
  }
}

/** the store of export-only mode: every query is a 404 that says where the spans went */
function noStore(): SpanStore {
  const refuse = () =>
    Promise.reject(
      new HttpError(404, 'this osprey keeps no spans: it runs export-only (osprey up --no-store)', 'query the backend the spans are exported to (Tempo), or run osprey up without --no-store'),
    );
  return new Proxy({} as SpanStore, { get: () => refuse });
}

export function routes(deps: ServerDeps, counters: ServerCounters = newCounters(), otlp = newReceiver(deps)): Route[] {
  const store = deps.store ?? noStore();
  const uiFiles = deps.ui && deps.uiDir ? new UiFiles(deps.uiDir) : undefined;
  const traceById = async (raw: string, url: URL) => {
    const id = segment(raw, 'trace id');
    if (!TRACE_ID.test(id)) {
      throw new HttpError(400, `invalid trace id "${clip(id)}"${id.length > 32 && /^[0-9a-fA-F]+$/.test(id) ? ` (${id.length} hex characters, at most 32)` : ''}`, TRACE_ID_HINT);
    }
    windowOf(url.searchParams); // Grafana sends start/end: checked, the id alone finds the trace
    const spans = await store.trace(id.toLowerCase().padStart(32, '0'));
    if (!spans.length) throw new HttpError(404, `trace ${id} not found`);
    return spans;
  };
  const tagValues = async (url: URL, raw: string) => {
    const name = segment(raw, 'tag name');
    const p = url.searchParams;
    return store.tagValues(name, { ...windowOf(p), limit: countOf(p, 'limit', 1000, 100_000) });
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
    [
      'GET',
      /^\/api\/osprey\/status$/,
      async () => {
        const s = deps.status();
        const c = (s.counters ?? {}) as Record<string, number>;
        return json({ ...s, counters: { ...c, ...statusCounters(counters), ...otlp.status() } });
      },
    ],
    [
      'GET',
      /^\/api\/osprey\/spans$/,
      async (_req, url) => {
        const p = url.searchParams;
        const order = choiceOf(p, 'order', ['start', 'duration'], 'start') === 'duration' ? 'duration_desc' : 'start_desc';
        const q = query(p.get('q'));
        const spans = await store.search({ query: q, ...windowOf(p), limit: countOf(p, 'limit', 100, MAX_LIMIT), order });
        return json({ spans: spans.map(spanToJson) });
      },
    ],
    [
      'GET',
      /^\/api\/osprey\/count$/,
      async (_req, url) => {
        const p = url.searchParams;
        return json({ count: await store.count({ query: query(p.get('q')), ...windowOf(p) }) });
      },
    ],
    ['GET', /^\/api\/osprey\/traces\/([^/]+)$/, async (_r, url, [id]) => json({ spans: (await traceById(id!, url)).map(spanToJson) })],
    [
      'GET',
      /^\/api\/osprey\/services$/,
      async (_r, url) => {
        const w = windowOf(url.searchParams);
        const from = w.startNs ?? BigInt(Date.now() - 3600_000) * 1_000_000n;
        const to = w.endNs ?? BigInt(Date.now()) * 1_000_000n;
        if (from > to) throw new HttpError(400, 'start is after end', 'give start <= end (end defaults to now)');
        const services = await store.services(from, to);
        // a window reaching back before capture started would dilute rates
        // (services() counts whole rollup buckets: the window really starts at the bucket of `from`)
        const start = rollupWindowStart(from);
        const observed = deps.observingSinceNs && deps.observingSinceNs > start ? deps.observingSinceNs : start;
        const seconds = Number(to - observed) / 1e9;
        for (const s of services) s.ratePerSec = seconds > 0 ? s.requestCount / seconds : 0;
        return json({ services });
      },
    ],
    [
      'GET',
      /^\/api\/osprey\/graph$/,
      async (_r, url) => {
        const w = windowOf(url.searchParams);
        return json({ edges: await store.edges(w.startNs ?? BigInt(Date.now() - 3600_000) * 1_000_000n, w.endNs) });
      },
    ],
    [
      'GET',
      /^\/api\/search$/,
      async (_r, url) => {
        const p = url.searchParams;
        const legacy = legacySearch(p);
        const q = withLegacy(query(p.get('q')), legacy);
        const traces = await store.searchTraces({
          query: q,
          ...windowOf(p),
          limit: countOf(p, 'limit', 20, MAX_LIMIT),
          spansPerSpanSet: countOf(p, 'spss', 3, MAX_LIMIT),
        });
        return json({
          traces: traces.map((t) => {
            const spanSet = {
              spans: t.spanSet.spans.map((s) => ({
                spanID: s.spanId,
                name: s.name,
                startTimeUnixNano: s.startTimeUnixNano.toString(),
                durationNanos: String(s.durationNano),
                attributes: matchedAttributes(s, q),
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
    // protobuf when asked for (Grafana), JSON otherwise; an unknown trace is a 404 either way,
    // which is what makes Grafana fall back from v2 to v1 and then say "trace not found"
    [
      'GET',
      /^\/api\/traces\/([^/]+)$/,
      async (req, url, [id]) => {
        const spans = await traceById(id!, url);
        if (wantsProtobuf(req.headers.accept)) return { type: 'application/protobuf', body: encodeTrace(spans) };
        return json({ batches: toResourceSpans(spans) });
      },
    ],
    [
      'GET',
      /^\/api\/v2\/traces\/([^/]+)$/,
      async (req, url, [id]) => {
        const spans = await traceById(id!, url);
        if (wantsProtobuf(req.headers.accept)) return { type: 'application/protobuf', body: encodeTraceByIdResponse(spans) };
        return json({ trace: { resourceSpans: toResourceSpans(spans) } });
      },
    ],
    [
      'GET',
      /^\/api\/search\/tags$/,
      async (_r, url) => {
        const p = url.searchParams;
        const scope = scopeOf(p);
        const opts = { ...windowOf(p), limit: countOf(p, 'limit', 1000, 100_000) };
        const names = scope === undefined ? await store.tagNames(undefined, opts) : storeScope(scope) ? await store.tagNames(storeScope(scope), opts) : [];
        return json({ tagNames: names, metrics: {} });
      },
    ],
    [
      'GET',
      /^\/api\/v2\/search\/tags$/,
      async (_r, url) => {
        const p = url.searchParams;
        const scope = scopeOf(p);
        const opts = { ...windowOf(p), limit: countOf(p, 'limit', 1000, 100_000) };
        const scopes = scope ? [scope] : TEMPO_SCOPES.filter((s) => storeScope(s));
        return json({
          scopes: await Promise.all(scopes.map(async (s) => ({ name: s, tags: storeScope(s) ? await store.tagNames(storeScope(s), opts) : [] }))),
          metrics: {},
        });
      },
    ],
    ['GET', /^\/api\/search\/tag\/([^/]+)\/values$/, async (_r, url, [name]) => json({ tagValues: (await tagValues(url, name!)).map((v) => v.value), metrics: {} })],
    // v2 narrows the values by the TraceQL filter `q`; one that does not parse (an editor's
    // half-typed query) narrows nothing, as in Tempo, and the answer says so in a header
    [
      'GET',
      /^\/api\/v2\/search\/tag\/([^/]+)\/values$/,
      async (_r, url, [raw]) => {
        const p = url.searchParams;
        const name = segment(raw!, 'tag name');
        const r = await tagValuesFor(store, name, p.get('q'), { ...windowOf(p), limit: countOf(p, 'limit', 1000, 100_000) });
        return { ...json({ tagValues: r.values, metrics: {} }), ...(r.ignored ? { headers: { 'x-osprey-filter-ignored': headerText(r.ignored) } } : {}) };
      },
    ],
    [
      'GET',
      /^\/metrics$/,
      async () => ({ type: 'text/plain; version=0.0.4; charset=utf-8', body: deps.metrics() + exposition([...serverFamilies(counters), ...otlp.families()]) }),
    ],
    ...uiApiRoutes(deps.store),
    [
      'GET',
      UI_PATHS,
      async (_r, url) => {
        if (!deps.ui) throw new HttpError(404, 'the web UI is disabled (--no-ui)', 'restart osprey up without --no-ui');
        if (!uiFiles) {
          if (url.pathname !== '/') throw new HttpError(404, `no such endpoint: ${clip(url.pathname)}`, 'the web UI is not built: run make build', { reason: 'unknown_path' });
          return { type: 'text/html; charset=utf-8', body: deps.ui() };
        }
        return uiFiles.serve(url.pathname);
      },
    ],
    // the OTLP/HTTP receiver: its answers (OTLP's, not the {"error"} of this API) come from otlp-receiver.ts
    ['POST', /^\/v1\/traces$/, async (req) => otlp.handle('traces', req)],
    ['POST', /^\/v1\/metrics$/, async (req) => otlp.handle('metrics', req)],
    ['POST', /^\/v1\/logs$/, async (req) => otlp.handle('logs', req)],
    ...(metricsRoutes(store) as Route[]),
  ];
}

function newReceiver(deps: ServerDeps): OtlpReceiver {
  const store = deps.store;
  return new OtlpReceiver({ ingest: deps.ingest ?? (store ? (spans) => store.append(spans) : undefined), ...deps.otlp });
}

/** a header value: printable ASCII only */
function headerText(s: string): string {
  return clip(s.replace(/[^\x20-\x7e]/g, '?'), 200);
}

export function newCounters(): ServerCounters {
  return { badRequests: Object.fromEntries(BAD_REQUEST_REASONS.map((r) => [r, 0])) as Record<BadRequestReason, number>, internalErrors: 0 };
}

function statusCounters(c: ServerCounters): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of BAD_REQUEST_REASONS) out[`http_bad_requests_${r}`] = c.badRequests[r];
  out.http_internal_errors = c.internalErrors;
  return out;
}

function serverFamilies(c: ServerCounters) {
  return [
    {
      name: 'osprey_http_bad_requests_total',
      help: 'HTTP requests refused: unknown path, wrong method, bad parameter or encoding, not built yet, too large, malformed.',
      type: 'counter' as const,
      samples: BAD_REQUEST_REASONS.map((reason) => ({ labels: { reason }, value: c.badRequests[reason] })),
    },
    { name: 'osprey_http_internal_errors_total', help: 'HTTP requests that failed inside osprey (500).', type: 'counter' as const, samples: [{ value: c.internalErrors }] },
  ];
}

export async function startServer(deps: ServerDeps, listen: { host: string; port: number }): Promise<RunningServer> {
  const counters = newCounters();
  const otlp = newReceiver(deps);
  const table = routes(deps, counters, otlp);
  const server = createServer((req, res) => {
    void handle(table, counters, req, res);
  });
  server.keepAliveTimeout = 5000;
  // what node's HTTP parser refuses before any handler runs: a head over its size limit, bytes
  // that are not HTTP. Answered like every other error, and counted.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      socket.end('HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    const reason: BadRequestReason = tooLarge ? 'too_large' : 'malformed_http';
    counters.badRequests[reason]++;
    const body = JSON.stringify(
      tooLarge
        ? { error: 'request line and headers too large (at most 16 KB)', hint: 'shorten the query string' }
        : { error: `malformed HTTP request (${err.code ?? err.message})` },
    );
    socket.end(
      `HTTP/1.1 ${tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
  await new Promise<void>((resolve, reject) => {
    const onListenError = (err: NodeJS.ErrnoException) => reject(listenError(err, listen));
    server.once('error', onListenError);
    server.listen(listen.port, listen.host, () => {
      server.off('error', onListenError);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return {
    url: `http://${host}:${a.port}`,
    server,
    counters,
    otlp,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** why the listener could not open, in words, with the errno code kept for callers */
function listenError(err: NodeJS.ErrnoException, listen: { host: string; port: number }): Error {
  const where = `${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}`;
  const say = (message: string, hint: string) => Object.assign(new Error(message, { cause: err }), { code: err.code, hint });
  switch (err.code) {
    case 'EADDRNOTAVAIL':
      return say(`cannot listen on ${where}: ${listen.host} is not an address of this machine`, 'use a local address, e.g. --listen 127.0.0.1:7070 or --listen 0.0.0.0:7070');
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
      return say(`cannot listen on ${where}: host "${listen.host}" does not resolve`, 'give an IP address or a resolvable host name, e.g. --listen 127.0.0.1:7070');
    case 'EACCES':
      return say(`cannot listen on ${where}: permission denied`, 'ports below 1024 need root or CAP_NET_BIND_SERVICE; pick a higher port');
    default:
      return err;
  }
}

async function handle(table: Route[], counters: ServerCounters, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let reply: Reply;
  try {
    const { path, url } = target(req.url ?? '/');
    const candidates = table.filter(([, re]) => re.test(path));
    if (!candidates.length) throw new HttpError(404, `no such endpoint: ${clip(path)}`, 'see README.md, "Using it", for the API', { reason: 'unknown_path' });
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const hit = candidates.find(([m]) => m === method);
    if (!hit) {
      const allowed = [...new Set(candidates.flatMap(([m]) => (m === 'GET' ? ['GET', 'HEAD'] : [m])))];
      reply = onError(new HttpError(405, `${req.method} not allowed on ${path}`, `use ${allowed.join(' or ')}`), counters);
      reply.headers = { allow: allowed.join(', ') };
    } else {
      url.pathname = path;
      reply = await hit[2](req, url, hit[1].exec(path)!.slice(1));
    }
  } catch (err) {
    reply = onError(err, counters);
  }
  const body = typeof reply.body === 'string' || reply.body instanceof Uint8Array ? reply.body : JSON.stringify(reply.body);
  res.writeHead(reply.status ?? 200, { ...reply.headers, 'content-type': reply.type ?? 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/**
 * The request target: its path (still %-encoded, with trailing slashes dropped) and the
 * query string, whose %-escapes must decode. `//x` stays a path, never a host.
 */
function target(raw: string): { path: string; url: URL } {
  let pathPart: string;
  let search: string;
  if (raw.startsWith('/')) {
    const q = raw.search(/[?#]/);
    pathPart = q < 0 ? raw : raw.slice(0, q);
    search = q < 0 || raw[q] === '#' ? '' : raw.slice(q + 1).split('#')[0]!;
  } else {
    // absolute-form (GET http://host/path), as a proxy would send it
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw new HttpError(400, `malformed request target "${clip(raw)}"`, 'a path starting with /', { reason: 'malformed_http' });
    }
    pathPart = u.pathname;
    search = u.search.slice(1);
  }
  for (const part of search.split('&')) {
    try {
      decodeURIComponent(part.replace(/\+/g, ' '));
    } catch {
      throw new HttpError(400, `malformed URL encoding in the query string: "${clip(part)}"`, 'escape bytes as %XX of UTF-8 (encodeURIComponent)', { reason: 'bad_encoding' });
    }
  }
  const path = pathPart.length > 1 ? pathPart.replace(/\/+$/, '') || '/' : pathPart;
  const url = new URL('http://localhost/');
  url.search = search;
  return { path, url };
}

/** the one place errors become responses: a message and a hint, never a stack */
function onError(err: unknown, counters: ServerCounters): Reply {
  if (err instanceof TraceQLError) err = traceQLError(err); // e.g. a regular expression the store cannot compile
  if (err instanceof HttpError) {
    if (err.reason) counters.badRequests[err.reason]++;
    return json({ error: err.message, ...(err.hint ? { hint: err.hint } : {}) }, err.status);
  }
  counters.internalErrors++;
  const message = err instanceof Error ? err.message : String(err);
  return json({ error: `internal error: ${message}` }, 500);
}
