// Server and client spans for real, unmodified programs: pipelining, chunked
// bodies, Go net/http, Java's HttpServer, and garbage on an HTTP port.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpanCollector } from './agent-helpers.js';
import { freePort, run, startServer, type Proc } from './helpers.js';

const NODE_SERVER = `
const http = require('http');
http.createServer((req, res) => {
  if (req.url.startsWith('/chunked')) {
    res.writeHead(200, { 'content-type': 'text/plain' });
    let i = 0;
    const t = setInterval(() => { res.write('part ' + i + '\\n'); if (++i === 5) { clearInterval(t); res.end(); } }, 5);
    return;
  }
  if (req.url.startsWith('/fail')) { res.statusCode = 503; res.end('no'); return; }
  if (req.url.startsWith('/missing')) { res.statusCode = 404; res.end('nope'); return; }
  res.end('ok ' + req.url);
}).listen(Number(process.argv[1]), '127.0.0.1');
`;

/** raw client: writes given bytes, reads until the server closes or n responses */
const RAW_CLIENT = `
const net = require('net');
const [port, payload, expect] = [Number(process.argv[1]), Buffer.from(process.argv[2], 'base64'), Number(process.argv[3])];
const c = net.connect(port, '127.0.0.1', () => c.write(payload));
let got = '';
c.on('data', (d) => { got += d.toString('latin1'); if ((got.match(/HTTP\\/1\\.1 /g) || []).length >= expect && /0\\r\\n\\r\\n$|ok [^\\n]*$/.test(got)) c.end(); });
c.on('close', () => { process.stdout.write(got); });
c.on('error', () => {});
setTimeout(() => c.destroy(), 3000);
`;

