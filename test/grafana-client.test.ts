// Osprey as Grafana's Tempo data source sees it, against a real `osprey up`: the calls Grafana
// makes, in its order, with its headers, and its way of reading the answers.
// - trace by id: GET /api/v2/traces/<id>?start&end with Accept: application/protobuf, decoded as
//   tempopb.TraceByIDResponse; on 404 the v1 path, decoded as tempopb.Trace. Decoded twice: with
//   protobufjs from proto/tempopb (Tempo's field numbers), and by an independent oracle, a Go
//   program using the OpenTelemetry project's generated OTLP types and google.golang.org/protobuf
//   (test/fixtures/otlp-oracle; tempopb.Trace is wire-identical to OTLP TracesData). Tempo's own
//   Go package is AGPL and is not used here.
// - health (/api/echo), build info, search, tags (v1, v2 scopes), tag values (v1, v2 typed, with
//   a TraceQL filter), and TraceQL metrics (query_range, query).
// The spans are sent over OTLP/JSON first, so every field is known.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { freePort, ospreyUp, type OspreyUp } from './helpers.js';
import { buildGoModule } from './go-module.js';

const PROTO = fileURLToPath(new URL('../../proto/', import.meta.url));
const ORACLE_SRC = fileURLToPath(new URL('../../test/fixtures/otlp-oracle', import.meta.url));

const hex = (n: number) => randomBytes(n).toString('hex');
const b64 = (h: string) => Buffer.from(h, 'hex').toString('base64');

