// Linking through Java and Python services, as they are (issue 14):
//   wrk -> nginx -> <middle> -> Python backend (demo/backend.py)
// where the middle forwards GET /front/<x> as GET /api/item/<x> (the path changes on the way,
// so the proxy's request-line rule cannot link the middle's calls; only the thread rule can):
//   Java urlconnection  com.sun.net.httpserver + fixed pool, blocking HttpURLConnection on the
//                       handler thread: the thread rule is sound and links it;
//   Java httpclient     the same server, java.net.http.HttpClient: the request is written by the
//                       client's own threads (a hand-off), so the middle's call has no parent;
//   Python threads      http.server.ThreadingHTTPServer + urllib on the handler thread: linked;
//   Python aiohttp      one asyncio loop thread serves every request: the middle's call has
//                       no parent, even at 1 connection, where one request is in flight at a
//                       time: the "after" variant shows why (a fire-and-forget call an answered
//                       request left behind runs while the next one is in flight; the thread
//                       rule used to link it to that one: 5 wrong parents in 1,841 requests).
// Every variant, at 1 and 32 unpaced connections: 0 traces mixing two requests and 0 wrong
// parents (the suffix <x> is the ground truth), the tuple hops linked, and the middle's call
// linked where the runtime makes the thread rule sound. The shares are printed (README table).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { writeNginxConfig } from '../src/demo/nginx.js';
import { freePort, startProcess, type StartedProcess } from '../src/demo/processes.js';
import { pythonBin } from '../src/demo/stack.js';
import { SpanCollector } from './agent-helpers.js';
import { buildJava } from './java-build.js';
import { despiteLoss, HOPS, judge, startBackend, suffixOf, wrkUnique } from './linking-judge.js';
import { pythonVenv } from './py-venv.js';
import { sleep } from './helpers.js';

const SECONDS = Number(process.env.JVMPY_SECONDS ?? 3);
const CONNECTIONS = [1, 32] as const;

interface Middle {
  name: string;
  cmd: () => string;
  args: (port: number, backend: string) => string[];
  /** the lowest share of requests whose middle call must be linked, per connection count (0: reported only) */
  expect: Record<(typeof CONNECTIONS)[number], number>;
}

// sun.net.httpserver.nodelay: the JDK server writes an answer's headers and body in two writes,
// and with Nagle on the body waits for nginx's delayed ACK (~40 ms a request at 1 connection)
const javaArgs = (mode: string) => (port: number, backend: string) => ['-Xmx128m', '-XX:+UseSerialGC', '-Dsun.net.httpserver.nodelay=true', '-cp', buildJava(resolve('test/fixtures/java/Forwarder.java')), 'Forwarder', String(port), backend, mode];

const MIDDLES: Middle[] = [
  { name: 'Java HttpServer + HttpURLConnection', cmd: () => 'java', args: javaArgs('urlconnection'), expect: { 1: 0.9, 32: 0.9 } },
  { name: 'Java HttpServer + java.net.http.HttpClient', cmd: () => 'java', args: javaArgs('httpclient'), expect: { 1: 0, 32: 0 } },
  {
    name: 'Python ThreadingHTTPServer + urllib',
    cmd: pythonBin,
    args: (port, backend) => [resolve('test/fixtures/py/forwarder_threads.py'), String(port), backend],
    expect: { 1: 0.9, 32: 0.9 },
  },
  {
    name: 'Python aiohttp server + client',
    cmd: () => pythonVenv('aiohttp', ['aiohttp==3.14.5']),
    args: (port, backend) => [resolve('test/fixtures/py/forwarder_aiohttp.py'), String(port), backend],
    expect: { 1: 0, 32: 0 },
  },
  {
    name: 'Python aiohttp, plus a fire-and-forget call after answering',
    cmd: () => pythonVenv('aiohttp', ['aiohttp==3.14.5']),
    args: (port, backend) => [resolve('test/fixtures/py/forwarder_aiohttp.py'), String(port), backend, 'after'],
    expect: { 1: 0, 32: 0 },
  },
];

