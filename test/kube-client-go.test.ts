// A Go program built with the official Kubernetes client library (k8s.io/client-go, unmodified:
// test/fixtures/kubego) against a FAKE API server (the same fixture: no real kube-apiserver can
// run on the test machines), both over HTTPS with HTTP/2 (ALPN), seen through the Go crypto/tls
// uprobes. client-go's Lists at concurrency 1 and 32 (streams multiplexed on one connection),
// Watches that the server ends after timeoutSeconds (one long-lived stream span each), and
// informers (client-go's watch-list: one watch per informer, ended by the client's RST_STREAM
// when it stops, or cut short by the connection's close when it exits with them open):
// every request is one linked server/client pair (tuple + stream id: client-go sends no
// traceparent) with GET, its path and 200, and 0 wrong parents. The bearer token of the
// kubeconfig appears in no span.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startProcess, type StartedProcess } from '../src/demo/processes.js';
import { spanToJson } from '../src/model/index.js';
import { SpanCollector } from './agent-helpers.js';
import { run } from './helpers.js';
import { buildKubeGo } from './kubego.js';
import { checkPairs, despiteDrops, pairOf, show, type Expect, waitPairs } from './peer-matrix.js';

const configMaps = (ns: string): string => `/api/v1/namespaces/${ns}/configmaps`;

