// Trace linking through a real chain: curl -> nginx (reverse proxy) -> Node -> Python,
// all unmodified. The request path travels along every hop, so it is the ground truth
// for which spans belong together.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startChain, type Chain } from '../src/demo/chain.js';
import type { Span } from '../src/model/index.js';
import { SpanCollector } from './agent-helpers.js';
import { run, sleep } from './helpers.js';

const HOPS = [
  ['curl', 'client'],
  ['nginx', 'server'],
  ['nginx', 'client'],
  ['frontend', 'server'],
  ['frontend', 'client'],
  ['backend', 'server'],
] as const;

/** the six spans of one request, in hop order, or why not */
function hopsOf(spans: Span[]): Span[] | string {
  const out: Span[] = [];
  for (const [svc, kind] of HOPS) {
    const s = spans.filter((x) => x.resource['service.name'] === svc && x.kind === kind);
    if (s.length !== 1) return `${svc} ${kind}: ${s.length} spans`;
    out.push(s[0]!);
  }
  return out;
}

// curl's root; nginx's server by tuple; nginx's call by its thread (the identical request line
// of a proxy); the Node frontend's server by tuple; its call by Node's runtime context (the
// callback scope of the connection it serves, src/agent/nodectx); the backend by tuple
const EXPECTED_LINK = ['none', 'tuple', 'thread', 'tuple', 'runtime', 'tuple'];

function checkTree(hops: Span[]): string | undefined {
  for (let i = 1; i < hops.length; i++) {
    const h = hops[i]!;
    const p = hops[i - 1]!;
    if (h.traceId !== p.traceId) return `hop ${i} in another trace`;
    if (h.parentSpanId !== p.spanId) return `hop ${i} has a wrong parent`;
    if (h.attributes['osprey.link'] !== EXPECTED_LINK[i]) return `hop ${i} linked by ${h.attributes['osprey.link']}`;
  }
  if (hops[0]!.parentSpanId !== '') return 'curl span has a parent';
  return undefined;
}

