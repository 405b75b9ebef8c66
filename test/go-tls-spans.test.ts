// Go HTTPS (crypto/tls, HTTP/1.1) seen in plaintext through the Go uprobes, attached by the
// agent's uprobe watcher when it finds the processes: a real Go server and client
// (test/fixtures/gotls), built with every Go on the machine (1.26 and Debian's 1.19) and
// paired every way, give one server and one client span per request with the right method,
// path, status and body size, the server span the client span's child (by the connection
// tuple), and the ciphertext at the socket counted as such and reported nowhere.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { isSupported, analyzeGoBinary } from '../src/agent/golang/index.js';
import { freePort, startProcess, type StartedProcess } from '../src/demo/processes.js';
import type { Span } from '../src/model/index.js';
import { SpanCollector } from './agent-helpers.js';
import { buildGo, goToolchains, type GoToolchain } from './go-build.js';
import { run, waitFor } from './helpers.js';

const SOURCE = resolve('test/fixtures/gotls');
/** path prefix -> status and response body the fixture's handler gives */
const ROUTES = [
  { prefix: 'hello', status: 200, body: 'hello over tls\n'.length },
  { prefix: 'missing', status: 404, body: 'not here\n'.length },
  { prefix: 'fail', status: 500, body: 'failed\n'.length },
];

