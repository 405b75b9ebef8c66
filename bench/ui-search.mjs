#!/usr/bin/env node
// The web UI over a large store: N synthetic spans (default 1M) in an in-memory store behind
// the real server and the built UI (web/dist), Debian's Chromium driving it. Times, in the
// browser, from navigation to the result rows on screen: the opening view (newest traces),
// a filtered search sorted by duration, and a trace's waterfall. Prints numbers; asserts nothing.
// The UI asks for the trace list first and for the rest (total, heatmap, filter values) after it.
//   node bench/ui-search.mjs [--spans 1000000] [--runs 5]
import { chromium } from 'playwright-core';
import { fileURLToPath } from 'node:url';
import { loadDist, option } from './lib/script.mjs';

const { DuckStore } = await loadDist('store/index.js');
const { Span } = await loadDist('model/index.js');
const { startServer } = await loadDist('server/server.js');

const N = Number(option('spans', 1_000_000));
const RUNS = Number(option('runs', 5));
const SERVICES = 40;
let seed = 7;
const rand = () => ((seed = (seed * 1664525 + 1013904223) >>> 0), seed / 4294967296);
const hex = (n) => Array.from({ length: n }, () => '0123456789abcdef'[Math.floor(rand() * 16)]).join('');
const resources = Array.from({ length: SERVICES }, (_, i) => ({ 'service.name': `svc-${i}`, 'process.pid': 100 + i, 'k8s.namespace.name': `ns-${i % 4}` }));

const store = await DuckStore.open({ retention: { maxSpans: N * 2 } });
const now = BigInt(Date.now()) * 1_000_000n;
const windowNs = 3600n * 1_000_000_000n;
const t0 = Date.now();
let made = 0;
let batch = [];
while (made < N) {
  // a trace: a root server span, then client -> server pairs down a chain of 1-3 services
  const traceId = hex(32);
  const start = now - windowNs + (windowNs * BigInt(made)) / BigInt(N);
  let dur = Math.floor(5e6 * Math.exp(1.2 * Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand())));
  let svc = Math.floor(rand() * SERVICES);
  let parent = '';
  const hops = 1 + Math.floor(rand() * 3);
  for (let h = 0; h < hops && made < N; h++) {
    const route = `/api/r${svc}/{id}`;
    const server = Span.from({ traceId, spanId: hex(16), parentSpanId: parent, name: `GET ${route}`, kind: 'server', startTimeUnixNano: start + BigInt(h * 100_000), durationNano: dur, status: rand() < 0.01 ? 'error' : 'unset', resource: resources[svc], attributes: { 'http.request.method': 'GET', 'http.route': route, 'url.path': route.replace('{id}', '1'), 'http.response.status_code': 200, 'osprey.link': parent ? 'tuple' : 'none' } });
    batch.push(server);
    made++;
    if (h + 1 < hops && made < N) {
      const callee = Math.floor(rand() * SERVICES);
      const client = Span.from({ traceId, spanId: hex(16), parentSpanId: server.spanId, name: `GET /api/r${callee}/{id}`, kind: 'client', startTimeUnixNano: start + BigInt(h * 100_000 + 50_000), durationNano: Math.floor(dur * 0.8), status: 'unset', resource: resources[svc], attributes: { 'http.request.method': 'GET', 'http.response.status_code': 200, 'osprey.link': 'thread' } });
      batch.push(client);
      made++;
      parent = client.spanId;
      svc = callee;
      dur = Math.floor(dur * 0.7);
    }
  }
  if (batch.length >= 5000) {
    store.append(batch);
    batch = [];
    await store.flush(); // keep the buffer bounded: appending faster than flushes would drop spans
  }
}
store.append(batch);
await store.flush();
console.log(`stored ${store.stats().rows.toLocaleString()} spans in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

const uiDir = fileURLToPath(new URL('../web/dist', import.meta.url));
const server = await startServer({ store, status: () => ({}), metrics: () => '', ui: () => '', uiDir }, { host: '127.0.0.1', port: 0 });
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });

async function timed(url, ready) {
  const ms = [];
  for (let i = 0; i < RUNS; i++) {
    const a = performance.now();
    await page.goto(`${server.url}${url}`);
    await page.locator(ready).first().waitFor({ timeout: 60_000 });
    ms.push(performance.now() - a);
    // let the page's later requests (count, heatmap, filter values) finish before the next
    // navigation: the server does not cancel a query whose client went away
    await page.waitForLoadState('networkidle');
  }
  ms.sort((a, b) => a - b);
  return { median: ms[Math.floor(ms.length / 2)], min: ms[0], max: ms[ms.length - 1] };
}
const q = encodeURIComponent('{ resource.k8s.namespace.name = "ns-2" && kind = server }');
const rows = [
  ['open / (newest traces of the last hour)', '/', 'table.traces tbody tr'],
  ['namespace ns-2, slowest first', `/?q=${q}&order=duration`, 'table.traces tbody tr'],
  ['heatmap of the last hour drawn', '/', '[data-testid=heatmap] canvas'],
];
const first = await (await fetch(`${server.url}/api/osprey/ui/traces?limit=1&order=duration`)).json();
rows.push(['a trace waterfall', `/trace/${first.traces[0].traceId}`, '[data-testid=waterfall] [role=treeitem]']);
console.log(`browser: Chromium, ${RUNS} runs each, from navigation to the rows on screen (ms)`);
for (const [what, url, ready] of rows) {
  const r = await timed(url, ready);
  console.log(`${what.padEnd(48)} median ${r.median.toFixed(0).padStart(5)}   min ${r.min.toFixed(0).padStart(5)}   max ${r.max.toFixed(0).padStart(5)}`);
}
for (const [what, path] of [
  ['API: newest 50 traces + total', '/api/osprey/ui/traces?limit=50&since=1h'],
  ['API: newest 50 traces (page only, as the UI)', '/api/osprey/ui/traces?limit=50&since=1h&total=false'],
  ['API: total of the newest (as the UI, after)', '/api/osprey/ui/traces/count?since=1h'],
  ['API: ns-2 slowest 50 + total', `/api/osprey/ui/traces?limit=50&since=1h&order=duration&q=${q}`],
  ['API: ns-2 slowest 50 (page only)', `/api/osprey/ui/traces?limit=50&since=1h&order=duration&total=false&q=${q}`],
  ['API: heatmap 120 columns', '/api/osprey/ui/heatmap?since=1h&columns=120'],
]) {
  const a = performance.now();
  await (await fetch(`${server.url}${path}`)).json();
  console.log(`${what.padEnd(48)} ${(performance.now() - a).toFixed(0).padStart(5)} ms`);
}
await browser.close();
await server.close();
await store.shutdown();
