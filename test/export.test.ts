// OTLP export against the real engines: real traffic (curl → a Node server) → `osprey up
// --export` → a real OpenTelemetry Collector (built by test/otelcol.ts) → its file exporter, and
// its Prometheus remote-write exporter → Debian's Prometheus 2.42 (the stand-in for Mimir).
// Over OTLP/HTTP and OTLP/gRPC; a collector outage within and beyond the queue budget; an
// endpoint that refuses for good.
//
// Counting rules the tests rely on (src/export/span-exporter.ts): every span the exporter
// consumed is sent, dropped{reason} or still queued; the collector writes exactly the spans
// osprey counts as sent. Foreign traffic (other tests, other worktrees) only adds spans to
// both sides of these equations.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { spawnChild, stopAll, type Child } from '../src/proc/index.js';
import { freePort, OSPREY, run, sleep, startServer, waitFor, type Proc } from './helpers.js';
import { otelcolBinary, readFileExport, startOtelcol, type Otelcol, type OtelcolPorts } from './otelcol.js';

const BUILD_MS = 40 * 60_000;

// ---- OTLP/JSON as the file exporter writes it -----------------------------------------------

interface KV {
  key: string;
  value: { stringValue?: string; intValue?: string; boolValue?: boolean; doubleValue?: number };
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind?: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: KV[];
  status?: { code?: number; message?: string };
}
interface TracesLine {
  resourceSpans: { resource?: { attributes?: KV[] }; scopeSpans: { scope?: { name?: string }; spans?: OtlpSpan[] }[] }[];
}
interface MetricsLine {
  resourceMetrics: {
    resource?: { attributes?: KV[] };
    scopeMetrics: { metrics: { name: string; sum?: { dataPoints: { attributes?: KV[]; asDouble?: number }[]; isMonotonic?: boolean }; histogram?: { dataPoints: { attributes?: KV[]; count?: string }[] } }[] }[];
  }[];
}

type Flat = { span: OtlpSpan; resource: Record<string, string | number | boolean> };

function value(v: KV['value']): string | number | boolean {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.boolValue !== undefined) return v.boolValue;
  return v.doubleValue ?? '';
}
function attrs(kvs: KV[] | undefined): Record<string, string | number | boolean> {
  return Object.fromEntries((kvs ?? []).map((kv) => [kv.key, value(kv.value)]));
}

/** every span the collector wrote to these files */
function exportedSpans(...files: string[]): Flat[] {
  const out: Flat[] = [];
  for (const f of files)
    for (const line of readFileExport<TracesLine>(f))
      for (const rs of line.resourceSpans) {
        const resource = attrs(rs.resource?.attributes);
        for (const ss of rs.scopeSpans) for (const span of ss.spans ?? []) out.push({ span, resource });
      }
  return out;
}

function pathOf(f: Flat): unknown {
  return attrs(f.span.attributes)['url.path'];
}

// ---- processes --------------------------------------------------------------------------------

const NODE_SERVER = `
const http = require('http');
http.createServer((req, res) => {
  if (req.url.includes('/fail')) { res.statusCode = 503; res.end('no'); return; }
  res.end('ok ' + req.url);
}).listen(Number(process.argv[1]), '127.0.0.1');
`;

interface Osprey {
  child: Child;
  url: string;
  status(): Promise<Record<string, number>>;
  stop(): Promise<number | null>;
}

async function startOsprey(args: string[], env: Record<string, string | undefined> = {}): Promise<Osprey> {
  const listen = await freePort();
  const child = await spawnChild(OSPREY, ['up', '--listen', `127.0.0.1:${listen}`, '--no-ui', ...args], {
    stopSignal: 'SIGINT',
    stopGraceMs: 15_000,
    env: { OTEL_METRIC_EXPORT_INTERVAL: '1000', ...env },
    keepBytes: 1 << 20,
  });
  try {
    const m = await child.waitForOutput('stderr', /listening on (http:\/\/\S+)/, 60_000);
    const url = m[1]!;
    return {
      child,
      url,
      async status() {
        const r = await fetch(`${url}/api/osprey/status`);
        return ((await r.json()) as { counters: Record<string, number> }).counters;
      },
      async stop() {
        await child.stop();
        return (await child.exit).code;
      },
    };
  } catch (e) {
    await child.stop();
    throw e;
  }
}

