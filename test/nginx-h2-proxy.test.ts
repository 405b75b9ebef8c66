// nginx terminating TLS (HTTP/1.1, and HTTP/2 with `listen ... ssl http2`) and proxying to a
// plain HTTP/1.1 backend (Node http), with curl as the client: the chain
// curl -> nginx -> backend, each hop a linked pair, at concurrency 1 and 32, 0 wrong parents.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnChild, type Child } from '../src/proc/index.js';
import type { Span } from '../src/model/index.js';
import { SpanCollector } from './agent-helpers.js';
import { freePort, run, startServer, waitFor, type Proc } from './helpers.js';
import { despiteDrops, show } from './peer-matrix.js';

const BACKEND = `
const [port] = process.argv.slice(1);
require('http').createServer((req, res) => {
  const st = req.url.startsWith('/missing') ? 404 : req.url.startsWith('/fail') ? 502 : 200;
  const answer = () => { res.writeHead(st, { 'content-type': 'text/plain' }); res.end('backend ' + req.url); };
  if (req.url.startsWith('/slow')) setTimeout(answer, 20); else answer();
}).listen(Number(port), '127.0.0.1');
`;

function nginxConf(prefix: string, port: number, h2port: number, backend: number, cert: string, key: string): string {
  return `daemon off;
worker_processes 1;
user root;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path ${prefix}/tmp;
  proxy_temp_path ${prefix}/tmp;
  fastcgi_temp_path ${prefix}/tmp;
  uwsgi_temp_path ${prefix}/tmp;
  scgi_temp_path ${prefix}/tmp;
  upstream backend {
    server 127.0.0.1:${backend};
    keepalive 16;
  }
  server {
    listen 127.0.0.1:${port} ssl;
    listen 127.0.0.1:${h2port} ssl http2;
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}

const ROUTES = [
  { prefix: 'hello', status: 200 },
  { prefix: 'missing', status: 404 },
  { prefix: 'slow', status: 200 },
];

describe('curl -> nginx (TLS, h1 and h2) -> plain HTTP backend', { timeout: 300_000 }, () => {
  let col: SpanCollector;
  let nginx: Proc;
  let backend: Proc;
  let holder: Child;
  let port: number;
  let h2port: number;

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'osprey-nginx-h2-'));
    const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
    const r = await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost']);
    assert.equal(r.code, 0, r.stderr);
    col = new SpanCollector(300, undefined, { uprobes: { scanMs: 300 } });
    holder = await spawnChild('python3', ['-c', 'import ssl, time; time.sleep(600)'], { name: 'libssl-holder' });
    const bport = await freePort();
    backend = await startServer('node', ['-e', BACKEND, String(bport)], bport);
    port = await freePort();
    h2port = await freePort();
    mkdirSync(join(dir, 'tmp'));
    writeFileSync(join(dir, 'nginx.conf'), nginxConf(dir, port, h2port, bport, cert, key));
    nginx = await startServer('/usr/sbin/nginx', ['-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-e', 'stderr'], port);
    await waitFor('libssl attached', () => col.agent.uprobes!.files().some((f) => f.status === 'attached' && /\/libssl\.so/.test(f.path)), 10_000);
  });

  after(async () => {
    await nginx?.stop();
    await backend?.stop();
    await holder?.stop();
    await col?.close();
  });

  for (const h2 of [false, true]) {
    for (const conc of [1, 32]) {
      it(`curl ${h2 ? '--http2' : '--http1.1'}, concurrency ${conc}: curl -> nginx -> backend linked`, () => despiteDrops(col, async () => {
        const tag = `ngx-${h2 ? 'h2' : 'h1'}-c${conc}-${Math.random().toString(36).slice(2, 8)}`;
        const paths: { path: string; status: number }[] = [];
        for (let i = 0; i < (conc === 1 ? 2 : 16); i++) for (const r of ROUTES) paths.push({ path: `/${r.prefix}/${tag}-${i}`, status: r.status });
        const args = ['-sSk', h2 ? '--http2' : '--http1.1', '-w', '%{http_version} %{response_code} %{url_effective}\\n'];
        if (conc > 1) args.push('--parallel', '--parallel-max', String(conc));
        for (const p of paths) args.push('-o', '/dev/null', `https://127.0.0.1:${h2 ? h2port : port}${p.path}`);
        const c = await run('curl', args, { timeoutMs: 60_000 });
        assert.equal(c.code, 0, c.stderr);
        const got = new Map(c.stdout.trim().split('\n').map((l) => [new URL(l.split(' ')[2]!).pathname, l.split(' ').slice(0, 2).join(' ')]));
        for (const p of paths) assert.equal(got.get(p.path), `${h2 ? '2' : '1.1'} ${p.status}`);

        const of = (path: string, pid: number, kind: string): Span[] => col.byPath(path).filter((s) => s.resource['process.pid'] === pid && s.kind === kind);
        await col.waitSpans('four spans per request', () => paths.every((p) => col.byPath(p.path).length >= 4), 20_000);
        const clientById = new Map(col.spans.filter((s) => s.kind === 'client').map((s) => [s.spanId, s]));
        let wrong = 0;
        for (const { path, status } of paths) {
          const spans = col.byPath(path);
          const curlSpan = of(path, c.pid, 'client');
          const back = of(path, backend.pid, 'server');
          const ngxServer = spans.filter((s) => s.kind === 'server' && s.resource['process.pid'] !== backend.pid);
          const ngxClient = spans.filter((s) => s.kind === 'client' && s.resource['process.pid'] !== c.pid);
          assert.deepEqual([curlSpan.length, ngxServer.length, ngxClient.length, back.length], [1, 1, 1, 1], `${path}: ${show(spans)}`);
          const [cs, ns, nc, bs] = [curlSpan[0]!, ngxServer[0]!, ngxClient[0]!, back[0]!];
          assert.equal(ns.resource['process.pid'], nc.resource['process.pid'], `${path}: nginx's worker serves and calls`);
          for (const s of [ns, bs]) {
            const parent = clientById.get(s.parentSpanId);
            if (parent && parent.attributes['url.path'] !== path) wrong++;
          }
          for (const s of [cs, ns, nc, bs]) {
            assert.equal(s.attributes['http.request.method'], 'GET');
            assert.equal(s.attributes['http.response.status_code'], status, `${path} ${s.kind} ${String(s.resource['process.pid'])}`);
            assert.ok(s.durationNano > 0 && s.durationNano < 30e9);
          }
          assert.equal(cs.attributes['network.protocol.version'], h2 ? '2' : '1.1');
          assert.equal(ns.attributes['network.protocol.version'], h2 ? '2' : '1.1');
          assert.equal(ns.attributes['url.scheme'], 'https');
          assert.equal(bs.attributes['url.scheme'], 'http');
          assert.equal(ns.parentSpanId, cs.spanId, `${path}: nginx's server span is curl's child`);
          assert.equal(bs.parentSpanId, nc.spanId, `${path}: the backend's span is nginx's call's child`);
          assert.equal(nc.parentSpanId, ns.spanId, `${path}: nginx's call belongs to the request it serves (${String(nc.attributes['osprey.link'])})`);
          assert.equal(bs.traceId, cs.traceId, `${path}: one trace from curl to the backend`);
          assert.ok(cs.durationNano + 5e6 >= ns.durationNano && ns.durationNano + 5e6 >= nc.durationNano && nc.durationNano + 5e6 >= bs.durationNano, `${path}: durations nest`);
        }
        assert.equal(wrong, 0, 'wrong parents');
      }));
    }
  }
});
