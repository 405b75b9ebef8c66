// The one-pass head reader against the full parser: on every head the reader takes, it must
// give what Http1Parser.requestHead gives; on a head the parser refuses, the reader must not
// take it. Heads are generated from the parts real and hostile requests are made of, then
// damaged byte by byte (seeded: a failure names its seed).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Http1Parser, parseContentLength, parseContentLengthBytes } from './http1.js';
import { newRequestHeadFields, readRequestHead, sameBytes, type RequestHeadFields } from './http1-head.js';
// seeded, so a failing head can be made again from its seed
import { rng } from '../../../test/fuzz-bytes.js';

const METHODS = ['GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'PATCH', 'OPTIONS', 'M-SEARCH', 'GE', 'get', 'G\u00e9T', 'ABCDEFGHIJKLMNOPQRST', 'ABCDEFGHIJKLMNOPQRSTU', ''];
const TARGETS = ['/', '/orders/1234?x=1', '/a b/c', 'http://example.com/x?y', '*', 'example.com:443', '/\u00ff\u00e9', '', `/${'p'.repeat(2100)}`, '/x\ry', '/x\ny'];
const VERSIONS = ['HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.2', 'http/1.1', 'HTTP/1.1 ', 'HTTP/1.'];
const NAMES = ['Host', 'host', 'HOST', 'traceparent', 'Traceparent', 'User-Agent', 'user-agent', 'X-Forwarded-For', 'x-forwarded-for', 'Content-Length', 'content-length', 'Transfer-Encoding', 'Accept', 'Cookie', 'Authorization', 'tracestate', 'Connection', 'Upgrade', 'X-Request-Id', 'Content-Type', 'Hos', 'User_Agent', 'X-Forwarded-Fo'];
const VALUES = ['127.0.0.1:8080', 'example.com', 'user:pw@example.com', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'curl/8.0', ' padded\t', '\t', '', '12', '12, 12', '12, 13', 'abc', '1 2', 'a, b', 'x'.repeat(1030), 'caf\u00e9', '10.0.0.1, 10.0.0.2'];

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}

/** the first `good` entries of xs most of the time, any entry else */
function mostly<T>(r: () => number, xs: readonly T[], good: number): T {
  return r() < 0.85 ? xs[Math.floor(r() * good)]! : pick(r, xs);
}

/** a request head, mostly well formed */
function makeHead(r: () => number): Buffer {
  let s = `${mostly(r, METHODS, 7)}${r() < 0.97 ? ' ' : '  '}${mostly(r, TARGETS, 7)} ${mostly(r, VERSIONS, 2)}\r\n`;
  const n = Math.floor(r() * 6);
  for (let i = 0; i < n; i++) {
    const kind = r();
    if (kind < 0.04) s += ` folded continuation\r\n`;
    else if (kind < 0.06) s += `no colon here\r\n`;
    else if (kind < 0.08) s += `: empty name\r\n`;
    else if (kind < 0.1) s += ` Host: leading space\r\n`;
    else s += `${pick(r, NAMES)}:${r() < 0.8 ? ' ' : ''}${mostly(r, VALUES, 10)}\r\n`;
  }
  return Buffer.from(`${s}\r\n`, 'latin1');
}

/** one random change: a byte flipped, a CR, LF, space or colon put in, a range cut */
function damage(b: Buffer, r: () => number): Buffer {
  const at = Math.floor(r() * (b.length + 1));
  switch (Math.floor(r() * 4)) {
    case 0: {
      const out = Buffer.from(b);
      if (out.length) out[Math.min(at, out.length - 1)]! ^= 1 << Math.floor(r() * 8);
      return out;
    }
    case 1:
      return Buffer.concat([b.subarray(0, at), Buffer.from(pick(r, ['\r', '\n', ' ', ':', '\t', '\r\n']), 'latin1'), b.subarray(at)]);
    case 2:
      return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + Math.floor(r() * 8)))]);
    default:
      return b;
  }
}

/** the reader's answer, or undefined */
function fast(buf: Buffer, start: number, headLen: number, limit: number): RequestHeadFields | undefined {
  const out = newRequestHeadFields();
  return readRequestHead(buf, start, headLen, limit, out) ? out : undefined;
}

/** what the full parser says, in the reader's terms */
function full(buf: Buffer, headLen: number): RequestHeadFields | undefined {
  const h = Http1Parser.requestHead(buf, headLen);
  if (!h) return undefined;
  return { method: h.method, target: h.target, version: h.version, host: h.headers.host, traceparent: h.headers.traceparent, userAgent: h.headers['user-agent'], forwardedFor: h.headers['x-forwarded-for'] };
}

