// Linker rules in isolation: trust order, ambiguity gives none, late parents,
// pipelining, abandoned and evicted records.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spanHex, traceHex } from '../model/index.js';
import { Linker, type LinkRecord } from './linker.js';

/** a record's ids in hex ('' for none) */
const hx = (r: LinkRecord) => ({ traceId: r.trace ? traceHex(r.trace) : undefined, spanId: spanHex(r.s0, r.s1), parentSpanId: spanHex(r.p0, r.p1) });

const A = '10.0.0.1:5000>10.0.0.2:80'; // client side of a connection
const B = '10.0.0.2:80>10.0.0.1:5000'; // the same connection seen by the server

describe('Linker', () => {
  it('tuple then thread: server <- client on the mirrored connection, client <- the one request its thread serves', () => {
    const l = new Linker({ holdNs: 0, clientGraceNs: 0 });
    const c0 = l.start('client', 1, 1, A, 'GET /a', 100, undefined);
    const s1 = l.start('server', 2, 7, B, 'GET /a', 110, undefined);
    const c1 = l.start('client', 2, 7, 'x:1>y:2', 'GET /b', 120, undefined);
    for (const r of [c1, s1, c0]) l.finish(r, 200, 0);
    l.drain(1);
    assert.equal(s1.link, 'tuple');
    assert.equal(hx(s1).parentSpanId, hx(c0).spanId);
    assert.equal(c1.link, 'thread');
    assert.equal(hx(c1).parentSpanId, hx(s1).spanId);
    assert.equal(c0.link, 'none');
    assert.equal(new Set([hx(c0).traceId, hx(s1).traceId, hx(c1).traceId]).size, 1);
  });

  it('traceparent wins over the tuple', () => {
    const l = new Linker({ holdNs: 0 });
    l.start('client', 1, 1, A, 'GET /a', 100, undefined);
    const s = l.start('server', 2, 7, B, 'GET /a', 110, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    l.finish(s, 200, 0);
    l.drain(1);
    assert.equal(s.link, 'traceparent');
    assert.equal(hx(s).traceId, '0af7651916cd43dd8448eb211c80319c');
    assert.equal(hx(s).parentSpanId, 'b7ad6b7169203331');
  });

  it('a different request line on the connection is never a parent', () => {
    const l = new Linker({ holdNs: 0 });
    l.start('client', 1, 1, A, 'GET /a', 100, undefined);
    const s = l.start('server', 2, 7, B, 'GET /other', 110, undefined);
    l.finish(s, 200, 0);
    l.drain(1);
    assert.equal(s.link, 'none');
  });

  it('a thread serving two requests with different lines links nothing (no guess)', () => {
    const l = new Linker({ holdNs: 0 });
    l.start('server', 2, 7, 'a:1>b:1', 'GET /one', 100, undefined);
    l.start('server', 2, 7, 'a:1>b:2', 'GET /two', 101, undefined);
    const c = l.start('client', 2, 7, 'c:1>d:1', 'GET /three', 102, undefined);
    assert.equal(c.parent, undefined);
    assert.equal(l.counters.ambiguous_thread, 1);
    // ...but the one with the same request line (a proxy) is taken
    const p = l.start('client', 2, 7, 'c:1>d:2', 'GET /two', 103, undefined);
    assert.equal(p.link, 'thread');
  });

  it('a server request reported before its client request still links (CPU reordering)', () => {
    const l = new Linker({ holdNs: 1000 });
    const s = l.start('server', 2, 7, B, 'GET /a', 110, undefined);
    const c = l.start('client', 1, 1, A, 'GET /a', 100, undefined);
    assert.equal(s.parent, c);
    assert.equal(l.counters.linked_late, 1);
  });

  it('a tuple pair whose ends two CPUs timed out of order is nested, whichever end is reported first', () => {
    // the server's last write returned after the client's last read (the reader woke first):
    // the server request ends where its parent does
    const l = new Linker({ holdNs: 0 });
    const c = l.start('client', 1, 1, A, 'GET /a', 100, undefined);
    const s = l.start('server', 2, 7, B, 'GET /a', 110, undefined);
    l.finish(c, 300, 0, true);
    l.finish(s, 304, 0, true);
    assert.deepEqual([s.end, s.endShift, c.end, c.endShift], [300, -4, 300, 0]);
    // the same, the server's end reported first: the parent ends where its child does
    const c2 = l.start('client', 1, 1, A, 'GET /b', 400, undefined);
    const s2 = l.start('server', 2, 7, B, 'GET /b', 410, undefined);
    l.finish(s2, 604, 0, true);
    l.finish(c2, 600, 0, true);
    assert.deepEqual([s2.end, s2.endShift, c2.end, c2.endShift], [604, 0, 604, 4]);
    // a server request linked late (reported before its client request) counts as well
    const s3 = l.start('server', 2, 7, B, 'GET /c', 710, undefined);
    l.finish(s3, 905, 0, true);
    const c3 = l.start('client', 1, 1, A, 'GET /c', 700, undefined);
    l.finish(c3, 900, 0, true);
    assert.equal(s3.parent, c3);
    assert.deepEqual([c3.end, c3.endShift], [905, 5]);
    assert.equal(l.counters.ends_nested, 3);
  });

  it('ends in order, or a client that gave up before the answer, stay as timed', () => {
    const l = new Linker({ holdNs: 0 });
    const c = l.start('client', 1, 1, A, 'GET /a', 100, undefined);
    const s = l.start('server', 2, 7, B, 'GET /a', 110, undefined);
    l.finish(s, 290, 0, true);
    l.finish(c, 300, 0, true);
    assert.deepEqual([s.end, c.end, s.endShift, c.endShift], [290, 300, 0, 0]);
    // the client closed without a whole response; the server answered after it left
    const c2 = l.start('client', 1, 1, A, 'GET /b', 400, undefined);
    const s2 = l.start('server', 2, 7, B, 'GET /b', 410, undefined);
    l.finish(c2, 500, 0, false);
    l.finish(s2, 900, 0, true);
    assert.deepEqual([s2.end, s2.endShift], [900, 0]);
    // nor is a parent stretched to a child that did not answer whole
    const c3 = l.start('client', 1, 1, A, 'GET /c', 1000, undefined);
    const s3 = l.start('server', 2, 7, B, 'GET /c', 1010, undefined);
    l.finish(s3, 1500, 0, false);
    l.finish(c3, 1200, 0, true);
    assert.deepEqual([c3.end, c3.endShift], [1200, 0]);
    // thread links are not tuple pairs: nothing moves
    const up = l.start('server', 3, 9, 'p:1>q:2', 'GET /up', 2000, undefined);
    const call = l.start('client', 3, 9, 'r:1>s:2', 'GET /down', 2010, undefined);
    assert.equal(call.link, 'thread');
    l.finish(up, 2100, 0, true);
    l.finish(call, 2200, 0, true);
    assert.equal(call.endShift, 0);
    assert.equal(l.counters.ends_nested, 0);
  });

  it('only records whose trace may still change wait for the hold', () => {
    const l = new Linker({ holdNs: 1000, clientGraceNs: 0 });
    // a client request without a parent never gets one: its chain is final at once
    const c = l.start('client', 1, 1, A, 'GET /a', 100, undefined);
    const s = l.start('server', 2, 7, B, 'GET /a', 110, undefined); // tuple child of c
    const c2 = l.start('client', 2, 7, 'x:1>y:2', 'GET /b', 120, undefined); // thread child of s
    // a server request without a parent may still get one (reported late): it waits
    const lone = l.start('server', 3, 9, 'p:1>q:2', 'GET /late', 130, undefined);
    const child = l.start('client', 3, 9, 'r:1>s:2', 'GET /down', 140, undefined);
    for (const r of [c2, s, c, child, lone]) l.finish(r, 200, 0);
    assert.deepEqual(new Set(l.drain(1)), new Set([c2, s, c]));
    assert.equal(new Set([hx(c).traceId, hx(s).traceId, hx(c2).traceId]).size, 1);
    assert.deepEqual(l.drain(999), []);
    const held = l.drain(1000);
    assert.deepEqual(new Set(held), new Set([child, lone]));
    assert.equal(hx(child).traceId, hx(lone).traceId);
  });

  it('pipelining: server requests pair with client requests in order', () => {
    const l = new Linker({ holdNs: 0 });
    const cs = [0, 1, 2].map((i) => l.start('client', 1, 1, A, 'GET /p', 100 + i, undefined));
    const ss = [0, 1, 2].map((i) => l.start('server', 2, 7, B, 'GET /p', 110 + i, undefined));
    ss.forEach((s, i) => assert.equal(s.parent, cs[i]));
  });

  it('an abandoned request stops counting as served on its thread', () => {
    const l = new Linker({ holdNs: 0 });
    const stale = l.start('server', 2, 7, 'a:1>b:1', 'GET /gone', 100, undefined);
    l.abandon(stale);
    const live = l.start('server', 2, 7, 'a:1>b:2', 'GET /live', 200, undefined);
    const c = l.start('client', 2, 7, 'c:1>d:1', 'GET /call', 210, undefined);
    assert.equal(c.parent, live);
    assert.equal(l.counters.abandoned, 1);
    assert.equal(l.size, 2);
  });

  it('a full table evicts the oldest record in O(1): finished ones are emitted early, open ones dropped', () => {
    const l = new Linker({ holdNs: 1e12, maxRecords: 3 });
    const a = l.start('server', 1, 1, 'a:1>b:1', 'GET /a', 1, undefined);
    l.finish(a, 2, 0);
    l.start('server', 1, 2, 'a:1>b:2', 'GET /b', 3, undefined);
    l.start('server', 1, 3, 'a:1>b:3', 'GET /c', 4, undefined);
    l.start('server', 1, 4, 'a:1>b:4', 'GET /d', 5, undefined); // evicts a (finished)
    l.start('server', 1, 5, 'a:1>b:5', 'GET /e', 6, undefined); // evicts /b (open)
    assert.equal(l.counters.emitted_early, 1);
    assert.equal(l.counters.evicted, 1);
    assert.deepEqual(l.drain(10), [a]);
    assert.equal(l.size, 3);
  });

  describe('the thread rule only where a thread carries one request at a time', () => {
    it('never for a process that multiplexes requests over threads (Go, tokio, virtual threads)', () => {
      const l = new Linker({ holdNs: 0, threadModel: (pid) => (pid === 2 ? 'multiplexed' : 'per-request') });
      l.start('server', 2, 7, 'a:1>b:1', 'GET /front/1', 100, undefined);
      const c = l.start('client', 2, 7, 'c:1>d:1', 'GET /api/item/2', 101, undefined);
      assert.equal(c.parent, undefined);
      // even the request-line match of a proxy: the goroutine may belong to another request
      l.start('server', 2, 8, 'a:1>b:2', 'GET /x', 102, undefined);
      const p = l.start('client', 2, 8, 'c:1>d:2', 'GET /x', 103, undefined);
      assert.equal(p.parent, undefined);
      assert.equal(l.counters.thread_rule_off_multiplexed, 2);
    });

    it('a request answered by another thread than the one that read it: the process is multiplexed from then on', () => {
      const l = new Linker({ holdNs: 0 });
      const s1 = l.start('server', 2, 7, 'a:1>b:1', 'GET /one', 100, undefined);
      const c1 = l.start('client', 2, 7, 'c:1>d:1', 'GET /x', 101, undefined);
      assert.equal(c1.parent, s1, 'thread-per-request until shown otherwise');
      l.responded(s1, 9);
      assert.equal(l.counters.learned_multiplexed, 1);
      assert.equal(l.modelOf(2), 'multiplexed');
      l.start('server', 2, 7, 'a:1>b:1', 'GET /two', 110, undefined);
      const c2 = l.start('client', 2, 7, 'c:1>d:1', 'GET /y', 111, undefined);
      assert.equal(c2.parent, undefined);
      l.forgetProcess(2);
      assert.equal(l.modelOf(2), 'per-request', 'a reused pid starts afresh');
    });

    it('a request whose response has started no longer adopts calls of its thread (streaming answers)', () => {
      const l = new Linker({ holdNs: 0 });
      const sse = l.start('server', 2, 7, 'a:1>b:1', 'GET /events', 100, undefined);
      l.responded(sse, 7);
      const c = l.start('client', 2, 7, 'c:1>d:1', 'GET /x', 200, undefined);
      assert.equal(c.parent, undefined);
      assert.equal(l.modelOf(2), 'per-request');
    });

    it('a thread reading a second connection before answering the first is an event loop', () => {
      const l = new Linker({ holdNs: 0 });
      l.start('server', 2, 7, 'a:1>b:1', 'GET /one', 100, undefined);
      l.start('server', 2, 7, 'a:1>b:2', 'GET /two', 101, undefined);
      assert.equal(l.modelOf(2), 'event-loop');
      assert.equal(l.counters.learned_event_loop, 1);
    });

    it("an event loop's lone in-flight request is no proof: only an identical request line links (left-over work of answered requests)", () => {
      const l = new Linker({ holdNs: 0, threadModel: () => 'event-loop' });
      const s1 = l.start('server', 2, 7, 'a:1>b:1', 'GET /one', 100, undefined);
      // the handler's call, or a fire-and-forget call that an answered request left behind:
      // the kernel sees the same thing, so nothing
      const c1 = l.start('client', 2, 7, 'c:1>d:1', 'GET /x', 101, undefined);
      assert.equal(c1.parent, undefined);
      assert.equal(l.counters.thread_rule_off_event_loop, 1);
      assert.equal(l.counters.ambiguous_thread, 0);
      // what a proxy forwards: linked
      const fwd = l.start('client', 2, 7, 'c:1>d:2', 'GET /one', 102, undefined);
      assert.equal(fwd.parent, s1);
      // the same in a thread-per-request process links the lone request
      const p = new Linker({ holdNs: 0 });
      const ps = p.start('server', 2, 7, 'a:1>b:1', 'GET /one', 100, undefined);
      assert.equal(p.start('client', 2, 7, 'c:1>d:1', 'GET /x', 101, undefined).parent, ps);
    });

    it('an event-loop thread that calls outside any request loses the rule (timers, work after a response)', () => {
      const l = new Linker({ holdNs: 0, threadModel: () => 'event-loop' });
      const s1 = l.start('server', 2, 7, 'a:1>b:1', 'GET /one', 100, undefined);
      const c1 = l.start('client', 2, 7, 'c:1>d:1', 'GET /one', 101, undefined);
      assert.equal(c1.parent, s1);
      l.responded(s1, 7);
      // a background call: nothing in flight on the loop
      const bg = l.start('client', 2, 7, 'c:1>d:2', 'POST /metrics', 110, undefined);
      assert.equal(bg.parent, undefined);
      // from now on even an identical line is no proof: the call may be background work again
      l.start('server', 2, 7, 'a:1>b:1', 'GET /two', 120, undefined);
      const c2 = l.start('client', 2, 7, 'c:1>d:1', 'GET /two', 121, undefined);
      assert.equal(c2.parent, undefined);
      assert.equal(l.counters.thread_rule_off_background, 1);
      // other threads of the process keep it
      const s3 = l.start('server', 2, 8, 'a:1>b:3', 'GET /three', 130, undefined);
      const c3 = l.start('client', 2, 8, 'c:1>d:3', 'GET /three', 131, undefined);
      assert.equal(c3.parent, s3);
    });

    it('an HTTP/2 server request is a thread parent only by an identical request line (proxies: nginx h2 -> HTTP/1)', () => {
      const l = new Linker({ holdNs: 0 });
      const s1 = l.start('server', 2, 7, 'a:1>b:1', 'GET /one #1', 100, undefined, undefined, false, 'GET /one');
      // the only request in flight, but its reading thread need not be its handler: no link
      const other = l.start('client', 2, 7, 'c:1>d:1', 'GET /x', 101, undefined);
      assert.equal(other.parent, undefined);
      // the line it received, forwarded: linked
      const fwd = l.start('client', 2, 7, 'c:1>d:2', 'GET /one', 102, undefined);
      assert.equal(fwd.parent, s1);
      assert.equal(fwd.link, 'thread');
      // two streams of the same line in flight: ambiguous, nothing
      l.start('server', 2, 7, 'a:1>b:1', 'GET /two #3', 110, undefined, undefined, false, 'GET /two');
      l.start('server', 2, 7, 'a:1>b:1', 'GET /two #5', 111, undefined, undefined, false, 'GET /two');
      const amb = l.start('client', 2, 7, 'c:1>d:3', 'GET /two', 112, undefined);
      assert.equal(amb.parent, undefined);
      // never in a multiplexed process
      const m = new Linker({ holdNs: 0, threadModel: () => 'multiplexed' });
      m.start('server', 3, 7, 'a:1>b:1', 'GET /one #1', 100, undefined, undefined, false, 'GET /one');
      assert.equal(m.start('client', 3, 7, 'c:1>d:2', 'GET /one', 102, undefined).parent, undefined);
    });

    it('a thread-per-request thread calling outside requests keeps the rule for its requests', () => {
      const l = new Linker({ holdNs: 0 });
      const bg = l.start('client', 2, 7, 'c:1>d:2', 'GET /warmup', 90, undefined);
      assert.equal(bg.parent, undefined);
      const s1 = l.start('server', 2, 7, 'a:1>b:1', 'GET /one', 100, undefined);
      const c1 = l.start('client', 2, 7, 'c:1>d:1', 'GET /x', 101, undefined);
      assert.equal(c1.parent, s1);
    });
  });

  describe('loss barriers (events were lost: what the linker knows about threads is stale)', () => {
    it('a request started before the barrier is no thread parent (its response may be what was lost)', () => {
      const l = new Linker({ holdNs: 0 });
      l.start('server', 2, 7, 'a:1>b:1', 'GET /a', 100, undefined);
      // lost here: A's response and the head of the request B the thread read next
      l.lossBarrier(150);
      const call = l.start('client', 2, 7, 'c:1>d:1', 'GET /for-b', 160, undefined);
      assert.equal(call.parent, undefined);
      assert.equal(call.link, 'none');
      assert.equal(l.counters.withheld_loss, 1);
      assert.equal(l.counters.loss_barriers, 1);
    });

    it('a thread-per-request thread is trusted again from its next request on', () => {
      const l = new Linker({ holdNs: 0 });
      l.start('server', 2, 7, 'a:1>b:1', 'GET /a', 100, undefined);
      l.lossBarrier(150);
      const s = l.start('server', 2, 7, 'a:1>b:2', 'GET /next', 200, undefined);
      const call = l.start('client', 2, 7, 'c:1>d:1', 'GET /x', 210, undefined);
      assert.equal(call.parent, s);
      assert.equal(call.link, 'thread');
      // other threads too: a request started after the barrier
      const s9 = l.start('server', 2, 9, 'a:1>b:3', 'GET /nine', 220, undefined);
      assert.equal(l.start('client', 2, 9, 'c:1>d:2', 'GET /y', 230, undefined).parent, s9);
      assert.equal(l.counters.withheld_loss, 0);
      // a barrier covers every thread (it says where, not whose)
      l.lossBarrier(240);
      assert.equal(l.start('client', 2, 9, 'c:1>d:3', 'GET /z', 250, undefined).parent, undefined);
      assert.equal(l.counters.withheld_loss, 1);
    });

    it('a call reported late that started before the barrier takes no parent from before it', () => {
      const l = new Linker({ holdNs: 0 });
      l.start('server', 2, 7, 'a:1>b:1', 'GET /a', 100, undefined);
      l.lossBarrier(300);
      // the exchange record of a call made at 120 comes after the barrier
      const late = l.start('client', 2, 7, 'c:1>d:1', 'GET /x', 120, undefined);
      assert.equal(late.parent, undefined);
    });

    it('an event-loop thread: a stale request counts against a fresh one; only the identical line links', () => {
      const l = new Linker({ holdNs: 0, threadModel: () => 'event-loop', lossQuarantineNs: 0 });
      const stale = l.start('server', 2, 7, 'a:1>b:1', 'GET /old', 100, undefined);
      l.lossBarrier(150);
      const fresh = l.start('server', 2, 7, 'a:1>b:2', 'GET /new', 200, undefined);
      // without the loss this thread would work on two requests: no guess either
      assert.equal(l.start('client', 2, 7, 'c:1>d:1', 'GET /other', 210, undefined).parent, undefined);
      // a proxy forwarding the fresh request's line
      assert.equal(l.start('client', 2, 7, 'c:1>d:2', 'GET /new', 220, undefined).parent, fresh);
      // the stale one's line: withheld, never the stale request
      const c = l.start('client', 2, 7, 'c:1>d:3', 'GET /old', 230, undefined);
      assert.equal(c.parent, undefined);
      assert.equal(l.counters.withheld_loss, 1);
      // once the stale request finishes the loop works on one request, but an event loop's
      // call may be work an answered request left: still only the identical line links
      l.finish(stale, 240, 0);
      assert.equal(l.start('client', 2, 7, 'c:1>d:4', 'GET /other', 250, undefined).parent, undefined);
      assert.equal(l.start('client', 2, 7, 'c:1>d:5', 'GET /new', 260, undefined).parent, fresh);
    });

    it('an event-loop thread links a call to its only request by the identical line alone during the quarantine', () => {
      const l = new Linker({ holdNs: 0, threadModel: () => 'event-loop', lossQuarantineNs: 1000 });
      // lost: the head of a request this loop read at 140, still in flight
      l.lossBarrier(150);
      const s = l.start('server', 2, 7, 'a:1>b:2', 'GET /new', 200, undefined);
      // the call may be the lost request's: not linked to the one request the loop shows
      const c = l.start('client', 2, 7, 'c:1>d:1', 'GET /api/item/1', 210, undefined);
      assert.equal(c.parent, undefined);
      assert.equal(l.counters.thread_rule_off_event_loop, 1);
      // nor is the loop taken to call outside requests (the call may belong to the lost one)
      l.finish(s, 220, 0);
      l.start('client', 2, 7, 'c:1>d:2', 'GET /tick', 230, undefined);
      const s2 = l.start('server', 2, 7, 'a:1>b:3', 'GET /again', 1200, undefined);
      const fwd = l.start('client', 2, 7, 'c:1>d:3', 'GET /again', 1210, undefined);
      assert.equal(fwd.parent, s2, 'the identical line links during the quarantine');
      // after the quarantine too, an event loop's lone request is no parent by itself
      const c2 = l.start('client', 2, 7, 'c:1>d:4', 'GET /api/item/2', 1220, undefined);
      assert.equal(c2.parent, undefined);
      assert.equal(l.counters.thread_rule_off_background, 0);
    });

    it('a per-request thread is not quarantined, an event loop is: the quarantine is about interleaving', () => {
      const l = new Linker({ holdNs: 0, threadModel: (pid) => (pid === 3 ? 'event-loop' : 'per-request'), lossQuarantineNs: 1e9 });
      l.lossBarrier(100);
      const s2 = l.start('server', 2, 7, 'a:1>b:1', 'GET /a', 200, undefined);
      const s3 = l.start('server', 3, 7, 'a:1>b:2', 'GET /a', 200, undefined);
      assert.equal(l.start('client', 2, 7, 'c:1>d:1', 'GET /x', 210, undefined).parent, s2);
      assert.equal(l.start('client', 3, 7, 'c:1>d:2', 'GET /x', 210, undefined).parent, undefined);
      assert.ok(s3);
    });

    it('a client request in flight at the barrier is no tuple parent (its end may have been lost), nor any later one', () => {
      const l = new Linker({ holdNs: 1000 });
      // a keep-alive connection: request 1's end lost, request 2's head lost too
      l.start('client', 1, 1, A, 'GET /', 100, undefined);
      l.lossBarrier(250);
      const s2 = l.start('server', 2, 7, B, 'GET /', 300, undefined);
      assert.equal(s2.parent, undefined);
      assert.equal(l.counters.withheld_loss, 1);
      // the client's next request, reported late: not taken for s2 either
      const c2 = l.start('client', 1, 1, A, 'GET /', 290, undefined);
      assert.equal(s2.parent, undefined);
      // a client request that ended before the barrier was seen whole: it still links
      const l2 = new Linker({ holdNs: 1000 });
      const c = l2.start('client', 1, 1, A, 'GET /', 100, undefined);
      const s = l2.start('server', 2, 7, B, 'GET /', 110, undefined);
      l2.lossBarrier(120);
      assert.equal(s.parent, c);
      // and a client request started after the barrier links as ever
      const c3 = l.start('client', 1, 1, 'e:1>f:1', 'GET /b', 400, undefined);
      const s3 = l.start('server', 2, 7, 'f:1>e:1', 'GET /b', 410, undefined);
      assert.equal(s3.parent, c3);
      assert.ok(c2);
    });

    it('nothing is learned from a stale request: a second connection read after a barrier is no proof of an event loop', () => {
      const l = new Linker({ holdNs: 0 });
      l.start('server', 2, 7, 'a:1>b:1', 'GET /a', 100, undefined);
      l.lossBarrier(150);
      l.start('server', 2, 7, 'a:1>b:2', 'GET /b', 200, undefined);
      assert.equal(l.modelOf(2), 'per-request');
      assert.equal(l.counters.learned_event_loop, 0);
      });
    });

  describe('the runtime rule (goroutines)', () => {
    const multiplexed = () => 'multiplexed' as const;
    /** goroutine parents: child -> [parent, created at] */
    /** goroutine -> [parent, created, ended (0: running)] */
    const tree = (m: Record<number, [number, number, number?]>) => (_pid: number, g: number) => (m[g] ? { parent: m[g][0], createdNs: m[g][1], exitNs: m[g][2] ?? 0 } : undefined);
    const srv = (l: Linker, tid: number, conn: string, ts: number, rtx: number) => l.start('server', 5, tid, conn, 'GET /front/1', ts, undefined, undefined, true, undefined, rtx);
    const cli = (l: Linker, tid: number, conn: string, ts: number, rtx: number, line = 'GET /api/1') => l.start('client', 5, tid, conn, line, ts, undefined, undefined, true, undefined, rtx);

    it('a call by the goroutine of a request in progress links to it, whatever the threads', () => {
      const l = new Linker({ holdNs: 0, threadModel: multiplexed });
      const s1 = srv(l, 1, 'a:1>b:1', 100, 7);
      const s2 = srv(l, 1, 'a:1>b:2', 101, 8);
      const c = cli(l, 2, 'b:9>c:1', 110, 8);
      assert.equal(c.link, 'runtime');
      assert.equal(c.parent, s2);
      assert.equal(l.counters.linked_runtime, 1);
      assert.notEqual(c.parent, s1);
    });

    it('unknown context (0) on either side: no runtime link', () => {
      const l = new Linker({ holdNs: 0, threadModel: multiplexed });
      srv(l, 1, 'a:1>b:1', 100, 0);
      const c = cli(l, 1, 'b:9>c:1', 110, 0);
      assert.equal(c.link, 'none');
      srv(l, 1, 'a:1>b:2', 120, 9);
      assert.equal(cli(l, 1, 'b:9>c:2', 130, 0).link, 'none');
    });

    it('a goroutine started by the request goroutine links once it ended before the answer; one started before the request began does not', () => {
      const l = new Linker({ holdNs: 1000, threadModel: multiplexed, rtxParent: tree({ 20: [7, 105, 150], 21: [20, 106, 140], 30: [7, 90, 150] }) });
      const s = srv(l, 1, 'a:1>b:1', 100, 7);
      const child = cli(l, 2, 'b:9>c:1', 110, 21);
      // pending until the request is answered: not linked, and not settled either
      assert.equal(child.parent, undefined);
      assert.equal(child.awaiting, s);
      l.finish(child, 130, 0);
      assert.deepEqual(l.drain(0), [], 'a call waiting for its ancestry link is held');
      // goroutine 30 was started by 7 while 7 served an earlier request (keep-alive)
      const stale = cli(l, 2, 'b:9>c:2', 111, 30);
      assert.equal(stale.link, 'none');
      assert.equal(stale.awaiting, undefined);
      l.responded(s, 1);
      l.finish(s, 160, 0);
      assert.equal(child.link, 'runtime');
      assert.equal(child.parent, s);
      assert.equal(l.counters.linked_runtime_ancestry, 1);
      const out = l.drain(2000);
      assert.ok(out.includes(child) && out.includes(s));
      assert.equal(child.trace, s.trace);
    });

    it('a goroutine that outlives the request that started it (a worker pool started on first use) lends it no call', () => {
      // 7 serves the first request and starts workers 40 and 41 (running for good); 41 starts
      // 42, which ends; 8 serves a second request whose call worker 40 makes
      const l = new Linker({ holdNs: 1000, threadModel: multiplexed, rtxParent: tree({ 40: [7, 105], 41: [7, 105], 42: [41, 120, 130] }) });
      const first = srv(l, 1, 'a:1>b:1', 100, 7);
      const second = srv(l, 1, 'a:1>b:2', 110, 8);
      const forSecond = cli(l, 2, 'b:9>c:1', 115, 40);
      const forFirst = cli(l, 2, 'b:9>c:2', 116, 41);
      const grandchild = cli(l, 2, 'b:9>c:3', 121, 42);
      assert.equal(forSecond.awaiting, first, 'by ancestry alone it would be the first request\'s');
      for (const c of [forSecond, forFirst, grandchild]) l.finish(c, 125, 0);
      l.responded(first, 1);
      l.finish(first, 140, 0);
      l.responded(second, 1);
      l.finish(second, 141, 0);
      for (const c of [forSecond, forFirst, grandchild]) {
        assert.equal(c.parent, undefined);
        assert.equal(c.link, 'none');
      }
      // 42 ended in time, but 41 between it and the request's goroutine did not
      assert.equal(l.counters.runtime_ancestry_outlived, 3);
      assert.equal(l.counters.linked_runtime_ancestry, 0);
      const out = l.flush();
      assert.ok(out.includes(forSecond) && forSecond.trace !== first.trace);
    });

    it('a goroutine that ended after the answer, or whose end is unknown, lends no call either', () => {
      const l = new Linker({ holdNs: 1000, threadModel: multiplexed, rtxParent: tree({ 20: [7, 105, 170], 21: [7, 105, 0] }) });
      const s = srv(l, 1, 'a:1>b:1', 100, 7);
      const late = cli(l, 2, 'b:9>c:1', 110, 20);
      const unknown = cli(l, 2, 'b:9>c:2', 111, 21);
      l.finish(s, 160, 0);
      assert.equal(late.parent, undefined);
      assert.equal(unknown.parent, undefined);
      assert.equal(l.counters.runtime_ancestry_outlived, 2);
    });

    it('a call and the records under it wait for the answer past their hold, at most awaitMaxNs', () => {
      const l = new Linker({ holdNs: 10, awaitMaxNs: 1000, threadModel: multiplexed, rtxParent: tree({ 20: [7, 105, 120] }) });
      const s = srv(l, 1, 'a:1>b:1', 100, 7);
      const c = cli(l, 2, 'b:9>c:1', 110, 20);
      // the backend's server request under the call (tuple)
      const b = l.start('server', 6, 1, 'c:1>b:9', 'GET /api/1', 111, undefined);
      assert.equal(b.parent, c);
      l.finish(b, 114, 115);
      l.finish(c, 115, 115);
      assert.deepEqual(l.drain(200), [], 'held past the hold while the request is in progress');
      assert.deepEqual(l.drain(500), []);
      l.finish(s, 130, 600);
      const out = l.drain(700);
      assert.ok(out.includes(b) && out.includes(c) && out.includes(s));
      assert.equal(c.parent, s);
      assert.equal(b.trace, s.trace);
    });

    it('a call whose request is not answered within awaitMaxNs is a root, and stays one', () => {
      const l = new Linker({ holdNs: 10, awaitMaxNs: 50, threadModel: multiplexed, rtxParent: tree({ 20: [7, 105, 120], 22: [7, 205, 0] }) });
      const s = srv(l, 1, 'a:1>b:1', 100, 7);
      const c = cli(l, 2, 'b:9>c:1', 110, 20);
      l.finish(c, 115, 0);
      assert.deepEqual(l.drain(5), []);
      assert.deepEqual(l.drain(20), []);
      assert.deepEqual(l.drain(200), [c]);
      assert.equal(c.parent, undefined);
      assert.equal(l.counters.runtime_ancestry_expired, 1);
      l.finish(s, 130, 30);
      assert.equal(c.parent, undefined, 'a record whose trace is fixed never changes parent');
      assert.equal(l.counters.linked_runtime_ancestry, 0);
      // and a request that is dropped unanswered decides its waiting calls: none
      const s2 = srv(l, 1, 'a:1>b:2', 200, 7);
      const c2 = cli(l, 2, 'b:9>c:2', 210, 22);
      assert.equal(c2.awaiting, s2);
      l.abandon(s2);
      assert.equal(c2.awaiting, undefined);
      assert.equal(l.counters.runtime_ancestry_expired, 2);
    });

    it('a goroutine still running when the answer began lends no call, even if it ended before the exchange did', () => {
      const l = new Linker({ holdNs: 1000, threadModel: multiplexed, rtxParent: tree({ 20: [7, 105, 150], 21: [7, 105, 130] }) });
      const s = srv(l, 1, 'a:1>b:1', 100, 7);
      const late = cli(l, 2, 'b:9>c:1', 110, 20);
      const early = cli(l, 2, 'b:9>c:2', 111, 21);
      l.responded(s, 1, 140); // the answer begins at 140; a long body ends the exchange at 160
      l.finish(s, 160, 0);
      assert.equal(late.parent, undefined, 'ended at 150: after the answer began');
      assert.equal(early.parent, s);
      assert.equal(l.counters.runtime_ancestry_outlived, 1);
    });

    it('a call that stops waiting (resolved as a root, abandoned) leaves its request: nothing kept for it', () => {
      const l = new Linker({ holdNs: 10, awaitMaxNs: 50, threadModel: multiplexed, rtxParent: tree({ 20: [7, 105, 120], 21: [7, 105, 0] }) });
      const s = srv(l, 1, 'a:1>b:1', 100, 7);
      const c = cli(l, 2, 'b:9>c:1', 110, 20);
      const d = cli(l, 2, 'b:9>c:2', 111, 21);
      assert.equal(l.pendingAncestryCalls, 2);
      l.abandon(d);
      assert.equal(l.pendingAncestryCalls, 1);
      l.finish(c, 115, 0);
      assert.deepEqual(l.drain(200), [c], 'out as a root once awaitMaxNs has passed');
      assert.equal(l.pendingAncestryCalls, 0, 'the request no longer holds the emitted call');
      l.finish(s, 300, 300);
      assert.equal(c.parent, undefined);
      assert.equal(l.counters.runtime_ancestry_outlived, 0);
    });

    it('a request no longer in progress (answered) adopts no call', () => {
      const l = new Linker({ holdNs: 0, threadModel: multiplexed });
      const s = srv(l, 1, 'a:1>b:1', 100, 7);
      l.responded(s, 1);
      assert.equal(cli(l, 1, 'b:9>c:1', 110, 7).link, 'none');
    });

    it('two requests in progress for one goroutine (lost events) are ambiguous: no link', () => {
      const l = new Linker({ holdNs: 0, threadModel: multiplexed });
      srv(l, 1, 'a:1>b:1', 100, 7);
      srv(l, 1, 'a:1>b:1', 101, 7);
      const c = cli(l, 1, 'b:9>c:1', 110, 7);
      assert.equal(c.link, 'none');
      assert.equal(l.counters.ambiguous_runtime, 1);
    });

    it('a request started before a loss barrier adopts no call of its goroutine (it may have ended unseen)', () => {
      const l = new Linker({ holdNs: 0, threadModel: multiplexed });
      srv(l, 1, 'a:1>b:1', 100, 7);
      l.lossBarrier(150);
      const c = cli(l, 2, 'b:9>c:1', 160, 7);
      assert.equal(c.link, 'none');
      assert.equal(l.counters.withheld_loss, 1);
      const s2 = srv(l, 1, 'a:1>b:2', 200, 8);
      assert.equal(cli(l, 2, 'b:9>c:2', 210, 8).parent, s2);
    });

    it('the same goroutine id in another process is another goroutine', () => {
      const l = new Linker({ holdNs: 0, threadModel: multiplexed });
      l.start('server', 6, 1, 'a:1>b:1', 'GET /x', 100, undefined, undefined, true, undefined, 7);
      assert.equal(cli(l, 1, 'b:9>c:1', 110, 7).link, 'none');
    });
  });

  describe('requests reported whole (the kernel told no start: bpf/lib/http1x.h, "Linking hints")', () => {
    /** a request whose start came with its end, as agent.ts gives one from an exchange record */
    const whole = (l: Linker, kind: 'server' | 'client', pid: number, key: string, line: string, start: number, end: number, now: number) => {
      const r = l.start(kind, pid, pid, key, line, start, undefined, undefined, true, line, 0, false, end);
      l.finish(r, end, now, true);
      return r;
    };

    it("the server's record first: its client's record links it late, and it goes out then, not after the hold", () => {
      const l = new Linker({ holdNs: 1e9 });
      const s = whole(l, 'server', 2, B, 'GET /a', 110, 190, 190);
      assert.deepEqual(l.drain(190), [], 'no parent yet: held');
      const c = whole(l, 'client', 1, A, 'GET /a', 100, 200, 200);
      assert.equal(s.parent, c);
      assert.equal(s.link, 'tuple');
      assert.equal(l.counters.linked_late, 1);
      assert.deepEqual(new Set(l.drain(200)), new Set([s, c]), 'settled by the late link: out at once, with its client (claimed)');
      assert.equal(hx(s).traceId, hx(c).traceId);
      assert.equal(hx(s).parentSpanId, hx(c).spanId);
    });

    it('a late parent releases what was held under the request too: its call and the call\'s server', () => {
      const l = new Linker({ holdNs: 1e9 });
      // a proxy's request (its start told: the proxy calls out), its call, the backend reported whole
      const s = l.start('server', 2, 7, B, 'GET /a', 110, undefined);
      const call = l.start('client', 2, 7, 'm:1>n:2', 'GET /a', 120, undefined);
      const back = whole(l, 'server', 3, 'n:2>m:1', 'GET /a', 130, 170, 170);
      l.finish(call, 180, 180, true);
      l.finish(s, 190, 190, true);
      assert.deepEqual(l.drain(190), [], 'no parent at the top yet: all held');
      const c = whole(l, 'client', 1, A, 'GET /a', 100, 200, 200);
      assert.equal(s.parent, c);
      assert.deepEqual(new Set(l.drain(200)), new Set([s, call, back, c]), 'all out at once, not after the hold');
      assert.equal(new Set([s, call, back, c].map((r) => hx(r).traceId)).size, 1);
    });

    it("the client's record first (its read returned before the server's write did): still a candidate for its grace", () => {
      const l = new Linker({ holdNs: 1e9 });
      const c = whole(l, 'client', 1, A, 'GET /a', 100, 200, 200);
      assert.deepEqual(l.drain(200 + 1e6), [], 'within its grace');
      const s = whole(l, 'server', 2, B, 'GET /a', 110, 201, 201 + 1e6);
      assert.equal(s.parent, c);
      assert.deepEqual(new Set(l.drain(200 + 5e6)), new Set([c, s]));
      assert.equal(hx(s).traceId, hx(c).traceId);
      // after its grace it is gone (emitted): a server request reported later is on its own
      const c3 = whole(l, 'client', 1, 'k:1>m:2', 'GET /z', 1000, 2000, 2000);
      assert.deepEqual(l.drain(2000 + 5e6), [c3]);
      const late = whole(l, 'server', 2, 'm:2>k:1', 'GET /z', 1100, 1900, 2000 + 5e6);
      assert.equal(late.parent, undefined);
    });

    it('a client record pairs only with a server request inside its own time (keep-alive: the next request is not it)', () => {
      const l = new Linker({ holdNs: 1e9 });
      // the server's record of the first exchange was lost: the next one's must not take its client
      const c1 = whole(l, 'client', 1, A, 'GET /a', 100, 200, 200);
      const s2 = whole(l, 'server', 2, B, 'GET /a', 310, 390, 390);
      assert.equal(s2.parent, undefined);
      const c2 = whole(l, 'client', 1, A, 'GET /a', 300, 400, 400);
      assert.equal(s2.parent, c2);
      assert.notEqual(s2.parent, c1);
    });

    it('a finished client request no server claimed stays a candidate for its grace, then goes out', () => {
      const l = new Linker({ holdNs: 1e9 });
      // the client's start was told; its server, a process that calls nobody, is reported whole after it
      const c = l.start('client', 1, 1, A, 'GET /a', 100, undefined);
      l.finish(c, 200, 200, true);
      assert.deepEqual(l.drain(200 + 4e6), []);
      const s = whole(l, 'server', 2, B, 'GET /a', 110, 201, 200 + 4e6);
      assert.equal(s.parent, c);
      assert.deepEqual(l.drain(200 + 4e6), [s], 'the server: out at once');
      assert.deepEqual(l.drain(200 + 5e6), [c], 'the client at the end of its grace');
      assert.equal(hx(s).traceId, hx(c).traceId);
      assert.equal(hx(s).parentSpanId, hx(c).spanId);
      const lone = l.start('client', 1, 1, 'z:1>w:2', 'GET /b', 300, undefined);
      l.finish(lone, 400, 400, true);
      assert.deepEqual(l.drain(400 + 5e6 - 1), []);
      assert.deepEqual(l.drain(400 + 5e6), [lone]);
    });

    it("a server request reported whole is no thread parent of a later call, and stays none of an earlier one's", () => {
      const l = new Linker({ holdNs: 0 });
      // a call reported whole that started before the request began: nothing to link to
      const s = l.start('server', 2, 7, B, 'GET /a', 110, undefined);
      const c = l.start('client', 2, 7, 'x:1>y:2', 'GET /b', 100, undefined, undefined, true, 'GET /b', 0, false, 150);
      assert.equal(c.parent, undefined, 'the request began after the call');
      assert.equal(s.parent, undefined);
    });
  });

  describe('the kernel unsure of what is in flight (LinkNote.unsure)', () => {
    it('an unsure call takes no thread or runtime parent, though its thread serves one request', () => {
      const l = new Linker({ holdNs: 0 });
      const s = l.start('server', 2, 7, B, 'GET /a', 110, undefined);
      const c = l.start('client', 2, 7, 'x:1>y:2', 'GET /b', 120, undefined, undefined, true, 'GET /b', 0, true);
      assert.equal(c.parent, undefined);
      assert.equal(l.counters.withheld_unsure, 1);
      // the next call, sure again, links
      const c2 = l.start('client', 2, 7, 'x:1>y:3', 'GET /c', 130, undefined);
      assert.equal(c2.parent, s);
      // an unsure call under a runtime context: no runtime link either
      const r = l.start('server', 3, 8, 'p:1>q:1', 'GET /r', 110, undefined, undefined, true, 'GET /r', 41);
      const rc = l.start('client', 3, 8, 'q:2>z:1', 'GET /rc', 120, undefined, undefined, true, 'GET /rc', 41, true);
      assert.equal(rc.parent, undefined);
      assert.equal(l.counters.withheld_unsure, 2);
      l.responded(r, 8);
    });

    it('an unsure server request is no proof: not the only request of its thread, nor by its request line', () => {
      const l = new Linker({ holdNs: 0, threadModel: () => 'event-loop' });
      const s = l.start('server', 2, 7, B, 'GET /a', 110, undefined, undefined, true, 'GET /a', 0, true);
      const byLine = l.start('client', 2, 7, 'x:1>y:2', 'GET /a', 120, undefined);
      assert.equal(byLine.parent, undefined);
      const perRequest = new Linker({ holdNs: 0 });
      perRequest.start('server', 2, 7, B, 'GET /a', 110, undefined, undefined, true, 'GET /a', 0, true);
      const only = perRequest.start('client', 2, 7, 'x:1>y:2', 'GET /b', 120, undefined);
      assert.equal(only.parent, undefined);
      assert.equal(l.counters.withheld_unsure + perRequest.counters.withheld_unsure, 2);
      l.responded(s, 7);
    });
  });

  it('runtime: a call under a runtime context belongs to the in-flight request of that context, never to its thread\'s others', () => {
    const l = new Linker({ holdNs: 0, threadModel: () => 'event-loop' });
    // one event-loop thread (pid 5, tid 5) serves two connections; contexts 11 and 12
    const s1 = l.start('server', 5, 5, 'm:80>a:1', 'GET /front/1', 100, undefined, 'a:1>m:80', true, 'GET /front/1', 11);
    const s2 = l.start('server', 5, 5, 'm:80>a:2', 'GET /front/2', 110, undefined, 'a:2>m:80', true, 'GET /front/2', 12);
    const c2 = l.start('client', 5, 5, 'm:9>b:80', 'GET /api/2', 120, undefined, 'b:80>m:9', true, 'GET /api/2', 12);
    const c1 = l.start('client', 5, 5, 'm:8>b:80', 'GET /api/1', 130, undefined, 'b:80>m:8', true, 'GET /api/1', 11);
    assert.equal(c2.link, 'runtime');
    assert.equal(c2.parent, s2);
    assert.equal(c1.parent, s1);
    // once s1's response started, a call of its context (work after the response, a timer it
    // set) gets no parent, though s2 is still in flight on the same thread
    l.responded(s1, 5);
    const late = l.start('client', 5, 5, 'm:7>b:80', 'GET /api/late', 140, undefined, 'b:80>m:7', true, 'GET /api/late', 11);
    assert.equal(late.parent, undefined);
    assert.equal(l.counters.runtime_no_request, 1);
    // a call without a context still has the thread rule
    l.responded(s2, 5);
    assert.equal(l.counters.linked_runtime, 2);
  });
});
