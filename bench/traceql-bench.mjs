#!/usr/bin/env node
// TraceQL latency at scale: search, structural, pipeline and metrics queries over N synthetic
// spans (bench/lib/synthetic.mjs, the same data as store-bench.mjs).
//
//   node --expose-gc bench/traceql-bench.mjs [--spans 1000000] [--path FILE | --memory] [--keep]
//        [--runs 10] [--only TEXT] [--explain TEXT] [--save FILE] [--before FILE] [--threads N]
//
// --path FILE   database file (default /tmp/osprey-traceql-<N>.duckdb; the store's defaults for a
//               file, as `osprey up` runs it: 128MB DuckDB memory limit)
// --memory      in memory instead (loads every run)
// --keep        reuse FILE when it exists (loading 10M spans takes minutes); without it the file
//               is rebuilt
// --only TEXT   run only the queries whose label contains TEXT
// --explain TEXT  print DuckDB's EXPLAIN ANALYZE of every statement the matching queries run
// --save FILE   write the results as JSON; --before FILE prints those results beside the new ones.
//               bench/traceql-before-{1m,10m}.json hold the numbers of the SQL before the rewrite
//               (commit 7e88317), bench/traceql-after-{1m,10m}.json the ones after, same machine
//               and data (a shared 2-core VM under load: compare them, not the absolute values)
//               bench/traceql-s9-{before,after}-{1m,10m}.json: session 9 (found traces read per
//               trace range, src/store/trace-ranges.ts), before = commit 623a3d5
// Prints a table (p50/p99 wall ms, and CPU ms per run of the whole process, DuckDB's threads
// included: the steadier number on a shared machine); asserts nothing.

import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { cpuUs, loadDist, option } from './lib/script.mjs';
import { synthetic } from './lib/synthetic.mjs';

const { DuckStore } = await loadDist('store/index.js');
const { Span } = await loadDist('model/index.js');
const { parseTraceQL } = await loadDist('traceql/index.js');

const N = Number(option('spans', 1_000_000));
const RUNS = Number(option('runs', 10));
const MEMORY = process.argv.includes('--memory');
const PATH = MEMORY ? undefined : option('path', `/tmp/osprey-traceql-${N}.duckdb`);
const KEEP = process.argv.includes('--keep');
const ONLY = option('only', undefined);
const EXPLAIN = option('explain', undefined);
const SAVE = option('save', undefined);
const BEFORE = option('before', undefined);
// DuckDB's threads (default: one per core), e.g. to see what a single-threaded store costs queries
const THREADS_OPT = option('threads', undefined);
const THREADS = THREADS_OPT === undefined ? undefined : Number(THREADS_OPT);

const fmt = (x, d = 1) => (typeof x === 'number' ? x.toFixed(d) : String(x));
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

const reuse = PATH !== undefined && KEEP && existsSync(PATH);
if (PATH && !reuse) for (const f of [PATH, `${PATH}.wal`]) if (existsSync(f)) rmSync(f);
const retention = { maxSpans: Infinity, maxAgeMs: Infinity, intervalMs: 0 };
let store = await DuckStore.open({ path: PATH, retention, threads: THREADS });
let loadLine = `reused ${PATH}`;
let nowNs;
if (!reuse) {
  nowNs = BigInt(Date.now()) * 1_000_000n;
  const { generate } = synthetic({ Span, nowNs });
  const t = performance.now();
  const c = cpuUs();
  let genMs = 0;
  const gen = generate(N, 5000);
  for (;;) {
    const tg = performance.now();
    const next = gen.next();
    genMs += performance.now() - tg;
    if (next.done) break;
    for (let i = 0; i < next.value.length; i += 1000) store.append(next.value.slice(i, i + 1000));
    if (store.stats().buffered >= 5000) await store.flush();
  }
  await store.flush();
  const ms = performance.now() - t;
  loadLine = `loaded ${N.toLocaleString()} spans in ${fmt(ms / 1000)} s (${fmt(genMs / 1000)} s of it generating) → ${Math.round(N / (ms / 1000)).toLocaleString()} spans/s, ${fmt((cpuUs() - c) / N, 1)} µs CPU per span`;
  if (PATH) {
    // what a reader sees after a restart: the data on disk, nothing cached
    await store.shutdown();
    store = await DuckStore.open({ path: PATH, retention, threads: THREADS });
  }
}
if (nowNs === undefined) {
  const newest = await store.search({ query: parseTraceQL('{}'), limit: 1 });
  nowNs = (newest[0]?.startTimeUnixNano ?? BigInt(Date.now()) * 1_000_000n) + 1_000_000_000n;
}
globalThis.gc?.();