/** traces and metrics → files; metrics also → Prometheus remote write when promPort is given */
function collectorConfig(promPort?: number, suffix = '') {
  return (p: OtelcolPorts, dir: string) => `
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:${p.grpc} }
      http: { endpoint: 127.0.0.1:${p.http} }
processors:
  memory_limiter: { check_interval: 1s, limit_mib: 400 }
  batch: { timeout: 100ms }
exporters:
  file/traces: { path: ${join(dir, `traces${suffix}.jsonl`)}, flush_interval: 100ms }
  file/metrics: { path: ${join(dir, `metrics${suffix}.jsonl`)}, flush_interval: 100ms }
${promPort ? `  prometheusremotewrite: { endpoint: http://127.0.0.1:${promPort}/api/v1/write }\n` : ''}service:
  pipelines:
    traces: { receivers: [otlp], processors: [memory_limiter, batch], exporters: [file/traces] }
    metrics: { receivers: [otlp], processors: [memory_limiter, batch], exporters: [file/metrics${promPort ? ', prometheusremotewrite' : ''}] }
`;
}

async function curl(port: number, path: string): Promise<number> {
  const r = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${port}${path}`]);
  return Number(r.stdout);
}

const nonce = () => Math.random().toString(36).slice(2, 8);

interface Tally {
  consumed: number;
  sent: number;
  dropped: Record<string, number>;
}

/** stops osprey (SIGINT: the exporter delivers what it can, then counts the rest) and reads its final tally */
async function stopAndTally(o: Osprey): Promise<Tally> {
  assert.equal(await o.stop(), 0);
  const m = /export: (\d+) spans consumed, (\d+) sent, dropped ((?:\w+=\d+ ?)+)/.exec(o.child.stderr());
  assert.ok(m, `the exit tally in: ${o.child.stderr().slice(-2000)}`);
  const dropped = Object.fromEntries(m[3]!.trim().split(' ').map((kv) => [kv.split('=')[0]!, Number(kv.split('=')[1])]));
  return { consumed: Number(m[1]), sent: Number(m[2]), dropped };
}

const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

