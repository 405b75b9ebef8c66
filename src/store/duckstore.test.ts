import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Span, spanToJson, type Attributes, type SpanInit, type SpanKind, type SpanStatus } from '../model/index.js';
import { TraceQLError, parseTraceQL } from '../traceql/index.js';
import { SPAN_METRICS_BUCKETS } from '../metrics/series.js';
import { HOT_KEYS } from './attrs.js';
import { DuckStore, normalizeTraceId } from './index.js';

const NOW = BigInt(Date.now()) * 1_000_000n;
const MS = 1_000_000n;
const SEC = 1_000_000_000n;

let seq = 0;
function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

function mkSpan(o: Partial<SpanInit> & { svc?: string; pid?: number; res?: Attributes } = {}): Span {
  seq++;
  const { svc, pid, res, ...rest } = o;
  return Span.from({
    traceId: hex(seq, 32),
    spanId: hex(seq, 16),
    parentSpanId: '',
    name: `span-${seq}`,
    kind: 'server',
    startTimeUnixNano: NOW - BigInt(seq) * MS,
    durationNano: 1_000_000,
    status: 'unset',
    resource: res ?? { 'service.name': svc ?? 'svc', 'process.pid': pid ?? 1 },
    attributes: {},
    ...rest,
  });
}

const q = parseTraceQL;
async function names(store: DuckStore, query: string, extra: { startNs?: bigint; endNs?: bigint } = {}): Promise<string[]> {
  const spans = await store.search({ query: q(query), limit: 1000, ...extra });
  return spans.map((s) => s.name).sort();
}

/** percentiles are estimated from Tempo's latency buckets (2 ms · 2^k): the estimate lies in the exact value's bucket */
function inBucket(est: number | undefined, exact: number): void {
  const bounds = SPAN_METRICS_BUCKETS.map((b) => Math.round(b * 1e9));
  const i = bounds.findIndex((b) => exact <= b);
  const lo = i <= 0 ? 0 : (bounds[i - 1] as number);
  const hi = i < 0 ? Infinity : (bounds[i] as number);
  assert.ok(est !== undefined && est >= lo && est <= hi, `${est} in (${lo}, ${hi}] like ${exact}`);
}

