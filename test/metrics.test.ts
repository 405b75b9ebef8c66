// RED metrics and the service graph with Tempo's names: exact exposition values from synthetic
// spans, a micro-benchmark (printed, not asserted), and a real Prometheus 2.42 scraping a real
// `osprey up` while curl calls a real python3 http.server; and the same numbers from the CLI,
// the API and /metrics of one `osprey up`.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Span, type Attributes, type SpanKind, type SpanStatus } from '../src/model/index.js';
import { exposition, MetricsGenerator, SERVICE_GRAPH_BUCKETS, SPAN_METRICS_BUCKETS } from '../src/metrics/index.js';
import type { EdgeStats, ServiceStats } from '../src/store/index.js';
import { freePort, OSPREY, ospreyUp, run, sleep, startServer, type Proc } from './helpers.js';

const T0 = 1_700_000_000_000; // ms

const resources = new Map<string, Attributes>();
const res = (service: string | undefined): Attributes => {
  const k = service ?? '\u0000none';
  let r = resources.get(k);
  if (!r) {
    r = service === undefined ? { 'process.pid': 1 } : { 'service.name': service, 'process.pid': 1 };
    resources.set(k, r);
  }
  return r;
};

let idSeq = 1;
const newId = (len: number) => (idSeq++).toString(16).padStart(len, '0');

function span(p: {
  service?: string;
  kind: SpanKind;
  name?: string;
  traceId?: string;
  spanId?: string;
  parentSpanId?: string;
  durationNano: number;
  status?: SpanStatus;
  attributes?: Attributes;
  startMs?: number;
}): Span {
  return Span.from({
    traceId: p.traceId ?? newId(32),
    spanId: p.spanId ?? newId(16),
    parentSpanId: p.parentSpanId ?? '',
    name: p.name ?? 'GET /api',
    kind: p.kind,
    startTimeUnixNano: BigInt(p.startMs ?? T0 - 1000) * 1_000_000n,
    durationNano: p.durationNano,
    status: p.status ?? 'unset',
    resource: res(p.service),
    attributes: p.attributes ?? {},
  });
}

/** a client span and its server child, in the given order */
function pair(o: { client: string; server: string; clientNs: number; serverNs: number; clientStatus?: SpanStatus; serverStatus?: SpanStatus; serverFirst?: boolean }): Span[] {
  const traceId = newId(32);
  const c = span({ service: o.client, kind: 'client', traceId, durationNano: o.clientNs, status: o.clientStatus });
  const s = span({ service: o.server, kind: 'server', traceId, parentSpanId: c.spanId, durationNano: o.serverNs, status: o.serverStatus });
  return o.serverFirst ? [s, c] : [c, s];
}

/** `name{labels}` -> value for every sample line */
function samples(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    assert.ok(!m.has(line.slice(0, i)), `duplicate sample ${line}`);
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

/** the lines of one histogram series, in order */
function histogramLines(name: string, labels: string, bounds: readonly number[], cumulative: number[], sum: string, count: number): string {
  assert.equal(cumulative.length, bounds.length + 1);
  const les = [...bounds.map(String), '+Inf'];
  return (
    les.map((le, i) => `${name}_bucket{${labels},le="${le}"} ${cumulative[i]}\n`).join('') + `${name}_sum{${labels}} ${sum}\n${name}_count{${labels}} ${count}\n`
  );
}

/** every histogram series: buckets cumulative and non-decreasing, +Inf = _count */
function checkHistograms(text: string): number {
  const lines = text.split('\n');
  let checked = 0;
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\w+)_bucket\{(.*)le="\+Inf"\} (\d+)$/.exec(lines[i]!);
    if (!m) continue;
    const labels = m[2]!.replace(/,$/, '');
    const countLine = lines[i + 2]!;
    assert.equal(countLine, `${m[1]}_count${labels ? `{${labels}}` : ''} ${m[3]}`);
    checked++;
  }
  const prev = new Map<string, number>();
  for (const l of lines) {
    const m = /^(\w+_bucket\{.*?)le="[^"]+"\} (\d+)$/.exec(l);
    if (!m) continue;
    const before = prev.get(m[1]!) ?? 0;
    assert.ok(Number(m[2]) >= before, `not cumulative: ${l}`);
    prev.set(m[1]!, Number(m[2]));
  }
  return checked;
}

