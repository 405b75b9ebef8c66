// encodeSpans() writes exactly what the official OTLP encoder (otlp-transformer's
// ProtobufTraceSerializer) writes for the same spans: one case list, both encoders, byte for
// byte. (The end-to-end test, test/export.test.ts, has a real collector decode the bytes.)
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Span, type Attributes, type SpanInit, type SpanKind, type SpanStatus } from '../model/index.js';
import { encodeSpans, encodeSpansOfficial } from './otlp.js';

let seq = 0;
const hex = (n: number) => (++seq).toString(16).padStart(n, '0');

function span(p: Partial<SpanInit> & { resource: Attributes }): Span {
  return Span.from({
    traceId: hex(32),
    spanId: hex(16),
    parentSpanId: '',
    name: 'GET /users/{id}',
    kind: 'server',
    startTimeUnixNano: 1_765_000_000_123_456_789n,
    durationNano: 1_500_000,
    status: 'unset',
    attributes: {},
    ...p,
  });
}

const proc = { 'service.name': 'shop', 'process.pid': 4242, 'process.executable.name': 'node', 'host.name': 'vm' };
const other = { 'service.name': 'pay', 'process.pid': 7, 'k8s.namespace.name': 'prod', 'k8s.pod.name': 'pay-6c9d-xk2' };

