// An HTTP exchange becomes an OpenTelemetry span: semantic-convention
// attributes, a low-cardinality name, status rules. Bodies and credentials never
// reach a span: every text taken from the request (path, query, Host, User-Agent)
// goes through ./redact.ts first.
import type { Exchange } from './protocols/protocol.js';
import { routeOf } from './protocols/route.js';
import { redactPathParams, redactQuery, redactText, stripUserinfo } from './redact.js';
import type { Span } from '../model/index.js';

export interface Endpoint {
  ip: string;
  port: number;
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

/**
 * Fills `span` with an HTTP exchange's name, status and attributes (semantic conventions),
 * straight into its fields: no attribute object per span.
 */
export function fillHttpSpan(span: Span, ex: Exchange, local: Endpoint, remote: Endpoint): void {
  const req = ex.request;
  const res = ex.response;
  const { path, route, safeQuery } = targetParts(req.target);
  span.name = `${req.method} ${route}`;
  span.kind = ex.role;
  span.method = req.method;
  span.path = path;
  span.route = route;
  span.protocolName = 'http';
  span.protocolVersion = req.version;
  span.peerAddress = remote.ip;
  span.peerPort = remote.port;
  if (safeQuery) span.query = safeQuery;
  const host = hostHeader(req.headers.host);
  if (ex.role === 'server') {
    span.serverAddress = host?.host ?? local.ip;
    span.serverPort = host?.port ?? local.port;
    const xff = req.headers['x-forwarded-for']?.split(',')[0]?.trim();
    span.clientAddress = xff || remote.ip;
    span.scheme = 'http';
  } else {
    span.serverAddress = host?.host ?? remote.ip;
    span.serverPort = host?.port ?? remote.port;
    const h = req.headers.host;
    const authority = h !== undefined ? stripUserinfo(h) : remote.ip.includes(':') ? `[${remote.ip}]:${remote.port}` : `${remote.ip}:${remote.port}`;
    span.urlFull = `http://${authority}${path}${safeQuery ? `?${safeQuery}` : ''}`;
  }
  const ua = req.headers['user-agent'];
  if (ua) span.userAgent = safeUserAgent(ua);
  if (req.bodySize > 0) span.requestBodySize = req.bodySize;
  if (res) {
    span.statusCode = res.status;
    if (res.bodySize > 0) span.responseBodySize = res.bodySize;
    if (res.status >= 500 || (ex.role === 'client' && res.status >= 400)) {
      span.status = 'error';
      span.errorType = String(res.status);
    }
  }
  if (ex.incomplete) {
    span.status = 'error';
    span.statusMessage = `no response: ${ex.incomplete}`;
    span.errorType = ex.incomplete;
  }
}