describe('Go crypto/tls plaintext: spans from a real Go HTTPS server and client', { timeout: 600_000 }, () => {
  const toolchains = goToolchains();
  const bins = new Map<string, string>();
  let col: SpanCollector;
  const servers = new Map<string, StartedProcess>();
  const ports = new Map<string, number>();

  /** the watcher's line for a file */
  const watched = (bin: string) => col.agent.uprobes!.files().find((f) => f.family === 'go-crypto-tls' && f.path === bin);

  before(async () => {
    for (const go of toolchains) bins.set(go.version, buildGo(SOURCE, go));
    // scans only when the test asks (scan()), so what is attached when is known
    // no linger: a file is detached at the first scan that sees no process run it (a test below)
    col = new SpanCollector(300, undefined, { uprobes: { scanMs: 3_600_000, lingerMs: 0 } });
    for (const go of toolchains) {
      const port = await freePort();
      ports.set(go.version, port);
      servers.set(go.version, await startProcess({ name: `gotls-${go.version}`, cmd: bins.get(go.version)!, args: ['serve', String(port)], port }));
    }
    col.agent.uprobes!.scan();
    for (const go of toolchains) {
      const bin = bins.get(go.version)!;
      const info = analyzeGoBinary(bin);
      assert.ok(isSupported(info));
      // Write + Read after their stack checks, one probe per RET of Read
      assert.deepEqual(watched(bin), { family: 'go-crypto-tls', file: watched(bin)?.file, path: bin, status: 'attached', reason: undefined, probes: 2 + info.read.rets.length, processes: 1 });
    }
  });

  after(async () => {
    for (const s of servers.values()) await s.stop();
    await col?.close();
  });

  /** runs one client process that GETs every route once per round, each path unique */
  async function client(clientGo: GoToolchain, serverGo: GoToolchain, tag: string, rounds: number): Promise<string[]> {
    const paths: string[] = [];
    for (let i = 0; i < rounds; i++) for (const r of ROUTES) paths.push(`/${r.prefix}/${tag}-${i}`);
    const base = `https://127.0.0.1:${ports.get(serverGo.version)}`;
    const res = await run(bins.get(clientGo.version)!, ['get', ...paths.map((p) => base + p)], { timeoutMs: 60_000 });
    assert.equal(res.code, 0, res.stderr + res.stdout);
    assert.deepEqual(res.stdout.trim().split('\n').map(Number), paths.map((p) => ROUTES.find((r) => p.startsWith(`/${r.prefix}/`))!.status));
    return paths;
  }

  function check(paths: string[], serverPid: number): void {
    for (const path of paths) {
      const route = ROUTES.find((r) => path.startsWith(`/${r.prefix}/`))!;
      const spans = col.byPath(path);
      const server = spans.filter((s) => s.kind === 'server');
      const clientSpans = spans.filter((s) => s.kind === 'client');
      assert.equal(server.length, 1, `${path}: one server span, got ${describe(spans)}`);
      assert.equal(clientSpans.length, 1, `${path}: one client span, got ${describe(spans)}`);
      const [s, c] = [server[0]!, clientSpans[0]!];
      assert.equal(s.resource['process.pid'], serverPid);
      assert.notEqual(c.resource['process.pid'], serverPid);
      for (const x of [s, c]) {
        assert.equal(x.attributes['http.request.method'], 'GET');
        assert.equal(x.attributes['http.response.status_code'], route.status, path);
      }
      // the plaintext body: ciphertext (TLS records: headers, MACs) would be larger
      assert.equal(s.attributes['http.response.body.size'], route.body, `${path}: server response body size`);
      assert.equal(c.attributes['http.response.body.size'], route.body, `${path}: client response body size`);
      assert.equal(s.traceId, c.traceId, `${path}: server and client in one trace`);
      assert.equal(s.parentSpanId, c.spanId, `${path}: the server span is the client span's child`);
      assert.equal(s.attributes['osprey.link'], 'tuple');
      assert.equal(s.status, route.status >= 500 ? 'error' : 'unset');
      assert.equal(c.status, route.status >= 400 ? 'error' : 'unset');
    }
  }

  function describe(spans: Span[]): string {
    return JSON.stringify(spans.map((s) => [s.kind, s.resource['process.pid'], s.attributes['url.path'], s.attributes['http.response.status_code']]));
  }

  for (const serverGo of toolchains) {
    for (const clientGo of toolchains) {
      it(`server ${serverGo.version}, client ${clientGo.version}: one linked span pair per request`, async () => {
        const cap = col.agent.capture!;
        const before = cap.counters();
        const tag = `${clientGo.version}-${Math.random().toString(36).slice(2, 8)}`;
        const paths = await client(clientGo, serverGo, tag, 3);
        await col.waitSpans('spans of every request', () => paths.every((p) => col.byPath(p).length >= 2), 15_000);
        check(paths, servers.get(serverGo.version)!.pid);
        const after = cap.counters();
        // the kernel is shared with other tests: these only grow, at least by what we did
        assert.ok(after.tls_plaintext_calls - before.tls_plaintext_calls >= 2 * paths.length, 'plaintext calls reported');
        assert.ok(after.tls_ciphertext_calls > before.tls_ciphertext_calls, 'ciphertext calls seen at the socket and not reported');
      });
    }
  }

  it('8 clients at once against each server: every request one linked span pair', async () => {
    const runs: Promise<string[]>[] = [];
    for (const serverGo of toolchains) {
      for (let i = 0; i < 8; i++) {
        const clientGo = toolchains[i % toolchains.length]!;
        runs.push(client(clientGo, serverGo, `c${i}-${serverGo.version}-${Math.random().toString(36).slice(2, 8)}`, 4));
      }
    }
    const all = await Promise.all(runs);
    await col.waitSpans('spans of every concurrent request', () => all.flat().every((p) => col.byPath(p).length >= 2), 20_000);
    toolchains.forEach((serverGo, k) => {
      for (const paths of all.slice(k * 8, k * 8 + 8)) check(paths, servers.get(serverGo.version)!.pid);
    });
  });

  it('a file no process runs any more loses its probes: its next client is not seen, the server still is', async (t) => {
    if (toolchains.length < 2) return t.skip('needs two Go toolchains');
    const [a, b] = [toolchains[0]!, toolchains[1]!];
    await servers.get(a.version)!.stop();
    servers.delete(a.version);
    col.agent.uprobes!.scan();
    // the links are destroyed off the JS thread: forgotten once they are gone
    await waitFor('detached and forgotten', () => watched(bins.get(a.version)!) === undefined, 10_000);
    const tag = `unprobed-${Math.random().toString(36).slice(2, 8)}`;
    const paths = await client(a, b, tag, 1);
    await col.waitSpans('server spans', () => paths.every((p) => col.byPath(p).length >= 1), 15_000);
    await new Promise((r) => setTimeout(r, 800));
    for (const p of paths) {
      const spans = col.byPath(p);
      // the client's ciphertext alone gives nothing; the probed server's plaintext does
      assert.deepEqual(spans.map((s) => s.kind), ['server'], `${p}: ${describe(spans)}`);
      assert.equal(spans[0]!.parentSpanId, '');
    }
  });

  it('a stripped Go server is listed with its reason and not probed', async () => {
    const go = toolchains[0]!;
    const bin = buildGo(SOURCE, go, { ldflags: '-s -w' });
    const port = await freePort();
    const p = await startProcess({ name: 'gotls-stripped', cmd: bin, args: ['serve', String(port)], port });
    try {
      col.agent.uprobes!.scan();
      const w = watched(bin);
      assert.equal(w?.status, 'stripped', JSON.stringify(w));
      assert.match(w.reason!, /pclntab names crypto\/tls\.\(\*Conn\)\.Write/);
      assert.equal(w.probes, 0);
    } finally {
      await p.stop();
    }
  });
});
