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

export interface HostPort {
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

/** what a span takes from a request head */
export interface HeadFields {
  method: string;
  target: string;
  version: string;
  headers: Record<string, string>;
}

/**
 * Fills `span` with what an HTTP request head gives (semantic conventions, name), straight
 * into its fields: no attribute object per span.
 */
export function fillHttpRequest(span: Span, role: 'server' | 'client', head: HeadFields, local: Endpoint, remote: Endpoint, tls = false): void {
  const h = head.headers;
  fillRequest(span, role, head.method, head.target, head.version, h.host, h['x-forwarded-for'], h['user-agent'], local, remote, tls);
}

/**
 * fillHttpRequest from the head's fields one by one (what a span takes of them: a summarised
 * head is read into just these, src/agent/protocols/http1-head.ts). The request fields it
 * sets are the ones copyRequestFields copies.
 */
export function fillRequest(
  span: Span,
  role: 'server' | 'client',
  method: string,
  target: string,
  version: string,
  hostValue: string | undefined,
  forwardedFor: string | undefined,
  ua: string | undefined,
  local: Endpoint,
  remote: Endpoint,
  tls: boolean,
): void {
  fillRequestParts(span, role, requestParts(method, target, version, hostValue, forwardedFor, ua), local, remote, tls);
}

/**
 * What a request head gives a span whatever the connection it came on: its strings made (and
 * redacted) once, for every span of every connection that sends the same head
 * (src/agent/head-memo.ts). fillRequestParts adds what the connection gives.
 */
export interface RequestParts {
  readonly name: string;
  readonly method: string;
  readonly path: string;
  readonly route: string;
  /** the query as stored (redacted), '' for none */
  readonly query: string;
  readonly version: string;
  /** the Host header's host and port, undefined without a usable one */
  readonly host: HostPort | undefined;
  /** the Host header without userinfo (url.full's authority), undefined without a Host header */
  readonly authority: string | undefined;
  /** the first X-Forwarded-For address, '' for none */
  readonly forwardedFor: string;
  /** the User-Agent as stored, undefined for none */
  readonly userAgent: string | undefined;
  /** url.full of a client request with a Host header, by scheme, made at first use */
  urlHttp: string | undefined;
  urlHttps: string | undefined;
}

export function requestParts(method: string, target: string, version: string, hostValue: string | undefined, forwardedFor: string | undefined, ua: string | undefined): RequestParts {
  const { path, route, safeQuery } = targetParts(target);
  return {
    name: `${method} ${route}`,
    method,
    path,
    route,
    query: safeQuery,
    version,
    host: hostHeader(hostValue),
    authority: hostValue !== undefined ? stripUserinfo(hostValue) : undefined,
    forwardedFor: forwardedFor?.split(',')[0]?.trim() ?? '',
    userAgent: ua ? safeUserAgent(ua) : undefined,
    urlHttp: undefined,
    urlHttps: undefined,
  };
}

const urlFull = (tls: boolean, authority: string, p: RequestParts): string => `${tls ? 'https' : 'http'}://${authority}${p.path}${p.query ? `?${p.query}` : ''}`;

/** a span's request fields from a head's parts and the connection it came on */
export function fillRequestParts(span: Span, role: 'server' | 'client', p: RequestParts, local: Endpoint, remote: Endpoint, tls: boolean): void {
  span.name = p.name;
  span.kind = role;
  span.method = p.method;
  span.path = p.path;
  span.route = p.route;
  span.protocolName = 'http';
  span.protocolVersion = p.version;
  span.peerAddress = remote.ip;
  span.peerPort = remote.port;
  if (p.query) span.query = p.query;
  const host = p.host;
  if (role === 'server') {
    span.serverAddress = host?.host ?? local.ip;
    span.serverPort = host?.port ?? local.port;
    span.clientAddress = p.forwardedFor || remote.ip;
    span.scheme = tls ? 'https' : 'http';
  } else {
    // HTTPS seen through TLS uprobes: the scheme is the only difference (semconv url.scheme)
    if (tls) span.scheme = 'https';
    span.serverAddress = host?.host ?? remote.ip;
    span.serverPort = host?.port ?? remote.port;
    const a = p.authority;
    span.urlFull =
      a === undefined
        ? urlFull(tls, remote.ip.includes(':') ? `[${remote.ip}]:${remote.port}` : `${remote.ip}:${remote.port}`, p)
        : tls
          ? (p.urlHttps ??= urlFull(true, a, p))
          : (p.urlHttp ??= urlFull(false, a, p));
  }
  if (p.userAgent !== undefined) span.userAgent = p.userAgent;
}

/** the fields fillRequest sets, from a span it filled to a new one (same head, same connection) */
export function copyRequestFields(from: Span, to: Span): void {
  to.name = from.name;
  to.kind = from.kind;
  to.method = from.method;
  to.path = from.path;
  to.route = from.route;
  to.protocolName = from.protocolName;
  to.protocolVersion = from.protocolVersion;
  to.peerAddress = from.peerAddress;
  to.peerPort = from.peerPort;
  to.query = from.query;
  to.serverAddress = from.serverAddress;
  to.serverPort = from.serverPort;
  to.clientAddress = from.clientAddress;
  to.scheme = from.scheme;
  to.urlFull = from.urlFull;
  to.userAgent = from.userAgent;
}

/** the request body's size, when it had one */
export function fillRequestBody(span: Span, bodySize: number): void {
  if (bodySize > 0) span.requestBodySize = bodySize;
}

/** the response's status and size; server 5xx and client 4xx/5xx are errors */
export function fillHttpResponse(span: Span, status: number, bodySize: number): void {
  span.statusCode = status;
  if (bodySize > 0) span.responseBodySize = bodySize;
  if (status >= 500 || (span.kind === 'client' && status >= 400)) {
    span.status = 'error';
    span.errorType = String(status);
  }
}

/** an exchange that ended early, with no response or one cut short: why ('eof', 'reset', ...) */
export function fillIncomplete(span: Span, reason: string, hadResponse = false): void {
  span.status = 'error';
  span.statusMessage = hadResponse ? `response cut short: ${reason}` : `no response: ${reason}`;
  span.errorType = reason;
}

/** gRPC codes that are the server's own failure (OpenTelemetry semantic conventions) */
const GRPC_SERVER_ERRORS = new Set([2, 4, 12, 13, 14, 15]);

/** gRPC over HTTP/2: rpc.* attributes, the name `pkg.Service/Method`, status from grpc-status */
function fillGrpc(span: Span, ex: Exchange): void {
  const g = ex.grpc!;
  span.name = `${g.service}/${g.method}`;
  span.setAttr('rpc.system', 'grpc');
  span.setAttr('rpc.service', g.service);
  span.setAttr('rpc.method', g.method);
  if (g.status === undefined) return;
  span.setAttr('rpc.grpc.status_code', g.status);
  if (g.status !== 0 && (span.kind === 'client' || GRPC_SERVER_ERRORS.has(g.status))) {
    span.status = 'error';
    span.errorType = String(g.status);
    if (g.message) span.statusMessage = redactText(g.message).slice(0, 256);
  }
}

/** Fills `span` with a whole exchange the parser reported. */
export function fillHttpSpan(span: Span, ex: Exchange, local: Endpoint, remote: Endpoint, tls = false): void {
  fillHttpRequest(span, ex.role, ex.request, local, remote, tls);
  fillRequestBody(span, ex.request.bodySize);
  if (ex.response) fillHttpResponse(span, ex.response.status, ex.response.bodySize);
  if (ex.protocol === 'http2') {
    const scheme = ex.request.headers[':scheme'];
    if (ex.role === 'server' && scheme) span.scheme = scheme === 'https' ? 'https' : 'http';
    if (ex.grpc) fillGrpc(span, ex);
  }
  if (ex.incomplete) fillIncomplete(span, ex.incomplete, ex.response !== undefined);
}
