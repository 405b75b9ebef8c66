// Go HTTPS with HTTP/2 (negotiated by ALPN, Go's default over TLS) seen through the Go
// crypto/tls uprobes: a real net/http server and client (test/fixtures/goh2), built with every
// Go on the machine (1.26 and Debian's 1.19) and paired every way, at concurrency 1 and 32 (32
// streams at once on the client's one connection). Every request is one linked server/client
// pair with the right method, path, status and protocol version 2, and 0 wrong parents.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { freePort, startProcess, type StartedProcess } from '../src/demo/processes.js';
import { SpanCollector } from './agent-helpers.js';
import { buildGo, goToolchains, type GoToolchain } from './go-build.js';
import { run } from './helpers.js';
import { checkPairs, despiteDrops, type Expect, waitPairs } from './peer-matrix.js';

const SOURCE = resolve('test/fixtures/goh2/main.go');
const ROUTES = [
  { prefix: 'hello', status: 200 },
  { prefix: 'missing', status: 404 },
  { prefix: 'fail', status: 500 },
  { prefix: 'slow', status: 200 },
];

describe('Go HTTP/2 over TLS: real Go servers and clients, both Go versions', { timeout: 600_000 }, () => {
  const toolchains = goToolchains();
  const bins = new Map<string, string>();
  const servers = new Map<string, StartedProcess>();
  const ports = new Map<string, number>();
  let col: SpanCollector;

  before(async () => {
    for (const go of toolchains) bins.set(go.version, buildGo(SOURCE, go));
    col = new SpanCollector(300, undefined, { uprobes: { scanMs: 3_600_000 } });
    for (const go of toolchains) {
      const port = await freePort();
      ports.set(go.version, port);
      servers.set(go.version, await startProcess({ name: `goh2-${go.version}`, cmd: bins.get(go.version)!, args: ['serve', String(port)], port }));
    }
    // the client binaries are the server binaries: one scan attaches both
    col.agent.uprobes!.scan();
    for (const bin of bins.values()) {
      const w = col.agent.uprobes!.files().find((f) => f.path === bin);
      assert.equal(w?.status, 'attached', JSON.stringify(w));
    }
  });

  after(async () => {
    for (const s of servers.values()) await s.stop();
    await col?.close();
  });

  async function round(clientGo: GoToolchain, serverGo: GoToolchain, conc: number, perRoute: number): Promise<void> {
    const tag = `${clientGo.version}-${serverGo.version}-c${conc}-${Math.random().toString(36).slice(2, 8)}`;
    const reqs: Expect[] = [];
    for (let i = 0; i < perRoute; i++) {
      for (const r of ROUTES) reqs.push({ path: `/${r.prefix}/${tag}-${i}`, status: r.status, serverPid: servers.get(serverGo.version)!.pid, version: '2' });
    }
    const base = `https://127.0.0.1:${ports.get(serverGo.version)}`;
    const res = await run(bins.get(clientGo.version)!, ['get', String(conc), ...reqs.map((r) => base + r.path)], { timeoutMs: 60_000 });
    assert.equal(res.code, 0, res.stderr + res.stdout);
    assert.deepEqual(res.stdout.trim().split('\n'), reqs.map((r) => `HTTP/2.0 ${r.status}`), 'the peers spoke HTTP/2');
    for (const r of reqs) r.clientPid = res.pid;
    await waitPairs(col, reqs);
    const { wrongParents, linked } = checkPairs(col, reqs);
    assert.equal(wrongParents, 0);
    assert.equal(linked, reqs.length);
    const slow = reqs.filter((r) => r.path.startsWith('/slow/'));
    for (const r of slow) {
      const s = col.byPath(r.path).find((x) => x.kind === 'server')!;
      assert.ok(s.durationNano >= 18e6, `${r.path}: the slow handler's 20 ms: ${s.durationNano / 1e6} ms`);
    }
  }

  for (const serverGo of toolchains) {
    for (const clientGo of toolchains) {
      it(`server ${serverGo.version}, client ${clientGo.version}, concurrency 1`, () => despiteDrops(col, async () => {
        await round(clientGo, serverGo, 1, 3);
      }));
      it(`server ${serverGo.version}, client ${clientGo.version}, concurrency 32 (streams multiplexed on one connection)`, () => despiteDrops(col, async () => {
        await round(clientGo, serverGo, 32, 24);
      }));
    }
  }
});