describe('DuckStore (in memory)', () => {
  describe('round trip', () => {
    let store: DuckStore;
    before(async () => {
      store = await DuckStore.open();
    });
    after(async () => {
      await store.shutdown();
    });

    it('returns spans exactly as appended, numeric pid included', async () => {
      const span = Span.from({
        traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
        spanId: '00f067aa0ba902b7',
        parentSpanId: '',
        name: 'GET /users/{id}',
        kind: 'server',
        startTimeUnixNano: 1_700_000_000_123_456_789n,
        durationNano: 1_234_567,
        status: 'unset',
        resource: {
          'service.name': 'users',
          'process.pid': 4242,
          'process.executable.name': 'node',
          'k8s.namespace.name': 'prod',
          'host.name': 'node-1',
        },
        attributes: {
          'http.request.method': 'GET',
          'url.path': '/users/42',
          'http.route': '/users/{id}',
          'http.response.status_code': 200,
          'server.port': 8080,
          'client.address': '10.0.0.7',
          'osprey.link': 'traceparent',
          ratio: 0.25,
          big: 2 ** 53 - 1,
          negative: -3.5,
          flag: true,
          off: false,
          empty: '',
          unicode: 'héllo ✓ 漢字',
          'quote"key': 'x"y\\z',
          "it's": "'; DROP TABLE spans; --",
        },
      });
      const child = Span.from({
        ...span.toInit(),
        spanId: 'ffffffffffffffff',
        parentSpanId: '00f067aa0ba902b7',
        name: 'SELECT users',
        kind: 'client',
        status: 'error',
        statusMessage: 'connection reset',
        startTimeUnixNano: span.startTimeUnixNano + 1000n,
        durationNano: 0,
        attributes: { 'db.system': 'postgresql' },
      });
      store.append([span, child]);
      await store.flush();
      const got = await store.trace(span.traceId);
      assert.equal(got.length, 2);
      const [first, second] = got;
      assert.ok(first && second);
      assert.deepStrictEqual(first, span);
      assert.deepStrictEqual(second, child);
      assert.deepStrictEqual(spanToJson(first), spanToJson(span));
      assert.equal(typeof first.resource['process.pid'], 'number');
      assert.equal(typeof first.attributes['http.response.status_code'], 'number');
      assert.equal(typeof first.attributes['flag'], 'boolean');
      // key order: hot attributes (columns) first, in the order the agent writes them, then
      // the others (JSON) in their own order; so the agent's spans read back in their order
      const hot = Object.keys(span.attributes).filter((k) => HOT_KEYS.includes(k)).sort((a, b) => HOT_KEYS.indexOf(a) - HOT_KEYS.indexOf(b));
      const rest = Object.keys(span.attributes).filter((k) => !HOT_KEYS.includes(k));
      assert.deepEqual(Object.keys(first.attributes), [...hot, ...rest]);
      // the JSON shape of the public API
      const json = JSON.parse(JSON.stringify(spanToJson(first))) as Record<string, unknown>;
      assert.equal(json['startTimeUnixNano'], '1700000000123456789');
      assert.equal((json['resource'] as Record<string, unknown>)['process.pid'], 4242);
    });

    it('normalises ids to lowercase and drops unstorable attribute values', async () => {
      const s = mkSpan({
        traceId: 'ABCDEF0123456789ABCDEF0123456789',
        spanId: 'ABCDEF0123456789',
        attributes: { ok: 'yes', nan: NaN, inf: Infinity, obj: { a: 1 } as unknown as string, nul: null as unknown as string },
      });
      store.append([s]);
      await store.flush();
      const [got] = await store.trace('abcdef0123456789abcdef0123456789');
      assert.equal(got?.traceId, 'abcdef0123456789abcdef0123456789');
      assert.equal(got?.spanId, 'abcdef0123456789');
      assert.deepEqual(got?.attributes, { ok: 'yes' });
    });

    it('trace(): unknown, short and malformed ids', async () => {
      assert.deepEqual(await store.trace('0'.repeat(32)), []);
      assert.deepEqual(await store.trace('not hex'), []);
      assert.deepEqual(await store.trace("'; DROP TABLE spans; --"), []);
      assert.equal(normalizeTraceId('ABC'), '0'.repeat(29) + 'abc');
      assert.equal(normalizeTraceId('x'), undefined);
      assert.equal(normalizeTraceId('0'.repeat(33)), undefined);
      // short ids are left-padded like Tempo
      const s = mkSpan({ traceId: '0'.repeat(28) + 'beef' });
      store.append([s]);
      await store.flush();
      assert.equal((await store.trace('BEEF')).length, 1);
    });

    it('trace(): a trace written over several flushes, out of order', async () => {
      const tid = 'f00d'.repeat(8);
      const parts = [
        mkSpan({ traceId: tid, name: 'late', startTimeUnixNano: NOW - 1n * SEC }),
        mkSpan({ traceId: tid, name: 'early', startTimeUnixNano: NOW - 50n * SEC }),
        mkSpan({ traceId: tid, name: 'middle', startTimeUnixNano: NOW - 20n * SEC }),
      ];
      for (const p of parts) {
        store.append([p, mkSpan()]);
        await store.flush();
      }
      assert.deepEqual((await store.trace(tid)).map((s) => s.name), ['early', 'middle', 'late']);
      assert.deepEqual((await store.trace(tid, { endNs: NOW - 10n * SEC })).map((s) => s.name), ['early', 'middle']);
      assert.deepEqual(await store.trace(tid, { startNs: NOW }), []);
    });

    it('trace(): a time window narrows it', async () => {
      const tid = 'cafe'.repeat(8);
      const a = mkSpan({ traceId: tid, startTimeUnixNano: NOW - 10n * SEC });
      const b = mkSpan({ traceId: tid, startTimeUnixNano: NOW - 1n * SEC });
      store.append([b, a]);
      await store.flush();
      assert.deepEqual((await store.trace(tid)).map((s) => s.spanId), [a.spanId, b.spanId]);
      assert.deepEqual((await store.trace(tid, { startNs: NOW - 5n * SEC })).map((s) => s.spanId), [b.spanId]);
    });
  });

  describe('TraceQL operators', () => {
    let store: DuckStore;
    const T = 'a'.repeat(32);
    before(async () => {
      store = await DuckStore.open();
      const a1 = mkSpan({
        traceId: T,
        spanId: hex(0xa1, 16),
        name: 'GET /users/{id}',
        kind: 'server',
        status: 'error',
        statusMessage: 'boom',
        durationNano: 250_000_000,
        res: { 'service.name': 'api', 'process.pid': 1, 'k8s.namespace.name': 'prod' },
        attributes: {
          'http.request.method': 'GET',
          'http.route': '/users/{id}',
          'http.response.status_code': 500,
          'url.path': '/users/42',
          retry: true,
          size: 10.5,
        },
      });
      const a2 = mkSpan({
        traceId: T,
        spanId: hex(0xa2, 16),
        parentSpanId: hex(0xa1, 16),
        name: 'POST /orders',
        kind: 'client',
        status: 'unset',
        durationNano: 50_000_000,
        res: { 'service.name': 'web', 'process.pid': 2, 'k8s.namespace.name': 'dev' },
        attributes: {
          'http.request.method': 'POST',
          'http.response.status_code': 201,
          'url.path': '/orders',
          retry: false,
          size: 3,
          code: '201',
          'http.route': 404, // a hot attribute with an unusual type stays exact
        },
      });
      const a3 = mkSpan({
        traceId: T,
        spanId: hex(0xa3, 16),
        parentSpanId: hex(0xa2, 16),
        name: 'SELECT',
        kind: 'internal',
        status: 'ok',
        durationNano: 1_000_000,
        res: { 'service.name': 'db', 'process.pid': 3, shared: 'res-value', 'weird key "x"': 'w' },
        attributes: { 'db.system': 'postgresql', shared: 'span-value', 'a/b~c': 'ptr', quoted: 'say "hi"', uni: 'héllo ✓', other: 'x /orders' },
      });
      store.append([a1, a2, a3]);
      await store.flush();
    });
    after(async () => {
      await store.shutdown();
    });

    const cases: [string, string[]][] = [
      ['{}', ['GET /users/{id}', 'POST /orders', 'SELECT']],
      ['{ false }', []],
      // name: all operators, regexes fully anchored
      ['{ name = "SELECT" }', ['SELECT']],
      ['{ name != "SELECT" }', ['GET /users/{id}', 'POST /orders']],
      ['{ name =~ "GET.*" }', ['GET /users/{id}']],
      ['{ name =~ "GET" }', []],
      ['{ name =~ "(?i)select" }', ['SELECT']],
      ['{ name !~ "GET.*" }', ['POST /orders', 'SELECT']],
      ['{ name > "P" }', ['POST /orders', 'SELECT']],
      ['{ name >= "SELECT" }', ['SELECT']],
      ['{ name < "H" }', ['GET /users/{id}']],
      ['{ name <= "GET /users/{id}" }', ['GET /users/{id}']],
      // statusMessage
      ['{ statusMessage = "boom" }', ['GET /users/{id}']],
      ['{ statusMessage = "" }', ['POST /orders', 'SELECT']],
      // duration
      ['{ duration > 100ms }', ['GET /users/{id}']],
      ['{ duration >= 50ms }', ['GET /users/{id}', 'POST /orders']],
      ['{ duration < 50ms }', ['SELECT']],
      ['{ duration <= 50ms }', ['POST /orders', 'SELECT']],
      ['{ duration = 1ms }', ['SELECT']],
      ['{ duration != 1ms }', ['GET /users/{id}', 'POST /orders']],
      ['{ duration > 0.25s }', []],
      ['{ duration >= 0.25s }', ['GET /users/{id}']],
      ['{ duration > 999999.5ns }', ['GET /users/{id}', 'POST /orders', 'SELECT']],
      ['{ duration < 1000000.5ns }', ['SELECT']],
      ['{ duration = 1.5ns }', []],
      ['{ duration > 1000000 }', ['GET /users/{id}', 'POST /orders']],
      ['{ span:duration > 1h }', []],
      // status, kind
      ['{ status = error }', ['GET /users/{id}']],
      ['{ status != error }', ['POST /orders', 'SELECT']],
      ['{ status = ok }', ['SELECT']],
      ['{ status = unset }', ['POST /orders']],
      ['{ kind = server }', ['GET /users/{id}']],
      ['{ kind != server }', ['POST /orders', 'SELECT']],
      ['{ kind = internal }', ['SELECT']],
      ['{ kind = consumer }', []],
      // span attributes: numbers, strings, booleans, mismatched types never match
      ['{ span.http.response.status_code >= 500 }', ['GET /users/{id}']],
      ['{ span.http.response.status_code = 201 }', ['POST /orders']],
      ['{ span.http.response.status_code != 201 }', ['GET /users/{id}']],
      ['{ span.http.response.status_code = "500" }', []],
      ['{ span.code = 201 }', []],
      ['{ span.code = "201" }', ['POST /orders']],
      ['{ span.code >= "2" }', ['POST /orders']],
      ['{ span.http.request.method = "POST" }', ['POST /orders']],
      ['{ span.http.request.method != "POST" }', ['GET /users/{id}']],
      ['{ span.http.request.method =~ "P.*" }', ['POST /orders']],
      ['{ span.http.route = "/users/{id}" }', ['GET /users/{id}']],
      ['{ span.http.route = 404 }', ['POST /orders']],
      ['{ span.http.route =~ ".*" }', ['GET /users/{id}']],
      ['{ span.url.path =~ "/users/[0-9]+" }', ['GET /users/{id}']],
      ['{ span.url.path =~ "/users" }', []],
      ['{ span.url.path !~ "/users/.*" }', ['POST /orders']],
      ['{ span.retry = true }', ['GET /users/{id}']],
      ['{ span.retry != true }', ['POST /orders']],
      ['{ span.retry = false }', ['POST /orders']],
      ['{ span.retry = "true" }', []],
      ['{ span.size > 5 }', ['GET /users/{id}']],
      ['{ span.size < 5 }', ['POST /orders']],
      ['{ span.size = 10.5 }', ['GET /users/{id}']],
      ['{ span.size > -1 }', ['GET /users/{id}', 'POST /orders']],
      ['{ span."a/b~c" = "ptr" }', ['SELECT']],
      // resource attributes
      ['{ resource.service.name = "api" }', ['GET /users/{id}']],
      ['{ resource.service.name != "api" }', ['POST /orders', 'SELECT']],
      ['{ resource.service.name =~ "api|web" }', ['GET /users/{id}', 'POST /orders']],
      ['{ resource.process.pid = 2 }', ['POST /orders']],
      ['{ resource.process.pid > 1 }', ['POST /orders', 'SELECT']],
      ['{ resource.process.pid = "2" }', []],
      ['{ resource.k8s.namespace.name != "prod" }', ['POST /orders']],
      ['{ resource."weird key \\"x\\"" = "w" }', ['SELECT']],
      // unscoped: span or resource
      ['{ .shared = "span-value" }', ['SELECT']],
      ['{ .shared = "res-value" }', ['SELECT']],
      ['{ span.shared = "res-value" }', []],
      ['{ resource.shared = "span-value" }', []],
      ['{ .service.name = "db" }', ['SELECT']],
      ['{ .retry = true }', ['GET /users/{id}']],
      // nil
      ['{ span.url.path = nil }', ['SELECT']],
      ['{ span.url.path != nil }', ['GET /users/{id}', 'POST /orders']],
      ['{ .shared = nil }', ['GET /users/{id}', 'POST /orders']],
      ['{ .shared != nil }', ['SELECT']],
      ['{ resource.k8s.namespace.name = nil }', ['SELECT']],
      // boolean logic
      ['{ !(status = error) }', ['POST /orders', 'SELECT']],
      ['{ !(span.url.path = "/orders") }', ['GET /users/{id}', 'SELECT']],
      ['{ status = error || kind = client }', ['GET /users/{id}', 'POST /orders']],
      ['{ span.retry = true && duration > 1s }', []],
      ['{ (kind = server || kind = client) && resource.process.pid >= 2 }', ['POST /orders']],
      ['{ name = "SELECT" } || { kind = server }', ['GET /users/{id}', 'SELECT']],
      ['{ kind != internal } | { status = error }', ['GET /users/{id}']],
      // ids and trace-level intrinsics
      [`{ trace:id = "${T}" }`, ['GET /users/{id}', 'POST /orders', 'SELECT']],
      [`{ trace:id != "${T}" }`, []],
      ['{ span:id = "00000000000000a2" }', ['POST /orders']],
      ['{ span:parentID = "00000000000000a2" }', ['SELECT']],
      ['{ span:parentID = nil }', ['GET /users/{id}']],
      ['{ traceDuration >= 250ms }', ['GET /users/{id}', 'POST /orders', 'SELECT']],
      ['{ traceDuration > 1s }', []],
      ['{ rootName = "GET /users/{id}" && kind = internal }', ['SELECT']],
      ['{ rootServiceName = "api" }', ['GET /users/{id}', 'POST /orders', 'SELECT']],
      ['{ rootServiceName = "web" }', []],
      // values that need JSON escaping, through the substring prefilter
      ['{ span.quoted = "say \\"hi\\"" }', ['SELECT']],
      ['{ span.quoted =~ "say .*" }', ['SELECT']],
      ['{ span.quoted =~ "say" }', []],
      ['{ span.uni = "héllo ✓" }', ['SELECT']],
      ['{ span.uni =~ "h.llo.*" }', ['SELECT']],
      // the needle "/orders" also occurs in another key's value: the exact check decides
      ['{ span.other = "/orders" }', []],
      // keys no span has: decided without reading attributes, same answers
      ['{ span.never.seen = "x" }', []],
      ['{ span.never.seen != "x" }', []],
      ['{ span.never.seen = nil }', ['GET /users/{id}', 'POST /orders', 'SELECT']],
      ['{ .process.pid = 3 }', ['SELECT']],
      ['{ .process.pid != 3 }', ['GET /users/{id}', 'POST /orders']],
      ['{ .never.seen = nil }', ['GET /users/{id}', 'POST /orders', 'SELECT']],
      ['{ !(.process.pid = 3) }', ['GET /users/{id}', 'POST /orders']],
      // hostile values are data, never SQL
      [`{ name = "x' OR 1=1 --" }`, []],
      [`{ span."a'); DROP TABLE spans; --" = "x" }`, []],
      [`{ name =~ ".*' OR '1'='1" }`, []],
    ];
    for (const [query, want] of cases) {
      it(query, async () => {
        assert.deepEqual(await names(store, query), want);
      });
    }

    it('the table survived the hostile queries', async () => {
      assert.equal((await names(store, '{}')).length, 3);
    });

    it('a bad regex is a TraceQLError with its position', async () => {
      await assert.rejects(store.search({ query: q('{ name =~ "(" }'), limit: 10 }), (e: unknown) => {
        assert.ok(e instanceof TraceQLError);
        assert.equal(e.pos, 2);
        assert.match(e.message, /invalid regular expression "\("/);
        return true;
      });
    });
  });

  describe('span attribute keys', () => {
    it('a key appears as soon as a span with it is stored', async () => {
      const store = await DuckStore.open();
      try {
        store.append([mkSpan({ name: 'a', attributes: { a: 1 } })]);
        await store.flush();
        assert.deepEqual(await names(store, '{ span.b = 1 }'), []);
        assert.deepEqual(await names(store, '{ .b = 1 }'), []);
        store.append([mkSpan({ name: 'b', attributes: { b: 1 } })]);
        await store.flush();
        assert.deepEqual(await names(store, '{ span.b = 1 }'), ['b']);
        assert.deepEqual(await names(store, '{ .b = 1 }'), ['b']);
        assert.deepEqual(await names(store, '{ span.b = nil }'), ['a']);
      } finally {
        await store.shutdown();
      }
    });

    it('too many distinct keys: every key is checked', async () => {
      const store = await DuckStore.open();
      try {
        const many: Attributes = {};
        for (let i = 0; i <= 10_000; i++) many[`k${i}`] = i;
        store.append([mkSpan({ name: 'many', attributes: many })]);
        store.append([mkSpan({ name: 'late', attributes: { zz: 1 } })]);
        await store.flush();
        assert.deepEqual(await names(store, '{ span.zz = 1 }'), ['late']);
        assert.deepEqual(await names(store, '{ span.k10000 = 10000 }'), ['many']);
        assert.deepEqual(await names(store, '{ span.k5 = 5 && span.k6 = 6 }'), ['many']);
      } finally {
        await store.shutdown();
      }
    });
  });

  describe('many resources', () => {
    it('resource conditions matching few or many resources', async () => {
      const store = await DuckStore.open();
      try {
        store.append(Array.from({ length: 300 }, (_, i) => mkSpan({ name: `r${i}`, res: { 'service.name': `s${i}`, idx: i, odd: i % 2 === 1 } })));
        await store.flush();
        assert.equal(store.stats().resources, 300);
        assert.deepEqual(await names(store, '{ resource.idx = 5 }'), ['r5']);
        assert.equal((await names(store, '{ resource.idx >= 0 }')).length, 300); // too many ids to inline: a join
        assert.equal((await names(store, '{ resource.odd = true && resource.idx < 10 }')).length, 5);
        assert.equal((await names(store, '{ .idx != nil }')).length, 300);
        assert.equal((await names(store, '{ resource.idx = nil }')).length, 0);
        assert.equal((await names(store, '{ !(resource.idx > 2) }')).length, 3);
        const traces = await store.searchTraces({ query: q('{ resource.idx < 3 }'), limit: 10 });
        assert.equal(traces.length, 3);
      } finally {
        await store.shutdown();
      }
    });
  });

  describe('time window, limit and ordering', () => {
    let store: DuckStore;
    const spans: Span[] = [];
    before(async () => {
      store = await DuckStore.open();
      // 10 spans, one per second back from NOW, durations not in time order
      const durs = [5, 1, 9, 3, 7, 2, 8, 4, 10, 6];
      for (let i = 0; i < 10; i++) {
        spans.push(mkSpan({ name: `s${i}`, startTimeUnixNano: NOW - BigInt(i) * SEC, durationNano: (durs[i] ?? 0) * 1e6 }));
      }
      store.append([...spans].reverse()); // oldest first, as an agent would
      await store.flush();
    });
    after(async () => {
      await store.shutdown();
    });

    it('newest first by default', async () => {
      const got = await store.search({ query: q('{}'), limit: 100 });
      assert.deepEqual(got.map((s) => s.name), ['s0', 's1', 's2', 's3', 's4', 's5', 's6', 's7', 's8', 's9']);
    });

    it('slowest first', async () => {
      const got = await store.search({ query: q('{}'), limit: 3, order: 'duration_desc' });
      assert.deepEqual(got.map((s) => s.name), ['s8', 's2', 's6']);
    });

    it('limit', async () => {
      assert.equal((await store.search({ query: q('{}'), limit: 4 })).length, 4);
      assert.equal((await store.search({ query: q('{}'), limit: 0 })).length, 0);
      assert.equal((await store.search({ query: q('{}'), limit: 2.9 })).length, 2);
      assert.equal((await store.search({ query: q('{}'), limit: Infinity })).length, 10);
      await assert.rejects(store.search({ query: q('{}'), limit: -1 }), RangeError);
      await assert.rejects(store.search({ query: q('{}'), limit: NaN }), RangeError);
    });

    it('window bounds are inclusive', async () => {
      const got = await store.search({ query: q('{}'), limit: 100, startNs: NOW - 3n * SEC, endNs: NOW - 1n * SEC });
      assert.deepEqual(got.map((s) => s.name), ['s1', 's2', 's3']);
      assert.deepEqual(await names(store, '{}', { startNs: NOW - 1n * SEC }), ['s0', 's1']);
      assert.deepEqual(await names(store, '{}', { endNs: NOW - 8n * SEC }), ['s8', 's9']);
      assert.deepEqual(await names(store, '{}', { startNs: NOW + SEC }), []);
    });

    it('window + condition + ordering together', async () => {
      const got = await store.search({
        query: q('{ duration > 4ms }'),
        limit: 2,
        order: 'duration_desc',
        startNs: NOW - 5n * SEC,
        endNs: NOW,
      });
      assert.deepEqual(got.map((s) => s.name), ['s2', 's4']);
    });
  });

  describe('searchTraces', () => {
    let store: DuckStore;
    before(async () => {
      store = await DuckStore.open();
      const t1 = '1'.repeat(32);
      const t2 = '2'.repeat(32);
      const t3 = '3'.repeat(32);
      store.append([
        // t1: root in "front", two error children in "back"
        mkSpan({ traceId: t1, spanId: hex(1, 16), name: 'GET /', svc: 'front', startTimeUnixNano: NOW - 10n * SEC, durationNano: 100e6 }),
        mkSpan({ traceId: t1, spanId: hex(2, 16), parentSpanId: hex(1, 16), name: 'a', svc: 'back', status: 'error', startTimeUnixNano: NOW - 10n * SEC + 10n * MS, durationNano: 20e6 }),
        mkSpan({ traceId: t1, spanId: hex(3, 16), parentSpanId: hex(1, 16), name: 'b', svc: 'back', status: 'error', startTimeUnixNano: NOW - 10n * SEC + 50n * MS, durationNano: 80e6 }),
        // t2: the root was not received (its parent is not stored)
        mkSpan({ traceId: t2, spanId: hex(4, 16), parentSpanId: hex(99, 16), name: 'orphan', svc: 'back', status: 'error', startTimeUnixNano: NOW - 5n * SEC, durationNano: 5e6 }),
        mkSpan({ traceId: t2, spanId: hex(5, 16), parentSpanId: hex(4, 16), name: 'leaf', svc: 'db', startTimeUnixNano: NOW - 5n * SEC + MS, durationNano: 1e6 }),
        // t3: no errors
        mkSpan({ traceId: t3, spanId: hex(6, 16), name: 'ok', svc: 'front', startTimeUnixNano: NOW - 1n * SEC }),
      ]);
      await store.flush();
    });
    after(async () => {
      await store.shutdown();
    });

    it('summarises matching traces, newest first', async () => {
      const got = await store.searchTraces({ query: q('{ status = error }'), limit: 10, spansPerSpanSet: 1 });
      assert.equal(got.length, 2);
      const [a, b] = got;
      assert.equal(a?.traceID, '2'.repeat(32));
      // no span without a parent: the earliest span whose parent is not stored stands in
      assert.equal(a?.rootServiceName, 'back');
      assert.equal(a?.rootTraceName, 'orphan');
      assert.equal(a?.spanSet.matched, 1);
      assert.deepEqual(a?.serviceStats, { back: { spanCount: 1, errorCount: 1 }, db: { spanCount: 1, errorCount: 0 } });
      assert.equal(b?.traceID, '1'.repeat(32));
      assert.equal(b?.rootServiceName, 'front');
      assert.equal(b?.rootTraceName, 'GET /');
      assert.equal(b?.startTimeUnixNano, NOW - 10n * SEC);
      assert.equal(b?.durationNano, 130e6); // span b ends 50 + 80 ms after the root starts
      assert.equal(b?.durationMs, 130);
      assert.equal(b?.spanSet.matched, 2);
      assert.deepEqual(b?.spanSet.spans.map((s) => s.name), ['a']);
      assert.deepEqual(b?.serviceStats, { front: { spanCount: 1, errorCount: 0 }, back: { spanCount: 2, errorCount: 2 } });
    });

    it('limit, spss and window', async () => {
      const one = await store.searchTraces({ query: q('{}'), limit: 1 });
      assert.deepEqual(one.map((t) => t.traceID), ['3'.repeat(32)]);
      const all = await store.searchTraces({ query: q('{ resource.service.name = "back" }'), limit: 10, spansPerSpanSet: 5 });
      assert.deepEqual(all.map((t) => t.spanSet.spans.length), [1, 2]);
      const none = await store.searchTraces({ query: q('{ resource.service.name = "back" }'), limit: 10, spansPerSpanSet: 0 });
      assert.deepEqual(none.map((t) => [t.spanSet.spans.length, t.spanSet.matched]), [[0, 1], [0, 2]]);
      const recent = await store.searchTraces({ query: q('{}'), limit: 10, startNs: NOW - 6n * SEC });
      assert.deepEqual(recent.map((t) => t.traceID), ['3'.repeat(32), '2'.repeat(32)]);
      assert.deepEqual(await store.searchTraces({ query: q('{ name = "nope" }'), limit: 10 }), []);
    });

    it('a true root wins; a missing one is reported like Tempo', async () => {
      const t4 = '4'.repeat(32);
      store.append([mkSpan({ traceId: t4, spanId: hex(7, 16), parentSpanId: hex(8, 16), name: 'x', svc: 'only' })]);
      await store.flush();
      const [t] = await store.searchTraces({ query: q(`{ trace:id = "${t4}" }`), limit: 1 });
      assert.equal(t?.rootServiceName, 'only'); // orphan stands in
      const t5 = '5'.repeat(32);
      store.append([
        mkSpan({ traceId: t5, spanId: hex(9, 16), parentSpanId: hex(10, 16), name: 'early-orphan', svc: 'x', startTimeUnixNano: NOW - 3n * SEC }),
        mkSpan({ traceId: t5, spanId: hex(10, 16), parentSpanId: '', name: 'late-root', svc: 'y', startTimeUnixNano: NOW - 2n * SEC }),
      ]);
      await store.flush();
      const [t5s] = await store.searchTraces({ query: q(`{ trace:id = "${t5}" }`), limit: 1 });
      assert.equal(t5s?.rootTraceName, 'late-root');
    });
  });

  describe('services and edges', () => {
    let store: DuckStore;
    const since = NOW - 10n * SEC;
    before(async () => {
      store = await DuckStore.open();
      const T = 'e'.repeat(32);
      const t0 = NOW - 5n * SEC;
      const sp = (id: number, parent: number, svc: string, kind: SpanKind, ms: number, status: SpanStatus = 'unset'): Span =>
        mkSpan({
          traceId: T,
          spanId: hex(id, 16),
          parentSpanId: parent ? hex(parent, 16) : '',
          name: `${svc}-${id}`,
          svc,
          kind,
          status,
          durationNano: ms * 1e6,
          startTimeUnixNano: t0 + BigInt(id) * MS,
        });
      store.append([
        sp(1, 0, 'frontend', 'server', 100), // S1
        sp(2, 1, 'frontend', 'client', 40), // C1 → S2
        sp(3, 2, 'backend', 'server', 30), // S2
        sp(4, 1, 'frontend', 'client', 50, 'error'), // C2 → S3
        sp(5, 4, 'backend', 'server', 45, 'error'), // S3
        sp(6, 3, 'backend', 'client', 10), // C3 → S4
        sp(7, 6, 'db', 'server', 8), // S4
        sp(8, 0, 'worker', 'internal', 20), // no server spans at all
        sp(9, 8, 'worker', 'internal', 40),
        sp(10, 1, 'frontend', 'client', 12), // a call to something untraced: no edge
      ]);
      // outside the window, and outside the 1-minute rollup bucket the window starts in: ignored
      store.append([mkSpan({ svc: 'frontend', kind: 'server', startTimeUnixNano: since - 120n * SEC, durationNano: 1e9 })]);
      await store.flush();
    });
    after(async () => {
      await store.shutdown();
    });

    it('RED per service from server spans, or all spans when there are none', async () => {
      const got = await store.services(since, NOW);
      const by = new Map(got.map((s) => [s.service, s]));
      assert.deepEqual([...by.keys()], ['backend', 'db', 'frontend', 'worker']);
      const close = inBucket;

      const f = by.get('frontend');
      assert.equal(f?.spanCount, 4);
      assert.equal(f?.basis, 'server');
      assert.equal(f?.requestCount, 1);
      assert.equal(f?.errorCount, 0); // the failing client span is not a failed request of frontend
      assert.equal(f?.errorPct, 0);
      close(f?.p50Ns, 100e6);
      close(f?.p99Ns, 100e6);

      const b = by.get('backend');
      assert.equal(b?.spanCount, 3);
      assert.equal(b?.requestCount, 2);
      assert.equal(b?.errorCount, 1);
      assert.equal(b?.errorPct, 50);
      close(b?.p50Ns, 37.5e6);
      close(b?.p95Ns, 44.25e6);
      close(b?.p99Ns, 44.85e6);

      const w = by.get('worker');
      assert.equal(w?.basis, 'all');
      assert.equal(w?.requestCount, 2);
      close(w?.p50Ns, 20e6); // rank 1 of 2 falls in 20 ms's bucket (exact interpolation between the two said 30)
      close(w?.p95Ns, 39e6);

      const d = by.get('db');
      assert.equal(d?.requestCount, 1);
      close(d?.p50Ns, 8e6);
      // counts and sums are exact
      assert.equal(b?.durationSumNs, 75e6);
      assert.equal(w?.durationSumNs, 60e6);
      assert.ok(got.every((x) => x.quantiles === 'estimated'));
    });

    it('rates are per second of the time covered: the window widened to whole 1-minute buckets', async () => {
      const got = await store.services(since, NOW);
      const covered = Number(NOW - (since - (since % 60_000_000_000n))) / 1e9;
      const f = got.find((s) => s.service === 'frontend');
      assert.ok(f && Math.abs(f.ratePerSec - 1 / covered) < 1e-9, String(f?.ratePerSec));
      const b = got.find((s) => s.service === 'backend');
      assert.ok(b && Math.abs(b.ratePerSec - 2 / covered) < 1e-9);
    });

    it('edges pair client spans with their server children', async () => {
      const got = await store.edges(since, NOW);
      assert.deepEqual(
        got.map((e) => [e.caller, e.callee, e.count, e.errorCount]),
        [
          ['backend', 'db', 1, 0],
          ['frontend', 'backend', 2, 1],
        ],
      );
      const close = inBucket;
      const fb = got[1];
      assert.equal(fb?.errorPct, 50);
      assert.equal(fb?.connectionType, '');
      assert.equal(fb?.clientSumNs, 90e6); // client side: 40 and 50 ms
      assert.equal(fb?.serverSumNs, 75e6); // server side: 30 and 45 ms
      close(fb?.p50Ns, 40e6); // estimated from buckets: the lower half lies in 40 ms's bucket
      close(fb?.serverP50Ns, 30e6);
      const bd = got[0];
      close(bd?.p50Ns, 10e6);
      close(bd?.serverP95Ns, 8e6);
    });

    it('an empty window gives nothing', async () => {
      assert.deepEqual(await store.services(NOW + 60n * SEC, NOW + 70n * SEC), []);
      assert.deepEqual(await store.edges(NOW + 60n * SEC, NOW + 70n * SEC), []);
    });
  });

  describe('tags', () => {
    let store: DuckStore;
    before(async () => {
      store = await DuckStore.open();
      store.append([
        mkSpan({ name: 'GET /a', status: 'error', res: { 'service.name': 'api', 'process.pid': 7 }, attributes: { 'http.route': '/a', 'http.response.status_code': 200, 'x.flag': true } }),
        mkSpan({ name: 'GET /b', res: { 'service.name': 'web', 'process.pid': 8.5 }, attributes: { 'http.route': '/b', 'http.response.status_code': 503 } }),
      ]);
      await store.flush();
    });
    after(async () => {
      await store.shutdown();
    });

    it('names by scope', async () => {
      assert.deepEqual(await store.tagNames('span'), ['http.response.status_code', 'http.route', 'x.flag']);
      assert.deepEqual(await store.tagNames('resource'), ['process.pid', 'service.name']);
      const intrinsic = await store.tagNames('intrinsic');
      for (const n of ['duration', 'kind', 'name', 'status', 'span:name', 'trace:rootService', 'traceDuration']) assert.ok(intrinsic.includes(n), n);
      const all = await store.tagNames();
      assert.ok(all.includes('service.name') && all.includes('http.route') && all.includes('status'));
      assert.deepEqual(await store.tagNames('span', { limit: 1 }), ['http.response.status_code']);
      assert.deepEqual(await store.tagNames('span', { startNs: NOW + SEC }), []);
    });

    it('typed values', async () => {
      const v = (name: string) => store.tagValues(name);
      assert.deepEqual(await v('resource.service.name'), [{ type: 'string', value: 'api' }, { type: 'string', value: 'web' }]);
      assert.deepEqual(await v('service.name'), [{ type: 'string', value: 'api' }, { type: 'string', value: 'web' }]);
      assert.deepEqual(await v('.service.name'), [{ type: 'string', value: 'api' }, { type: 'string', value: 'web' }]);
      assert.deepEqual(await v('span.service.name'), []);
      assert.deepEqual(await v('resource.process.pid'), [{ type: 'int', value: '7' }, { type: 'float', value: '8.5' }]);
      assert.deepEqual(await v('span.http.response.status_code'), [{ type: 'int', value: '200' }, { type: 'int', value: '503' }]);
      assert.deepEqual(await v('span.x.flag'), [{ type: 'bool', value: 'true' }]);
      assert.deepEqual(await v('name'), [{ type: 'string', value: 'GET /a' }, { type: 'string', value: 'GET /b' }]);
      assert.deepEqual((await v('status')).map((x) => x.value), ['unset', 'ok', 'error']);
      assert.ok((await v('kind')).every((x) => x.type === 'keyword'));
      assert.deepEqual(await v('duration'), []);
      assert.deepEqual(await v('nope'), []);
      assert.deepEqual(await v(''), []);
      assert.deepEqual(await v(`span."'); DROP TABLE spans; --"`), []);
      assert.equal((await store.tagValues('span.http.route', { limit: 1 })).length, 1);
    });
  });

  describe('buffering, validation and counters', () => {
    it('flushes by size and by time, counts everything', async () => {
      const store = await DuckStore.open({ flushSpans: 10, flushIntervalMs: 50, maxBuffered: 30 });
      try {
        store.append([mkSpan(), mkSpan(), mkSpan()]);
        assert.equal(store.stats().buffered, 3);
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(store.stats().rows, 3, 'flushed by time');
        assert.equal(store.stats().buffered, 0);

        store.append(Array.from({ length: 12 }, () => mkSpan()));
        await new Promise((r) => setImmediate(r));
        await new Promise((r) => setImmediate(r));
        assert.equal(store.stats().rows, 15, 'flushed by size without waiting for the timer');

        // buffer limit: 30 spans fit, the rest are dropped (the flush only runs on the next tick)
        store.append(Array.from({ length: 35 }, () => mkSpan()));
        assert.equal(store.stats().spansDropped, 5);
        await store.flush();
        assert.equal(store.stats().rows, 45);

        // ids that are not hex never make a span
        assert.throws(() => mkSpan({ traceId: 'xyz' }), RangeError);
        assert.throws(() => mkSpan({ spanId: '123' }), RangeError);
        assert.throws(() => mkSpan({ parentSpanId: 'nothex!!nothex!!' }), RangeError);
        assert.throws(() => mkSpan({ startTimeUnixNano: -1n }), RangeError);
        const zeroTrace = mkSpan();
        zeroTrace.t0 = zeroTrace.t1 = zeroTrace.t2 = zeroTrace.t3 = 0;
        const zeroSpan = mkSpan();
        zeroSpan.s0 = zeroSpan.s1 = 0;
        const negStart = mkSpan();
        negStart.startHi = -1;
        const bad = [
          zeroTrace,
          zeroSpan,
          negStart,
          mkSpan({ kind: 'sideways' as SpanKind }),
          mkSpan({ status: 'meh' as SpanStatus }),
          mkSpan({ durationNano: NaN }),
          mkSpan({ name: 5 as unknown as string }),
          null as unknown as Span,
          { ...mkSpan() } as Span, // the fields without the class
        ];
        store.append(bad);
        await store.flush();
        const st = store.stats();
        assert.equal(st.spansRejected, bad.length);
        assert.equal(st.spansAppended, 45 + 5 - 5);
        assert.equal(st.rows, 45);
        assert.ok(st.flushes >= 3);
        assert.ok(st.lastFlushMs > 0);
        assert.equal(st.resources, 1);
      } finally {
        await store.shutdown();
      }
    });

    it('keeps a flush per batch and the search sees committed spans only', async () => {
      const store = await DuckStore.open({ flushSpans: 100_000, flushIntervalMs: 60_000 });
      try {
        store.append([mkSpan({ name: 'pending' })]);
        assert.deepEqual(await names(store, '{ name = "pending" }'), []);
        await store.flush();
        assert.deepEqual(await names(store, '{ name = "pending" }'), ['pending']);
      } finally {
        await store.shutdown();
      }
    });

    it('a large buffer is written in several transactions', async () => {
      const store = await DuckStore.open({ flushSpans: 1000, maxBuffered: 10_000 });
      try {
        store.append(Array.from({ length: 5500 }, () => mkSpan()));
        const before = store.stats().flushes;
        await store.flush();
        assert.equal(store.stats().flushes - before, 6);
        assert.equal(store.stats().rows, 5500);
        assert.equal((await store.search({ query: q('{}'), limit: 10_000 })).length, 5500);
      } finally {
        await store.shutdown();
      }
    });

    it('shutdown flushes, is idempotent, and refuses work afterwards', async () => {
      const store = await DuckStore.open({ flushIntervalMs: 60_000 });
      store.append([mkSpan()]);
      await Promise.all([store.shutdown(), store.shutdown()]);
      await store.shutdown();
      assert.equal(store.stats().rows, 1);
      store.append([mkSpan()]);
      assert.equal(store.stats().spansDropped, 1);
      await assert.rejects(store.search({ query: q('{}'), limit: 1 }), /shut down/);
      await assert.rejects(store.enforceRetention(), /shut down/);
    });

    it('works uncompressed in memory too', async () => {
      const store = await DuckStore.open({ compressInMemory: false });
      try {
        const s = mkSpan({ attributes: { a: 1 } });
        store.append([s]);
        await store.flush();
        assert.deepStrictEqual(await store.search({ query: q('{ span.a = 1 }'), limit: 5 }), [s]);
      } finally {
        await store.shutdown();
      }
    });

    it('queries run while a large batch is being written', async () => {
      const store = await DuckStore.open({ flushSpans: 20_000, maxBuffered: 50_000 });
      try {
        store.append(Array.from({ length: 2000 }, () => mkSpan({ svc: 'first' })));
        await store.flush();
        store.append(Array.from({ length: 20_000 }, () => mkSpan({ svc: 'second' })));
        const flushing = store.flush();
        const during = await Promise.all([
          store.search({ query: q('{ resource.service.name = "first" }'), limit: 5000 }),
          store.services(NOW - 3600n * SEC, NOW),
          store.enforceRetention(),
        ]);
        assert.equal(during[0].length, 2000);
        await flushing;
        assert.equal(store.stats().rows, 22_000);
        assert.equal((await store.search({ query: q('{ resource.service.name = "second" }'), limit: 50_000 })).length, 20_000);
      } finally {
        await store.shutdown();
      }
    });

    it('rejects bad options', async () => {
      await assert.rejects(DuckStore.open({ flushSpans: 0 }), RangeError);
      await assert.rejects(DuckStore.open({ retention: { maxSpans: -1 } }), RangeError);
      await assert.rejects(DuckStore.open({ memoryLimit: "1GB'; DROP" }), RangeError);
    });
  });

  describe('retention', () => {
    it('deletes by age and counts', async () => {
      const store = await DuckStore.open({ retention: { maxAgeMs: 3600_000, intervalMs: 0 } });
      try {
        const old = Array.from({ length: 4 }, (_, i) => mkSpan({ name: `old${i}`, svc: 'gone', startTimeUnixNano: NOW - 2n * 3600n * SEC - BigInt(i) * SEC }));
        const fresh = Array.from({ length: 3 }, (_, i) => mkSpan({ name: `new${i}`, svc: 'kept' }));
        store.append([...old, ...fresh]);
        await store.flush();
        assert.equal(store.stats().resources, 2);
        const r = await store.enforceRetention();
        assert.deepEqual(r, { deletedByAge: 4, deletedByCount: 0 });
        assert.deepEqual(await names(store, '{}'), ['new0', 'new1', 'new2']);
        const st = store.stats();
        assert.equal(st.retentionDeletedSpans, 4);
        assert.equal(st.retentionRuns, 1);
        assert.equal(st.rows, 3);
        // the resource only the old spans used is gone; it comes back when used again
        assert.equal(st.resources, 1);
        store.append([mkSpan({ name: 'again', svc: 'gone' })]);
        await store.flush();
        const [again] = await store.search({ query: q('{ resource.service.name = "gone" }'), limit: 5 });
        assert.deepEqual(again?.resource, { 'service.name': 'gone', 'process.pid': 1 });
        assert.deepEqual(await store.enforceRetention(), { deletedByAge: 0, deletedByCount: 0 });
      } finally {
        await store.shutdown();
      }
    });

    it('deletes the oldest beyond maxSpans', async () => {
      const store = await DuckStore.open({ retention: { maxSpans: 10, maxAgeMs: Infinity, intervalMs: 0 } });
      try {
        store.append(Array.from({ length: 25 }, (_, i) => mkSpan({ name: `n${String(i).padStart(2, '0')}`, startTimeUnixNano: NOW - BigInt(25 - i) * SEC })));
        await store.flush();
        const r = await store.enforceRetention();
        assert.deepEqual(r, { deletedByAge: 0, deletedByCount: 15 });
        assert.deepEqual(await names(store, '{}'), Array.from({ length: 10 }, (_, i) => `n${15 + i}`));
        assert.equal(store.stats().rows, 10);
        assert.equal(store.stats().retentionDeletedSpans, 15);
      } finally {
        await store.shutdown();
      }
    });

    it('runs by itself on its interval', async () => {
      const store = await DuckStore.open({ retention: { maxSpans: 2, intervalMs: 50 } });
      try {
        store.append(Array.from({ length: 5 }, () => mkSpan()));
        await store.flush();
        await new Promise((r) => setTimeout(r, 400));
        assert.ok(store.stats().retentionRuns >= 1);
        assert.equal(store.stats().rows, 2);
        assert.equal(store.stats().retentionDeletedSpans, 3);
      } finally {
        await store.shutdown();
      }
    });

    it('concurrent calls share one run', async () => {
      const store = await DuckStore.open({ retention: { maxSpans: 1, intervalMs: 0 } });
      try {
        store.append([mkSpan(), mkSpan(), mkSpan()]);
        await store.flush();
        const [a, b] = await Promise.all([store.enforceRetention(), store.enforceRetention()]);
        assert.deepEqual(a, b);
        assert.equal(store.stats().retentionRuns, 1);
        assert.equal(store.stats().rows, 1);
      } finally {
        await store.shutdown();
      }
    });
  });
});