describe('client-go (k8s.io/client-go) against a FAKE API server over HTTPS/h2', { timeout: 900_000 }, () => {
  let bin: string;
  let col: SpanCollector;
  let api: StartedProcess;
  let dir: string;
  let kubeconfig: string;

  before(async () => {
    bin = buildKubeGo();
    dir = mkdtempSync(join(tmpdir(), 'osprey-kubego-'));
    kubeconfig = join(dir, 'kubeconfig');
    col = new SpanCollector(300, undefined, { uprobes: { scanMs: 3_600_000 } });
    const port = await freePort();
    api = await startProcess({ name: 'fake-apiserver', cmd: bin, args: ['fake-apiserver', String(port), dir], port });
    // the client is the same binary: one scan attaches both
    col.agent.uprobes!.scan();
    const w = col.agent.uprobes!.files().find((f) => f.path === bin);
    assert.equal(w?.status, 'attached', JSON.stringify(w));
  });

  after(async () => {
    await api?.stop();
    await col?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const tag = (what: string): string => `${what}-${Math.random().toString(36).slice(2, 8)}`;

  /** the server spans are the fake API server's, linked by tuple + stream id */
  function checkLinks(reqs: Expect[]): void {
    for (const r of reqs) {
      const { server } = pairOf(col, r.path, api.pid);
      assert.equal(server[0]!.attributes['osprey.link'], 'tuple', `${r.path}: linked by tuple + stream`);
    }
    const token = /token: (\S+)/.exec(readFileSync(kubeconfig, 'utf8'))![1]!;
    const stored = JSON.stringify(col.spans.map(spanToJson));
    assert.ok(!stored.includes(token), 'the bearer token is in no span');
  }

  for (const conc of [1, 32]) {
    it(`List at concurrency ${conc}`, () => despiteDrops(col, async () => {
      const t = tag(`l${conc}`);
      const namespaces = Array.from({ length: conc === 1 ? 4 : 64 }, (_, i) => `${t}-${i}`);
      const res = await run(bin, ['list', kubeconfig, String(conc), ...namespaces], { timeoutMs: 60_000 });
      assert.equal(res.code, 0, res.stderr + res.stdout);
      assert.deepEqual(res.stdout.trim().split('\n'), namespaces.map((ns) => `${ns} 3`));
      const reqs: Expect[] = namespaces.map((ns) => ({ path: configMaps(ns), status: 200, version: '2', serverPid: api.pid, clientPid: res.pid }));
      await waitPairs(col, reqs);
      const { wrongParents, linked } = checkPairs(col, reqs);
      assert.equal(wrongParents, 0);
      assert.equal(linked, reqs.length);
      checkLinks(reqs);
    }));
  }

  for (const n of [1, 8]) {
    it(`Watch: ${n} at once, each one stream span that ends when the server ends the watch`, () => despiteDrops(col, async () => {
      const t = tag(`w${n}`);
      const namespaces = Array.from({ length: n }, (_, i) => `${t}-${i}`);
      const res = await run(bin, ['watch', kubeconfig, '1', ...namespaces], { timeoutMs: 60_000 });
      assert.equal(res.code, 0, res.stderr + res.stdout);
      assert.deepEqual(res.stdout.trim().split('\n'), namespaces.map((ns) => `${ns} 2`), 'ADDED and MODIFIED, then the end');
      const reqs: Expect[] = namespaces.map((ns) => ({ path: configMaps(ns), status: 200, version: '2', serverPid: api.pid, clientPid: res.pid }));
      await waitPairs(col, reqs);
      checkPairs(col, reqs);
      checkLinks(reqs);
      for (const r of reqs) {
        const { server, client } = pairOf(col, r.path, api.pid);
        for (const s of [server[0]!, client[0]!]) {
          assert.match(String(s.attributes['url.query']), /(^|&)watch=true(&|$)/, `${r.path}: ${s.kind} is the watch`);
          assert.match(String(s.attributes['url.query']), /timeoutSeconds=1/);
          // open for the server's 1 s; ended by it, not by a bound or the connection's close
          assert.ok(s.durationNano >= 0.95e9 && s.durationNano < 5e9, `${r.path}: ${s.kind} lasted ${s.durationNano / 1e6} ms`);
          assert.equal(s.status, 'unset', `${r.path}: ${s.kind} ${show([s])}`);
          assert.ok(Number(s.attributes['http.response.body.size']) > 0, `${r.path}: the events' bytes are counted`);
        }
      }
    }));
  }

  it('informers: 8 at once (watch-list), each one watch stream the client ends when it stops', () => despiteDrops(col, async () => {
    const t = tag('inf');
    const namespaces = Array.from({ length: 8 }, (_, i) => `${t}-${i}`);
    const res = await run(bin, ['informers', kubeconfig, ...namespaces], { timeoutMs: 60_000 });
    assert.equal(res.code, 0, res.stderr + res.stdout);
    assert.deepEqual(res.stdout.trim().split('\n'), namespaces.map((ns) => `${ns} 3`), 'every cache synced with the 3 ConfigMaps');
    const reqs: Expect[] = namespaces.map((ns) => ({ path: configMaps(ns), status: 200, version: '2', serverPid: api.pid, clientPid: res.pid }));
    await waitPairs(col, reqs);
    checkPairs(col, reqs);
    checkLinks(reqs);
    for (const r of reqs) {
      const { server, client } = pairOf(col, r.path, api.pid);
      for (const s of [server[0]!, client[0]!]) {
        // the reflector's watch-list: the initial state as events, then a bookmark
        assert.match(String(s.attributes['url.query']), /(^|&)sendInitialEvents=true(&|$)/, `${r.path}: ${s.kind} is the watch-list`);
        assert.match(String(s.attributes['url.query']), /(^|&)watch=true(&|$)/);
        // ended by the client's RST_STREAM CANCEL: a stream stopped on purpose, not a failure
        // (the fixture waits for the transport to send them before it exits)
        assert.equal(s.status, 'unset', `${r.path}: ${s.kind} ${JSON.stringify(spanToJson(s))}`);
        assert.ok(Number(s.attributes['http.response.body.size']) > 0, `${r.path}: the events' bytes are counted`);
      }
    }
  }));

  // The other way a watch ends: the client exits with its informers running (killed, crashed,
  // or stopped without waiting for the transport, as the informers fixture once did: it made
  // the case above flaky). No RST_STREAM is sent; the kernel closes the connection under the
  // open streams, and both sides see a 200 response cut short by the close ('eof'), which is
  // what the parser reports for any stream still open at the close.
  it('informers that exit with their watches open: each stream ends with the connection, cut short', () => despiteDrops(col, async () => {
    const t = tag('infx');
    const namespaces = Array.from({ length: 8 }, (_, i) => `${t}-${i}`);
    const res = await run(bin, ['informers-exit', kubeconfig, ...namespaces], { timeoutMs: 60_000 });
    assert.equal(res.code, 0, res.stderr + res.stdout);
    assert.deepEqual(res.stdout.trim().split('\n'), namespaces.map((ns) => `${ns} 3`));
    const reqs: Expect[] = namespaces.map((ns) => ({ path: configMaps(ns), status: 200, version: '2', serverPid: api.pid, clientPid: res.pid }));
    await waitPairs(col, reqs);
    checkLinks(reqs);
    for (const r of reqs) {
      const { server, client } = pairOf(col, r.path, api.pid);
      assert.deepEqual([server.length, client.length], [1, 1], `${r.path}: ${show(col.byPath(r.path))}`);
      assert.equal(server[0]!.parentSpanId, client[0]!.spanId, `${r.path}: linked`);
      assert.equal(client[0]!.resource['process.pid'], res.pid);
      for (const s of [server[0]!, client[0]!]) {
        assert.match(String(s.attributes['url.query']), /(^|&)sendInitialEvents=true(&|$)/);
        assert.equal(s.attributes['http.response.status_code'], 200);
        assert.equal(s.status, 'error', `${r.path}: ${s.kind} ${JSON.stringify(spanToJson(s))}`);
        assert.equal(s.attributes['error.type'], 'eof');
        assert.equal(s.statusMessage, 'response cut short: eof');
        assert.ok(Number(s.attributes['http.response.body.size']) > 0, `${r.path}: the events' bytes are counted`);
      }
    }
  }));
});