// ---- EXPLAIN ANALYZE: wraps the store's one query function (bench only) ------------------------
let explaining = false;
if (EXPLAIN) {
  const core = store.core;
  const orig = core.query.bind(core);
  core.query = async (sql, P, js) => {
    if (explaining && /^\s*(WITH|SELECT)/i.test(sql)) {
      const rows = await orig(`EXPLAIN ANALYZE ${sql}`, P, js);
      console.log(`\n---- SQL ----\n${sql}\n---- plan ----`);
      for (const r of rows) console.log(String(r[1] ?? r[0]));
    }
    return orig(sql, P, js);
  };
}

const hour = 3600n * 1_000_000_000n;
const from = nowNs - hour;
const step = 60n * 1_000_000_000n;
const results = [];
async function time(label, text, run, runs = RUNS) {
  if (ONLY && !label.includes(ONLY)) return;
  const query = parseTraceQL(text);
  if (EXPLAIN && label.includes(EXPLAIN)) {
    explaining = true;
    console.log(`\n======== ${label}: ${text}`);
    await run(query);
    explaining = false;
  }
  let last = await run(query); // warm up
  const ms = [];
  // CPU of the whole process (DuckDB's threads too) per run: steadier than wall time on a loaded machine
  const c0 = cpuUs();
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    last = await run(query);
    ms.push(performance.now() - t);
  }
  const cpu = (cpuUs() - c0) / 1000 / runs;
  const rows = Array.isArray(last) ? last.length : Array.isArray(last?.series) ? last.series.length : '';
  results.push({ label, text, p50: pct(ms, 50), p99: pct(ms, 99), cpu, rows });
  process.stderr.write(`${label}: p50 ${fmt(pct(ms, 50), 0)} ms, p99 ${fmt(pct(ms, 99), 0)} ms, cpu ${fmt(cpu, 0)} ms, ${rows} rows\n`);
}
const search = (limit = 20) => (query) => store.searchTraces({ query, startNs: from, endNs: nowNs, limit, spansPerSpanSet: 3 });
const spans = (query) => store.search({ query, startNs: from, endNs: nowNs, limit: 20 });
const metrics = (query) => store.metricsQuery(query, { startNs: from, endNs: nowNs, stepNs: step });
// what /api/metrics/query_range runs by default: the same with 10 exemplars per series
const metricsEx = (query) => store.metricsQuery(query, { startNs: from, endNs: nowNs, stepNs: step, exemplars: 10 });