describe('metrics generator (Tempo span metrics + service graph)', () => {
  it('buckets are Tempo defaults', () => {
    assert.deepEqual(SPAN_METRICS_BUCKETS, [0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384]);
    assert.deepEqual(SERVICE_GRAPH_BUCKETS, [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8]);
  });

  it('synthetic spans give exact counters, cumulative buckets, sums and counts', () => {
    let now = T0;
    const gen = new MetricsGenerator({ now: () => now, ingestionSlackMs: 30_000 });
    // pair 1: client error, 0.5 s client / 0.25 s server
    gen.consume(pair({ client: 'front', server: 'api', clientNs: 500_000_000, serverNs: 250_000_000, clientStatus: 'error' }));
    // pair 2, server span first (a later batch completes it): 3 s client / 0.125 s server
    const p2 = pair({ client: 'front', server: 'api', clientNs: 3_000_000_000, serverNs: 125_000_000, serverFirst: true });
    gen.consume([p2[0]!]);
    assert.equal(gen.serviceGraph.pending, 1);
    gen.consume([p2[1]!]);
    assert.equal(gen.serviceGraph.pending, 0);
    // server spans of api whose client never comes (expire, no series), various durations, one negative
    gen.consume([
      span({ service: 'api', kind: 'server', parentSpanId: newId(16), durationNano: -5 }),
      span({ service: 'api', kind: 'server', parentSpanId: newId(16), durationNano: 1_953_125 }),
      span({ service: 'api', kind: 'server', parentSpanId: newId(16), durationNano: 3_906_250 }),
      span({ service: 'api', kind: 'server', parentSpanId: newId(16), durationNano: 15_625_000 }),
      span({ service: 'api', kind: 'server', parentSpanId: newId(16), durationNano: 20_000_000_000 }),
    ]);
    // a root server span: after the wait its client is "user"
    gen.consume([span({ service: 'api', kind: 'server', name: 'GET /root', durationNano: 50_000_000 })]);
    // an unpaired client span without peer attributes: expires, no series
    gen.consume([span({ service: 'front', kind: 'client', name: 'GET /gone', durationNano: 1_000_000 })]);
    // an unpaired client span with peer.service: after the wait, a virtual server node
    gen.consume([span({ service: 'front', kind: 'client', name: 'POST /pay', durationNano: 1_500_000_000, status: 'error', attributes: { 'peer.service': 'payments' } })]);
    // a database call: an edge at once, server named by server.address, server latency = client's
    gen.consume([
      span({ service: 'front', kind: 'client', name: 'SELECT', durationNano: 8_000_000, attributes: { 'db.system': 'postgresql', 'server.address': 'db.local' } }),
    ]);
    // internal span, span without service.name, and a span that ended before the 30 s slack
    gen.consume([
      span({ service: 'front', kind: 'internal', name: 'work', durationNano: 2_000_000, status: 'ok' }),
      span({ kind: 'server', name: 'GET /anon', durationNano: 1_000_000 }),
      span({ service: 'front', kind: 'server', name: 'GET /old', durationNano: 1_000_000, startMs: T0 - 60_000 }),
    ]);
    assert.equal(gen.spansTooOld, 1);
    assert.equal(gen.serviceGraph.pending, 8); // 5 orphan servers, root, gone, pay (anon has no service)

    const before = exposition(gen.families());
    const b = samples(before);
    // nothing expired yet: only the two pairs and the database call
    assert.equal(b.get('traces_service_graph_request_total{client="front",server="api"}'), 2);
    assert.equal(b.get('traces_service_graph_request_failed_total{client="front",server="api"}'), 1);
    assert.equal(b.get('traces_service_graph_request_total{client="front",server="db.local",connection_type="database"}'), 1);
    assert.equal(b.get('traces_service_graph_request_total{client="user",server="api",connection_type="virtual_node"}'), undefined);

    now = T0 + 9_999;
    gen.tick();
    assert.equal(gen.serviceGraph.pending, 8, 'edges wait 10 s');
    now = T0 + 10_000;
    gen.tick();
    assert.equal(gen.serviceGraph.pending, 0);

    const text = exposition(gen.families());
    const m = samples(text);
    assert.ok(checkHistograms(text) > 10);

    // span metrics: counters
    const sm = (svc: string, name: string, kind: string, status: string) =>
      `service="${svc}",span_name="${name}",span_kind="SPAN_KIND_${kind}",status_code="STATUS_CODE_${status}"`;
    assert.equal(m.get(`traces_spanmetrics_calls_total{${sm('front', 'GET /api', 'CLIENT', 'ERROR')}}`), 1);
    assert.equal(m.get(`traces_spanmetrics_calls_total{${sm('front', 'GET /api', 'CLIENT', 'UNSET')}}`), 1);
    assert.equal(m.get(`traces_spanmetrics_calls_total{${sm('api', 'GET /api', 'SERVER', 'UNSET')}}`), 7);
    assert.equal(m.get(`traces_spanmetrics_calls_total{${sm('front', 'work', 'INTERNAL', 'OK')}}`), 1);
    assert.equal(m.get(`traces_spanmetrics_calls_total{${sm('front', 'POST /pay', 'CLIENT', 'ERROR')}}`), 1);
    // no service.name: the empty label is left out
    assert.equal(m.get('traces_spanmetrics_calls_total{span_name="GET /anon",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET"}'), 1);
    assert.ok(![...m.keys()].some((k) => k.includes('GET /old')), 'a span older than the slack is ignored');
    assert.ok(!text.includes('=""'), 'no empty label values');

    // span metrics latency: api server spans 0, 0.001953125, 0.00390625, 0.015625, 0.125, 0.25, 20 s
    assert.ok(
      text.includes(
        histogramLines('traces_spanmetrics_latency', sm('api', 'GET /api', 'SERVER', 'UNSET'), SPAN_METRICS_BUCKETS, [2, 3, 3, 4, 4, 4, 5, 6, 6, 6, 6, 6, 6, 6, 7], '20.396484375', 7),
      ),
      text,
    );
    assert.ok(
      text.includes(
        histogramLines('traces_spanmetrics_latency', sm('front', 'GET /api', 'CLIENT', 'ERROR'), SPAN_METRICS_BUCKETS, [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1], '0.5', 1),
      ),
    );
    assert.ok(
      text.includes(
        histogramLines('traces_spanmetrics_latency', sm('front', 'GET /api', 'CLIENT', 'UNSET'), SPAN_METRICS_BUCKETS, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1], '3', 1),
      ),
    );

    // service graph: front -> api, two requests, one failed
    assert.equal(m.get('traces_service_graph_request_total{client="front",server="api"}'), 2);
    assert.equal(m.get('traces_service_graph_request_failed_total{client="front",server="api"}'), 1);
    assert.ok(
      text.includes(histogramLines('traces_service_graph_request_server_seconds', 'client="front",server="api"', SERVICE_GRAPH_BUCKETS, [0, 1, 2, 2, 2, 2, 2, 2, 2], '0.375', 2)),
      text,
    );
    assert.ok(
      text.includes(histogramLines('traces_service_graph_request_client_seconds', 'client="front",server="api"', SERVICE_GRAPH_BUCKETS, [0, 0, 0, 1, 1, 2, 2, 2, 2], '3.5', 2)),
    );
    // database edge: complete at once, server latency = client latency (8 ms)
    const db = 'client="front",server="db.local",connection_type="database"';
    assert.equal(m.get(`traces_service_graph_request_failed_total{${db}}`), 0);
    assert.ok(text.includes(histogramLines('traces_service_graph_request_server_seconds', db, SERVICE_GRAPH_BUCKETS, [1, 1, 1, 1, 1, 1, 1, 1, 1], '0.008', 1)));
    assert.ok(text.includes(histogramLines('traces_service_graph_request_client_seconds', db, SERVICE_GRAPH_BUCKETS, [1, 1, 1, 1, 1, 1, 1, 1, 1], '0.008', 1)));
    // expired root server span: user -> api; expired client with peer.service: front -> payments
    const user = 'client="user",server="api",connection_type="virtual_node"';
    assert.equal(m.get(`traces_service_graph_request_total{${user}}`), 1);
    assert.ok(text.includes(histogramLines('traces_service_graph_request_server_seconds', user, SERVICE_GRAPH_BUCKETS, [1, 1, 1, 1, 1, 1, 1, 1, 1], '0.05', 1)));
    const pay = 'client="front",server="payments",connection_type="virtual_node"';
    assert.equal(m.get(`traces_service_graph_request_total{${pay}}`), 1);
    assert.equal(m.get(`traces_service_graph_request_failed_total{${pay}}`), 1);
    assert.ok(text.includes(histogramLines('traces_service_graph_request_client_seconds', pay, SERVICE_GRAPH_BUCKETS, [0, 0, 0, 0, 1, 1, 1, 1, 1], '1.5', 1)));
    // 4 edges per family: api, db.local, user, payments
    assert.equal([...m.keys()].filter((k) => k.startsWith('traces_service_graph_request_total{')).length, 4);
    // 5 orphan server spans + the client without peer expired with no series
    assert.equal(m.get('osprey_service_graph_expired_edges_total'), 6);
    assert.equal(m.get('osprey_service_graph_dropped_spans_total'), 0);
    assert.equal(m.get('osprey_service_graph_pending_edges'), 0);
    assert.equal(m.get('osprey_metrics_spans_too_old_total'), 1);
    assert.equal(m.get('osprey_metrics_series_dropped_total{processor="span-metrics"}'), 0);
    // the family headers Prometheus needs
    assert.match(text, /^# TYPE traces_spanmetrics_calls_total counter$/m);
    assert.match(text, /^# TYPE traces_spanmetrics_latency histogram$/m);
    assert.match(text, /^# TYPE traces_service_graph_request_server_seconds histogram$/m);
    assert.match(text, /^# TYPE traces_service_graph_request_client_seconds histogram$/m);

    // series not updated for 15 min are forgotten
    now = T0 + 15 * 60_000 + 10_001;
    gen.tick();
    assert.equal(gen.spanMetrics.seriesCount, 0);
    assert.equal(gen.serviceGraph.seriesCount, 0);
    assert.ok(!exposition(gen.families()).includes('traces_spanmetrics_calls_total{'));
  });

  it('pairs by (traceId, spanId) even when two traces share a span id', () => {
    const gen = new MetricsGenerator({ now: () => T0 });
    const id = 'aaaaaaaaaaaaaaaa';
    const t1 = newId(32);
    const t2 = newId(32);
    gen.consume([
      span({ service: 'x1', kind: 'client', traceId: t1, spanId: id, durationNano: 1 }),
      span({ service: 'x2', kind: 'client', traceId: t2, spanId: id, durationNano: 1 }),
    ]);
    assert.equal(gen.serviceGraph.pending, 2);
    gen.consume([span({ service: 'y2', kind: 'server', traceId: t2, parentSpanId: id, durationNano: 1 })]);
    assert.equal(gen.serviceGraph.pending, 1);
    gen.consume([span({ service: 'y1', kind: 'server', traceId: t1, parentSpanId: id, durationNano: 1 })]);
    assert.equal(gen.serviceGraph.pending, 0);
    const m = samples(exposition(gen.families()));
    assert.equal(m.get('traces_service_graph_request_total{client="x1",server="y1"}'), 1);
    assert.equal(m.get('traces_service_graph_request_total{client="x2",server="y2"}'), 1);
    assert.equal(m.get('traces_service_graph_request_total{client="x1",server="y2"}'), undefined);
    // producer -> consumer: messaging_system
    const t3 = newId(32);
    const prod = span({ service: 'p', kind: 'producer', traceId: t3, durationNano: 1 });
    gen.consume([prod, span({ service: 'c', kind: 'consumer', traceId: t3, parentSpanId: prod.spanId, durationNano: 1 })]);
    assert.equal(samples(exposition(gen.families())).get('traces_service_graph_request_total{client="p",server="c",connection_type="messaging_system"}'), 1);
  });

  it('root spans of trace ids alike in a word (64-bit ids padded, X-Ray) wait, pair and expire each on its own', () => {
    // such roots all share the trace id's first word (the pending-edge key once, which made
    // one list of them all: the store's ingest test with sequential ids took minutes)
    let now = T0;
    const gen = new MetricsGenerator({ now: () => now });
    const traces = [
      ...['00000000000000000123456789abcdef', '0000000000000000fedcba9876543210', '00000000000000000000000000000001'],
      ...['5f84c7a1c8a2e3b4d5f6a7b8c9d0e1f2', '5f84c7a1000000000000000000000007'],
      // different ids whose first and last words XOR alike
      ...['00000001000000000000000000000002', '00000002000000000000000000000001'],
    ];
    const roots = traces.map((traceId) => span({ service: 'api', kind: 'server', traceId, durationNano: 1 }));
    gen.consume(roots);
    // a root seen twice (a duplicate) is the same pending edge
    gen.consume([span({ service: 'api', kind: 'server', traceId: traces[1], durationNano: 1 })]);
    assert.equal(gen.serviceGraph.pending, traces.length);
    // a call under each root pairs by its span id, among the pending roots
    for (const [i, r] of roots.entries()) {
      const c = span({ service: 'api', kind: 'client', traceId: traces[i], parentSpanId: r.spanId, durationNano: 1 });
      gen.consume([c, span({ service: 'db', kind: 'server', traceId: traces[i], parentSpanId: c.spanId, durationNano: 1 })]);
    }
    assert.equal(gen.serviceGraph.pending, traces.length);
    now = T0 + 10_000;
    gen.tick();
    assert.equal(gen.serviceGraph.pending, 0);
    const m = samples(exposition(gen.families()));
    assert.equal(m.get('traces_service_graph_request_total{client="user",server="api",connection_type="virtual_node"}'), traces.length);
    assert.equal(m.get('traces_service_graph_request_total{client="api",server="db"}'), traces.length);
  });

  it('bounds: series caps and the pending-edge limit are counted; label values are escaped', () => {
    const gen = new MetricsGenerator({ now: () => T0, maxSeries: 2, maxItems: 2 });
    gen.consume([
      span({ service: 's', kind: 'internal', name: 'a', durationNano: 1 }),
      span({ service: 's', kind: 'internal', name: 'b', durationNano: 1 }),
      span({ service: 's', kind: 'internal', name: 'c', durationNano: 1 }),
      span({ service: 's', kind: 'internal', name: 'a', durationNano: 1 }),
    ]);
    // three distinct edges, the third beyond the series cap
    for (const server of ['u', 'v', 'w']) gen.consume(pair({ client: 'k', server, clientNs: 1, serverNs: 1 }));
    // three client spans that wait for servers: the third finds the pending map full
    gen.consume([
      span({ service: 's', kind: 'client', name: 'a', durationNano: 1 }),
      span({ service: 's', kind: 'client', name: 'a', durationNano: 1 }),
      span({ service: 's', kind: 'client', name: 'a', durationNano: 1 }),
    ]);
    assert.equal(gen.serviceGraph.pending, 2);
    const m = samples(exposition(gen.families()));
    assert.equal(m.get('traces_spanmetrics_calls_total{service="s",span_name="a",span_kind="SPAN_KIND_INTERNAL",status_code="STATUS_CODE_UNSET"}'), 2);
    assert.equal(m.get('traces_spanmetrics_calls_total{service="s",span_name="b",span_kind="SPAN_KIND_INTERNAL",status_code="STATUS_CODE_UNSET"}'), 1);
    // c, 3 client + 3 server spans of the pairs, 3 client spans of s/a/CLIENT: all beyond the cap
    assert.equal(m.get('osprey_metrics_series_dropped_total{processor="span-metrics"}'), 1 + 3 + 6);
    assert.equal(m.get('osprey_service_graph_dropped_spans_total'), 1);
    assert.equal(m.get('osprey_metrics_series_dropped_total{processor="service-graphs"}'), 1);
    // … and counted, not lost: each processor's overflow series holds them, so totals stay exact
    assert.equal(m.get('traces_spanmetrics_calls_total{otel_metric_overflow="true"}'), 1 + 3 + 6);
    assert.equal(m.get('traces_spanmetrics_latency_count{otel_metric_overflow="true"}'), 1 + 3 + 6);
    assert.equal(m.get('traces_service_graph_request_total{otel_metric_overflow="true"}'), 1);
    assert.equal([...m.keys()].filter((k) => k.startsWith('traces_service_graph_request_total{')).length, 3);

    // span names per service: past the limit, the service's own overflow series (no span_name,
    // kind and status kept: the service's RED stays exact), and nothing new allocated
    const names = new MetricsGenerator({ now: () => T0, maxNamesPerService: 2 });
    for (const n of ['a', 'b', 'c', 'd', 'c']) names.consume([span({ service: 'svc', kind: 'server', name: n, durationNano: 1 })]);
    names.consume([span({ service: 'svc', kind: 'server', name: 'e', durationNano: 1, status: 'error' })]);
    names.consume([span({ service: 'other', kind: 'server', name: 'z', durationNano: 1 })]);
    const n = samples(exposition(names.families()));
    assert.equal(n.get('traces_spanmetrics_calls_total{service="svc",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET",otel_metric_overflow="true"}'), 3);
    assert.equal(n.get('traces_spanmetrics_calls_total{service="svc",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_ERROR",otel_metric_overflow="true"}'), 1);
    assert.equal(n.get('traces_spanmetrics_calls_total{service="other",span_name="z",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET"}'), 1);
    assert.equal(n.get('osprey_metrics_series_dropped_total{processor="span-metrics"}'), 4);
    assert.equal(names.spanMetrics.seriesCount, 2 + 2 + 1);

    // by default a late span still counts (no ingestion slack; see MetricsGeneratorOptions)
    const late = new MetricsGenerator({ now: () => T0 });
    late.consume([span({ service: 's', kind: 'server', name: 'old', durationNano: 1, startMs: T0 - 3_600_000 })]);
    assert.equal(late.spanMetrics.seriesCount, 1);
    assert.equal(late.spansTooOld, 0);

    const esc = new MetricsGenerator({ now: () => T0 });
    esc.consume([span({ service: 'a"b\\c\nd', kind: 'server', name: 'x'.repeat(3000), durationNano: 1 })]);
    const t = exposition(esc.families());
    assert.ok(t.includes(`traces_spanmetrics_calls_total{service="a\\"b\\\\c\\nd",span_name="${'x'.repeat(2048)}",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET"} 1\n`));
  });

  it('bench: consume() throughput and scrape cost (printed, not asserted)', (t) => {
    const services = Array.from({ length: 20 }, (_, i) => `svc-${i}`);
    const names = Array.from({ length: 25 }, (_, i) => `GET /route/${i}/{id}`);
    const spans: Span[] = [];
    let seed = 42;
    const rnd = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 2 ** 32;
    };
    const hex = (len: number) => {
      let s = '';
      while (s.length < len) s += Math.floor(rnd() * 2 ** 31).toString(16).padStart(8, '0');
      return s.slice(0, len);
    };
    for (let i = 0; i < 100_000; i++) {
      const traceId = hex(32);
      const name = names[i % names.length]!;
      const c = span({ service: services[i % 20], kind: 'client', name, traceId, spanId: hex(16), durationNano: Math.floor(rnd() * 50e6), status: rnd() < 0.05 ? 'error' : 'unset' });
      const s = span({ service: services[(i * 7 + 3) % 20], kind: 'server', name, traceId, spanId: hex(16), parentSpanId: c.spanId, durationNano: Math.floor(rnd() * 40e6) });
      c.setAttributes({ 'http.request.method': 'GET', 'url.path': '/x', 'server.address': '10.0.0.1', 'server.port': 80 });
      s.setAttributes({ 'http.request.method': 'GET', 'url.path': '/x', 'client.address': '10.0.0.2' });
      spans.push(c, s);
    }
    const now = Date.now();
    for (const s of spans) s.setStartNs(BigInt(now - 1000) * 1_000_000n);
    const gen = new MetricsGenerator({ now: () => now });
    const batch = 256;
    const feed = () => {
      for (let i = 0; i < spans.length; i += batch) gen.consume(spans.slice(i, i + batch));
    };
    feed(); // warm up
    const rounds = 5;
    const t0 = process.hrtime.bigint();
    for (let r = 0; r < rounds; r++) feed();
    const sec = Number(process.hrtime.bigint() - t0) / 1e9;
    const rate = Math.round((rounds * spans.length) / sec);
    // unpaired worst case: only client spans, the pending map fills to its limit then drops
    const lone = spans.filter((s) => s.kind === 'client');
    const g2 = new MetricsGenerator({ now: () => now });
    const t1 = process.hrtime.bigint();
    for (let i = 0; i < lone.length; i += batch) g2.consume(lone.slice(i, i + batch));
    const rate2 = Math.round(lone.length / (Number(process.hrtime.bigint() - t1) / 1e9));
    // scrape cost with many series
    const big = new MetricsGenerator({ now: () => now });
    for (let i = 0; i < 10_000; i++) big.consume([span({ service: `s${i % 100}`, kind: 'server', name: `n${i}`, durationNano: i * 1000, startMs: now - 1000 })]);
    const t2 = process.hrtime.bigint();
    const text = exposition(big.families());
    const scrapeMs = Number(process.hrtime.bigint() - t2) / 1e6;
    t.diagnostic(`consume: ${rate.toLocaleString('en')} spans/s paired (${gen.spanMetrics.seriesCount} span series, ${gen.serviceGraph.seriesCount} edges); ${rate2.toLocaleString('en')} spans/s unpaired (pending ${g2.serviceGraph.pending}, dropped ${g2.serviceGraph.counters.droppedSpans})`);
    t.diagnostic(`exposition of 10000 span-metrics series: ${scrapeMs.toFixed(1)} ms, ${(text.length / 1e6).toFixed(1)} MB`);
    assert.equal(gen.serviceGraph.pending, 0);
  });
});

interface PromVector {
  status: string;
  data: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
}

/** a real `osprey up` (in memory) and a python3 http.server serving `dir` (ok.txt) to call with curl */
async function ospreyAndPython(dir: string, cleanup: (() => Promise<void>)[]) {
  const upPort = await freePort();
  const osprey = await ospreyUp(['--memory', '--listen', `127.0.0.1:${upPort}`, '--no-ui']);
  cleanup.push(async () => void (await osprey.stop()));
  const pyPort = await freePort();
  writeFileSync(join(dir, 'ok.txt'), 'ok\n');
  const py: Proc = await startServer('python3', ['-m', 'http.server', String(pyPort), '--bind', '127.0.0.1', '--directory', dir], pyPort);
  cleanup.push(() => py.stop());
  return { osprey, upPort, pyPort };
}

describe('a real Prometheus scrapes osprey up', { timeout: 120_000 }, () => {
  it('traces_spanmetrics_* and traces_service_graph_* arrive with Tempo labels', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'osprey-prom-'));
    const cleanup: (() => Promise<void>)[] = [];
    try {
      const { osprey, upPort, pyPort } = await ospreyAndPython(dir, cleanup);

      const promPort = await freePort();
      writeFileSync(
        join(dir, 'prometheus.yml'),
        ['global:', '  scrape_interval: 1s', '  scrape_timeout: 1s', 'scrape_configs:', '  - job_name: osprey', '    static_configs:', `      - targets: ['127.0.0.1:${upPort}']`, ''].join('\n'),
      );
      const prom = await startServer(
        '/usr/bin/prometheus',
        [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn'],
        promPort,
      );
      cleanup.push(() => prom.stop());
      const promUrl = `http://127.0.0.1:${promPort}`;
      const query = async (q: string) => {
        const r = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`);
        const body = (await r.json()) as PromVector;
        assert.equal(body.status, 'success', JSON.stringify(body));
        return body.data.result;
      };

      // real traffic: curl -> python3 http.server, a 200 and a 404 each round
      let stopTraffic = false;
      const traffic = (async () => {
        for (let i = 0; !stopTraffic; i++) {
          await run('curl', ['-sS', '-o', '/dev/null', `http://127.0.0.1:${pyPort}/ok.txt`]);
          await run('curl', ['-sS', '-o', '/dev/null', `http://127.0.0.1:${pyPort}/missing/${i}`]);
          await sleep(300);
        }
      })();
      cleanup.push(async () => {
        stopTraffic = true;
        await traffic;
      });

      const deadline = Date.now() + 30_000;
      let calls: PromVector['data']['result'] = [];
      let edges: PromVector['data']['result'] = [];
      let failed: PromVector['data']['result'] = [];
      for (;;) {
        calls = await query('traces_spanmetrics_calls_total{service="http"}');
        edges = await query('traces_service_graph_request_total{client="curl",server="http"}');
        failed = await query('traces_service_graph_request_failed_total{client="curl",server="http"}');
        if (calls.length && edges.length && failed.length && Number(failed[0]!.value[1]) >= 1) break;
        if (Date.now() > deadline) {
          const targets = await (await fetch(`${promUrl}/api/v1/targets`)).text();
          const metrics = await (await fetch(`${osprey.url}/metrics`)).text();
          assert.fail(
            `no span metrics in Prometheus after 30 s\ntargets: ${targets}\nosprey /metrics:\n${metrics.split('\n').filter((l) => /^(traces_\w+_total|osprey_(metrics|service_graph|spans|ringbuf|kernel))/.test(l)).join('\n')}\nosprey: ${osprey.err()}\nprometheus: ${prom.stderr()}`,
          );
        }
        await sleep(500);
      }
      t.diagnostic(`found after ${Math.round((30_000 - (deadline - Date.now())) / 1000)} s`);

      // Tempo's label names and values, as Grafana's APM table and service map query them
      const server = calls.find((r) => r.metric.span_kind === 'SPAN_KIND_SERVER');
      assert.ok(server, JSON.stringify(calls));
      assert.equal(server.metric.job, 'osprey');
      assert.match(server.metric.span_name!, /^GET /);
      assert.ok(['STATUS_CODE_UNSET', 'STATUS_CODE_ERROR', 'STATUS_CODE_OK'].includes(server.metric.status_code!));
      assert.ok(Number(server.value[1]) >= 1);
      const edge = edges[0]!;
      assert.deepEqual(Object.keys(edge.metric).sort(), ['__name__', 'client', 'instance', 'job', 'server'], 'connection_type is left out when empty');
      assert.ok(Number(edge.value[1]) >= 1);
      // client 404s are errors: failed edges
      assert.ok(Number(failed[0]!.value[1]) >= 1);
      // the histograms as classic Prometheus histograms
      const inf = await query('traces_service_graph_request_server_seconds_bucket{client="curl",server="http",le="+Inf"}');
      const count = await query('traces_service_graph_request_server_seconds_count{client="curl",server="http"}');
      assert.equal(inf.length, 1);
      assert.equal(inf[0]!.value[1], count[0]!.value[1]);
      const lat = await query('sum by (le) (traces_spanmetrics_latency_bucket{service="http",span_kind="SPAN_KIND_SERVER"})');
      assert.equal(lat.length, SPAN_METRICS_BUCKETS.length + 1);
      const q = await query('histogram_quantile(0.5, sum by (le) (traces_spanmetrics_latency_bucket{service="http"}))');
      assert.ok(Number.isFinite(Number(q[0]?.value[1])), JSON.stringify(q));
      // the scrape itself is healthy
      const up = await query('up{job="osprey"}');
      assert.equal(up[0]?.value[1], '1');
    } finally {
      for (const c of cleanup.reverse()) await c().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('osprey up: the CLI and the API give the same RED and graph numbers as /metrics', { timeout: 120_000 }, () => {
  it('services and graph equal the span-metrics and service-graph counters for the same spans', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'osprey-same-'));
    const cleanup: (() => Promise<void>)[] = [];
    try {
      const { osprey, pyPort } = await ospreyAndPython(dir, cleanup);
      // curl -> python3 http.server: 200s and 404s (client 4xx = failed edges)
      for (let i = 0; i < 8; i++) {
        await run('curl', ['-sS', '-o', '/dev/null', `http://127.0.0.1:${pyPort}/ok.txt`]);
        await run('curl', ['-sS', '-o', '/dev/null', `http://127.0.0.1:${pyPort}/missing/${i}`]);
      }
      // both sides expire unpaired edges after 10 s (ticks every 2 s)
      await sleep(14_000);

      const getText = async (path: string): Promise<string> => (await fetch(`${osprey.url}${path}`)).text();
      const cli = async (args: string[]): Promise<unknown> => {
        const r = await run(OSPREY, [...args, '--server', osprey.url, '--since', '1h', '--json']);
        assert.equal(r.code, 0, r.stderr);
        return JSON.parse(r.stdout);
      };
      /** the counters /metrics has for curl and http (other traffic on the machine is traced too) */
      const ours = (text: string): Map<string, number> =>
        new Map([...samples(text)].filter(([k]) => /^traces_(spanmetrics_calls_total|spanmetrics_latency_sum|service_graph_request_(total|failed_total|server_seconds_sum|client_seconds_sum))\{/.test(k) && /(service|client|server)="(curl|http)"/.test(k)));
      const sumOf = (m: Map<string, number>, name: string, ...labels: string[]): number => {
        let n = 0;
        for (const [k, v] of m) if (k.startsWith(`${name}{`) && labels.every((l) => k.includes(l))) n += v;
        return n;
      };
      // another test's curl or python traffic may land between two reads: retry until /metrics is the same before and after
      for (let attempt = 0; ; attempt++) {
        const before = ours(await getText('/metrics'));
        const api = JSON.parse(await getText('/api/osprey/services?since=1h')) as { services: ServiceStats[] };
        const apiGraph = JSON.parse(await getText('/api/osprey/graph?since=1h')) as { edges: EdgeStats[] };
        const cliServices = (await cli(['services'])) as ServiceStats[];
        const cliGraph = (await cli(['graph'])) as EdgeStats[];
        const after = ours(await getText('/metrics'));
        if (JSON.stringify([...before]) !== JSON.stringify([...after])) {
          assert.ok(attempt < 10, 'the counters never held still');
          await sleep(1000);
          continue;
        }
        const m = after;
        const http = { server: 'span_kind="SPAN_KIND_SERVER"', svc: 'service="http"' };
        const calls = sumOf(m, 'traces_spanmetrics_calls_total', http.svc, http.server);
        assert.ok(calls >= 16, `${calls} server spans of http in /metrics`);
        for (const [source, services, edges] of [['API', api.services, apiGraph.edges], ['CLI', cliServices, cliGraph]] as const) {
          const s = services.find((x) => x.service === 'http');
          assert.ok(s, `${source}: ${JSON.stringify(services)}`);
          assert.equal(s.basis, 'server');
          assert.equal(s.requestCount, calls, `${source} requests`);
          assert.equal(s.errorCount, sumOf(m, 'traces_spanmetrics_calls_total', http.svc, http.server, 'status_code="STATUS_CODE_ERROR"'), `${source} errors`);
          assert.ok(Math.abs(s.durationSumNs / 1e9 - sumOf(m, 'traces_spanmetrics_latency_sum', http.svc, http.server)) < 1e-6, `${source} latency sum`);
          const e = edges.find((x) => x.caller === 'curl' && x.callee === 'http' && x.connectionType === '');
          assert.ok(e, `${source}: ${JSON.stringify(edges)}`);
          const pair = ['client="curl"', 'server="http"'];
          const exact = (k: string): boolean => !k.includes('connection_type');
          const only = (name: string): number => sumOf(new Map([...m].filter(([k]) => exact(k))), name, ...pair);
          assert.equal(e.count, only('traces_service_graph_request_total'), `${source} edge count`);
          assert.equal(e.errorCount, only('traces_service_graph_request_failed_total'), `${source} failed`);
          assert.ok(e.errorCount >= 8, `${source}: the 404s are failed edges`);
          assert.ok(Math.abs(e.serverSumNs / 1e9 - only('traces_service_graph_request_server_seconds_sum')) < 1e-6, `${source} server sum`);
          assert.ok(Math.abs(e.clientSumNs / 1e9 - only('traces_service_graph_request_client_seconds_sum')) < 1e-6, `${source} client sum`);
        }
        t.diagnostic(`http: ${calls} requests; compared after ${attempt + 1} read(s)`);
        break;
      }
    } finally {
      for (const c of cleanup.reverse()) await c().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