describe('linking across an unmodified chain', { timeout: 240_000 }, () => {
  let col: SpanCollector;
  let chain: Chain;
  before(async () => {
    col = new SpanCollector();
    chain = await startChain({ dataDir: mkdtempSync(join(tmpdir(), 'osprey-chain-')) });
  });
  after(async () => {
    await chain?.stop();
    await col?.close();
  });

  it('500 sequential requests from curl: each one trace of six correctly parented spans', async () => {
    const tag = Math.random().toString(36).slice(2, 8);
    const paths = Array.from({ length: 500 }, (_, i) => `/chain/seq-${tag}-${i}`);
    const cfg = join(mkdtempSync(join(tmpdir(), 'osprey-curl-')), 'urls');
    writeFileSync(cfg, paths.map((p) => `url = "${chain.proxyUrl.replace(/\/$/, '')}${p}"\noutput = "/dev/null"\n`).join(''));
    const c = await run('curl', ['-sS', '-K', cfg], { timeoutMs: 120_000 });
    assert.equal(c.code, 0, c.stderr);
    await col.waitSpans('backend span of the last request', (s) => s.some((x) => x.attributes['url.path'] === paths.at(-1) && x.kind === 'client'), 15000);
    await sleep(500);
    let good = 0;
    const problems = new Map<string, number>();
    for (const p of paths) {
      const hops = hopsOf(col.byPath(p));
      const why = typeof hops === 'string' ? hops : checkTree(hops);
      if (why) problems.set(why, (problems.get(why) ?? 0) + 1);
      else good++;
    }
    console.log(`sequential: ${good}/500 requests fully linked; problems: ${JSON.stringify([...problems])}`);
    assert.ok(good >= 495, `${good}/500 fully linked: ${JSON.stringify([...problems])}`);
  });

  it('a route sleeping 200 ms: server spans of 200-260 ms, statuses and routes right', async () => {
    const path = `/chain/sleepy-${Date.now()}`;
    const c = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `${chain.proxyUrl.replace(/\/$/, '')}${path}?sleep=200`]);
    assert.equal(c.stdout, '200');
    await col.waitSpans('all hops', (s) => s.filter((x) => x.attributes['url.path'] === path).length >= 6);
    const hops = hopsOf(col.byPath(path));
    assert.ok(Array.isArray(hops), typeof hops === 'string' ? hops : '');
    const backend = hops[5]!;
    const ms = backend.durationNano / 1e6;
    assert.ok(ms >= 200 && ms <= 260, `backend server span ${ms} ms`);
    for (const h of hops) {
      const d = h.durationNano / 1e6;
      assert.ok(d >= 200 && d < 400, `${h.resource['service.name']} ${h.kind} ${d} ms`);
      assert.equal(h.attributes['http.response.status_code'], 200);
      assert.equal(h.status, 'unset');
      assert.equal(h.name, 'GET /chain/{id}', `route templated: ${h.name}`);
      assert.equal(h.attributes['url.query'], 'sleep=200');
    }
    // containment: every child lies within its parent
    for (let i = 1; i < hops.length; i++) {
      const [p, ch] = [hops[i - 1]!, hops[i]!];
      assert.ok(ch.startTimeUnixNano >= p.startTimeUnixNano, `hop ${i} starts after its parent`);
      assert.ok(ch.startTimeUnixNano + BigInt(ch.durationNano) <= p.startTimeUnixNano + BigInt(p.durationNano), `hop ${i} ends within its parent`);
    }
  });

  /** wrk -c32 through the chain with a unique path per request */
  async function wrkChain(label: string): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), 'osprey-wrk-'));
    const tag = Math.random().toString(36).slice(2, 8);
    writeFileSync(
      join(dir, 'unique.lua'),
      `local n = 0
local id = 0
setup = function(thread) id = id + 1; thread:set("tid", id) end
init = function() n = 0 end
request = function()
  n = n + 1
  return wrk.format("GET", "/chain/wrk-${tag}-" .. tid .. "-" .. n)
end
`,
    );
    const before = col.spans.length;
    const w = await run('wrk', ['-t2', '-c32', '-d6s', '-s', join(dir, 'unique.lua'), chain.proxyUrl], { timeoutMs: 60_000 });
    assert.equal(w.code, 0, w.stderr);
    const m = /(\d+) requests in/.exec(w.stdout);
    assert.ok(m, w.stdout);
    const completed = Number(m[1]);
    await sleep(3000);
    const spans = col.spans.slice(before).filter((s) => String(s.attributes['url.path']).startsWith(`/chain/wrk-${tag}-`));
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    let wrong = 0;
    let withParent = 0;
    // a child outside its parent's time (ends timed on two CPUs, Linker.finish), by link
    const outside: Record<string, number> = {};
    const examples: string[] = [];
    const endOf = (x: Span) => x.startTimeUnixNano + BigInt(x.durationNano);
    for (const s of spans) {
      if (!s.parentSpanId) continue;
      const p = byId.get(s.parentSpanId);
      if (!p) continue;
      withParent++;
      if (p.attributes['url.path'] !== s.attributes['url.path'] || p.traceId !== s.traceId) wrong++;
      // (a request wrk left in flight when it stopped ended where its last bytes went: not nested)
      const whole = p.attributes['error.type'] === undefined && s.attributes['error.type'] === undefined;
      if (whole && (s.startTimeUnixNano < p.startTimeUnixNano || endOf(s) > endOf(p))) {
        const how = String(s.attributes['osprey.link']);
        outside[how] = (outside[how] ?? 0) + 1;
        if (examples.length < 3) examples.push(`${p.resource['service.name']} ${p.kind} -> ${s.resource['service.name']} ${s.kind}: starts ${s.startTimeUnixNano - p.startTimeUnixNano} ns after, ends ${endOf(p) - endOf(s)} ns before`);
      }
    }
    const byPath = new Map<string, Span[]>();
    for (const s of spans) {
      const k = String(s.attributes['url.path']);
      byPath.set(k, [...(byPath.get(k) ?? []), s]);
    }
    // complete: all six spans (wrk client, nginx server+client, node server+client, python server)
    let complete = 0;
    let endToEnd = 0;
    let mixed = 0;
    for (const list of byPath.values()) {
      if (list.length !== 6) continue;
      complete++;
      if (new Set(list.map((s) => s.traceId)).size === 1) endToEnd++;
    }
    // a trace holding spans of two requests
    const pathsByTrace = new Map<string, Set<string>>();
    for (const s of spans) pathsByTrace.set(s.traceId, (pathsByTrace.get(s.traceId) ?? new Set()).add(String(s.attributes['url.path'])));
    for (const paths of pathsByTrace.values()) if (paths.size > 1) mixed++;
    const completeness = Math.min(complete, completed) / completed;
    console.log(
      `${label}: ${completed} requests completed (${(completed / 6).toFixed(0)}/s), ${complete} paths with all six spans ` +
        `(completeness ${(completeness * 100).toFixed(2)}%), linked end to end ${endToEnd} (${((endToEnd / completed) * 100).toFixed(1)}%), ` +
        `${withParent} parent links checked, ${wrong} wrong, ${mixed} traces mixing requests, outside their parent: ${JSON.stringify(outside)}`,
    );
    assert.equal(wrong, 0, 'no wrong parent');
    assert.deepEqual(outside, {}, `every child lies within its parent: ${examples.join('; ')}`);
    assert.equal(mixed, 0, 'no trace mixes two requests');
    assert.ok(completeness >= 0.999, `completeness ${completeness}`);
    // a linker that links nothing has no wrong parent either: the chain forwards the request
    // line at every hop, so sound rules link (nearly) every request end to end
    assert.ok(endToEnd >= 0.9 * completed, `linked end to end: ${endToEnd} of ${completed}`);
  }

  it('wrk -c32 unpaced with a unique path per request: no wrong parent, complete spans', async () => {
    await wrkChain('wrk -c32');
  });
});