describe('linking through Java and Python services at 1 and 32 connections', { timeout: 900_000 }, () => {
  let col: SpanCollector;
  const procs: StartedProcess[] = [];
  let backendUrl = '';
  let workDir = '';
  const table: string[] = [];

  before(async () => {
    workDir = mkdtempSync(join(tmpdir(), 'osprey-jvmpy-'));
    col = new SpanCollector();
    const b = await startBackend();
    procs.push(b.proc);
    backendUrl = b.url;
  });
  after(async () => {
    for (const p of procs.reverse()) await p.stop();
    await col?.close();
    if (table.length) console.log(`wrk -> nginx -> middle -> Python, ${SECONDS} s a round:\n| middle | connections | requests | end to end | middle's call | wrong parents |\n${table.join('\n')}`);
  });

  for (const m of MIDDLES) {
    it(`${m.name} in the middle: no wrong parent; the middle's call linked where sound`, async () => {
      const middlePort = await freePort();
      const middle = await startProcess({
        name: 'middle',
        cmd: m.cmd(),
        args: m.args(middlePort, backendUrl),
        env: { OTEL_SERVICE_NAME: 'middle', PYTHONDONTWRITEBYTECODE: '1' },
        port: middlePort,
        timeoutMs: 30_000,
      });
      const proxyPort = await freePort();
      const conf = writeNginxConfig({ listenPort: proxyPort, upstreamPort: middlePort, prefix: join(workDir, `nginx-${middlePort}`) });
      const nginx = await startProcess({ name: 'nginx', cmd: conf.cmd, args: conf.args, port: proxyPort });
      try {
        for (const c of CONNECTIONS) {
          await despiteLoss(col, async () => {
            const tag = `${middlePort}c${c}x${Math.random().toString(36).slice(2, 7)}`;
            const before = col.spans.length;
            const { requests, stdout } = await wrkUnique({ url: `http://127.0.0.1:${proxyPort}`, tag, connections: c, seconds: SECONDS, dir: workDir, atLeast: 50 });
            assert.doesNotMatch(stdout, /Non-2xx/, 'every request answered by the backend');
            await sleep(1500);
            const spans = col.spans.slice(before).filter((s) => suffixOf(s).startsWith(`${tag}-`));
            const v = judge(spans, middle.pid);
            const middleCall = v.linked['middle client'] ?? 0;
            const shares = Object.entries(v.linked)
              .map(([k, x]) => `${k} ${(x * 100).toFixed(1)}%`)
              .join(', ');
            console.log(
              `${m.name}, ${c} connection(s): ${requests} requests completed, ${v.requests} seen, ${v.spans} spans, ${v.mixedTraces} mixed traces, ` +
                `${v.wrongParents} wrong parents; end to end ${(v.endToEnd * 100).toFixed(1)}%; linked to their true parent: ${shares}`,
            );
            table.push(`| ${m.name} | ${c} | ${v.requests} | ${(v.endToEnd * 100).toFixed(1)}% | ${(middleCall * 100).toFixed(1)}% | ${v.wrongParents} |`);
            assert.equal(v.mixedTraces, 0, 'no trace mixes two requests');
            assert.equal(v.wrongParents, 0, 'no span has a parent of another request');
            // the sound links must still be made: a linker that links nothing passes the checks above
            for (const h of HOPS.filter((x) => x !== 'middle client')) {
              assert.ok((v.linked[h] ?? 0) >= 0.9, `${h} linked for ${((v.linked[h] ?? 0) * 100).toFixed(1)}% of requests`);
            }
            const want = m.expect[c];
            if (want > 0) {
              assert.ok(middleCall >= want, `the middle's call linked for ${(middleCall * 100).toFixed(1)}% of requests`);
              assert.ok(v.endToEnd >= want, `${(v.endToEnd * 100).toFixed(1)}% of requests linked end to end`);
            }
          });
        }
      } finally {
        await nginx.stop();
        await middle.stop();
      }
    });
  }
});
