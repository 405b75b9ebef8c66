#!/usr/bin/env node
// The export path at scale, by replay and by simulation (numbers for docs/export.md; asserts nothing):
//  1. bytes on the wire: a recorded kernel stream (pipeline.mjs --save/--load: wrk -> nginx proxy
//     -> node) replayed through the agent; its spans go through the OTLP exporter (gzip,
//     1024-span batches, as `osprey up --export` sends them) into a real OpenTelemetry Collector
//     (test/otelcol.ts; debug exporter) — bytes per span and per request, scaled to 5k req/s;
//  2. CPU per span of export-only mode (`osprey up --no-store`: agent + metrics generator +
//     exporter, all threads incl. zlib's) against the agent alone, on the same stream;
//  3. series: 500 services x 20 routes of synthetic spans through the metrics generator —
//     OTLP label sets and the Prometheus series they become in Mimir, for Tempo's defaults and
//     the knobs that cut them.
// usage: node bench/export.mjs [--load FILE | --save FILE] [--seconds 5] [--rate 3000] [--cpu 4] [--only bytes|series]
// Recording needs root (the capture programs are loaded); --load needs neither root nor a kernel.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadStream, recordStream, saveStream } from './pipeline.mjs';
import { installCleanup, log } from './lib/proc.mjs';
import { loadDist, option } from './lib/script.mjs';

const { Agent } = await loadDist('src/agent/agent.js');
const { MetricsGenerator, exposition } = await loadDist('src/metrics/index.js');
const { SpanExporter, encodeMetrics, exportFamilies } = await loadDist('src/export/index.js');
const { Span } = await loadDist('src/model/index.js');

const f = (x, d = 0) => Number(x).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

/** one replay of the recorded stream through a fresh agent; sink gets every span batch */
function replayOnce(rec, sink) {
  const agent = new Agent({ sink });
  agent.startOffline(rec.clock);
  let last = 0;
  for (const { buf, at } of rec.batches) {
    agent.feedBatch(buf);
    agent.tick(at);
    last = at;
  }
  agent.tick(last + 60e9);
  return agent.counters.spans;
}

/** CPU µs per span of `mode` (fresh sink per pass), over passes until cpuTarget CPU-seconds */
async function cpuPerSpan(rec, mode, cpuTarget) {
  const pass = async () => {
    const m = await mode();
    const c0 = process.cpuUsage();
    const spans = replayOnce(rec, m.sink);
    await m.finish?.();
    const c = process.cpuUsage(c0);
    return { spans, cpuSec: (c.user + c.system) / 1e6, ...m.result?.() };
  };
  await pass(); // warm-up (JIT)
  const tot = { passes: 0, spans: 0, cpuSec: 0, best: Infinity, last: {} };
  while (tot.passes < 3 || (tot.cpuSec < cpuTarget && tot.passes < 100)) {
    const r = await pass();
    tot.passes++;
    tot.spans += r.spans;
    tot.cpuSec += r.cpuSec;
    tot.best = Math.min(tot.best, (r.cpuSec * 1e6) / r.spans);
    tot.last = r;
  }
  return { ...tot, usPerSpan: (tot.cpuSec * 1e6) / tot.spans };
}

