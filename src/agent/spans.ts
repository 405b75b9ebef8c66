// An HTTP exchange becomes an OpenTelemetry span: semantic-convention
// attributes, a low-cardinality name, status rules. Bodies and credentials never
// reach a span: every text taken from the request (path, query, Host, User-Agent)
// goes through ./redact.ts first.
import type { Exchange } from './protocols/protocol.js';
import { routeOf } from './protocols/route.js';
import { redactPathParams, redactQuery, redactText, stripUserinfo } from './redact.js';
import type { Attributes, SpanStatus } from './span.js';

export interface Endpoint {
  ip: string;
  port: number;
}

export interface HttpSpanParts {
  name: string;
  status: SpanStatus;
  statusMessage?: string;
  attributes: Attributes;
}

const MAX_PATH = 2048;
const CACHE_MAX = 20_000;

function splitTarget(target: string): { path: string; query: string } {
  // absolute-form (proxies): http://host/path?q
  let t = target;
  const scheme = /^[a-z][a-z0-9+.-]*:\/\/[^/]*/i.exec(t);
  if (scheme) t = t.slice(scheme[0].length) || '/';
  const q = t.indexOf('?');
  const path = (q < 0 ? t : t.slice(0, q)).slice(0, MAX_PATH);
  const query = q < 0 ? '' : t.slice(q + 1, q + 1 + MAX_PATH);
  return { path: path || '/', query };
}

/**
 * fn with its results remembered: request targets and host headers repeat endlessly (same
 * endpoints, same ids), so each is parsed once; the memory is emptied at CACHE_MAX entries
 */
function memo<T>(fn: (key: string) => T): (key: string) => T {
  const cache = new Map<string, T>();
  return (key) => {
    let v = cache.get(key);
    if (v === undefined) {
      v = fn(key);
      if (cache.size >= CACHE_MAX) cache.clear();
      cache.set(key, v);
    }
    return v;
  };
}

interface HostPort {
  host: string;
  port?: number;
}

const parseHost = memo((h: string): HostPort | null => {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(stripUserinfo(h.trim()));
  return m ? { host: m[1]!.replace(/^\[|\]$/g, ''), port: m[2] ? Number(m[2]) : undefined } : null;
});

function hostHeader(h: string | undefined): HostPort | undefined {
  return h ? (parseHost(h) ?? undefined) : undefined;
}

interface TargetParts {
  path: string;
  route: string;
  safeQuery: string;
}

const targetParts = memo((target: string): TargetParts => {
  const split = splitTarget(target);
  const path = redactPathParams(split.path);
  return { path, route: routeOf(path), safeQuery: split.query ? redactQuery(split.query) : '' };
});

/** a User-Agent as stored: secrets redacted, then cut (cutting first could keep a secret's head) */
const safeUserAgent = memo((ua: string): string => redactText(ua).slice(0, 256));

export function httpSpanParts(ex: Exchange, local: Endpoint, remote: Endpoint): HttpSpanParts {
  const req = ex.request;
  const res = ex.response;
  const { path, route, safeQuery } = targetParts(req.target);
  const a: Attributes = {
    'http.request.method': req.method,
    'url.path': path,
    'http.route': route,
    'network.protocol.name': 'http',
    'network.protocol.version': req.version,
    'network.peer.address': remote.ip,
    'network.peer.port': remote.port,
  };
  if (safeQuery) a['url.query'] = safeQuery;
  const host = hostHeader(req.headers.host);
  if (ex.role === 'server') {
    a['server.address'] = host?.host ?? local.ip;
    a['server.port'] = host?.port ?? local.port;
    const xff = req.headers['x-forwarded-for']?.split(',')[0]?.trim();
    a['client.address'] = xff || remote.ip;
    a['url.scheme'] = 'http';
  } else {
    a['server.address'] = host?.host ?? remote.ip;
    a['server.port'] = host?.port ?? remote.port;
    const h = req.headers.host;
    const authority = h !== undefined ? stripUserinfo(h) : remote.ip.includes(':') ? `[${remote.ip}]:${remote.port}` : `${remote.ip}:${remote.port}`;
    a['url.full'] = `http://${authority}${path}${safeQuery ? `?${safeQuery}` : ''}`;
  }
  const ua = req.headers['user-agent'];
  if (ua) a['user_agent.original'] = safeUserAgent(ua);
  if (req.bodySize > 0) a['http.request.body.size'] = req.bodySize;
  let status: SpanStatus = 'unset';
  let statusMessage: string | undefined;
  if (res) {
    a['http.response.status_code'] = res.status;
    if (res.bodySize > 0) a['http.response.body.size'] = res.bodySize;
    if (res.status >= 500 || (ex.role === 'client' && res.status >= 400)) {
      status = 'error';
      a['error.type'] = String(res.status);
    }
  }
  if (ex.incomplete) {
    status = 'error';
    statusMessage = `no response: ${ex.incomplete}`;
    a['error.type'] = ex.incomplete;
  }
  return { name: `${req.method} ${route}`, status, statusMessage, attributes: a };
}
