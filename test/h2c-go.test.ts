// Plaintext HTTP/2 (h2c) against a real Go server (golang.org/x/net/http2/h2c, as Go services
// take h2c: test/fixtures/h2cgo), seen by the plain socket path (no TLS, no uprobes):
// - curl --http2: HTTP/1.1 `Upgrade: h2c` → 101 → HTTP/2 on the same connection, the upgraded
//   request answered as stream 1, the run's other URLs as streams 3, 5... (one connection);
//   with --parallel, 32 requests multiplexed on the upgraded connection;
// - curl --http2-prior-knowledge (the client starts with the preface), several URLs per run;
// - curl --http1.1 against the same server (no upgrade: stays HTTP/1.1).
// Every request is one linked server/client pair with GET, its path and status, protocol 2
// (1.1 for the last), and 0 wrong parents; the 101 is not a span of its own.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { freePort, startProcess, type StartedProcess } from '../src/demo/processes.js';
import { SpanCollector } from './agent-helpers.js';
import { buildGoModule } from './go-module.js';
import { run } from './helpers.js';
import { checkPairs, despiteDrops, type Expect, waitPairs } from './peer-matrix.js';

const ROUTES = [
  { prefix: 'hello', status: 200 },
  { prefix: 'missing', status: 404 },
  { prefix: 'fail', status: 500 },
  { prefix: 'slow', status: 200 },
];

describe('h2c (Upgrade and prior knowledge): curl against a Go x/net/http2/h2c server', { timeout: 600_000 }, () => {
  let col: SpanCollector;
  let srv: StartedProcess;

  before(async () => {
    const bin = buildGoModule(resolve('test/fixtures/h2cgo'), 'h2cgo', ['golang.org/x/net@v0.60.0']);
    col = new SpanCollector(300);
    const port = await freePort();
    srv = await startProcess({ name: 'h2cgo', cmd: bin, args: ['serve', String(port)], port });
  });

  after(async () => {
    await srv?.stop();
    await col?.close();
  });

  /**
   * curl with `flags` over the requests of `perRoute` rounds of ROUTES: all in one curl, or with
   * `oneEach`, one curl per request, `conc` curls at once. Checks every pair; returns the
   * requests, and how many of them had spans of protocol version 1.1.
   */
  async function round(name: string, flags: string[], perRoute: number, version: '2' | '1.1', oneEach?: { conc: number }): Promise<{ reqs: Expect[]; v11: number }> {
    const tag = `${name}-${Math.random().toString(36).slice(2, 8)}`;
    const reqs: Expect[] = [];
    // an upgrade connection's first request went as HTTP/1.1 (the 101's request): its spans say
    // 1.1 (Go's server gives it r.Proto "HTTP/1.1" too), the streams after it 2: checked below
    const upgrade = flags.includes('--http2');
    for (let i = 0; i < perRoute; i++) for (const r of ROUTES) reqs.push({ path: `/${r.prefix}/${tag}-${i}`, status: r.status, serverPid: srv.pid, ...(upgrade ? {} : { version }) });
    const base = `http://127.0.0.1:${srv.port}`;
    const curl = async (share: Expect[]): Promise<void> => {
      const c = await run('curl', ['-sS', ...flags, '-w', '%{http_version} %{response_code}\\n', ...share.flatMap((r) => ['-o', '/dev/null', base + r.path])], { timeoutMs: 60_000 });
      assert.equal(c.code, 0, c.stderr);
      const lines = c.stdout.trim().split('\n');
      const want = share.map((r) => `${version} ${r.status}`);
      if (flags.includes('--parallel')) [lines, want].forEach((l) => l.sort());
      assert.deepEqual(lines, want, 'the peers spoke the expected protocol (as curl saw it)');
      for (const r of share) r.clientPid = c.pid;
    };
    if (!oneEach) await curl(reqs);
    else {
      let next = 0;
      await Promise.all(Array.from({ length: oneEach.conc }, async () => {
        while (next < reqs.length) await curl([reqs[next++]!]);
      }));
    }
    await waitPairs(col, reqs);
    const { wrongParents, linked } = checkPairs(col, reqs);
    assert.equal(wrongParents, 0);
    assert.equal(linked, reqs.length);
    const server = col.of(srv.pid);
    const mine = server.filter((s) => String(s.attributes['url.path']).includes(tag));
    assert.equal(mine.length, reqs.length, 'one server span per request: no span for the 101');
    assert.ok(!mine.some((s) => s.attributes['http.response.status_code'] === 101));
    let v11 = 0;
    for (const r of reqs) {
      const versions = col.byPath(r.path).map((s) => s.attributes['network.protocol.version']);
      assert.equal(new Set(versions).size, 1, `${r.path}: both ends agree on the version: ${versions.join()}`);
      if (versions[0] === '1.1') v11++;
      else assert.equal(versions[0], '2', r.path);
    }
    return { reqs, v11 };
  }

  it('curl --http2: Upgrade h2c, 101, then HTTP/2 streams on one connection', () => despiteDrops(col, async () => {
    const before = col.agent.http2.upgrades;
    const { reqs, v11 } = await round('up', ['--http2'], 2, '2');
    assert.equal(col.agent.http2.upgrades - before, 2, 'one upgrade seen at each end of the one connection');
    assert.equal(v11, 1, 'the upgraded request alone went as HTTP/1.1');
    const ports = new Set(reqs.map((r) => col.byPath(r.path).find((s) => s.kind === 'server')!.attributes['network.peer.port']));
    assert.equal(ports.size, 1, 'every stream on the upgraded connection');
  }));

  it('curl --http2 --parallel: 32 at once on upgraded connections', () => despiteDrops(col, async () => {
    const before = col.agent.http2.upgrades;
    const { v11 } = await round('upc32', ['--http2', '--parallel', '--parallel-max', '32'], 16, '2');
    assert.ok(v11 >= 1, 'at least one connection was upgraded');
    assert.equal(col.agent.http2.upgrades - before, 2 * v11, 'each upgraded connection seen at both ends');
  }));

  it('curl --http2-prior-knowledge: 1 at once, and 32 curls at once', () => despiteDrops(col, async () => {
    // one URL per curl: curl 7.88 fails a second request on a reused prior-knowledge
    // connection ('Error in the HTTP2 framing layer'), with or without the agent
    await round('pk', ['--http2-prior-knowledge'], 1, '2', { conc: 1 });
    await round('pkc32', ['--http2-prior-knowledge'], 16, '2', { conc: 32 });
  }));

  it('curl --http1.1 against the same server: no upgrade, HTTP/1.1', () => despiteDrops(col, async () => {
    await round('h1', ['--http1.1'], 2, '1.1');
  }));
});
