#!/usr/bin/env node
// Store benchmark: append N synthetic spans, then time typical queries.
//   node --expose-gc bench/store-bench.mjs [--spans 1000000] [--path /tmp/osprey-bench.duckdb] [--runs 50] [--rebuild]
//                                          [--threads N]
// Without --path the database is in memory. Prints a table; asserts nothing. --rebuild also
// times rebuilding the RED/service-graph rollups of every span (what open() does, for the
// buckets still in memory, after a crash).

import { existsSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { cpuUs, loadDist, option } from './lib/script.mjs';
import { synthetic } from './lib/synthetic.mjs';

const { DuckStore } = await loadDist('store/index.js');
const { Span } = await loadDist('model/index.js');
const { parseTraceQL } = await loadDist('traceql/index.js');

const N = Number(option('spans', 1_000_000));
const RUNS = Number(option('runs', 50));
const PATH = option('path', undefined);
// DuckDB's threads (default: one per core)
const THREADS = option('threads', undefined);
const nowNs = BigInt(Date.now()) * 1_000_000n;
const { generate, traceIds, SERVICES, ROUTES } = synthetic({ Span, nowNs });

// ---- run ------------------------------------------------------------------------------------
const fmt = (x, d = 1) => (typeof x === 'number' ? x.toFixed(d) : String(x));
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

if (PATH && existsSync(PATH)) rmSync(PATH);
if (PATH && existsSync(`${PATH}.wal`)) rmSync(`${PATH}.wal`);

const rssBefore = process.memoryUsage().rss / 1e6;
const store = await DuckStore.open({ path: PATH, threads: THREADS === undefined ? undefined : Number(THREADS), retention: { maxSpans: Infinity, maxAgeMs: Infinity, intervalMs: 0 } });
let genMs = 0;
let appendMs = 0;
let appendCpuUs = 0; // process CPU (all threads) spent in append() and flush()
const gen = generate(N, 5000);
for (;;) {
  const tg = performance.now();
  const next = gen.next();
  genMs += performance.now() - tg;
  if (next.done) break;
  const t = performance.now();
  const c = cpuUs();
  for (let i = 0; i < next.value.length; i += 1000) store.append(next.value.slice(i, i + 1000));
  if (store.stats().buffered >= 5000) await store.flush();
  appendCpuUs += cpuUs() - c;
  appendMs += performance.now() - t;
}
{
  const t = performance.now();
  const c = cpuUs();
  await store.flush();
  appendCpuUs += cpuUs() - c;
  appendMs += performance.now() - t;
}
const st = store.stats();
globalThis.gc?.();

const hour = 3600n * 1_000_000_000n;
const results = [];
async function time(label, fn, runs = RUNS) {
  await fn(0); // warm up
  const ms = [];
  let last;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    last = await fn(i);
    ms.push(performance.now() - t);
  }
  results.push({ label, p50: pct(ms, 50), p99: pct(ms, 99), rows: Array.isArray(last) ? last.length : '' });
}

const q1 = parseTraceQL('{ resource.service.name = "svc-7" && duration > 500ms }');
await time('search {svc-7 && duration>500ms} 1h, top 20 by duration', () =>
  store.search({ query: q1, startNs: nowNs - hour, endNs: nowNs, limit: 20, order: 'duration_desc' }));
await time('trace by id', (i) => store.trace(traceIds[Math.floor((i * 7919) % traceIds.length)]));
const qAll = parseTraceQL('{}');
await time('search {} 1h, newest 20', () => store.search({ query: qAll, startNs: nowNs - hour, endNs: nowNs, limit: 20 }));
const qErr = parseTraceQL('{ status = error && kind = server }');
await time('search {status=error && kind=server} 1h, 20', () =>
  store.search({ query: qErr, startNs: nowNs - hour, endNs: nowNs, limit: 20 }));
const qPath = parseTraceQL('{ span.url.path =~ "/api/v1/r42/.*" }');
await time('search {span.url.path =~ regex} 1h, 20', () =>
  store.search({ query: qPath, startNs: nowNs - hour, endNs: nowNs, limit: 20 }), 10);
const qAddr = parseTraceQL('{ span.client.address = "10.0.1.7" && kind = server }');
await time('search {span.client.address = ...} 1h (JSON attr), 20', () =>
  store.search({ query: qAddr, startNs: nowNs - hour, endNs: nowNs, limit: 20 }), 10);
const qPid = parseTraceQL('{ .process.pid = 1007 && span.http.route = "/api/v1/r7/{id}" }');
await time('search {.process.pid=1007 && route} all time, 20', () => store.search({ query: qPid, limit: 20 }), 10);
await time('searchTraces {status=error} 1h, 20 traces', () =>
  store.searchTraces({ query: qErr, startNs: nowNs - hour, endNs: nowNs, limit: 20 }), 10);
