// OTLP requests to spans: what is kept, what is refused and why, what is redacted; protobuf and
// JSON give the same spans. Requests are made with the OpenTelemetry generated definitions.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeRequest, encodeResponse, OtlpDecodeError, toSpans, countDataPoints, MAX_EVENTS_PER_SPAN } from './otlp-decode.js';
import { wantsProtobuf } from './tempo-proto.js';

const T = '5b8efff798038103d269b633813fc60c';
const S = 'eee19b7ec3c1b174';
const P = '0102030405060708';

function jsonRequest(spans: Record<string, unknown>[], resource: Record<string, unknown>[] = [{ key: 'service.name', value: { stringValue: 'svc' } }]) {
  return Buffer.from(JSON.stringify({ resourceSpans: [{ resource: { attributes: resource }, scopeSpans: [{ scope: { name: 'lib', version: '2' }, spans }] }] }));
}
const good = {
  traceId: T,
  spanId: S,
  parentSpanId: P,
  name: 'GET /x',
  kind: 2,
  startTimeUnixNano: '1700000000000000001',
  endTimeUnixNano: 1700000000000000000 + 5000, // a JSON number is accepted too
  status: { code: 2, message: 'bad' },
  attributes: [
    { key: 'http.response.status_code', value: { intValue: 503 } },
    { key: 'big', value: { intValue: '9007199254740993' } },
    { key: 'd', value: { doubleValue: 1.5 } },
    { key: 'b', value: { boolValue: false } },
    { key: 'arr', value: { arrayValue: { values: [{ stringValue: 'a' }, { intValue: '2' }] } } },
    { key: 'http.request.header.authorization', value: { stringValue: 'Bearer abc' } },
    { key: 'url.full', value: { stringValue: 'https://u:pw@h/p?token=abc&x=1' } },
  ],
  events: [{ name: 'e', timeUnixNano: '1700000000000000002' }],
  links: [{ traceId: 'ab'.repeat(16), spanId: 'cd'.repeat(8), attributes: [{ key: 'k', value: { stringValue: 'v' } }] }],
};

