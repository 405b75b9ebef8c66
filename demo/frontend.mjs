#!/usr/bin/env node
// Demo frontend: a plain, unmodified Node HTTP service (no dependencies).
//
// It knows nothing about tracing: no OpenTelemetry, no propagation headers.
// Osprey traces it from the kernel.
//
// Usage: node frontend.mjs [PORT]   (or env PORT; env HOST, default 127.0.0.1;
//        env BACKEND_URL, default http://127.0.0.1:8082; env FRONTEND_VERBOSE=1 logs requests)
//
// Routes:
//   GET /                  calls backend /users/<random id>, returns HTML (JSON if Accept asks for it)
//   GET /health            200, no backend call
//   GET /api/users/:id     calls backend /users/:id, returns JSON (backend 404 -> 404)
//   GET /api/slow          calls backend /slow (200 ms)
//   GET /api/error         calls backend /error, returns 502 when the backend fails
//   GET /api/checkout      calls backend GET /users/<id> then POST /orders, sequentially
//   ANY /chain/<anything>  calls backend at the same path and query (?sleep=N is honoured there)
import http from 'node:http';

const port = Number(process.argv[2] ?? process.env.PORT ?? 8081);
const host = process.env.HOST ?? '127.0.0.1';
const backend = new URL(process.env.BACKEND_URL ?? 'http://127.0.0.1:8082');
const verbose = !['', '0', undefined].includes(process.env.FRONTEND_VERBOSE);

// Outgoing calls reuse keep-alive connections (at most 16 to the backend).
const agent = new http.Agent({ keepAlive: true, maxSockets: 16, maxFreeSockets: 16 });
const BACKEND_TIMEOUT_MS = 30_000;

/** One call to the backend: resolves { status, headers, body } (body as a string), rejects on network errors. */
function callBackend(method, path, body) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const headers = { Accept: 'application/json' };
    if (payload) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = String(payload.length);
    }
    const req = http.request(
      {
        protocol: backend.protocol,
        hostname: backend.hostname,
        port: backend.port || 80,
        method,
        path,
        headers,
        agent,
        timeout: BACKEND_TIMEOUT_MS,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`backend timeout after ${BACKEND_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function send(res, status, contentType, body) {
  const buf = Buffer.from(body);
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': String(buf.length) });
  res.end(buf);
}

function sendJson(res, status, obj) {
  send(res, status, 'application/json', JSON.stringify(obj));
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const randomId = () => 1 + Math.floor(Math.random() * 100);

async function handle(req, res) {
  const url = new URL(req.url ?? '/', 'http://frontend');
  const path = url.pathname;
  const method = req.method ?? 'GET';

  if (path.startsWith('/chain/')) {
    const body = await readBody(req);
    const r = await callBackend(method, path + url.search, body.length ? body.toString('utf8') : undefined);
    return sendJson(res, r.status, { service: 'frontend', path, backendStatus: r.status, backend: parseJson(r.body) });
  }
  if (method !== 'GET' && method !== 'HEAD') return sendJson(res, 405, { error: 'method not allowed' });

  if (path === '/health') return sendJson(res, 200, { status: 'ok' });

  if (path === '/') {
    const r = await callBackend('GET', `/users/${randomId()}`);
    if (r.status !== 200) return sendJson(res, 502, { error: 'backend failed', backendStatus: r.status });
    const user = parseJson(r.body);
    if ((req.headers.accept ?? '').includes('application/json')) return sendJson(res, 200, { featured: user });
    const html =
      '<!doctype html><html><head><title>Osprey demo shop</title></head><body>' +
      `<h1>Osprey demo shop</h1><p>Featured customer: ${escapeHtml(user?.name)} (#${escapeHtml(user?.id)})</p>` +
      '<ul><li><a href="/api/users/42">/api/users/42</a></li><li><a href="/api/checkout">/api/checkout</a></li>' +
      '<li><a href="/api/slow">/api/slow</a></li><li><a href="/api/error">/api/error</a></li></ul></body></html>';
    return send(res, 200, 'text/html; charset=utf-8', html);
  }

  const userMatch = /^\/api\/users\/([^/]+)$/.exec(path);
  if (userMatch) {
    const id = userMatch[1]; // already percent-encoded by the URL parser
    const r = await callBackend('GET', `/users/${id}`);
    if (r.status === 200) return sendJson(res, 200, { user: parseJson(r.body) });
    if (r.status === 404) return sendJson(res, 404, { error: 'no such user', id });
    return sendJson(res, 502, { error: 'backend failed', backendStatus: r.status });
  }

  if (path === '/api/slow') {
    const r = await callBackend('GET', '/slow');
    if (r.status !== 200) return sendJson(res, 502, { error: 'backend failed', backendStatus: r.status });
    return sendJson(res, 200, { slow: parseJson(r.body) });
  }

  if (path === '/api/error') {
    const r = await callBackend('GET', '/error');
    if (r.status >= 500) return sendJson(res, 502, { error: 'backend failed', backendStatus: r.status });
    return sendJson(res, r.status, parseJson(r.body));
  }

  if (path === '/api/checkout') {
    const userId = randomId();
    const u = await callBackend('GET', `/users/${userId}`);
    if (u.status !== 200) return sendJson(res, 502, { error: 'user lookup failed', backendStatus: u.status });
    const o = await callBackend('POST', '/orders', { userId, items: [{ sku: 'osprey-mug', qty: 1 }] });
    if (o.status !== 201) return sendJson(res, 502, { error: 'order failed', backendStatus: o.status });
    return sendJson(res, 200, { user: parseJson(u.body), order: parseJson(o.body) });
  }

  return sendJson(res, 404, { error: 'not found', path });
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const server = http.createServer((req, res) => {
  const started = process.hrtime.bigint();
  if (verbose) {
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      process.stderr.write(`frontend: ${req.method} ${req.url} ${res.statusCode} ${ms.toFixed(1)}ms\n`);
    });
  }
  handle(req, res).catch((err) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendJson(res, 502, { error: 'backend unreachable', detail: String(err?.message ?? err) });
  });
});
// Outlive nginx's upstream keepalive_timeout (60 s) so nginx never reuses a connection we just closed.
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;

server.on('error', (err) => {
  process.stderr.write(`frontend: ${err.message}\n`);
  process.exit(1);
});
server.listen(port, host, () => {
  process.stderr.write(`frontend: listening on http://${host}:${port}, backend ${backend.origin}\n`);
});

function shutdown() {
  server.close();
  server.closeAllConnections();
  agent.destroy();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