// /api/search (searchTraces): Tempo's search, what Grafana's search runs
await time('search {}', '{}', search());
await time('search {status=error}', '{ status = error }', search());
await time('search {svc-7 && duration>500ms}', '{ resource.service.name = "svc-7" && duration > 500ms }', search());
await time('search {span.http.route = r42}', '{ span.http.route = "/api/v1/r42/{id}" }', search());
await time('search {span.client.address = ...} (JSON attr)', '{ span.client.address = "10.0.1.7" }', search());
await time('search {url.path =~ regex}', '{ span.url.path =~ "/api/v1/r42/.*" }', search());
await time('search {rootServiceName = svc-3}', '{ rootServiceName = "svc-3" }', search());
await time('search {traceDuration > 1s}', '{ traceDuration > 1s }', search());
await time('spans {svc-7 && duration>500ms} top 20', '{ resource.service.name = "svc-7" && duration > 500ms }', spans);
// structural and spanset operators
await time('structural {svc-7 server} > {client}', '{ kind = server && resource.service.name = "svc-7" } > { kind = client }', search());
await time('structural {svc-7} >> {status=error}', '{ resource.service.name = "svc-7" } >> { status = error }', search());
await time('structural {client} < {svc-7}', '{ kind = client } < { resource.service.name = "svc-7" }', search());
await time('structural {client} ~ {client} (siblings)', '{ kind = client } ~ { kind = client }', search());
await time('structural {} !< {server} (leaves)', '{ } !< { kind = server }', search());
await time('spanset {error} && {svc-3}', '{ status = error } && { resource.service.name = "svc-3" }', search());
// pipelines
await time('pipeline {server} | by(svc) | count() > 2', '{ kind = server } | by(resource.service.name) | count() > 2', search());
await time('pipeline {} | avg(duration) > 100ms', '{ } | avg(duration) > 100ms', search());
await time('pipeline {client} | count() > 3 | select(span.http.route)', '{ kind = client } | count() > 3 | select(span.http.route)', search());
// metrics (1 h, step 1 min)
await time('metrics {server} | rate() by (svc)', '{ kind = server } | rate() by (resource.service.name)', metrics);
await time('metrics quantile_over_time(duration, .5,.9,.99) by (svc)', '{ kind = server } | quantile_over_time(duration, 0.5, 0.9, 0.99) by (resource.service.name)', metrics);
await time('metrics {} | histogram_over_time(duration)', '{ } | histogram_over_time(duration)', metrics);
await time('metrics {server} | rate() by (svc), 10 exemplars', '{ kind = server } | rate() by (resource.service.name)', metricsEx);
await time('metrics quantile_over_time(...) by (svc), 10 exemplars', '{ kind = server } | quantile_over_time(duration, 0.5, 0.9, 0.99) by (resource.service.name)', metricsEx);
await time('metrics {server} | compare({status=error})', '{ kind = server } | compare({ status = error })', metrics, 3);

globalThis.gc?.();
const rss = process.memoryUsage().rss / 1e6;
const rows = store.stats().rows;
await store.shutdown();
const fileMb = PATH && existsSync(PATH) ? statSync(PATH).size / 1e6 : undefined;

console.log(`osprey TraceQL bench — ${rows.toLocaleString()} spans, ${PATH ? `file ${PATH}${fileMb !== undefined ? ` (${fmt(fileMb, 0)} MB)` : ''}, memory limit 128MB` : 'in memory'}; queries over the last 1 h of 2 h`);
console.log(`machine: ${availableParallelism()} cpus, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}; rss ${fmt(rss, 0)} MB`);
console.log(loadLine);
console.log('');
const before = BEFORE && existsSync(BEFORE) ? JSON.parse(readFileSync(BEFORE, 'utf8')) : undefined;
const old = new Map((before?.results ?? []).map((r) => [r.label, r]));
const w = Math.max(...results.map((r) => r.label.length));
const head = `${'query'.padEnd(w)}  ${'p50 ms'.padStart(8)}  ${'p99 ms'.padStart(8)}  ${'cpu ms'.padStart(8)}  ${'rows'.padStart(5)}`;
console.log(before ? `${head}  ${'before p50'.padStart(10)}  ${'before p99'.padStart(10)}` : head);
for (const r of results) {
  const line = `${r.label.padEnd(w)}  ${fmt(r.p50, 1).padStart(8)}  ${fmt(r.p99, 1).padStart(8)}  ${fmt(r.cpu, 1).padStart(8)}  ${String(r.rows).padStart(5)}`;
  const o = old.get(r.label);
  console.log(before ? `${line}  ${(o ? fmt(o.p50, 1) : '-').padStart(10)}  ${(o ? fmt(o.p99, 1) : '-').padStart(10)}` : line);
}
if (before) console.log(`\nbefore: ${before.note ?? BEFORE}`);
if (SAVE) {
  writeFileSync(SAVE, `${JSON.stringify({ note: option('note', ''), spans: rows, file: PATH !== undefined, load: loadavg()[0], results }, null, 1)}\n`);
}