describe('HTTP spans from real programs', { timeout: 180_000 }, () => {
  let col: SpanCollector;
  let node: Proc;
  let port: number;
  before(async () => {
    // pipelined responses can reach the client in one read; with the default 256-byte capture
    // the third start line may lie beyond the captured prefix (the parser then stops and
    // counts 'desync', a documented limit): the test wants every message visible
    col = new SpanCollector(200, { captureSize: 1024 });
    port = await freePort();
    node = await startServer('node', ['-e', NODE_SERVER, String(port)], port);
  });
  after(async () => {
    await node?.stop();
    await col?.close();
  });

  it('pipelined requests: one server and one client span each, in order', async () => {
    const reqs = ['/p1', '/p2', '/p3'].map((p) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`).join('');
    const c = await run('node', ['-e', RAW_CLIENT, String(port), Buffer.from(reqs).toString('base64'), '3']);
    assert.equal((c.stdout.match(/HTTP\/1\.1 200/g) ?? []).length, 3);
    await col.waitSpans('3 server + 3 client spans', () => ['/p1', '/p2', '/p3'].every((p) => col.byPath(p).length === 2));
    for (const p of ['/p1', '/p2', '/p3']) {
      const [a, b] = col.byPath(p);
      const server = [a!, b!].find((s) => s.kind === 'server')!;
      const client = [a!, b!].find((s) => s.kind === 'client')!;
      assert.equal(server.resource['process.pid'], node.pid);
      assert.equal(client.resource['process.pid'], c.pid);
      assert.equal(server.parentSpanId, client.spanId, `${p} server is the client's child`);
      assert.equal(server.attributes['http.response.status_code'], 200);
    }
  });

  it('chunked responses: one span per exchange with the whole duration', async () => {
    const c = await run('curl', ['-sS', `http://127.0.0.1:${port}/chunked/a`, `http://127.0.0.1:${port}/chunked/b`]);
    assert.equal((c.stdout.match(/part/g) ?? []).length, 10);
    await col.waitSpans('chunked spans', () => ['/chunked/a', '/chunked/b'].every((p) => col.byPath(p).length === 2));
    for (const p of ['/chunked/a', '/chunked/b']) {
      const spans = col.byPath(p);
      assert.equal(spans.length, 2);
      for (const s of spans) {
        assert.ok(s.durationNano >= 20e6, `${s.kind} ${p} lasts the whole chunked body: ${s.durationNano / 1e6} ms`);
        assert.equal(s.attributes['http.response.status_code'], 200);
      }
    }
  });

  it('status rules: server 5xx is an error, client 4xx too, server 4xx is not', async () => {
    await run('curl', ['-sS', '-o', '/dev/null', `http://127.0.0.1:${port}/fail`, '-o', '/dev/null', `http://127.0.0.1:${port}/missing`]);
    await col.waitSpans('status spans', () => col.byPath('/fail').length === 2 && col.byPath('/missing').length === 2);
    const get = (p: string, k: string) => col.byPath(p).find((s) => s.kind === k)!;
    assert.equal(get('/fail', 'server').status, 'error');
    assert.equal(get('/fail', 'client').status, 'error');
    assert.equal(get('/missing', 'server').status, 'unset');
    assert.equal(get('/missing', 'client').status, 'error');
    assert.equal(get('/missing', 'client').attributes['url.full'], `http://127.0.0.1:${port}/missing`);
  });

  it('secrets never reach a span: Authorization, Cookie, secret query values', async () => {
    await run('curl', ['-sS', '-o', '/dev/null', '-H', 'Authorization: Bearer sekrit-123', '-H', 'Cookie: session=abc', `http://127.0.0.1:${port}/secret?token=hunter2&page=3`]);
    await col.waitSpans('secret spans', () => col.byPath('/secret').length === 2);
    const text = JSON.stringify(col.byPath('/secret'), (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
    assert.doesNotMatch(text, /sekrit|hunter2|session=abc/);
    assert.match(text, /page=3/);
  });

  it('malformed HTTP and binary noise: counted, nothing crashes, other spans unaffected', async () => {
    const before = { ...col.agent.http1 };
    const ignoredBefore = col.agent.capture!.counters().conn_ignored;
    const noise = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 73 + 11) % 256));
    const bad = Buffer.from('GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: zzz\r\n\r\n');
    const garbageAfter = Buffer.concat([Buffer.from('GET /ok-then-garbage HTTP/1.1\r\nHost: x\r\n\r\n'), Buffer.from('\x00\x01\x02binary')]);
    const ps = [noise, bad, garbageAfter].map((b) => run('node', ['-e', RAW_CLIENT, String(port), b.toString('base64'), '1']));
    const good = run('curl', ['-sS', `http://127.0.0.1:${port}/still-fine`]);
    await Promise.all(ps);
    assert.equal((await good).stdout, 'ok /still-fine');
    await col.waitSpans('the good request', () => col.byPath('/still-fine').length === 2);
    const after = col.agent.http1;
    const ignoredAfter = col.agent.capture!.counters().conn_ignored;
    assert.ok(ignoredAfter > ignoredBefore, 'binary noise: connection ignored by the kernel gate');
    assert.ok(after.malformed > before.malformed, `malformed counted: ${before.malformed} -> ${after.malformed}`);
    assert.equal(col.byPath('/x').length, 0, 'no span from a malformed request');
  });

  it('Go net/http and Java HttpServer produce correct server spans', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'osprey-langs-'));
    writeFileSync(
      join(dir, 'main.go'),
      `package main
import ("fmt"; "net/http"; "os")
func main() {
  http.HandleFunc("/hello/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "hello %s", r.URL.Path) })
  http.HandleFunc("/teapot", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
  http.ListenAndServe("127.0.0.1:"+os.Args[1], nil)
}
`,
    );
    const build = await run('go', ['build', '-o', join(dir, 'gosrv'), join(dir, 'main.go')], { timeoutMs: 120_000 });
    assert.equal(build.code, 0, build.stderr);
    writeFileSync(
      join(dir, 'Srv.java'),
      `import com.sun.net.httpserver.*; import java.net.*; import java.io.*;
public class Srv { public static void main(String[] a) throws Exception {
  HttpServer s = HttpServer.create(new InetSocketAddress("127.0.0.1", Integer.parseInt(a[0])), 0);
  s.createContext("/", x -> { byte[] b = ("java " + x.getRequestURI()).getBytes(); x.sendResponseHeaders(x.getRequestURI().getPath().startsWith("/err") ? 500 : 200, b.length); x.getResponseBody().write(b); x.close(); });
  s.start(); } }
`,
    );
    const goPort = await freePort();
    const javaPort = await freePort();
    const go = await startServer(join(dir, 'gosrv'), [String(goPort)], goPort);
    const java = await startServer('java', [join(dir, 'Srv.java'), String(javaPort)], javaPort, '127.0.0.1');
    try {
      await run('curl', ['-sS', '-o', '/dev/null', `http://127.0.0.1:${goPort}/hello/42`, '-o', '/dev/null', `http://127.0.0.1:${goPort}/teapot`]);
      await run('curl', ['-sS', '-o', '/dev/null', `http://127.0.0.1:${javaPort}/j/7`, '-o', '/dev/null', `http://127.0.0.1:${javaPort}/err`]);
      await col.waitSpans('go and java server spans', () => col.of(go.pid).length === 2 && col.of(java.pid).length === 2);
      const g = col.of(go.pid);
      assert.deepEqual(g.map((s) => [s.kind, s.name, s.attributes['http.response.status_code'], s.status]), [
        ['server', 'GET /hello/{id}', 200, 'unset'],
        ['server', 'GET /teapot', 500, 'error'],
      ]);
      assert.equal(g[0]!.resource['service.name'], 'gosrv');
      const j = col.of(java.pid);
      assert.deepEqual(j.map((s) => [s.kind, s.name, s.attributes['http.response.status_code'], s.status]), [
        ['server', 'GET /j/{id}', 200, 'unset'],
        ['server', 'GET /err', 500, 'error'],
      ]);
      assert.equal(j[0]!.resource['service.name'], 'Srv');
      assert.equal(j[0]!.attributes['server.port'], javaPort);
    } finally {
      await go.stop();
      await java.stop();
    }
  });
});
