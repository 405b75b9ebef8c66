// The thread model of real, running processes (src/agent/process/runtime.ts): the linker's
// thread rule rests on it, so each runtime Osprey may meet is started for real and classified.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { detectRuntime, elfFacts, type ThreadModel } from '../src/agent/process/runtime.js';
import { writeNginxConfig } from '../src/demo/nginx.js';
import { freePort, startProcess, type StartedProcess } from '../src/demo/processes.js';
import { pythonBin } from '../src/demo/stack.js';
import { buildGo, goToolchains } from './go-build.js';
import { waitFor } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'osprey-runtime-'));
const started: StartedProcess[] = [];

async function start(name: string, cmd: string, args: string[], port?: number): Promise<StartedProcess> {
  const p = await startProcess({ name, cmd, args, port, timeoutMs: 30_000 });
  started.push(p);
  return p;
}

/** the model once it is settled (modules and threads appear while a process starts) */
async function modelOf(p: StartedProcess, exe: string, want: ThreadModel): Promise<ReturnType<typeof detectRuntime>> {
  let last = detectRuntime(p.pid, exe);
  try {
    await waitFor(`${exe} to look ${want}`, () => (last = detectRuntime(p.pid, exe)).model === want, 10_000);
  } catch {
    // the assertion below says what it looked like instead
  }
  return last;
}

describe('runtime detection on real processes', { timeout: 300_000 }, () => {
  after(async () => {
    for (const p of started.reverse()) await p.stop();
  });

  for (const go of goToolchains()) {
    it(`a Go service built with ${go.version} multiplexes (goroutines move between threads)`, async () => {
      const bin = buildGo(resolve('test/fixtures/forwarder.go'), go);
      assert.equal(elfFacts(bin)?.go, true);
      const port = await freePort();
      const p = await start('go', bin, [String(port), 'http://127.0.0.1:1'], port);
      const r = await modelOf(p, bin, 'multiplexed');
      assert.equal(r.runtime, 'go', r.evidence);
      assert.equal(r.model, 'multiplexed');
    });
  }

  it('nginx and Node are event loops', async () => {
    const port = await freePort();
    const conf = writeNginxConfig({ listenPort: port, upstreamPort: 1, prefix: join(dir, 'nginx') });
    const nginx = await start('nginx', conf.cmd, conf.args, port);
    assert.equal((await modelOf(nginx, '/usr/sbin/nginx', 'event-loop')).model, 'event-loop');
    assert.equal(elfFacts('/usr/sbin/nginx')?.go, false);
    const nport = await freePort();
    const node = await start('node', process.execPath, [resolve('test/fixtures/forwarder.mjs'), String(nport), 'http://127.0.0.1:1'], nport);
    const r = await modelOf(node, process.execPath, 'event-loop');
    assert.equal(r.runtime, 'node');
    assert.equal(r.model, 'event-loop');
  });

  it('Python: a threading server is per-request, an asyncio one an event loop', async () => {
    const tport = await freePort();
    const threaded = await start('py-threads', pythonBin(), ['-m', 'http.server', '--bind', '127.0.0.1', String(tport)], tport);
    const t = await modelOf(threaded, pythonBin(), 'per-request');
    assert.equal(t.model, 'per-request', t.evidence);
    assert.equal(t.recheck, true, 'asyncio may still be imported later');
    const aport = await freePort();
    const script = join(dir, 'aio.py');
    writeFileSync(
      script,
      `import asyncio\nasync def main():\n    srv = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", ${aport})\n    async with srv:\n        await srv.serve_forever()\nasyncio.run(main())\n`,
    );
    const aio = await start('py-asyncio', pythonBin(), [script], aport);
    const a = await modelOf(aio, pythonBin(), 'event-loop');
    assert.equal(a.model, 'event-loop', a.evidence);
  });

  it('Java: a plain HttpServer is per-request until its work moves to a ForkJoin pool', async () => {
    const src = join(dir, 'Svc.java');
    writeFileSync(
      src,
      `import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;
import java.util.concurrent.ForkJoinPool;
public class Svc {
  public static void main(String[] a) throws Exception {
    HttpServer s = HttpServer.create(new InetSocketAddress("127.0.0.1", Integer.parseInt(a[0])), 64);
    s.createContext("/", x -> { x.sendResponseHeaders(204, -1); x.close(); });
    s.start();
    // an explicit pool: with one core to spare, the common pool runs tasks on plain threads
    if (a.length > 1) { Thread.sleep(1500); new ForkJoinPool(2).submit(() -> 1).get(); }
  }
}
`,
    );
    const port = await freePort();
    const java = await start('java', 'java', [src, String(port), 'async'], port);
    const before = detectRuntime(java.pid, '/usr/bin/java');
    assert.equal(before.runtime, 'java');
    assert.equal(before.model, 'per-request', before.evidence);
    const after = await modelOf(java, '/usr/bin/java', 'multiplexed');
    assert.equal(after.model, 'multiplexed', after.evidence);
    assert.match(after.evidence, /ForkJoinPool/);
  });

  it('a plain native program (curl) is per-request', async () => {
    const facts = elfFacts('/usr/bin/curl');
    assert.ok(facts);
    assert.equal(facts.go, false);
    assert.equal(facts.rustAsync, undefined);
  });
});
