// HTTPS spans from real, unmodified peers through TLS uprobes (src/agent/tls, bpf/lib/tls.h):
// curl -> nginx (libssl.so.3), Python ssl server and client (libssl.so.3, SSL_read_ex), Node
// https (OpenSSL inside /usr/bin/node, memory BIOs), at concurrency 32 (Python, Node), with the files attached
// and released as processes come and go.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SpanCollector } from './agent-helpers.js';
import { checkPairs, despiteDrops, type Expect, waitPairs } from './peer-matrix.js';
import { freePort, run, sleep, startServer, waitFor, type Proc } from './helpers.js';
import type { Span } from '../src/model/index.js';

const SCAN_MS = 300;

/** Python's ssl module serving HTTPS (test/fixtures/tls_server.py: argv port, cert, key) */
const PY_SERVER = resolve('test/fixtures/tls_server.py');

/** GETs each path on one keep-alive connection; argv: port, traceparent ('' for none), paths... */
const PY_CLIENT = `
import http.client, ssl, sys
port, tp, paths = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
c = http.client.HTTPSConnection('127.0.0.1', port, context=ctx)
for p in paths:
    c.request('GET', p, headers={'traceparent': tp} if tp else {})
    r = c.getresponse(); r.read(); print(r.status)
`;

/** GETs the paths, CONC at once, each on its own connection; argv: port, conc, paths... */
const PY_CLIENT_PAR = `
import http.client, ssl, sys
from concurrent.futures import ThreadPoolExecutor
port, conc, paths = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def get(p):
    c = http.client.HTTPSConnection('127.0.0.1', port, context=ctx)
    c.request('GET', p); r = c.getresponse(); r.read(); c.close(); return r.status
with ThreadPoolExecutor(conc) as ex:
    print('\\n'.join(str(s) for s in ex.map(get, paths)))
`;

const NODE_SERVER = `
const https = require('https');
const [port, cert, key] = process.argv.slice(1);
https.createServer({ cert: require('fs').readFileSync(cert), key: require('fs').readFileSync(key) }, (req, res) => {
  let n = 0;
  req.on('data', (d) => (n += d.length));
  req.on('end', () => {
    if (req.url.startsWith('/missing')) { res.statusCode = 404; res.end('no'); return; }
    if (req.url.startsWith('/fail')) { res.statusCode = 503; res.end('down'); return; }
    setTimeout(() => res.end('node ' + req.method + ' ' + req.url + ' ' + n), Math.random() * 5);
  });
}).listen(Number(port), '127.0.0.1');
`;

/** argv: port, connections, rounds, tag: every round sends one request per connection, in parallel */
const NODE_CLIENT = `
const https = require('https');
const [port, conns, rounds, tag] = process.argv.slice(1);
const agent = new https.Agent({ keepAlive: true, maxSockets: Number(conns), rejectUnauthorized: false });
const one = (path, method, body) => new Promise((ok, bad) => {
  const r = https.request({ host: '127.0.0.1', port: Number(port), path, method, agent, headers: body ? { 'content-length': body.length } : {} }, (res) => {
    res.resume(); res.on('end', () => ok(res.statusCode));
  });
  r.on('error', bad); r.end(body);
});
(async () => {
  const out = [];
  for (let round = 0; round < Number(rounds); round++) {
    const batch = [];
    for (let i = 0; i < Number(conns); i++) {
      const kind = (round * 8 + i) % 4;
      const path = (kind === 2 ? '/missing/' : kind === 3 ? '/fail/' : '/ok/') + tag + '-' + round + '-' + i;
      batch.push(one(path, kind === 1 ? 'POST' : 'GET', kind === 1 ? 'x'.repeat(100 + i) : undefined).then((s) => out.push(path + ' ' + s)));
    }
    await Promise.all(batch);
  }
  console.log(out.join('\\n'));
  agent.destroy();
})().catch((e) => { console.error(e); process.exit(1); });
`;