describe('Grafana Tempo data source against osprey up', { timeout: 600_000 }, () => {
  let osprey: OspreyUp;
  let oracle: string;
  const service = `grafana-${process.pid}`;
  const traceId = hex(16);
  const rootId = hex(8);
  const childId = hex(8);
  const linkedTrace = hex(16);
  const linkedSpan = hex(8);
  const startNs = BigInt(Date.now() - 10_000) * 1_000_000n + 123_456n;
  const win = `start=${Math.floor(Date.now() / 1000) - 3600}&end=${Math.floor(Date.now() / 1000) + 60}`;
  // the store names tags from a sample of the newest spans in the window, and other tests trace
  // their traffic on this machine meanwhile: the tag lists are asked for the seconds of these spans
  const spanWin = `start=${startNs / 1_000_000_000n}&end=${startNs / 1_000_000_000n + 1n}`;
  const posted = [
    {
      traceId,
      spanId: rootId,
      name: 'GET /cart',
      kind: 2,
      startTimeUnixNano: String(startNs),
      endTimeUnixNano: String(startNs + 50_000_000n),
      attributes: [
        { key: 'http.route', value: { stringValue: '/cart' } },
        { key: 'http.response.status_code', value: { intValue: '500' } },
        { key: 'app.ratio', value: { doubleValue: 0.25 } },
        { key: 'app.flag', value: { boolValue: true } },
      ],
      status: { code: 2, message: 'boom' },
      // an exception event and a link to another trace: Grafana shows both in the span details
      events: [
        {
          timeUnixNano: String(startNs + 7_000_000n),
          name: 'exception',
          attributes: [
            { key: 'exception.type', value: { stringValue: 'CartError' } },
            { key: 'exception.message', value: { stringValue: 'cart 42 is locked' } },
          ],
        },
      ],
      links: [{ traceId: linkedTrace, spanId: linkedSpan, attributes: [{ key: 'reason', value: { stringValue: 'retry' } }] }],
      droppedEventsCount: 2,
    },
    {
      traceId,
      spanId: childId,
      parentSpanId: rootId,
      name: 'SELECT cart',
      kind: 3,
      startTimeUnixNano: String(startNs + 1_000_000n),
      endTimeUnixNano: String(startNs + 41_000_000n),
      attributes: [{ key: 'db.system.name', value: { stringValue: 'postgresql' } }],
    },
  ];

  /** a GET as Grafana makes it */
  const get = async (path: string, accept = 'application/json') => {
    const r = await fetch(`${osprey.url}${path}`, { headers: { accept } });
    return { status: r.status, type: r.headers.get('content-type') ?? '', headers: r.headers, bytes: new Uint8Array(await r.arrayBuffer()) };
  };
  const getJson = async (path: string): Promise<Record<string, unknown>> => {
    const r = await get(path);
    const text = Buffer.from(r.bytes).toString();
    assert.equal(r.status, 200, `${path}: ${text}`);
    return JSON.parse(text) as Record<string, unknown>;
  };
  const runOracle = (mode: 'trace' | 'response', bytes: Uint8Array) =>
    JSON.parse(execFileSync(oracle, [mode], { input: bytes, encoding: 'utf8' })) as { status: number; message: string; trace: OracleTrace };

  let tempo: protobuf.Root;

  before(async () => {
    // Go module downloads and a build on a fresh machine: before the agent starts
    oracle = buildGoModule(ORACLE_SRC, 'otlp-oracle', ['go.opentelemetry.io/proto/otlp@v1.11.0', 'google.golang.org/protobuf@v1.36.12']);
    tempo = new protobuf.Root();
    tempo.resolvePath = (_o, target) => PROTO + target;
    tempo.loadSync('tempopb/tempo.proto');
    osprey = await ospreyUp(['--memory', '--listen', `127.0.0.1:${await freePort()}`, '--no-ui']);
    const body = {
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }, { key: 'k8s.namespace.name', value: { stringValue: 'shop' } }] },
          scopeSpans: [{ scope: { name: 'grafana-test' }, spans: posted }],
        },
      ],
    };
    const r = await fetch(`${osprey.url}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(r.status, 200, await r.text());
    // queryable within 5 s (the store flushes every second)
    const deadline = Date.now() + 10_000;
    while ((await get(`/api/traces/${traceId}`)).status !== 200) {
      assert.ok(Date.now() < deadline, 'the trace is stored');
      await new Promise((res) => setTimeout(res, 200));
    }
  });
  after(async () => {
    await osprey?.stop();
  });

  it('"Save & test": /api/echo and the build info Grafana checks versions against', async () => {
    const e = await get('/api/echo');
    assert.equal(e.status, 200);
    assert.equal(Buffer.from(e.bytes).toString(), 'echo');
    const b = await getJson('/api/status/buildinfo');
    const [major, minor] = String(b.version).split('.').map(Number);
    assert.ok(major! > 2 || (major === 2 && minor! >= 7), `version ${String(b.version)} >= 2.7 (Grafana's feature checks)`);
    for (const k of ['revision', 'branch', 'buildDate', 'buildUser', 'goVersion']) assert.equal(typeof b[k], 'string', k);
  });

  it('trace by id, v2 in protobuf: TraceByIDResponse, decoded by Tempo\'s numbers and by the Go OTLP oracle', async () => {
    const r = await get(`/api/v2/traces/${traceId}?${win}`, 'application/protobuf');
    assert.equal(r.status, 200);
    assert.match(r.type, /^application\/protobuf/);
    // as Grafana: proto.Unmarshal into TraceByIDResponse, then tr.Trace.ResourceSpans
    const T = tempo.lookupType('tempopb.TraceByIDResponse');
    const msg = T.toObject(T.decode(r.bytes), { longs: String, enums: String, bytes: String, defaults: false }) as {
      trace: { resourceSpans: ProtoResourceSpans[] };
      status?: string;
    };
    assert.equal(msg.status ?? 'COMPLETE', 'COMPLETE');
    checkSpans(msg.trace.resourceSpans, (id) => b64(id));
    const o = runOracle('response', r.bytes);
    assert.equal(o.status, 0, 'PartialStatus COMPLETE');
    checkOracle(o.trace);
  });

  it('v2 404 for an unknown trace, then the v1 fallback: 404 too; v1 of a known trace is tempopb.Trace', async () => {
    const unknown = hex(16);
    assert.equal((await get(`/api/v2/traces/${unknown}?${win}`, 'application/protobuf')).status, 404);
    assert.equal((await get(`/api/traces/${unknown}?${win}`, 'application/protobuf')).status, 404);
    const r = await get(`/api/traces/${traceId}?${win}`, 'application/protobuf');
    assert.equal(r.status, 200);
    const T = tempo.lookupType('tempopb.Trace');
    const msg = T.toObject(T.decode(r.bytes), { longs: String, enums: String, bytes: String }) as { resourceSpans: ProtoResourceSpans[] };
    checkSpans(msg.resourceSpans, (id) => b64(id));
    checkOracle(runOracle('trace', r.bytes).trace);
    // JSON stays JSON (a browser, curl): Tempo's v1 shape with "batches"
    const j = await getJson(`/api/traces/${traceId}`);
    assert.ok(Array.isArray(j.batches));
    const jspans = (j.batches as { scopeSpans: { spans: { spanId: string; events?: { name: string }[]; links?: { traceId: string }[] }[] }[] }[]).flatMap((b) =>
      b.scopeSpans.flatMap((x) => x.spans),
    );
    const jroot = jspans.find((x) => x.spanId === rootId);
    assert.equal(jroot?.events?.[0]?.name, 'exception');
    assert.equal(jroot?.links?.[0]?.traceId, linkedTrace);
  });

  it('search by the span\'s event and link: event:name, event.<attr>, link:traceID, link:spanID', async () => {
    for (const q of [
      `{ event:name = "exception" && resource.service.name = "${service}" }`,
      `{ event.exception.type = "CartError" }`,
      `{ link:traceID = "${linkedTrace}" }`,
      `{ link:spanID = "${linkedSpan}" && link.reason = "retry" }`,
    ]) {
      const s = (await getJson(`/api/search?q=${encodeURIComponent(q)}&limit=20&spss=3&${win}`)) as unknown as SearchResponse;
      const t = s.traces.find((x) => x.traceID === traceId);
      assert.ok(t, q);
      assert.deepEqual(t.spanSets[0]?.spans.map((x) => x.spanID), [rootId], q);
    }
    const none = (await getJson(`/api/search?q=${encodeURIComponent(`{ link:traceID = "${hex(16)}" }`)}&limit=20&${win}`)) as unknown as SearchResponse;
    assert.equal(none.traces.length, 0);
  });

  it('search: Tempo\'s response with spanSets, matched attributes and metrics', async () => {
    const q = encodeURIComponent(`{ resource.service.name = "${service}" && span.http.response.status_code >= 500 }`);
    const s = (await getJson(`/api/search?q=${q}&limit=20&spss=3&${win}`)) as unknown as SearchResponse;
    const t = s.traces.find((x) => x.traceID === traceId);
    assert.ok(t, 'the trace is found');
    assert.equal(t.rootServiceName, service);
    assert.equal(t.rootTraceName, 'GET /cart');
    assert.equal(t.startTimeUnixNano, String(startNs));
    assert.equal(t.durationMs, 50);
    assert.equal(t.spanSets.length, 1);
    const set = t.spanSets[0]!;
    assert.equal(set.matched, 1);
    assert.equal(set.spans[0]!.spanID, rootId);
    assert.equal(set.spans[0]!.durationNanos, '50000000');
    assert.deepEqual(
      set.spans[0]!.attributes.map((a) => a.key).sort(),
      ['http.response.status_code', 'service.name'],
      'the fields the query names',
    );
    assert.equal(typeof s.metrics, 'object');
    // the legacy parameters Grafana's old search form sends
    const legacy = (await getJson(`/api/search?tags=${encodeURIComponent(`service.name=${service}`)}&minDuration=45ms&limit=20&${win}`)) as unknown as SearchResponse;
    assert.deepEqual(
      legacy.traces.map((x) => x.traceID),
      [traceId],
    );
  });

  it('tags: v1 names, v2 scopes', async () => {
    const v1 = (await getJson(`/api/search/tags?${spanWin}`)) as { tagNames: string[] };
    for (const k of ['service.name', 'http.route', 'app.ratio']) assert.ok(v1.tagNames.includes(k), k);
    const v2 = (await getJson(`/api/v2/search/tags?${spanWin}`)) as { scopes: { name: string; tags: string[] }[] };
    const scope = (n: string) => v2.scopes.find((s) => s.name === n)?.tags ?? [];
    assert.ok(scope('resource').includes('k8s.namespace.name'));
    assert.ok(scope('span').includes('db.system.name'));
    for (const i of ['duration', 'kind', 'name', 'status', 'rootServiceName', 'event:name', 'link:traceID']) assert.ok(scope('intrinsic').includes(i), i);
    assert.ok(scope('event').includes('exception.type'), 'event attribute keys');
    assert.ok(scope('link').includes('reason'), 'link attribute keys');
    const only = (await getJson(`/api/v2/search/tags?scope=resource&${win}`)) as { scopes: { name: string }[] };
    assert.deepEqual(only.scopes.map((s) => s.name), ['resource']);
  });

  it('tag values: v1 strings, v2 typed, narrowed by a TraceQL q; a q that does not parse narrows nothing', async () => {
    const v1 = (await getJson(`/api/search/tag/service.name/values?${spanWin}`)) as { tagValues: string[] };
    assert.ok(v1.tagValues.includes(service));
    const codes = (await getJson(`/api/v2/search/tag/span.http.response.status_code/values?q=${encodeURIComponent(`{ resource.service.name = "${service}" }`)}&${win}`)) as {
      tagValues: { type: string; value: string }[];
    };
    assert.deepEqual(codes.tagValues, [{ type: 'int', value: '500' }]);
    const names = (await getJson(`/api/v2/search/tag/name/values?q=${encodeURIComponent(`{ resource.service.name = "${service}" && kind = client }`)}&${win}`)) as {
      tagValues: { type: string; value: string }[];
    };
    assert.deepEqual(names.tagValues, [{ type: 'string', value: 'SELECT cart' }]);
    const ratio = (await getJson(`/api/v2/search/tag/.app.ratio/values?q=${encodeURIComponent(`{ resource.service.name = "${service}" }`)}&${win}`)) as {
      tagValues: { type: string; value: string }[];
    };
    assert.deepEqual(ratio.tagValues, [{ type: 'float', value: '0.25' }]);
    // event names and event attribute values, as the editor offers them after `event:name =` / `event.exception.type =`
    const evNames = (await getJson(`/api/v2/search/tag/event:name/values?${spanWin}`)) as { tagValues: { type: string; value: string }[] };
    assert.ok(evNames.tagValues.some((v) => v.type === 'string' && v.value === 'exception'));
    const evTypes = (await getJson(`/api/v2/search/tag/event.exception.type/values?q=${encodeURIComponent(`{ resource.service.name = "${service}" }`)}&${spanWin}`)) as {
      tagValues: { type: string; value: string }[];
    };
    assert.ok(evTypes.tagValues.some((v) => v.type === 'string' && v.value === 'CartError'));
    const status = (await getJson(`/api/v2/search/tag/status/values?${win}`)) as { tagValues: { type: string; value: string }[] };
    assert.deepEqual(status.tagValues.map((v) => v.type), ['keyword', 'keyword', 'keyword']);
    // half-typed, as the editor sends it while the user types: the unfiltered list, and a header saying why
    const half = await get(`/api/v2/search/tag/resource.service.name/values?q=${encodeURIComponent('{ resource.service.name = "x" && span.http.route = }')}&${spanWin}`);
    assert.equal(half.status, 200);
    assert.ok((JSON.parse(Buffer.from(half.bytes).toString()) as { tagValues: { value: string }[] }).tagValues.some((v) => v.value === service));
    assert.match(half.headers.get('x-osprey-filter-ignored') ?? '', /q does not parse/);
  });

  it('TraceQL metrics: query_range and query answer in Tempo\'s shapes', async () => {
    // the agent captures this machine's traffic too: count this test's service only
    const q = encodeURIComponent(`{ resource.service.name = "${service}" } | count_over_time()`);
    const range = await get(`/api/metrics/query_range?q=${q}&${win}&step=60s`);
    assert.equal(range.status, 200, Buffer.from(range.bytes).toString());
    const r = JSON.parse(Buffer.from(range.bytes).toString()) as { series: { labels: unknown[]; samples: { timestampMs: string; value: number }[] }[] };
    assert.ok(Array.isArray(r.series) && r.series.length >= 1);
    const total = r.series.flatMap((s) => s.samples).reduce((a, x) => a + x.value, 0);
    assert.equal(total, 2, 'both spans sent are counted once');
    for (const x of r.series[0]!.samples) assert.match(x.timestampMs, /^\d+$/);
    const instant = await get(`/api/metrics/query?q=${q}&${win}`);
    assert.equal(instant.status, 200, Buffer.from(instant.bytes).toString());
    const i = JSON.parse(Buffer.from(instant.bytes).toString()) as { series: { value: number }[] };
    assert.equal(i.series.reduce((a, x) => a + x.value, 0), 2);
    // a threshold keeps the data points that meet it (Tempo's `... > n`)
    for (const [cmp, series] of [['> 1', 1], ['> 2', 0]] as const) {
      const t = encodeURIComponent(`{ resource.service.name = "${service}" } | count_over_time() ${cmp}`);
      const res = await get(`/api/metrics/query?q=${t}&${win}`);
      assert.equal(res.status, 200, Buffer.from(res.bytes).toString());
      assert.equal((JSON.parse(Buffer.from(res.bytes).toString()) as { series: unknown[] }).series.length, series, cmp);
    }
  });

  // --- what the decoded answers must hold -------------------------------------------------

  function checkSpans(rss: ProtoResourceSpans[], id: (hex: string) => string): void {
    const all = rss.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans.map((s) => ({ rs, s }))));
    assert.equal(all.length, 2);
    const root = all.find((x) => x.s.spanId === id(rootId));
    const child = all.find((x) => x.s.spanId === id(childId));
    assert.ok(root && child);
    assert.equal(root.s.traceId, id(traceId));
    assert.equal(root.s.name, 'GET /cart');
    assert.equal(root.s.kind, 'SPAN_KIND_SERVER');
    assert.equal(root.s.startTimeUnixNano, String(startNs));
    assert.equal(root.s.endTimeUnixNano, String(startNs + 50_000_000n));
    assert.equal(root.s.status?.code, 'STATUS_CODE_ERROR');
    assert.equal(root.s.status?.message, 'boom');
    assert.ok(!root.s.parentSpanId, 'a root has no parent');
    assert.equal(child.s.parentSpanId, id(rootId));
    assert.equal(child.s.kind, 'SPAN_KIND_CLIENT');
    const attr = (s: ProtoSpan, k: string) => s.attributes.find((a) => a.key === k)?.value;
    assert.deepEqual(attr(root.s, 'http.route'), { stringValue: '/cart' });
    assert.deepEqual(attr(root.s, 'http.response.status_code'), { intValue: '500' });
    assert.deepEqual(attr(root.s, 'app.ratio'), { doubleValue: 0.25 });
    assert.deepEqual(attr(root.s, 'app.flag'), { boolValue: true });
    assert.deepEqual(attr(child.s, 'db.system.name'), { stringValue: 'postgresql' });
    // the span's event and link, whole
    assert.equal(root.s.events?.length, 1);
    const ev = root.s.events[0]!;
    assert.equal(ev.name, 'exception');
    assert.equal(ev.timeUnixNano, String(startNs + 7_000_000n));
    assert.deepEqual(ev.attributes, [
      { key: 'exception.type', value: { stringValue: 'CartError' } },
      { key: 'exception.message', value: { stringValue: 'cart 42 is locked' } },
    ]);
    assert.equal(root.s.droppedEventsCount, 2);
    assert.equal(root.s.links?.length, 1);
    assert.equal(root.s.links[0]!.traceId, id(linkedTrace));
    assert.equal(root.s.links[0]!.spanId, id(linkedSpan));
    assert.deepEqual(root.s.links[0]!.attributes, [{ key: 'reason', value: { stringValue: 'retry' } }]);
    assert.ok(!child.s.events?.length && !child.s.links?.length, 'a span without events and links has none');
    const res = root.rs.resource.attributes.find((a) => a.key === 'service.name')?.value;
    assert.deepEqual(res, { stringValue: service });
  }

  function checkOracle(t: OracleTrace): void {
    // protojson: bytes base64, enums by name, 64-bit integers as strings: the same checks apply
    checkSpans(t.resourceSpans as ProtoResourceSpans[], (h) => b64(h));
  }
});

interface ProtoKeyValue {
  key: string;
  value: Record<string, unknown>;
}
interface ProtoSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: string;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: ProtoKeyValue[];
  status?: { code?: string; message?: string };
  events?: { timeUnixNano: string; name: string; attributes: ProtoKeyValue[] }[];
  droppedEventsCount?: number;
  links?: { traceId: string; spanId: string; attributes: ProtoKeyValue[] }[];
}
interface ProtoResourceSpans {
  resource: { attributes: ProtoKeyValue[] };
  scopeSpans: { spans: ProtoSpan[] }[];
}
interface OracleTrace {
  resourceSpans: unknown[];
}
interface SearchResponse {
  traces: {
    traceID: string;
    rootServiceName: string;
    rootTraceName: string;
    startTimeUnixNano: string;
    durationMs: number;
    spanSets: { spans: { spanID: string; durationNanos: string; attributes: ProtoKeyValue[] }[]; matched: number }[];
  }[];
  metrics: unknown;
}
