// A connection's remembered head must never change a span: every span filled through the memo
// (repeated heads, changed heads, a role or TLS change, heads the full parser must read) has
// exactly the fields a fresh parse of its head gives.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HeadMemo } from './head-memo.js';
import { Http1Parser } from './protocols/http1.js';
import { fillHttpRequest } from './spans.js';
import { Span } from '../model/index.js';

const view = (b: Buffer) => new DataView(b.buffer, b.byteOffset, b.length);
const local = { ip: '10.0.0.2', port: 8080 };
const remote = { ip: '10.0.0.1', port: 51234 };

const HEADS = [
  'GET /orders/1234?x=1 HTTP/1.1\r\nHost: 127.0.0.1:41701\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n',
  'GET /orders/1235?x=1 HTTP/1.1\r\nHost: 127.0.0.1:41701\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n',
  'GET /orders/1234?x=1 HTTP/1.1\r\nHost: 127.0.0.1:41701\r\n\r\n',
  'POST /api/users?token=abc HTTP/1.0\r\nHost: user:pw@svc:80\r\nUser-Agent: curl/8.0 password=hunter2\r\nContent-Length: 12\r\n\r\n',
  'GET / HTTP/1.1\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n',
  // not plain: the full parser reads these (a folded line, a repeated Host)
  'GET /fold HTTP/1.1\r\nHost: a\r\n folded\r\nUser-Agent: x\r\n\r\n',
  'GET /twice HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
];

/** the request fields of a span, as a plain object */
function fields(s: Span): Record<string, unknown> {
  return { name: s.name, kind: s.kind, ...s.attributes };
}

/** what a fresh parse gives (the way the agent filled spans before the memo) */
function fresh(head: string, server: boolean, tls: boolean, ends = { local, remote }): Record<string, unknown> | undefined {
  const b = Buffer.from(head, 'latin1');
  const h = Http1Parser.requestHead(b, b.length);
  if (!h) return undefined;
  const s = new Span();
  fillHttpRequest(s, server ? 'server' : 'client', h, ends.local, ends.remote, tls);
  return { ...fields(s), line: `${h.method} ${h.target}`, traceparent: h.headers.traceparent };
}

describe('HeadMemo', () => {
  it('fills every span as a fresh parse would, through repeats and changes', () => {
    const memo = new HeadMemo();
    let seed = 7;
    const next = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let i = 0; i < 2000; i++) {
      // mostly the same head again (keep-alive), sometimes another, another role or TLS
      const head = next(4) === 0 ? HEADS[next(HEADS.length)]! : HEADS[0]!;
      const server = next(10) !== 0;
      const tls = next(20) === 0;
      // the head in a larger buffer, as in a ring-buffer batch
      const pad = next(8);
      const buf = Buffer.concat([Buffer.alloc(pad, 0x41), Buffer.from(head, 'latin1'), Buffer.alloc(3, 0x42)]);
      const span = new Span();
      const ok = memo.fill(span, buf, view(buf), pad, Buffer.byteLength(head, 'latin1'), server, local, remote, tls);
      const want = fresh(head, server, tls);
      assert.equal(ok, want !== undefined);
      if (want) assert.deepEqual({ ...fields(span), line: memo.line, traceparent: memo.traceparent }, want, `step ${i}: ${JSON.stringify(head)}`);
    }
  });

  it('a head that does not parse changes nothing and reports false', () => {
    const memo = new HeadMemo();
    const good = Buffer.from(HEADS[0]!, 'latin1');
    assert.equal(memo.fill(new Span(), good, view(good), 0, good.length, true, local, remote, false), true);
    const bad = Buffer.from('NOT A REQUEST\r\n\r\n', 'latin1');
    assert.equal(memo.fill(new Span(), bad, view(bad), 0, bad.length, true, local, remote, false), false);
    assert.equal(memo.line, 'GET /orders/1234?x=1');
    const again = new Span();
    assert.equal(memo.fill(again, good, view(good), 0, good.length, true, local, remote, false), true);
    assert.deepEqual({ ...fields(again), line: memo.line, traceparent: memo.traceparent }, fresh(HEADS[0]!, true, false));
  });

  it('connections that send the same heads each get their own ends (the parsed heads are shared)', () => {
    // a connection per request, as a client that closes after each answer: every head is a
    // connection's first, found in the shared table after its first parse
    const ends = [
      { local: { ip: '10.0.0.2', port: 8080 }, remote: { ip: '10.0.0.1', port: 51234 } },
      { local: { ip: '10.0.0.3', port: 9090 }, remote: { ip: '10.0.0.9', port: 40000 } },
      { local: { ip: '::1', port: 80 }, remote: { ip: '::1', port: 33333 } },
    ];
    let seed = 11;
    const next = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    // some connections live on for a few heads (their template), most send one
    const memos = ends.map(() => new HeadMemo());
    for (let i = 0; i < 3000; i++) {
      const which = next(ends.length);
      if (next(3) !== 0) memos[which] = new HeadMemo();
      const memo = memos[which]!;
      const head = HEADS[next(HEADS.length)]!;
      const server = next(4) !== 0;
      const tls = next(10) === 0;
      const pad = next(8);
      const buf = Buffer.concat([Buffer.alloc(pad, 0x41), Buffer.from(head, 'latin1'), Buffer.alloc(3, 0x42)]);
      const span = new Span();
      const ok = memo.fill(span, buf, view(buf), pad, Buffer.byteLength(head, 'latin1'), server, ends[which]!.local, ends[which]!.remote, tls);
      const want = fresh(head, server, tls, ends[which]);
      assert.equal(ok, want !== undefined);
      if (want) assert.deepEqual({ ...fields(span), line: memo.line, traceparent: memo.traceparent }, want, `step ${i}: ${JSON.stringify(head)} on connection ${which}`);
    }
  });
});
