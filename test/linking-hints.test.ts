// Linking when the kernel tells a request's start only if linking needs it (bpf/lib/http1x.h,
// "Linking hints"): a process that has called nobody yet sends one record per exchange, and
// the starts of its requests in flight are told when it first calls out. The first request a
// fresh service serves must still come out as one trace, whatever its runtime, and a burst of
// first requests at once must give no wrong parent (those the kernel could not vouch for stay
// unlinked and counted, never guessed).
//   curl -> middle (Python, a thread per connection, urllib per call) -> backend (demo/backend.py)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Span } from '../src/model/index.js';
import { freePort, startProcess, type StartedProcess } from '../src/demo/processes.js';
import { pythonBin } from '../src/demo/stack.js';
import { SpanCollector } from './agent-helpers.js';
import { run, sleep, waitFor } from './helpers.js';
import { judge, startBackend, suffixOf } from './linking-judge.js';

// GET /front/<x> -> GET <backend>/api/item/<x>, a new connection per call (urllib)
const MIDDLE = `
import http.server, sys, urllib.request
backend = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def do_GET(self):
        x = self.path.rsplit('/', 1)[-1]
        body = urllib.request.urlopen(backend + '/api/item/' + x).read()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
`;

describe('linking with starts told only when needed', { timeout: 180_000 }, () => {
  let col: SpanCollector;
  let backend: { proc: StartedProcess; url: string };
  const middles: StartedProcess[] = [];
  before(async () => {
    col = new SpanCollector();
    backend = await startBackend();
  });
  after(async () => {
    for (const m of middles) await m.stop();
    await backend?.proc.stop();
    await col?.close();
  });

  /** a middle that has served and called nothing yet */
  const freshMiddle = async (name: string): Promise<StartedProcess> => {
    const port = await freePort();
    const m = await startProcess({ name, cmd: pythonBin(), args: ['-c', MIDDLE, String(port), backend.url], env: { OTEL_SERVICE_NAME: name }, port });
    middles.push(m);
    return m;
  };

  const spansOf = (tag: string): Span[] => col.spans.filter((s) => suffixOf(s).startsWith(tag));

  it("a fresh service's first request, and those after it: one trace each, every span under its true parent", async () => {
    const middle = await freshMiddle('middle-first');
    const tag = `first-${Math.random().toString(36).slice(2, 8)}`;
    const n = 20;
    const cfg = join(mkdtempSync(join(tmpdir(), 'osprey-hints-')), 'urls');
    writeFileSync(cfg, Array.from({ length: n }, (_, i) => `url = "http://127.0.0.1:${middle.port}/front/${tag}-${i}"\noutput = "/dev/null"\n`).join(''));
    const c = await run('curl', ['-sS', '-K', cfg], { timeoutMs: 60_000 });
    assert.equal(c.code, 0, c.stderr);
    await col.waitSpans('every span of the last request', (s) => s.filter((x) => suffixOf(x) === `${tag}-${n - 1}`).length >= 4, 15_000);
    await sleep(500);
    const first = spansOf(`${tag}-0`).filter((s) => suffixOf(s) === `${tag}-0`);
    const byKind = (pid: number | undefined, kind: string) => first.find((s) => (pid === undefined || s.resource['process.pid'] === pid) && s.kind === kind && (pid !== undefined || s.resource['process.pid'] !== middle.pid));
    const mServer = byKind(middle.pid, 'server');
    const mClient = byKind(middle.pid, 'client');
    assert.ok(mServer && mClient, `the middle's spans of the first request: ${first.map((s) => `${s.resource['service.name']} ${s.kind}`)}`);
    // its call is linked by its thread: the start of the request it serves was told at the call
    assert.equal(mClient.attributes['osprey.link'], 'thread');
    assert.equal(mClient.parentSpanId, mServer.spanId);
    assert.equal(mServer.attributes['osprey.link'], 'tuple');
    const v = judge(spansOf(tag), middle.pid, 4);
    console.log(`first requests: ${JSON.stringify(v)}`);
    assert.equal(v.requests, n);
    assert.equal(v.wrongParents, 0);
    assert.equal(v.mixedTraces, 0);
    assert.equal(v.endToEnd, 1, 'every request one trace of curl, middle server and call, backend');
  });

  it("the kernel's linking state of a process goes when the process exits", async () => {
    const middle = middles[0]!;
    const key = Buffer.alloc(4);
    key.writeUInt32LE(middle.pid);
    const value = Buffer.alloc(16);
    const cap = col.agent.capture!;
    assert.ok(cap.mapLookup('hx_procs', key, value), 'the middle has an entry');
    assert.equal(value.readUInt32LE(0), 1, 'it calls out');
    assert.equal(value.readUInt32LE(4), 1, 'it serves');
    assert.equal(value.readInt32LE(8), 0, 'no request of it untold');
    await middle.stop();
    await waitFor('its entry deleted by the process sweep', () => !cap.mapLookup('hx_procs', key, value), 15_000);
  });

  it('a burst of first requests on many threads at once: no wrong parent; what the kernel could not vouch for stays unlinked', async () => {
    const middle = await freshMiddle('middle-burst');
    const tag = `burst-${Math.random().toString(36).slice(2, 8)}`;
    const n = 64;
    const cfg = join(mkdtempSync(join(tmpdir(), 'osprey-hints-')), 'urls');
    writeFileSync(cfg, Array.from({ length: n }, (_, i) => `url = "http://127.0.0.1:${middle.port}/front/${tag}-${i}"\noutput = "/dev/null"\n`).join(''));
    const before = col.agent.linker.counters.withheld_unsure;
    const c = await run('curl', ['-sS', '-Z', '--parallel-max', '16', '-K', cfg], { timeoutMs: 60_000 });
    assert.equal(c.code, 0, c.stderr);
    await col.waitSpans('the backend span of every request', (s) => new Set(s.filter((x) => suffixOf(x).startsWith(tag) && x.resource['process.pid'] === backend.proc.pid).map(suffixOf)).size >= n, 20_000);
    await sleep(700);
    const v = judge(spansOf(tag), middle.pid, 4);
    console.log(`burst of first requests: ${JSON.stringify(v)}; calls left unlinked as unsure: ${col.agent.linker.counters.withheld_unsure - before}`);
    assert.equal(v.requests, n);
    assert.equal(v.wrongParents, 0);
    assert.equal(v.mixedTraces, 0);
    // curl -> middle and middle -> backend pair by their connections whatever happened
    assert.equal(v.linked['middle server'], 1);
    assert.equal(v.linked['backend server'], 1);
  });
});
