import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Http2Parser, PREFACE, newHttp2Counters } from './http2.js';
import { HpackBlocks } from './hpack.js';
import type { Chunk } from './protocol.js';

const frame = (type: number, flags: number, id: number, payload: Buffer, len = payload.length): Buffer => {
  const h = Buffer.alloc(9);
  h.writeUIntBE(len, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(id, 5);
  return Buffer.concat([h, payload]);
};
/** literal with incremental indexing, name by static index */
const litIdx = (nameIndex: number, value: string): Buffer => Buffer.concat([Buffer.from([0x40 | nameIndex, value.length]), Buffer.from(value)]);
/** literal with incremental indexing, new name */
const litNew = (name: string, value: string): Buffer => Buffer.concat([Buffer.from([0x40, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
const chunk = (dir: 'in' | 'out', data: Buffer, ts: number, bytes = data.length): Chunk => ({ dir, data, bytes, tsStart: ts, tsEnd: ts + 1, tid: 7 });

describe('Http2Parser', () => {
  it('a client stream: request, response, DATA counted from the compact form, no credentials', () => {
    const c = newHttp2Counters();
    const p = new Http2Parser({ counters: c });
    const reqBlock = Buffer.concat([Buffer.from([0x82]), litIdx(4, '/x'), litIdx(1, 'svc:80'), litNew('authorization', 'Bearer s3cret')]);
    assert.deepEqual(p.push(chunk('out', Buffer.concat([PREFACE, frame(4, 0, 0, Buffer.alloc(0)), frame(1, 0x5, 1, reqBlock)]), 10)), []);
    assert.equal(p.connectionRole, 'client');
    // response HEADERS (:status 200, indexed 8) and a DATA frame of 5000 bytes whose payload the kernel cut
    const done = p.push(chunk('in', Buffer.concat([frame(1, 0x4, 1, Buffer.from([0x88])), frame(0, 0x1, 1, Buffer.alloc(0), 5000)]), 20, 5018));
    assert.equal(done.length, 1);
    const ex = done[0]!;
    assert.equal(ex.protocol, 'http2');
    assert.equal(ex.streamId, 1);
    assert.equal(ex.request.method, 'GET');
    assert.equal(ex.request.target, '/x');
    assert.equal(ex.request.headers.host, 'svc:80');
    assert.equal(ex.response?.status, 200);
    assert.equal(ex.response?.bodySize, 5000);
    assert.doesNotMatch(JSON.stringify(ex), /s3cret|authorization/);
    assert.equal(c.exchanges, 1);
  });

  it('gRPC: service, method and status from the trailers', () => {
    const p = new Http2Parser({});
    const req = Buffer.concat([Buffer.from([0x83]), litIdx(4, '/pkg.Svc/Do'), litIdx(31, 'application/grpc')]);
    p.push(chunk('in', Buffer.concat([PREFACE, frame(1, 0x4, 3, req), frame(0, 0x1, 3, Buffer.alloc(0), 7)]), 1));
    assert.equal(p.connectionRole, 'server');
    p.push(chunk('out', Buffer.concat([frame(1, 0x4, 3, Buffer.from([0x88])), frame(0, 0, 3, Buffer.alloc(0), 9)]), 2));
    const done = p.push(chunk('out', frame(1, 0x5, 3, Buffer.concat([litNew('grpc-status', '5'), litNew('grpc-message', 'nope')])), 3));
    assert.equal(done.length, 1);
    assert.deepEqual(done[0]!.grpc, { service: 'pkg.Svc', method: 'Do', status: 5, message: 'nope' });
  });

  it('gRPC streaming (server side): both sides open for a while, either one ending first; one exchange each with its trailers', () => {
    const c = newHttp2Counters();
    const p = new Http2Parser({ counters: c });
    const req = (id: number, name: string): Buffer => frame(1, 0x4, id, Buffer.concat([Buffer.from([0x83]), litIdx(4, `/demo.Echo/${name}`), litIdx(31, 'application/grpc')]));
    const msg = (id: number, len: number, flags = 0): Buffer => frame(0, flags, id, Buffer.alloc(0), len);
    const trailers = (id: number, code: string): Buffer => frame(1, 0x5, id, litNew('grpc-status', code));
    // 1, bidirectional (Chat): a message each way, again, then the client half-closes first
    // (an empty DATA with END_STREAM) and the server's trailers end the stream
    assert.deepEqual(p.push(chunk('in', Buffer.concat([PREFACE, frame(4, 0, 0, Buffer.alloc(0)), req(1, 'Chat'), msg(1, 5)]), 1)), []);
    assert.deepEqual(p.push(chunk('out', Buffer.concat([frame(1, 0x4, 1, Buffer.from([0x88])), msg(1, 8)]), 10)), [], 'the response begins before the request ends');
    assert.deepEqual(p.push(chunk('in', msg(1, 5), 20)), []);
    assert.deepEqual(p.push(chunk('out', msg(1, 8), 30)), []);
    assert.deepEqual(p.push(chunk('in', msg(1, 0, 0x1), 40)), [], 'half-closed by the client: the server side goes on');
    const chat = p.push(chunk('out', trailers(1, '0'), 50));
    assert.deepEqual(chat.map((x) => [x.grpc?.method, x.grpc?.status, x.request.tsStart, x.request.tsEnd, x.response?.tsStart, x.response?.tsEnd, x.request.bodySize, x.response?.bodySize, x.incomplete]), [
      ['Chat', 0, 2, 41, 10, 51, 10, 16, undefined],
    ]);
    // 3, bidirectional (Drop): the server answers ABORTED while the client's side is open, and
    // resets it with NO_ERROR (RFC 9113 §8.1; grpc-go and grpcio do): the exchange ends there,
    // whole, with its status
    p.push(chunk('in', Buffer.concat([req(3, 'Drop'), msg(3, 5)]), 60));
    p.push(chunk('out', Buffer.concat([frame(1, 0x4, 3, Buffer.from([0x88])), msg(3, 8)]), 61));
    p.push(chunk('in', msg(3, 5), 70));
    assert.deepEqual(p.push(chunk('out', trailers(3, '10'), 80)), [], 'the client side is still open');
    const drop = p.push(chunk('out', frame(3, 0, 3, Buffer.from([0, 0, 0, 0])), 81));
    assert.deepEqual(drop.map((x) => [x.grpc?.method, x.grpc?.status, x.request.tsStart, x.response?.tsEnd, x.incomplete]), [['Drop', 10, 61, 82, undefined]]);
    // 7, the same, as grpc-js does it: no reset; the client half-closes once it has the status
    p.push(chunk('in', Buffer.concat([req(7, 'Drop2'), msg(7, 5)]), 90));
    p.push(chunk('out', Buffer.concat([frame(1, 0x4, 7, Buffer.from([0x88])), msg(7, 8)]), 91));
    assert.deepEqual(p.push(chunk('out', trailers(7, '10'), 95)), []);
    const drop2 = p.push(chunk('in', msg(7, 0, 0x1), 96));
    assert.deepEqual(drop2.map((x) => [x.grpc?.method, x.grpc?.status, x.response?.tsEnd, x.incomplete]), [['Drop2', 10, 96, undefined]]);
    // 5, client streaming (Refuse): messages over time, END_STREAM on the last one, then a
    // trailers-only answer
    p.push(chunk('in', Buffer.concat([req(5, 'Refuse'), msg(5, 5)]), 100));
    p.push(chunk('in', msg(5, 5), 110));
    assert.deepEqual(p.push(chunk('in', msg(5, 5, 0x1), 120)), []);
    const refuse = p.push(chunk('out', frame(1, 0x5, 5, Buffer.concat([Buffer.from([0x88]), litNew('grpc-status', '9')])), 130));
    assert.deepEqual(refuse.map((x) => [x.grpc?.method, x.grpc?.status, x.request.tsStart, x.request.tsEnd, x.response?.tsEnd, x.request.bodySize, x.incomplete]), [['Refuse', 9, 101, 121, 131, 15, undefined]]);
    assert.deepEqual([c.exchanges, c.incomplete], [4, 0]);
  });

  it('RST_STREAM ends a stream as incomplete; noise stops the parser without throwing', () => {
    const c = newHttp2Counters();
    const p = new Http2Parser({ counters: c });
    p.push(chunk('out', Buffer.concat([PREFACE, frame(1, 0x4, 1, Buffer.concat([Buffer.from([0x82]), litIdx(4, '/r')]))]), 1));
    const done = p.push(chunk('in', frame(3, 0, 1, Buffer.from([0, 0, 0, 8])), 2));
    assert.equal(done[0]?.incomplete, 'reset');
    assert.deepEqual(p.push(chunk('out', frame(9, 0x4, 5, Buffer.from([1, 2, 3])), 3)), []);
    assert.equal(p.error, 'CONTINUATION out of place');
    assert.equal(c.malformed, 1);
    assert.deepEqual(p.push(chunk('out', Buffer.from('anything'), 4)), []);
  });

  it('RST_STREAM after the response: CANCEL or NO_ERROR ends the stream with its status, other codes are a reset', () => {
    const p = new Http2Parser({});
    const req = (id: number): Buffer => frame(1, 0x5, id, Buffer.concat([Buffer.from([0x82]), litIdx(4, `/watch/${id}`)]));
    p.push(chunk('out', Buffer.concat([PREFACE, req(1), req(3), req(5)]), 1));
    // 200 and some of a long body on each, then the client stops reading: CANCEL (8), NO_ERROR (0), INTERNAL_ERROR (2)
    for (const id of [1, 3, 5]) assert.deepEqual(p.push(chunk('in', Buffer.concat([frame(1, 0x4, id, Buffer.from([0x88])), frame(0, 0, id, Buffer.alloc(0), 100)]), 2, 118)), []);
    const code = (c: number): Buffer => Buffer.from([0, 0, 0, c]);
    const done = p.push(chunk('out', Buffer.concat([frame(3, 0, 1, code(8)), frame(3, 0, 3, code(0)), frame(3, 0, 5, code(2))]), 50));
    assert.deepEqual(done.map((x) => [x.request.target, x.response?.status, x.response?.bodySize, x.incomplete]), [
      ['/watch/1', 200, 100, undefined],
      ['/watch/3', 200, 100, undefined],
      ['/watch/5', 200, 100, 'reset'],
    ]);
    assert.equal(done[0]!.response!.tsEnd, 51, 'the stream ends at the reset');
  });
  it('the close ends the streams still open: cut short (eof) with the status they had; ended ones are untouched', () => {
    const c = newHttp2Counters();
    const p = new Http2Parser({ counters: c });
    const req = (id: number): Buffer => frame(1, 0x5, id, Buffer.concat([Buffer.from([0x82]), litIdx(4, `/w/${id}`)]));
    p.push(chunk('out', Buffer.concat([PREFACE, req(1), req(3), req(5)]), 1));
    // 1: a whole response; 3: a watch under way (200, events, no END_STREAM); 5: no response yet
    const whole = p.push(chunk('in', Buffer.concat([frame(1, 0x4, 1, Buffer.from([0x88])), frame(0, 0x1, 1, Buffer.alloc(0), 10)]), 2, 28));
    assert.deepEqual(whole.map((x) => [x.streamId, x.incomplete]), [[1, undefined]]);
    p.push(chunk('in', Buffer.concat([frame(1, 0x4, 3, Buffer.from([0x88])), frame(0, 0, 3, Buffer.alloc(0), 300)]), 3, 318));
    // the process exits before any RST_STREAM: the kernel closes the connection under 3 and 5
    const done = p.end(90);
    assert.deepEqual(done.map((x) => [x.streamId, x.response?.status, x.response?.bodySize, x.incomplete]), [
      [3, 200, 300, 'eof'],
      [5, undefined, undefined, 'eof'],
    ]);
    assert.equal(done[0]!.response!.tsEnd, 90, 'cut at the close');
    assert.deepEqual([c.exchanges, c.incomplete, c.rstStreams], [3, 2, 0]);
  });

  it('GOAWAY ends the streams above its last stream id that had no response; the others go on', () => {
    const c = newHttp2Counters();
    const p = new Http2Parser({ counters: c });
    const req = (id: number): Buffer => frame(1, 0x5, id, Buffer.concat([Buffer.from([0x82]), litIdx(4, `/g/${id}`)]));
    p.push(chunk('out', Buffer.concat([PREFACE, req(1), req(3), req(5)]), 1));
    p.push(chunk('in', frame(1, 0x4, 5, Buffer.from([0x88])), 2));
    // last stream id 1, NO_ERROR: 3 was never processed (goaway); 5 already answered goes on; 1 goes on
    const goaway = Buffer.alloc(8);
    goaway.writeUInt32BE(1, 0);
    const done = p.push(chunk('in', frame(7, 0, 0, goaway), 3));
    assert.deepEqual(done.map((x) => [x.streamId, x.incomplete]), [[3, 'goaway']]);
    assert.equal(c.goaways, 1);
    const rest = p.push(chunk('in', Buffer.concat([frame(0, 0x1, 5, Buffer.alloc(0), 4), frame(1, 0x5, 1, Buffer.from([0x88]))]), 4));
    assert.deepEqual(rest.map((x) => [x.streamId, x.response?.status, x.incomplete]), [[5, 200, undefined], [1, 200, undefined]]);
  });

  it('bounds: too many open streams evict the oldest, a stream open too long expires; counted, never an exchange', () => {
    const c = newHttp2Counters();
    const p = new Http2Parser({ counters: c, maxStreams: 2, maxStreamAgeNs: 1000 });
    const req = (id: number): Buffer => frame(1, 0x4, id, Buffer.concat([Buffer.from([0x82]), litIdx(4, `/b/${id}`)]));
    p.push(chunk('out', Buffer.concat([PREFACE, req(1), req(3)]), 10));
    p.push(chunk('out', req(5), 500));
    assert.equal(c.streamsEvicted, 1, 'stream 1 made room for 5');
    assert.deepEqual(p.idle(1200), []);
    assert.equal(c.streamsExpired, 1, 'stream 3 (opened at 10) is past the bound; 5 (at 500) is not');
    // answers to the dropped streams give nothing (and open no entry that would evict 5); 5 completes
    const done = p.push(chunk('in', Buffer.concat([1, 3, 5].map((id) => frame(1, 0x5, id, Buffer.from([0x88])))), 1300));
    assert.deepEqual(done.map((x) => x.streamId), []);
    const fin = p.push(chunk('out', frame(0, 0x1, 5, Buffer.alloc(0), 0), 1301));
    assert.deepEqual(fin.map((x) => [x.streamId, x.response?.status, x.incomplete]), [[5, 200, undefined]]);
    assert.equal(c.exchanges, 1);
  });
});

describe('HpackBlocks', () => {
  it('partial state (joined mid-stream): only entries inserted since are used, never a guess', () => {
    const h = new HpackBlocks(true);
    // index 62 is an entry from before the join: unknown
    assert.equal(h.decode(Buffer.from([0x82, 0x80 | 62])), undefined);
    // a block that inserts :path /y, then one that refers to it: exact
    assert.deepEqual(h.decode(Buffer.concat([Buffer.from([0x82]), litIdx(4, '/y')])), [[':method', 'GET'], [':path', '/y']]);
    assert.deepEqual(h.decode(Buffer.from([0x82, 0x80 | 62])), [[':method', 'GET'], [':path', '/y']]);
    assert.equal(h.decode(Buffer.from([0x80 | 63])), undefined, 'past what was inserted since the join');
  });

  it('bounds the table: a size update above the limit is refused', () => {
    const h = new HpackBlocks(false);
    // dynamic table size update to 1 MiB: 001xxxxx with a multi-octet integer
    assert.equal(h.decode(Buffer.from([0x3f, 0xe1, 0xff, 0x3f])), undefined);
    assert.equal(h.resets, 1);
  });
});
