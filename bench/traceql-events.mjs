#!/usr/bin/env node
// TraceQL over span events and links: search latency at N spans of which 1% carry an event and
// a link (as OTLP spans among eBPF ones), against a plain span-attribute query.
//   node bench/traceql-events.mjs [N=1000000]
// Prints one JSON line per query (median and max of 7 runs of a 20-trace search); asserts nothing.
import { loadDist } from './lib/script.mjs';

const { DuckStore } = await loadDist('store/index.js');
const { Span } = await loadDist('model/index.js');
const { parseTraceQL } = await loadDist('traceql/index.js');
const N = Number(process.argv[2] ?? 1_000_000);
const store = await DuckStore.open({ retention: { maxAgeMs: Infinity, maxSpans: Infinity, intervalMs: 0 } });
const now = BigInt(Date.now() - 3_600_000) * 1_000_000n;
const res = { 'service.name': 'svc' };
const h = (n, w) => n.toString(16).padStart(w, '0');
for (let i = 0; i < N; i += 5000) {
  const batch = [];
  for (let j = i; j < i + 5000; j++) {
    const start = now + BigInt(j) * 3_000_000n;
    const s = Span.from({ traceId: h(j + 1, 32), spanId: h(j + 1, 16), parentSpanId: '', name: 'GET /x', kind: 'internal', startTimeUnixNano: start, durationNano: 1e6, status: 'unset', resource: res, attributes: { 'http.request.method': 'GET', 'http.response.status_code': 200 } });
    if (j % 100 === 0) {
      s.events = [{ timeUnixNano: start + 5n, name: j % 200 === 0 ? 'exception' : 'log', attributes: { 'exception.type': 'E' + (j % 7) } }];
      s.links = [{ traceId: h(j + 7, 32), spanId: h(3, 16), attributes: {} }];
    }
    batch.push(s);
  }
  store.append(batch);
  await store.flush();
}
console.log(JSON.stringify({ ingestedMs: Math.round(performance.now()) }));
for (const q of ['{ event:name = "exception" }', '{ event.exception.type = "E3" }', `{ link:traceID = "${h(100 * Math.floor(N / 200) + 7, 32)}" }`, '{ event:timeSinceStart > 1ms }', '{ span.http.response.status_code = 200 }']) {
  const ts = [];
  let n = 0;
  for (let k = 0; k < 7; k++) {
    const t0 = performance.now();
    n = (await store.searchTraces({ query: parseTraceQL(q), limit: 20, spansPerSpanSet: 3 })).length;
    ts.push(performance.now() - t0);
  }
  ts.sort((a, b) => a - b);
  console.log(JSON.stringify({ q, spans: N, traces: n, medianMs: +ts[3].toFixed(1), maxMs: +ts[6].toFixed(1) }));
}
await store.shutdown();