async function bytesAndCpu({ rec, cpuTarget }) {
  const { startOtelcol } = await loadDist('test/otelcol.js');
  log('export: starting a real collector (otlp receiver -> debug exporter)');
  const col = await startOtelcol(
    (p) => `receivers: { otlp: { protocols: { http: { endpoint: 127.0.0.1:${p.http} }, grpc: { endpoint: 127.0.0.1:${p.grpc} } } } }
exporters: { debug: { verbosity: basic, sampling_initial: 1, sampling_thereafter: 1000 } }
service: { pipelines: { traces: { receivers: [otlp], exporters: [debug] } } }
`,
  );
  try {
    const target = { signal: 'traces', protocol: 'http/protobuf', url: `${col.httpEndpoint}/v1/traces`, headers: {}, compression: 'gzip', timeoutMs: 10_000 };
    const exportMode = (withExporter) => async () => {
      const red = new MetricsGenerator();
      const exp = withExporter ? new SpanExporter({ target, queueBytes: 1 << 30 }) : undefined;
      return {
        sink: (s) => {
          red.consume(s);
          exp?.consume(s);
        },
        finish: async () => {
          if (!exp) return;
          await exp.forceFlush(60_000);
          await exp.shutdown();
        },
        result: () => (exp ? { ...exp.counters } : {}),
      };
    };
    log('export: replaying (agent alone)');
    const alone = await cpuPerSpan(rec, async () => ({ sink: () => {} }), cpuTarget);
    log('export: replaying (agent + metrics generator)');
    const red = await cpuPerSpan(rec, exportMode(false), cpuTarget);
    log('export: replaying (agent + metrics generator + OTLP exporter -> collector: export-only mode)');
    const full = await cpuPerSpan(rec, exportMode(true), cpuTarget);
    const c = full.last;
    if (c.sent !== c.consumed) log(`warning: ${c.consumed - c.sent} spans not delivered in the last pass (${JSON.stringify(c.dropped)})`);
    const spansPerPass = c.consumed;
    const spansPerRequest = spansPerPass / rec.requests;
    const wirePerSpan = c.sentBytes / c.sent;
    const plainPerSpan = c.encodedBytes / c.consumed;
    const perReq = wirePerSpan * spansPerRequest;
    // one metrics export per interval, the series of this stream
    const gen = new MetricsGenerator();
    replayOnce(rec, (s) => gen.consume(s));
    const metricsBytes = encodeMetrics(exportFamilies(gen.families()), { 'service.name': 'osprey' }, 0n, 1n).bytes.length;
    return { alone, red, full, spansPerPass, spansPerRequest, wirePerSpan, plainPerSpan, perReq, requests: rec.requests, metricsBytes };
  } finally {
    await col.stop();
  }
}