const CASES: [string, Span[]][] = [
  ['a server span with the usual HTTP attributes', [
    span({
      resource: proc,
      attributes: {
        'http.request.method': 'GET',
        'url.path': '/users/42',
        'http.route': '/users/{id}',
        'http.response.status_code': 200,
        'server.port': 8080,
        'network.peer.address': '127.0.0.1',
        'http.response.body.size': 123456789,
        'osprey.link': 'tuple',
      },
    }),
  ]],
  ['every kind and status, parents by each rule, a status message', (['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'] as SpanKind[]).flatMap((kind, i) =>
    (['unset', 'ok', 'error'] as SpanStatus[]).map((status) =>
      span({
        resource: proc,
        kind,
        status,
        parentSpanId: i % 2 ? hex(16) : '',
        attributes: { 'osprey.link': (['traceparent', 'thread', 'none', 'runtime', 'none', 'tuple'] as const)[i]! },
        ...(status === 'error' ? { statusMessage: 'upstream said 503' } : {}),
      }),
    ),
  )],
  ['values of every type and size: unicode, long strings, negative and huge ints, doubles, booleans', [
    span({
      resource: { ...proc, 'service.name': 'çà-ü 服务 🦅' },
      name: `GET /${'x'.repeat(300)}`,
      attributes: {
        s: '',
        u: 'naïve café — ☃ 🦅',
        long: 'y'.repeat(20_000),
        neg: -1,
        big: 2 ** 53 - 1,
        bigneg: -(2 ** 40),
        d: 0.25,
        nan: Number.NaN,
        inf: Number.POSITIVE_INFINITY,
        t: true,
        f: false,
        'k\u00e9y': 1,
      },
    }),
  ]],
  ['durations: zero, negative (written as 0), long; uppercase hex ids', [
    span({ resource: proc, durationNano: 0 }),
    span({ resource: proc, durationNano: -5 }),
    span({ resource: proc, durationNano: 3_600_000_000_000 }),
    span({ resource: proc, traceId: 'ABCDEF0123456789ABCDEF0123456789', spanId: 'ABCDEF0123456789', parentSpanId: '0123456789ABCDEF' }),
  ]],
  ['two processes interleaved: one ResourceSpans each, in first-seen order', [
    span({ resource: proc }),
    span({ resource: other, kind: 'client' }),
    span({ resource: proc }),
    span({ resource: other }),
  ]],
  ['no attributes, empty resource', [span({ resource: {} })]],
  // every hot attribute at once (the encoder writes them field by field, in HOT_ATTRIBUTES order),
  // over two resources, values repeated and not
  ['every hot attribute, in two resources, repeated and distinct values', (() => {
    const every = (i: number) => ({
      'http.request.method': 'POST',
      'url.path': `/orders/${i}`,
      'http.route': '/orders/{id}',
      'network.protocol.name': 'http',
      'network.protocol.version': '1.1',
      'network.peer.address': `10.1.${i >> 8}.${i & 255}`,
      'network.peer.port': 40_000 + i,
      'url.query': `q=${i}`,
      'server.address': 'orders.shop.svc',
      'server.port': 8080,
      'client.address': '10.0.0.7',
      'url.scheme': 'http',
      'url.full': `http://orders.shop.svc:8080/orders/${i}?q=${i}`,
      'user_agent.original': 'curl/7.88.1',
      'http.request.body.size': 17,
      'http.response.status_code': 503,
      'http.response.body.size': 0,
      'error.type': '503',
      'osprey.link': 'thread',
    });
    return Array.from({ length: 700 }, (_, i) => span({ resource: i % 3 ? proc : other, attributes: every(i % 350) }));
  })()],
  // the hot attributes' fast paths (lengths computed up front) at the edges of their one-byte
  // lengths, ASCII and not, short (copied by a loop) and long (a native write)
  ['hot attributes at every length edge, ASCII and not, and every kind of number', [
    ...[0, 1, 23, 24, 25, 100, 101, 102, 103, 125, 126, 127, 128, 129, 300, 20_000].flatMap((n) => [
      span({ resource: proc, attributes: { 'url.path': `/${'p'.repeat(Math.max(0, n - 1))}`.slice(0, n), 'http.request.method': 'x'.repeat(n) } }),
      span({ resource: proc, attributes: { 'url.full': 'é'.repeat(n), 'user_agent.original': `${'a'.repeat(Math.max(0, n - 1))}☃`, 'osprey.link': '🦅'.repeat(n >> 1) } }),
    ]),
    ...[0, 1, 127, 128, 16_383, 16_384, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, -1, -(2 ** 40), 0.5, Number.NaN].map((v) =>
      span({ resource: proc, attributes: { 'http.response.status_code': v, 'server.port': v, 'http.request.body.size': v } }),
    ),
  ]],
  ['span events and links (OTLP spans re-exported), with dropped counts, beside a span without', [
    span({
      resource: proc,
      status: 'error',
      events: [
        { timeUnixNano: 1_700_000_000_123_456_789n, name: 'exception', attributes: { 'exception.type': 'E', 'exception.message': 'naïve ☃', n: 3, ok: false, d: 0.5 } },
        { timeUnixNano: 1_700_000_000_200_000_000n, name: '', attributes: {} },
      ],
      links: [
        { traceId: hex(32), spanId: hex(16), attributes: { reason: 'retry' } },
        { traceId: hex(32), spanId: hex(16), attributes: {} },
      ],
      droppedEvents: 3,
      droppedLinks: 200,
    }),
    span({ resource: proc }),
  ]],
];

describe('OTLP span encoding', () => {
  for (const [name, spans] of CASES) {
    it(name, () => {
      const ours = encodeSpans(spans);
      const official = Buffer.from(encodeSpansOfficial(spans));
      assert.equal(ours.length, official.length);
      assert.ok(ours.equals(official), `first difference at byte ${ours.findIndex((b, i) => b !== official[i])}`);
    });
  }

  it('a large batch (1024 spans, 2 KB each) and the next one reuse the buffer correctly', () => {
    const big = Array.from({ length: 1024 }, (_, i) => span({ resource: i % 3 ? proc : other, attributes: { 'url.path': `/p/${i}/${'z'.repeat(2000)}`, i } }));
    const a = encodeSpans(big);
    assert.ok(a.equals(Buffer.from(encodeSpansOfficial(big))));
    const small = [span({ resource: proc })];
    assert.ok(encodeSpans(small).equals(Buffer.from(encodeSpansOfficial(small))));
    // the first result is a copy: untouched by the next call
    assert.ok(a.equals(Buffer.from(encodeSpansOfficial(big))));
  });
});