function nginxConf(prefix: string, port: number, cert: string, key: string): string {
  return `daemon off;
worker_processes 1;
user root;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${prefix}/tmp;
  proxy_temp_path ${prefix}/tmp;
  fastcgi_temp_path ${prefix}/tmp;
  uwsgi_temp_path ${prefix}/tmp;
  scgi_temp_path ${prefix}/tmp;
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    location /missing/ { return 404 "no\\n"; }
    location / { return 200 "nginx $uri\\n"; }
  }
}
`;
}

/** the one server span and one client span of a path, or why not */
function pair(col: SpanCollector, path: string): { server: Span; client: Span } | string {
  const spans = col.byPath(path);
  const server = spans.filter((s) => s.kind === 'server');
  const client = spans.filter((s) => s.kind === 'client');
  if (server.length !== 1 || client.length !== 1) return `${path}: ${server.length} server and ${client.length} client spans`;
  return { server: server[0]!, client: client[0]! };
}

describe('HTTPS spans through TLS uprobes (real peers)', { timeout: 300_000 }, () => {
  let col: SpanCollector;
  let dir: string;
  let cert: string;
  let key: string;
  const procs: Proc[] = [];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'osprey-tls-'));
    cert = join(dir, 'cert.pem');
    key = join(dir, 'key.pem');
    const r = await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost']);
    assert.equal(r.code, 0, r.stderr);
    // files linger 1 s after their last process (5 min by default): the last test sees one released
    col = new SpanCollector(300, undefined, { uprobes: { scanMs: SCAN_MS, lingerMs: 1000 } });
  });
  after(async () => {
    for (const p of procs) await p.stop();
    await col?.close();
  });

  const attached = (pred: (path: string) => boolean): boolean =>
    col.agent.uprobes!.files().some((f) => f.status === 'attached' && pred(f.path));

  it('curl -> nginx: keep-alive and new connections, each exchange one linked pair of https spans', async () => {
    const port = await freePort();
    const prefix = join(dir, 'nginx');
    mkdirSync(join(prefix, 'tmp'), { recursive: true });
    writeFileSync(join(prefix, 'nginx.conf'), nginxConf(prefix, port, cert, key));
    const nginx = await startServer('/usr/sbin/nginx', ['-p', `${prefix}/`, '-c', join(prefix, 'nginx.conf'), '-e', 'stderr'], port);
    procs.push(nginx);
    await waitFor('libssl attached', () => attached((p) => /\/libssl\.so/.test(p)), 5000);
    const tag = Math.random().toString(36).slice(2, 8);
    const base = `https://127.0.0.1:${port}`;
    // two on one connection (keep-alive), then two more curls (new connections)
    const ka = [`/ka/${tag}-1`, `/ka/${tag}-2`, `/missing/${tag}`];
    const c1 = await run('curl', ['-sSk', '--http1.1', ...ka.map((p) => `${base}${p}`)]);
    assert.equal(c1.code, 0, c1.stderr);
    const fresh = [`/new/${tag}-1`, `/new/${tag}-2`];
    const clients = [c1.pid];
    for (const p of fresh) {
      const c = await run('curl', ['-sSk', '--http1.1', `${base}${p}`]);
      assert.equal(c.code, 0, c.stderr);
      clients.push(c.pid);
    }
    const all = [...ka, ...fresh];
    await col.waitSpans('a server and a client span per request', () => all.every((p) => typeof pair(col, p) !== 'string'), 10_000);
    for (const p of all) {
      const got = pair(col, p);
      assert.ok(typeof got !== 'string', got as string);
      const { server, client } = got;
      const status = p.startsWith('/missing') ? 404 : 200;
      for (const s of [server, client]) {
        assert.equal(s.attributes['http.request.method'], 'GET', p);
        assert.equal(s.attributes['http.response.status_code'], status, p);
        assert.equal(s.attributes['url.scheme'], 'https', p);
      }
      assert.equal(client.attributes['url.full'], `${base}${p}`);
      assert.ok(clients.includes(client.resource['process.pid'] as number), `${p} client span from curl`);
      assert.equal(server.parentSpanId, client.spanId, `${p}: nginx's span is curl's child`);
      assert.equal(server.attributes['osprey.link'], 'tuple');
      assert.equal(client.status, p.startsWith('/missing') ? 'error' : 'unset');
    }
    // the ciphertext made no span: every span on the port is one of the above, https
    const onPort = col.spans.filter((s) => s.attributes['server.port'] === port);
    assert.equal(onPort.length, all.length * 2, `spans on port ${port}: ${onPort.map((s) => `${s.kind} ${s.name}`).join(', ')}`);
    const k = col.agent.capture!.counters();
    assert.ok(k.tls_ciphertext_calls > 0 && k.tls_connections > 0, 'TLS connections seen at the socket');
  });

  it('Python ssl server and client: SSL_read_ex/SSL_write_ex, traceparent sent inside TLS', async () => {
    const port = await freePort();
    const srv = await startServer('python3', [PY_SERVER, String(port), cert, key], port);
    procs.push(srv);
    await sleep(SCAN_MS * 2);
    const tag = Math.random().toString(36).slice(2, 8);
    const paths = [`/py/${tag}-1`, `/py/${tag}-2`, `/missing/${tag}`];
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const tp = `00-${traceId}-00f067aa0ba902b7-01`;
    const c = await run('python3', ['-c', PY_CLIENT, String(port), tp, ...paths]);
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(c.stdout.trim().split('\n'), ['200', '200', '404']);
    await col.waitSpans('python spans', () => paths.every((p) => typeof pair(col, p) !== 'string'), 10_000);
    for (const p of paths) {
      const { server, client } = pair(col, p) as { server: Span; client: Span };
      assert.equal(server.resource['process.pid'], srv.pid);
      assert.equal(client.resource['process.pid'], c.pid);
      assert.equal(server.attributes['url.scheme'], 'https');
      assert.equal(server.attributes['http.response.status_code'], p.startsWith('/missing') ? 404 : 200);
      // the caller's traceparent, read from the plaintext, wins over the tuple
      assert.equal(server.traceId, traceId, `${p}: server span in the caller's trace`);
      assert.equal(server.parentSpanId, '00f067aa0ba902b7');
      assert.equal(server.attributes['osprey.link'], 'traceparent');
    }
  });

  it('Python ssl server and client at concurrency 32 (a connection per call): each exchange one linked pair, 0 wrong parents', async () => {
    const port = await freePort();
    const srv = await startServer('python3', [PY_SERVER, String(port), cert, key], port);
    procs.push(srv);
    await waitFor('libssl attached', () => attached((p) => /\/libssl\.so/.test(p)), 5000);
    await despiteDrops(col, async () => {
      const tag = Math.random().toString(36).slice(2, 8);
      const reqs: Expect[] = Array.from({ length: 64 }, (_, i) => ({ path: i % 8 === 7 ? `/missing/${tag}-${i}` : `/py32/${tag}-${i}`, status: i % 8 === 7 ? 404 : 200, version: '1.1', serverPid: srv.pid }));
      const c = await run('python3', ['-c', PY_CLIENT_PAR, String(port), '32', ...reqs.map((r) => r.path)], { timeoutMs: 60_000 });
      assert.equal(c.code, 0, c.stderr);
      assert.deepEqual(c.stdout.trim().split('\n'), reqs.map((r) => String(r.status)));
      for (const r of reqs) r.clientPid = c.pid;
      await waitPairs(col, reqs);
      const { wrongParents, linked } = checkPairs(col, reqs);
      assert.equal(wrongParents, 0);
      assert.equal(linked, reqs.length);
      for (const r of reqs) assert.equal(col.byPath(r.path).find((s) => s.kind === 'server')!.attributes['url.scheme'], 'https');
    });
  });

  it('Node https server and client (OpenSSL inside node, memory BIOs): 32 connections in parallel', async () => {
    const port = await freePort();
    const srv = await startServer('node', ['-e', NODE_SERVER, String(port), cert, key], port);
    procs.push(srv);
    await waitFor('node attached', () => attached((p) => p.endsWith('/node')), 5000);
    const tag = Math.random().toString(36).slice(2, 8);
    const before = col.agent.capture!.counters();
    const c = await run('node', ['-e', NODE_CLIENT, String(port), '32', '2', tag], { timeoutMs: 60_000 });
    assert.equal(c.code, 0, c.stderr);
    const results = c.stdout.trim().split('\n').map((l) => l.split(' ') as [string, string]);
    assert.equal(results.length, 64);
    await col.waitSpans('node spans', () => results.every(([p]) => typeof pair(col, p) !== 'string'), 15_000).catch(() => undefined);
    const problems: string[] = [];
    for (const [p, status] of results) {
      const got = pair(col, p);
      if (typeof got === 'string') {
        problems.push(got);
        continue;
      }
      const { server, client } = got;
      const method = p.includes('-') && (Number(p.split('-').at(-2)) * 8 + Number(p.split('-').at(-1))) % 4 === 1 ? 'POST' : 'GET';
      if (server.resource['process.pid'] !== srv.pid || client.resource['process.pid'] !== c.pid) problems.push(`${p}: wrong process`);
      for (const s of [server, client]) {
        if (s.attributes['http.request.method'] !== method) problems.push(`${p} ${s.kind}: method ${String(s.attributes['http.request.method'])}`);
        if (s.attributes['http.response.status_code'] !== Number(status)) problems.push(`${p} ${s.kind}: status ${String(s.attributes['http.response.status_code'])}`);
        if (s.attributes['url.scheme'] !== 'https') problems.push(`${p} ${s.kind}: scheme`);
      }
      if (server.parentSpanId !== client.spanId) problems.push(`${p}: server not the client's child (${String(server.attributes['osprey.link'])})`);
    }
    const after = col.agent.capture!.counters();
    const unbound = after.tls_plaintext_unbound - before.tls_plaintext_unbound;
    console.log(`node x32: ${64 - problems.length}/64 pairs right; plaintext calls unbound ${unbound}, rebinds ${after.tls_rebind - before.tls_rebind}`);
    assert.deepEqual(problems, []);
  });

  it('a process started after the agent is picked up; when it exits its file is released', async () => {
    // a private copy of libssl: a file (inode) only this process maps
    const lib = join(dir, 'lib');
    mkdirSync(lib, { recursive: true });
    copyFileSync('/usr/lib/x86_64-linux-gnu/libssl.so.3', join(lib, 'libssl.so.3'));
    const mine = (p: string) => p === join(lib, 'libssl.so.3');
    assert.ok(!attached(mine));
    const port = await freePort();
    const srv = await startServer('python3', [PY_SERVER, String(port), cert, key], port, '127.0.0.1', { LD_LIBRARY_PATH: lib });
    await waitFor('the private libssl attached', () => attached(mine), 5000);
    const f = col.agent.uprobes!.files().find((x) => mine(x.path))!;
    assert.ok(f.probes >= 8, `${f.probes} probes`);
    const path = `/late/${Math.random().toString(36).slice(2, 8)}`;
    const c = await run('curl', ['-sSk', '--http1.1', `https://127.0.0.1:${port}${path}`]);
    assert.equal(c.stdout, `py ${path}`);
    await col.waitSpans('the late server span', () => col.byPath(path).some((s) => s.kind === 'server' && s.resource['process.pid'] === srv.pid));
    const detached = col.agent.uprobes!.counters.files_detached;
    await srv.stop();
    await waitFor('the private libssl released', () => !col.agent.uprobes!.files().some((x) => mine(x.path)), 10_000);
    assert.ok(col.agent.uprobes!.counters.detached_after_linger > 0);
    assert.ok(col.agent.uprobes!.counters.files_detached > detached);
  });
});