/** synthetic cluster: every service serves `routes` routes and calls `callees` others on `calledRoutes` of theirs */
function seriesCount({ services = 500, routes = 20, callees = 3, calledRoutes = 5, errors = true, clients = true, buckets, maxSeries = Infinity, maxNamesPerService = Infinity }) {
  const gen = new MetricsGenerator({ maxSeries, maxNamesPerService, maxItems: Infinity, spanBuckets: buckets?.span, graphBuckets: buckets?.graph, now: () => 1e12 });
  const res = [];
  for (let i = 0; i < services; i++) res.push({ 'service.name': `svc-${i}`, 'process.pid': 1000 + i });
  let n = 0;
  const id = (len) => (++n).toString(16).padStart(len, '0');
  const batch = [];
  const span = (r, kind, name, traceId, spanId, parentSpanId, status) =>
    Span.from({
    traceId,
    spanId,
    parentSpanId,
    name,
    kind,
    startTimeUnixNano: 1_000_000_000_000_000n,
    durationNano: 5e6,
    status,
      resource: r,
      attributes: {},
    });
  for (let i = 0; i < services; i++) {
    for (let k = 0; k < routes; k++) {
      for (const status of errors ? ['unset', 'error'] : ['unset']) {
        // a root request from outside (a user) on every route
        batch.push(span(res[i], 'server', `GET /api/s${i}/r${k}`, id(32), id(16), '', status));
      }
    }
    for (let c = 1; clients && c <= callees; c++) {
      const j = (i + c) % services;
      for (let k = 0; k < calledRoutes; k++) {
        for (const status of errors ? ['unset', 'error'] : ['unset']) {
          const t = id(32);
          const cs = id(16);
          const name = `GET /api/s${j}/r${k}`;
          batch.push(span(res[i], 'client', name, t, cs, '', status));
          batch.push(span(res[j], 'server', name, t, id(16), cs, status));
        }
      }
    }
  }
  gen.consume(batch);
  gen.serviceGraph.expire(1e12 + 3_600_000); // root requests: user -> service edges
  const fams = exportFamilies(gen.families());
  const text = exposition(fams);
  const promSeries = text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
  const bySpan = text.split('\n').filter((l) => l.startsWith('traces_spanmetrics_')).length;
  const byGraph = text.split('\n').filter((l) => l.startsWith('traces_service_graph_')).length;
  const { bytes, points } = encodeMetrics(fams, { 'service.name': 'osprey' }, 0n, 1n);
  return {
    spanLabelSets: gen.spanMetrics.seriesCount,
    graphLabelSets: gen.serviceGraph.seriesCount,
    overflowed: gen.spanMetrics.seriesDropped,
    promSeries,
    bySpan,
    byGraph,
    otlpPoints: points,
    otlpBytes: bytes.length,
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  installCleanup();
  const only = option('only', undefined);
  const out = [];
  const say = (s) => {
    out.push(s);
    console.log(s);
  };
  if (only !== 'series') {
    const dir = mkdtempSync(join(tmpdir(), 'osprey-export-bench-'));
    try {
      let rec;
      const load = option('load', undefined);
      if (load) rec = loadStream(load);
      else {
        const seconds = Number(option('seconds', 5));
        const rate = Number(option('rate', 3000));
        log(`export: recording ${seconds} s of kernel events (wrk -> nginx proxy -> node, ~${rate} req/s)`);
        rec = await recordStream({ seconds, rate, dir });
        for (const s of rec.servers) await s.stop();
        const save = option('save', undefined);
        if (save) saveStream(rec, save);
      }
      const r = await bytesAndCpu({ rec, cpuTarget: Number(option('cpu', 4)) });
      say(`stream: ${f(r.requests)} requests, ${f(r.spansPerPass)} spans (${f(r.spansPerRequest, 2)} spans per request: wrk client, nginx server + client, node server)`);
      say(`bytes: ${f(r.plainPerSpan, 1)} B/span protobuf, ${f(r.wirePerSpan, 1)} B/span on the wire (gzip) = ${f(r.perReq, 0)} B/request`);
      say(`at 5k req/s on one node: ${f((r.perReq * 5000) / 1e6, 2)} MB/s of traces (+ one metrics export of ${f(r.metricsBytes / 1e3, 1)} KB plain protobuf every 15 s for this stream's series)`);
      say(`at 5k spans/s: ${f((r.wirePerSpan * 5000) / 1e6, 2)} MB/s; the 256 MiB default queue holds ${f((256 * 2 ** 20) / r.wirePerSpan / 1e6, 1)} M spans = ${f((256 * 2 ** 20) / r.wirePerSpan / 5000 / 60, 1)} min at 5k spans/s`);
      say(`CPU per span: agent alone ${f(r.alone.usPerSpan, 2)} µs, + metrics generator ${f(r.red.usPerSpan, 2)} µs, + OTLP exporter (export-only mode) ${f(r.full.usPerSpan, 2)} µs (best pass ${f(r.full.best, 2)} µs)`);
      say(`export alone: ${f(r.full.usPerSpan - r.red.usPerSpan, 2)} µs per span = ${f(((r.full.usPerSpan - r.red.usPerSpan) * 5000 * r.spansPerRequest) / 1e6, 3)} cores at 5k req/s; export-only mode in all ${f((r.full.usPerSpan * 5000 * r.spansPerRequest) / 1e6, 3)} cores at 5k req/s (replayed: no kernel or syscall cost)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  if (only !== 'bytes') {
    const cases = [
      ['500 services x 20 routes, server spans only, no errors', { errors: false, clients: false }],
      ['  same, span latency as count and sum only (no buckets: averages, no quantiles)', { errors: false, clients: false, buckets: { span: [] } }],
      ['  + an error series on every route', { clients: false }],
      ['  + client spans (3 callees x 5 routes each)', {}],
      ['  same, 5 latency buckets instead of 14 (span) / 8 (graph)', { buckets: { span: [0.01, 0.05, 0.25, 1, 5], graph: [0.01, 0.05, 0.25, 1, 5] } }],
      ['  same, osprey defaults (maxSeries 10000 per processor)', { maxSeries: 10_000, maxNamesPerService: 1000 }],
    ];
    for (const [name, opts] of cases) {
      const s = seriesCount(opts);
      say(
        `series: ${name}: ${f(s.spanLabelSets)} span-metric + ${f(s.graphLabelSets)} service-graph label sets -> ${f(s.promSeries)} Prometheus series (${f(s.bySpan)} span metrics, ${f(s.byGraph)} service graph)${s.overflowed ? `, ${f(s.overflowed)} spans in overflow series` : ''}; one OTLP export ${f(s.otlpPoints)} points, ${f(s.otlpBytes / 1e6, 1)} MB`,
      );
    }
  }
}