describe('readRequestHead', () => {
  it('reads a plain head: the start line and the four headers a span and the linker use', () => {
    const b = Buffer.from('GET /orders/1?x=1 HTTP/1.1\r\nHost: a:80\r\nUser-Agent: curl/8\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nX-Forwarded-For: 10.0.0.1\r\nAccept: */*\r\n\r\n');
    assert.deepEqual(fast(b, 0, b.length, b.length), {
      method: 'GET',
      target: '/orders/1?x=1',
      version: '1.1',
      host: 'a:80',
      userAgent: 'curl/8',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      forwardedFor: '10.0.0.1',
    });
  });

  it('reads a head inside a larger buffer (a batch) at its offset', () => {
    const head = Buffer.from('POST /p HTTP/1.0\r\nContent-Length: 5\r\n\r\n');
    const b = Buffer.concat([Buffer.from('xxxx'), head, Buffer.from('yyyy')]);
    assert.deepEqual(fast(b, 4, head.length, b.length), full(head, head.length));
    assert.equal(fast(b, 4, head.length + 5, 4 + head.length), undefined, 'a head past the captured bytes is not read');
  });

  it('leaves what is not plain to the full parser: folded lines, repeated headers, bad lengths', () => {
    for (const s of ['GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 'GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n', 'GET / HTTP/2.0\r\n\r\n', 'GET /\r\n\r\n']) {
      const b = Buffer.from(s);
      assert.equal(fast(b, 0, b.length, b.length), undefined, JSON.stringify(s));
    }
  });

  it('agrees with Http1Parser.requestHead on 40,000 generated and damaged heads', () => {
    let taken = 0;
    let refused = 0;
    for (let seed = 1; seed <= 40_000; seed++) {
      const r = rng(seed);
      let b = makeHead(r);
      const damages = r() < 0.5 ? 0 : Math.floor(r() * 3);
      for (let i = 0; i < damages; i++) b = damage(b, r);
      // headLen as the kernel gives it (the whole head), or cut short, or past the bytes
      const headLen = r() < 0.9 ? b.length : Math.floor(r() * (b.length + 4));
      const want = full(b, headLen);
      const got = fast(b, 0, headLen, b.length);
      if (got === undefined) {
        refused++;
        continue;
      }
      taken++;
      assert.deepEqual(got, want, `seed ${seed}: ${JSON.stringify(b.toString('latin1'))} headLen ${headLen}`);
    }
    // both kinds of head were seen (the generator is not all good or all bad)
    assert.ok(taken > 10_000 && refused > 5_000, `taken ${taken}, refused ${refused}`);
  });
});

describe('sameBytes', () => {
  it('finds a difference at any position, at any offset and length (word and byte steps)', () => {
    const view = (b: Buffer) => new DataView(b.buffer, b.byteOffset, b.length);
    const r = rng(99);
    for (let len = 0; len <= 40; len++) {
      for (const off of [0, 1, 2, 3, 5, 8]) {
        const prev = Buffer.from(Array.from({ length: len }, () => Math.floor(r() * 256)));
        const batch = Buffer.concat([Buffer.alloc(off, 7), prev, Buffer.alloc(3, 9)]);
        assert.equal(sameBytes(view(batch), off, view(prev), len), true, `len ${len} off ${off}`);
        for (let at = 0; at < len; at++) {
          const other = Buffer.from(batch);
          other[off + at]! ^= 1 << Math.floor(r() * 8);
          assert.equal(sameBytes(view(other), off, view(prev), len), false, `len ${len} off ${off} at ${at}`);
        }
      }
    }
  });
});

describe('parseContentLengthBytes', () => {
  it('reads what parseContentLength reads from the same text, on 20,000 generated values', () => {
    const r = rng(5);
    const parts = ['0', '1', '7', '12', '783', '9007199254740993', ' ', '\t', ',', ', ', 'a', '-', '+', ''];
    for (let k = 0; k < 20_000; k++) {
      let v = '';
      const n = Math.floor(r() * 5);
      for (let i = 0; i < n; i++) v += pick(r, parts);
      const buf = Buffer.from(`xx${v}yy`, 'latin1');
      assert.equal(parseContentLengthBytes(buf, 2, 2 + v.length), parseContentLength(v), JSON.stringify(v));
    }
  });
});
