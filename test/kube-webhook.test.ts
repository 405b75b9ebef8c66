// An admission-webhook-style Go HTTPS server (test/fixtures/kubego: HTTP/2 and HTTP/1.1 by ALPN)
// called the way the API server calls webhooks: POST of an admission.k8s.io/v1 AdmissionReview
// to its path with ?timeout=10s, content-type application/json, from a Go client that trusts the
// webhook's certificate (no real API server can run here: the caller is the fixture's own, with
// the API server's request shape). Both sides are seen through the Go crypto/tls uprobes, over
// h2 (multiplexed on one connection) and HTTP/1.1 (a connection per concurrent call), at
// concurrency 1 and 32: every review is one linked server/client pair with POST, its path, the
// query and 200 (allowed and denied alike: a denial is an answer, not an HTTP error), 0 wrong
// parents, and nothing of the review's body in any span.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startProcess, type StartedProcess } from '../src/demo/processes.js';
import { spanToJson } from '../src/model/index.js';
import { SpanCollector } from './agent-helpers.js';
import { run } from './helpers.js';
import { buildKubeGo } from './kubego.js';
import { checkPairs, despiteDrops, pairOf, type Expect, waitPairs } from './peer-matrix.js';

describe('admission webhook (AdmissionReview over HTTPS, h2 and HTTP/1.1)', { timeout: 900_000 }, () => {
  let bin: string;
  let col: SpanCollector;
  let hook: StartedProcess;
  let dir: string;
  let base: string;

  before(async () => {
    bin = buildKubeGo();
    dir = mkdtempSync(join(tmpdir(), 'osprey-webhook-'));
    col = new SpanCollector(300, undefined, { uprobes: { scanMs: 3_600_000 } });
    const port = await freePort();
    base = `https://127.0.0.1:${port}`;
    hook = await startProcess({ name: 'webhook', cmd: bin, args: ['webhook', String(port), dir], port });
    col.agent.uprobes!.scan();
    const w = col.agent.uprobes!.files().find((f) => f.path === bin);
    assert.equal(w?.status, 'attached', JSON.stringify(w));
  });

  after(async () => {
    await hook?.stop();
    await col?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const proto of ['h2', 'h1'] as const) {
    for (const conc of [1, 32]) {
      it(`${proto === 'h2' ? 'HTTP/2' : 'HTTP/1.1'}, concurrency ${conc}`, () => despiteDrops(col, async () => {
        const tag = `${proto}c${conc}${Math.random().toString(36).slice(2, 8)}`;
        const per = conc === 1 ? 2 : 24;
        const names: string[] = [];
        for (let i = 0; i < per; i++) names.push(`allow-${tag}-${i}`, `deny-${tag}-${i}`);
        const res = await run(bin, ['admit', base, join(dir, 'ca.pem'), proto, String(conc), ...names], { timeoutMs: 60_000 });
        assert.equal(res.code, 0, res.stderr + res.stdout);
        const wire = proto === 'h2' ? 'HTTP/2.0' : 'HTTP/1.1';
        assert.deepEqual(res.stdout.trim().split('\n'), names.map((n) => `${n} ${n.startsWith('deny') ? 'denied 403' : 'allowed'} ${wire}`));
        const reqs: Expect[] = names.map((n) => ({ path: `/validate/${n}`, method: 'POST', status: 200, version: proto === 'h2' ? '2' : '1.1', serverPid: hook.pid, clientPid: res.pid }));
        await waitPairs(col, reqs);
        const { wrongParents, linked } = checkPairs(col, reqs);
        assert.equal(wrongParents, 0);
        assert.equal(linked, reqs.length);
        for (const r of reqs) {
          const { server, client } = pairOf(col, r.path, hook.pid);
          for (const s of [server[0]!, client[0]!]) {
            assert.equal(s.attributes['url.query'], 'timeout=10s', `${r.path}: ${s.kind} query`);
            assert.ok(Number(s.attributes['http.request.body.size']) > 300, `${r.path}: ${s.kind}: the review's size is counted`);
          }
          // the Go client sends no traceparent: the pair is linked by the connection (and stream)
          assert.equal(server[0]!.attributes['osprey.link'], 'tuple', `${r.path}: link`);
        }
        // the bodies (the Pod in the review, the verdict's message) are stored nowhere
        const stored = JSON.stringify(col.spans.map(spanToJson));
        for (const n of names) {
          assert.ok(!stored.includes(`admission-body-${n}`), `${n}: the review's body is in a span`);
          assert.ok(!stored.includes(`uid-${n}`), `${n}: the review's uid is in a span`);
          assert.ok(!stored.includes(`pod ${n} is not allowed`), `${n}: the verdict's message is in a span`);
        }
        assert.ok(!stored.includes('AdmissionReview') && !stored.includes('registry.example'), 'no body in any span');
      }));
    }
  }
});