// TraceQL beyond plain filters (src/store/spanset.ts, metrics-query.ts)
const qStruct = parseTraceQL('{ kind = server && resource.service.name = "svc-7" } > { kind = client }');
await time('searchTraces {svc-7 server} > {client} 1h, 20', () =>
  store.searchTraces({ query: qStruct, startNs: nowNs - hour, endNs: nowNs, limit: 20 }), 10);
const qDesc = parseTraceQL('{ resource.service.name = "svc-7" } >> { status = error }');
await time('searchTraces {svc-7} >> {status=error} 1h, 20', () =>
  store.searchTraces({ query: qDesc, startNs: nowNs - hour, endNs: nowNs, limit: 20 }), 10);
const qAnd = parseTraceQL('{ status = error } && { resource.service.name = "svc-3" }');
await time('searchTraces {error} && {svc-3} 1h, 20', () =>
  store.searchTraces({ query: qAnd, startNs: nowNs - hour, endNs: nowNs, limit: 20 }), 10);
const qPipe = parseTraceQL('{ kind = server } | by(resource.service.name) | count() > 2');
await time('searchTraces {server} | by(svc) | count() > 2 1h, 20', () =>
  store.searchTraces({ query: qPipe, startNs: nowNs - hour, endNs: nowNs, limit: 20 }), 10);
const step = 60n * 1_000_000_000n;
const qRate = parseTraceQL('{ kind = server } | rate() by (resource.service.name)');
await time('metrics {server} | rate() by (svc) 1h step 1m', () =>
  store.metricsQuery(qRate, { startNs: nowNs - hour, endNs: nowNs, stepNs: step }).then((r) => r.series), 10);
const qQuant = parseTraceQL('{ kind = server } | quantile_over_time(duration, 0.5, 0.9, 0.99) by (resource.service.name)');
await time('metrics quantile_over_time(duration, .5,.9,.99) by (svc) 1h', () =>
  store.metricsQuery(qQuant, { startNs: nowNs - hour, endNs: nowNs, stepNs: step }).then((r) => r.series), 10);
const qHist = parseTraceQL('{ } | histogram_over_time(duration)');
await time('metrics {} | histogram_over_time(duration) 1h', () =>
  store.metricsQuery(qHist, { startNs: nowNs - hour, endNs: nowNs, stepNs: step }).then((r) => r.series), 10);
const qCmp = parseTraceQL('{ kind = server } | compare({ status = error })');
await time('metrics {server} | compare({status=error}) 1h', () =>
  store.metricsQuery(qCmp, { startNs: nowNs - hour, endNs: nowNs, stepNs: step }).then((r) => r.series), 3);
await time('services() last hour', () => store.services(nowNs - hour, nowNs), 10);
await time('edges() last hour', () => store.edges(nowNs - hour, nowNs), 10);

let rebuild = '';
if (process.argv.includes('--rebuild')) {
  const t = performance.now();
  const c = cpuUs();
  const n = await store.rebuildRollups(true);
  rebuild = `rollup rebuild: ${n.toLocaleString()} spans in ${fmt(performance.now() - t, 0)} ms, ${fmt((cpuUs() - c) / n, 2)} µs CPU per span`;
}

globalThis.gc?.();
const rss = process.memoryUsage().rss / 1e6;
await store.shutdown();
const fileMb = PATH && existsSync(PATH) ? statSync(PATH).size / 1e6 : undefined;

console.log(`osprey store bench — ${N.toLocaleString()} spans, ${traceIds.length.toLocaleString()} traces, ${SERVICES} services, ${ROUTES} routes, ${PATH ? `file ${PATH}` : 'in memory'}`);
console.log(`machine: ${availableParallelism()} cpus, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}; generate: ${fmt(genMs, 0)} ms`);
console.log(
  `append:   ${fmt(appendMs, 0)} ms  → ${Math.round(N / (appendMs / 1000)).toLocaleString()} spans/s, ${fmt(appendCpuUs / N, 2)} µs CPU per span  (flushes ${st.flushes}, last flush ${fmt(st.lastFlushMs)} ms, dropped ${st.spansDropped}, rows ${st.rows})`,
);
if (rebuild) console.log(rebuild);
console.log(`process rss: ${fmt(rssBefore, 0)} MB before, ${fmt(rss, 0)} MB after loading and querying${fileMb !== undefined ? `, database file ${fmt(fileMb, 0)} MB` : ''}`);
console.log('');
const w = Math.max(...results.map((r) => r.label.length));
console.log(`${'query'.padEnd(w)}  ${'p50 ms'.padStart(8)}  ${'p99 ms'.padStart(8)}  ${'rows'.padStart(5)}`);
for (const r of results) {
  console.log(`${r.label.padEnd(w)}  ${fmt(r.p50, 2).padStart(8)}  ${fmt(r.p99, 2).padStart(8)}  ${String(r.rows).padStart(5)}`);
}