describe('OTLP export into a real OpenTelemetry Collector', { timeout: BUILD_MS + 10 * 60_000 }, () => {
  const stops: { stop(): Promise<unknown> }[] = [];
  const dirs: string[] = [];
  before(async () => {
    await otelcolBinary(); // a cold build takes minutes: done once, before any test's clock
  }, { timeout: BUILD_MS });
  after(async () => {
    await stopAll(stops.reverse());
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const server = async (service: string, resourceAttrs = ''): Promise<{ proc: Proc; port: number }> => {
    const port = await freePort();
    const proc = await startServer('node', ['-e', NODE_SERVER, String(port)], port, '127.0.0.1', {
      OTEL_SERVICE_NAME: service,
      ...(resourceAttrs ? { OTEL_RESOURCE_ATTRIBUTES: resourceAttrs } : {}),
    });
    stops.push(proc);
    return { proc, port };
  };

  it('OTLP/HTTP: spans arrive intact (as osprey stores them) and metrics reach the file and Prometheus', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'osprey-export-'));
    dirs.push(dir);
    const promPort = await freePort();
    const prom = await startServer(
      '/usr/bin/prometheus',
      [
        `--config.file=/dev/null`,
        `--storage.tsdb.path=${join(dir, 'tsdb')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
        '--web.enable-remote-write-receiver',
        '--log.level=warn',
      ],
      promPort,
    );
    stops.push(prom);
    const col = await startOtelcol(collectorConfig(promPort), { dir });
    stops.push(col);
    const svc = `exp-http-${nonce()}`;
    const { proc, port } = await server(svc, 'k8s.namespace.name=shop,k8s.pod.name=checkout-7d9f-x2x,deployment.environment=test');
    const osprey = await startOsprey(['--memory', '--export', col.httpEndpoint]);
    stops.push(osprey);
    assert.match(osprey.child.stderr(), /export: traces → http\/protobuf http:\/\/127\.0\.0\.1:\d+\/v1\/traces/);

    const base = `/exp/${svc}`;
    for (let i = 0; i < 5; i++) assert.equal(await curl(port, `${base}/users/${1000 + i}`), 200);
    assert.equal(await curl(port, `${base}/fail`), 503);

    const mine = () => exportedSpans(join(dir, 'traces.jsonl')).filter((f) => String(pathOf(f)).startsWith(base));
    const got = await waitFor('12 spans of our 6 requests in the file exporter', () => mine().length >= 12 && mine(), 30_000);
    assert.equal(got.length, 12, 'each span exactly once');

    // the same spans as osprey stores them: every field survives the trip
    // (the store makes spans queryable within 5 s; the export may be quicker)
    type Stored = { traceId: string; spanId: string; parentSpanId: string; name: string; kind: string; startTimeUnixNano: string; durationNano: number; status: string; resource: Record<string, unknown>; attributes: Record<string, unknown> };
    const stored = await waitFor('the same spans in the store', async () => {
      const r = await fetch(`${osprey.url}/api/osprey/spans?since=5m&limit=1000&q=${encodeURIComponent(`{ resource.service.name = "${svc}" || span.url.path =~ "${base}.*" }`)}`);
      const spans = ((await r.json()) as { spans: Stored[] }).spans;
      return got.every((e) => spans.some((x) => x.spanId === e.span.spanId)) && spans;
    }, 15_000, 200);
    const kinds: Record<string, number> = { unspecified: 0, internal: 1, server: 2, client: 3, producer: 4, consumer: 5 };
    const codes: Record<string, number> = { unset: 0, ok: 1, error: 2 };
    for (const e of got) {
      const s = stored.find((x) => x.spanId === e.span.spanId);
      assert.ok(s, `exported span ${e.span.spanId} ${e.span.name} is one osprey stored`);
      assert.equal(e.span.traceId, s.traceId);
      assert.equal(e.span.parentSpanId ?? '', s.parentSpanId);
      assert.equal(e.span.name, s.name);
      assert.equal(e.span.kind ?? 0, kinds[s.kind]);
      assert.equal(e.span.startTimeUnixNano, s.startTimeUnixNano);
      assert.equal(BigInt(e.span.endTimeUnixNano) - BigInt(e.span.startTimeUnixNano), BigInt(s.durationNano));
      assert.equal(e.span.status?.code ?? 0, codes[s.status]);
      assert.deepEqual(attrs(e.span.attributes), s.attributes);
      assert.deepEqual(e.resource, s.resource);
    }
    const servers = got.filter((f) => f.span.kind === 2);
    const clients = got.filter((f) => f.span.kind === 3);
    assert.equal(servers.length, 6);
    assert.equal(clients.length, 6);
    for (const sv of servers) {
      assert.equal(sv.resource['service.name'], svc);
      assert.equal(sv.resource['process.pid'], proc.pid);
      assert.equal(sv.resource['k8s.namespace.name'], 'shop');
      assert.equal(sv.resource['k8s.pod.name'], 'checkout-7d9f-x2x');
      assert.match(sv.span.traceId, /^[0-9a-f]{32}$/);
      // curl's client span is the parent (the connection's 4-tuple)
      const parent = clients.find((c) => c.span.spanId === sv.span.parentSpanId);
      assert.ok(parent, `server span ${sv.span.name} has curl's client span as parent`);
      assert.equal(parent.span.traceId, sv.span.traceId);
      assert.equal(parent.resource['service.name'], 'curl');
    }
    assert.equal(servers.find((f) => String(pathOf(f)).endsWith('/fail'))?.span.status?.code, 2, '503 → ERROR');
    assert.ok(servers.filter((f) => !String(pathOf(f)).endsWith('/fail')).every((f) => (f.span.status?.code ?? 0) === 0), '200 → UNSET');
    // low-cardinality names: the user ids are templated (the random segment may be too)
    assert.equal(servers.filter((f) => /^GET \/exp\/[^/]+\/users\/\{id\}$/.test(f.span.name)).length, 5, servers.map((f) => f.span.name).join(', '));

    // metrics: Tempo's names in the collector's file …
    const metricNames = await waitFor(
      'span metrics and service-graph metrics in the metrics file',
      () => {
        const names = new Set<string>();
        const withSvc = new Set<string>();
        for (const line of readFileExport<MetricsLine>(join(dir, 'metrics.jsonl')))
          for (const rm of line.resourceMetrics)
            for (const sm of rm.scopeMetrics)
              for (const m of sm.metrics) {
                names.add(m.name);
                const pts = m.sum?.dataPoints ?? m.histogram?.dataPoints ?? [];
                if (pts.some((p) => Object.values(attrs(p.attributes)).includes(svc))) withSvc.add(m.name);
              }
        return ['traces_spanmetrics_calls_total', 'traces_spanmetrics_latency', 'traces_service_graph_request_total', 'traces_service_graph_request_server_seconds'].every((n) => withSvc.has(n)) && names;
      },
      30_000,
    );
    assert.ok(metricNames.has('traces_service_graph_request_failed_total'));
    assert.ok(![...metricNames].some((n) => n.startsWith('osprey_')), 'osprey internals stay on /metrics');

    // … and in Prometheus through the collector's remote write, with Tempo's labels
    const query = async (q: string) => {
      const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`);
      const body = (await res.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
      assert.equal(body.status, 'success');
      return body.data.result;
    };
    const calls = await waitFor(
      'traces_spanmetrics_calls_total in Prometheus',
      async () => {
        const c = await query(`traces_spanmetrics_calls_total{service="${svc}",span_kind="SPAN_KIND_SERVER"}`);
        const total = c.reduce((n, x) => n + Number(x.value[1]), 0);
        return total >= 6 && c;
      },
      30_000,
      250,
    );
    t.diagnostic(`remote-written series: ${JSON.stringify(calls.map((c) => c.metric))}`);
    assert.ok(calls.some((c) => c.metric.status_code === 'STATUS_CODE_ERROR' && /^GET \/exp\/[^/]+\/fail$/.test(c.metric.span_name ?? '')));
    const edge = await waitFor('the curl → service edge in Prometheus', async () => {
      const e = await query(`traces_service_graph_request_total{client="curl",server="${svc}"}`);
      return e.length > 0 && Number(e[0]!.value[1]) >= 6 && e;
    }, 30_000, 250);
    assert.equal(edge[0]!.metric.job, 'osprey');
    const buckets = await query(`traces_spanmetrics_latency_bucket{service="${svc}",span_kind="SPAN_KIND_SERVER"}`);
    assert.ok(buckets.some((b) => b.metric.le === '+Inf'), 'classic histogram buckets');
    const failed = await query(`traces_service_graph_request_failed_total{client="curl",server="${svc}"}`);
    assert.ok(Number(failed[0]?.value[1]) >= 1, 'the 503 is a failed edge');

    // the counters reach /metrics and osprey status
    const c = await osprey.status();
    assert.ok(c.export_spans_sent! >= 12, JSON.stringify(c));
    assert.equal(c.export_spans_dropped_rejected, 0);
    assert.ok(c.export_metric_exports! >= 1);
    const prometheusText = await (await fetch(`${osprey.url}/metrics`)).text();
    assert.match(prometheusText, /^osprey_export_sent_spans_total \d+/m);
    assert.match(prometheusText, /^osprey_export_dropped_spans_total\{reason="queue_full"\} 0$/m);
  });

  it('OTLP/gRPC, export-only (--no-store, OTEL_EXPORTER_OTLP_* variables): spans and metrics arrive, span queries say where they went', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'osprey-export-grpc-'));
    dirs.push(dir);
    const col = await startOtelcol(collectorConfig(), { dir });
    stops.push(col);
    const svc = `exp-grpc-${nonce()}`;
    const { proc, port } = await server(svc);
    const osprey = await startOsprey(['--no-store'], {
      OTEL_EXPORTER_OTLP_ENDPOINT: col.grpcEndpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=team%20a',
    });
    stops.push(osprey);
    assert.match(osprey.child.stderr(), /store: none/);
    assert.match(osprey.child.stderr(), /export: traces → grpc http:\/\/127\.0\.0\.1:\d+ \(\+1 headers\)/);
    assert.doesNotMatch(osprey.child.stderr(), /team a/, 'header values are never logged');

    const base = `/grpc/${svc}`;
    for (let i = 0; i < 4; i++) assert.equal(await curl(port, `${base}/orders/${7000 + i}`), 200);
    const got = await waitFor('8 spans in the file exporter', () => {
      const m = exportedSpans(join(dir, 'traces.jsonl')).filter((f) => String(pathOf(f)).startsWith(base));
      return m.length >= 8 && m;
    }, 30_000);
    assert.equal(got.length, 8);
    const sv = got.find((f) => f.span.kind === 2)!;
    assert.equal(sv.resource['service.name'], svc);
    assert.equal(sv.resource['process.pid'], proc.pid);
    assert.ok(BigInt(sv.span.endTimeUnixNano) > BigInt(sv.span.startTimeUnixNano));
    assert.ok(got.some((f) => f.span.kind === 3 && f.span.spanId === sv.span.parentSpanId), 'curl\'s client span is the parent');

    await waitFor('span metrics over gRPC', () =>
      readFileExport<MetricsLine>(join(dir, 'metrics.jsonl')).some((l) =>
        l.resourceMetrics.some((rm) => rm.scopeMetrics.some((sm) => sm.metrics.some((m) => m.name === 'traces_spanmetrics_calls_total' && (m.sum?.dataPoints ?? []).some((p) => attrs(p.attributes).service === svc)))),
      ), 30_000);

    // export-only: no span store, a clear 404; /metrics and status still answer
    const q = await fetch(`${osprey.url}/api/osprey/spans?q=%7B%7D`);
    assert.equal(q.status, 404);
    assert.match(((await q.json()) as { error: string }).error, /no-store/);
    const c = await osprey.status();
    assert.ok(c.export_spans_sent! >= 8);
    assert.equal(c.store_rows, undefined);
    assert.match(await (await fetch(`${osprey.url}/metrics`)).text(), /^osprey_export_sent_spans_total \d+/m);
  });

  it('a collector outage within the queue budget loses nothing: sent == consumed, and the collector wrote exactly what was sent', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'osprey-outage-'));
    dirs.push(dir);
    let col: Otelcol = await startOtelcol(collectorConfig(undefined, '-1'), { dir });
    const ports = col.ports;
    const svc = `exp-outage-${nonce()}`;
    const { port } = await server(svc);
    const osprey = await startOsprey(['--no-store', '--export', col.httpEndpoint], { OTEL_METRICS_EXPORTER: 'none' });
    stops.push(osprey);
    const base = `/outage/${svc}`;
    let sentRequests = 0;
    const traffic = async (ms: number) => {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        assert.equal(await curl(port, `${base}/${sentRequests++}`), 200);
        await sleep(20);
      }
    };
    await traffic(1500);
    await col.stop(); // the collector goes away; traffic goes on
    await traffic(5000);
    const during = await osprey.status();
    t.diagnostic(`during the outage: queued ${during.export_spans_queued}, retries ${during.export_retries}`);
    assert.ok(during.export_retries! >= 1, 'the exporter retried');
    assert.match(osprey.child.stderr(), /unavailable \(ECONNREFUSED\)/);
    col = await startOtelcol(collectorConfig(undefined, '-2'), { dir, ports }); // back on the same port
    stops.push(col);
    await traffic(1500);

    // everything drains (the exporter's backoff is at most 30 s); other tests' traffic keeps
    // flowing, so the books are closed by stopping osprey and reading its final tally
    await waitFor('our spans delivered', () => {
      const m = exportedSpans(join(dir, 'traces-1.jsonl'), join(dir, 'traces-2.jsonl')).filter((f) => String(pathOf(f)).startsWith(`${base}/`) && f.span.kind === 2);
      return new Set(m.map((f) => pathOf(f))).size === sentRequests;
    }, 60_000, 250);
    assert.match(osprey.child.stderr(), /accepting spans again/);
    const tally = await stopAndTally(osprey);
    t.diagnostic(`tally: ${JSON.stringify(tally)}`);
    assert.equal(sum(tally.dropped), 0, JSON.stringify(tally));
    assert.equal(tally.sent, tally.consumed, 'sent == generated');
    await col.stop(); // flushes the file exporter
    const files = [join(dir, 'traces-1.jsonl'), join(dir, 'traces-2.jsonl')];
    assert.equal(exportedSpans(...files).length, tally.sent, 'the collector wrote exactly the spans osprey counts as sent');
    const mine = exportedSpans(...files).filter((f) => String(pathOf(f)).startsWith(`${base}/`) && f.span.kind === 2);
    assert.equal(mine.length, sentRequests, `each of our ${sentRequests} requests arrived once`);
  });

  it('beyond the queue budget the loss is counted exactly (consumed == sent + dropped)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'osprey-overflow-'));
    dirs.push(dir);
    const ports = { grpc: await freePort(), http: await freePort() };
    const svc = `exp-overflow-${nonce()}`;
    const { port } = await server(svc);
    // no collector yet; a queue of 3 KB holds a handful of compressed batches at most
    const osprey = await startOsprey(['--no-store', '--export', `http://127.0.0.1:${ports.http}`, '--export-queue', '3KB'], { OTEL_METRICS_EXPORTER: 'none' });
    stops.push(osprey);
    const base = `/overflow/${svc}`;
    for (let i = 0; i < 150; i++) {
      await curl(port, `${base}/${i}`);
      if (i % 10 === 0) await sleep(100); // several batches
    }
    await waitFor('drops counted', async () => (await osprey.status()).export_spans_dropped_queue_full! > 0, 20_000);
    const col = await startOtelcol(collectorConfig(), { dir, ports });
    stops.push(col);
    // what fits is sent once the collector is there; under heavy foreign traffic a whole batch
    // may be larger than 3 KB before compression, and every batch is then dropped: the books
    // must balance either way
    await waitFor('spans delivered after the collector came', async () => (await osprey.status()).export_spans_sent! > 0, 45_000, 250).catch(() => undefined);
    const text = await (await fetch(`${osprey.url}/metrics`)).text();
    const m = /^osprey_export_dropped_spans_total\{reason="queue_full"\} (\d+)$/m.exec(text);
    assert.ok(m && Number(m[1]) > 0, 'queue_full drops on /metrics');
    const tally = await stopAndTally(osprey);
    assert.ok(tally.dropped.queue_full! >= Number(m[1]));
    assert.equal(tally.consumed, tally.sent + sum(tally.dropped), `consumed == sent + dropped: ${JSON.stringify(tally)}`);
    await col.stop();
    assert.equal(exportedSpans(join(dir, 'traces.jsonl')).length, tally.sent, 'the collector wrote exactly the spans osprey counts as sent');
  });

  it('an endpoint that refuses for good (wrong path: 404; Prometheus write endpoint: 400): dropped, counted, one clear log line, the agent keeps running', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'osprey-refuse-'));
    dirs.push(dir);
    const col = await startOtelcol(collectorConfig(), { dir });
    stops.push(col);
    const promPort = await freePort();
    const prom = await startServer(
      '/usr/bin/prometheus',
      ['--config.file=/dev/null', `--storage.tsdb.path=${join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${promPort}`, '--web.enable-remote-write-receiver', '--log.level=warn'],
      promPort,
    );
    stops.push(prom);
    const { port } = await server(`exp-refuse-${nonce()}`);
    for (const [endpoint, status] of [
      [`${col.httpEndpoint}/no/such/path`, 404],
      [`http://127.0.0.1:${promPort}/api/v1/write`, 400],
    ] as const) {
      const osprey = await startOsprey(['--no-store'], { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: endpoint, OTEL_METRICS_EXPORTER: 'none' });
      for (let i = 0; i < 3; i++) await curl(port, `/refuse/${i}`);
      const c = await waitFor('refused spans counted', async () => {
        const s = await osprey.status();
        return s.export_spans_dropped_rejected! > 0 && s;
      }, 20_000);
      assert.match(osprey.child.stderr(), new RegExp(`refused a batch of \\d+ spans for good \\(HTTP ${status}`));
      assert.equal(c.export_spans_retried, 0, 'a permanent refusal is not retried');
      // still running and answering, still counting
      for (let i = 3; i < 6; i++) await curl(port, `/refuse/${i}`);
      await waitFor('more refusals counted', async () => (await osprey.status()).export_spans_dropped_rejected! > c.export_spans_dropped_rejected!, 20_000);
      assert.equal((osprey.child.stderr().match(/refused a batch/g) ?? []).length, 1, 'logged once per reason');
      assert.equal(await osprey.stop(), 0);
    }
  });
});