describe('OTLP decoding', () => {
  it('JSON: hex ids, integer and string int64s, every value type, scope kept as attributes, secrets redacted', () => {
    const b = toSpans(decodeRequest('traces', jsonRequest([good]), 'json'));
    assert.equal(b.spans.length, 1);
    assert.equal(b.droppedEvents, 0);
    const s = b.spans[0]!;
    assert.equal(s.traceId, T);
    assert.equal(s.spanId, S);
    assert.equal(s.parentSpanId, P);
    assert.equal(s.kind, 'server');
    assert.equal(s.status, 'error');
    assert.equal(s.statusMessage, 'bad');
    assert.equal(s.startTimeUnixNano, 1700000000000000001n);
    assert.equal(s.resource['service.name'], 'svc');
    const a = s.attributes;
    assert.equal(a['http.response.status_code'], 503);
    assert.equal(a.big, '9007199254740993', 'beyond 2^53: the exact digits');
    assert.equal(a.d, 1.5);
    assert.equal(a.b, false);
    assert.equal(a.arr, '["a",2]');
    assert.equal(a['otel.scope.name'], 'lib');
    assert.equal(a['otel.scope.version'], '2');
    assert.equal(a['http.request.header.authorization'], 'REDACTED');
    assert.doesNotMatch(String(a['url.full']), /pw|abc/);
  });

  it('events and links: kept with their attributes, redacted like span attributes, capped per span with the rest counted', () => {
    const L = 'aa'.repeat(16);
    const events = [
      {
        name: 'exception',
        timeUnixNano: '1700000000000000003',
        attributes: [
          { key: 'exception.message', value: { stringValue: 'denied: Authorization: Bearer abc.def.ghi' } },
          { key: 'http.request.header.cookie', value: { stringValue: 'sid=1' } },
          { key: 'url.full', value: { stringValue: 'https://h/p?api_key=k1&x=1' } },
        ],
      },
      ...Array.from({ length: MAX_EVENTS_PER_SPAN + 9 }, (_, i) => ({ name: `log ${i}`, timeUnixNano: String(1700000000000000004n + BigInt(i)) })),
    ];
    const links = [
      { traceId: L, spanId: S, attributes: [{ key: 'db.password', value: { stringValue: 'hunter2' } }, { key: 'n', value: { intValue: 3 } }] },
      { traceId: 'abcd', spanId: S }, // broken: dropped and counted
      { traceId: L, spanId: '0'.repeat(16) }, // all-zero span id: dropped and counted
    ];
    const b = toSpans(decodeRequest('traces', jsonRequest([{ ...good, events, links, droppedEventsCount: 5, droppedLinksCount: 1 }]), 'json'));
    const s = b.spans[0]!;
    assert.equal(s.events?.length, MAX_EVENTS_PER_SPAN);
    const e = s.events[0]!;
    assert.equal(e.name, 'exception');
    assert.equal(e.timeUnixNano, 1700000000000000003n);
    assert.equal(e.attributes['exception.message'], 'denied: Authorization: Bearer REDACTED');
    assert.equal(e.attributes['http.request.header.cookie'], 'REDACTED');
    assert.doesNotMatch(String(e.attributes['url.full']), /k1/);
    assert.equal(s.droppedEvents, 5 + 10, "the sender's count plus what the cap cut");
    assert.equal(b.droppedEvents, 10);
    assert.deepEqual(s.links, [{ traceId: L, spanId: S, attributes: { 'db.password': 'REDACTED', n: 3 } }]);
    assert.equal(s.droppedLinks, 1 + 2);
    assert.equal(b.droppedLinks, 2);
    // a span without events or links has none (nothing allocated)
    const plain = toSpans(decodeRequest('traces', jsonRequest([{ ...good, events: [], links: [] }]), 'json')).spans[0]!;
    assert.equal(plain.events, undefined);
    assert.equal(plain.links, undefined);
    assert.equal(plain.droppedEvents + plain.droppedLinks, 0);
  });

  it('protobuf gives the same spans as JSON', () => {
    const fromJson = decodeRequest('traces', jsonRequest([good]), 'json');
    // the same message, encoded by the generated encoder, decoded back
    const bytes = (fromJson.constructor as unknown as { encode(m: unknown): { finish(): Uint8Array } }).encode(fromJson).finish();
    const a = toSpans(decodeRequest('traces', bytes, 'protobuf')).spans[0]!;
    const b = toSpans(fromJson).spans[0]!;
    assert.deepEqual(a.toInit(), b.toInit());
  });

  it('broken spans are refused one by one, with a reason', () => {
    const b = toSpans(
      decodeRequest(
        'traces',
        jsonRequest([
          good,
          { ...good, traceId: 'zz' },
          { ...good, traceId: '0'.repeat(32) },
          { ...good, spanId: 'abcd' },
          { ...good, parentSpanId: 'abcd' },
          { ...good, startTimeUnixNano: '0' },
          { ...good, endTimeUnixNano: '1' },
          { ...good, parentSpanId: '0000000000000000', spanId: 'eee19b7ec3c1b175' },
        ]),
        'json',
      ),
    );
    assert.equal(b.spans.length, 2);
    assert.equal(b.spans[1]!.parentSpanId, '', 'an all-zero parent is a root');
    assert.deepEqual(b.rejected, { bad_trace_id: 2, bad_span_id: 1, bad_parent_span_id: 1, bad_time: 2 });
    assert.match(b.firstRejection!, /trace id must be 16 bytes/);
  });

  it('malformed bodies are OtlpDecodeErrors, never anything else', () => {
    for (const [body, enc] of [
      ['{', 'json'],
      ['[]', 'json'],
      ['{"resourceSpans": 5}', 'json'],
      ['\u00ff\u00ff\u00ff', 'protobuf'],
      ['\n\u00ff\u00ff\u00ff\u00ff\u000f', 'protobuf'],
    ] as const) {
      assert.throws(() => decodeRequest('traces', Buffer.from(body, 'latin1'), enc), OtlpDecodeError, body);
    }
    assert.equal(toSpans(decodeRequest('traces', Buffer.alloc(0), 'protobuf')).spans.length, 0, 'an empty request is valid');
  });

  it('responses: empty on full success, partial_success otherwise; data points counted', () => {
    assert.equal(encodeResponse('traces', 'json'), '{}');
    assert.equal(encodeResponse('traces', 'protobuf').length, 0);
    assert.deepEqual(JSON.parse(encodeResponse('metrics', 'json', { rejected: 3, message: 'm' }) as string), { partialSuccess: { rejectedDataPoints: '3', errorMessage: 'm' } });
    const m = decodeRequest('metrics', Buffer.from(JSON.stringify({ resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: 'x', gauge: { dataPoints: [{ asDouble: 1 }, { asInt: '2' }] } }] }] }] })), 'json');
    assert.equal(countDataPoints(m), 2);
  });

  it('Accept negotiation for trace by id', () => {
    assert.equal(wantsProtobuf('application/protobuf'), true);
    assert.equal(wantsProtobuf('application/json, application/x-protobuf;q=0.5'), true);
    assert.equal(wantsProtobuf('application/protobuf;q=0'), false);
    assert.equal(wantsProtobuf('*/*'), false);
    assert.equal(wantsProtobuf(undefined), false);
  });
});
