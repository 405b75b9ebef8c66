import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Http1Parser, newHttp1Counters, type Http1Options } from './http1.js';
import type { Chunk, Direction, Exchange, HttpRequest } from './protocol.js';

// --- helpers --------------------------------------------------------------------------

/** A scripted connection: each call gets increasing timestamps (start = t, end = t + 5). */
class Conn {
  readonly p: Http1Parser;
  t = 1000;
  readonly got: Exchange[] = [];
  last: Chunk | undefined;
  constructor(opts?: Http1Options) {
    this.p = new Http1Parser(opts);
  }
  /** one call of `bytes` (default: the payload's length) with the first `cap` bytes captured */
  call(dir: Direction, payload: string | Buffer, opts: { bytes?: number; cap?: number; tid?: number } = {}): Exchange[] {
    const full = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
    const bytes = opts.bytes ?? full.length;
    const cap = Math.min(opts.cap ?? 256, full.length, bytes);
    const c: Chunk = { dir, tsStart: this.t, tsEnd: this.t + 5, bytes, data: full.subarray(0, cap), tid: opts.tid ?? 7 };
    this.t += 10;
    this.last = c;
    const out = this.p.push(c);
    this.got.push(...out);
    return out;
  }
  in(payload: string | Buffer, opts?: { bytes?: number; cap?: number; tid?: number }): Exchange[] {
    return this.call('in', payload, opts);
  }
  out(payload: string | Buffer, opts?: { bytes?: number; cap?: number; tid?: number }): Exchange[] {
    return this.call('out', payload, opts);
  }
  end(): Exchange[] {
    const out = this.p.end(this.t);
    this.got.push(...out);
    return out;
  }
}

const get = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: svc:8080\r\n${extra}\r\n`;
const ok = (body: string, extra = ''): string =>
  `HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;
const one = (xs: Exchange[]): Exchange => {
  assert.equal(xs.length, 1, `expected one exchange, got ${xs.length}`);
  const x = xs[0];
  assert.ok(x);
  return x;
};
const res = (x: Exchange) => {
  assert.ok(x.response, 'exchange has a response');
  return x.response;
};
const bytesOf = (n: number, fill = 0x61): Buffer => Buffer.alloc(n, fill);

// --- basics ---------------------------------------------------------------------------

describe('http1: role, fields, timing', () => {
  it('server role: request read, response written; timing rules and sizes', () => {
    const c = new Conn();
    const reqText = get('/users/42?x=1', 'User-Agent: curl/8\r\nAuthorization: Bearer s3cr3t\r\nCookie: sid=1\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n');
    assert.deepEqual(c.in(reqText, { tid: 11 }), []);
    const reqChunk = c.last;
    assert.equal(c.p.connectionRole, 'server');
    const respText = ok('hello', 'Set-Cookie: a=b\r\nContent-Type: text/plain\r\n');
    const x = one(c.out(respText, { tid: 12 }));
    const respChunk = c.last;
    assert.ok(reqChunk && respChunk);
    assert.equal(x.protocol, 'http1');
    assert.equal(x.role, 'server');
    assert.equal(x.incomplete, undefined);
    assert.equal(x.request.method, 'GET');
    assert.equal(x.request.target, '/users/42?x=1');
    assert.equal(x.request.version, '1.1');
    assert.deepEqual(x.request.headers, {
      host: 'svc:8080',
      'user-agent': 'curl/8',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    });
    // server: a read starts at its return
    assert.equal(x.request.tsStart, reqChunk.tsEnd);
    assert.equal(x.request.tsEnd, reqChunk.tsEnd);
    assert.equal(x.request.tid, 11);
    assert.equal(x.request.size, reqText.length);
    assert.equal(x.request.bodySize, 0);
    const r = res(x);
    assert.equal(r.status, 200);
    assert.equal(r.version, '1.1');
    assert.deepEqual(r.headers, {}); // a response's headers only frame it: none is kept
    assert.equal(r.tsStart, respChunk.tsStart);
    assert.equal(r.tsEnd, respChunk.tsEnd);
    assert.equal(r.tid, 12);
    assert.equal(r.size, respText.length);
    assert.equal(r.bodySize, 5);
    assert.equal(c.p.error, undefined);
  });

  it('client role: request written; request starts at the first write, response ends at the last read', () => {
    const c = new Conn();
    c.out('POST /api/orders HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n');
    const first = c.last;
    c.out('0123456789');
    const bodyWrite = c.last;
    assert.equal(c.p.connectionRole, 'client');
    assert.deepEqual(c.in('HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\nab'), []);
    const respFirst = c.last;
    const x = one(c.in('cd'));
    const respLast = c.last;
    assert.ok(first && bodyWrite && respFirst && respLast);
    assert.equal(x.role, 'client');
    assert.equal(x.request.tsStart, first.tsStart);
    assert.equal(x.request.tsEnd, bodyWrite.tsEnd);
    assert.equal(x.request.bodySize, 10);
    const r = res(x);
    assert.equal(r.status, 201);
    assert.equal(r.tsStart, respFirst.tsEnd, 'a read message starts when the read returns');
    assert.equal(r.tsEnd, respLast.tsEnd);
    assert.equal(r.bodySize, 4);
  });

  it('onRequest sees each request when its head is parsed; the same object ends up in the exchange', () => {
    const seen: HttpRequest[] = [];
    const c = new Conn({ onRequest: (r) => seen.push(r) });
    c.in('POST /a HTTP/1.1\r\nContent-Length: 4\r\n\r\nab');
    assert.equal(seen.length, 1);
    assert.equal(seen[0]?.target, '/a');
    assert.equal(seen[0]?.tsEnd, 0, 'still in flight');
    c.in('cd' + get('/b'));
    assert.equal(seen.length, 2);
    const [x, y] = c.out(ok('1') + ok('2'));
    assert.equal(x?.request, seen[0]);
    assert.equal(y?.request, seen[1]);
    assert.equal(x?.request.bodySize, 4);
  });

  it('never keeps credentials, keeps only allow-listed headers, lowercases names, joins duplicates', () => {
    const c = new Conn();
    c.in(
      'GET / HTTP/1.1\r\nHOST: h\r\nProxy-Authorization: Basic eA==\r\nauthorization: x\r\nCOOKIE: y\r\n' +
        'X-Forwarded-For: 1.1.1.1\r\nx-forwarded-for: 2.2.2.2\r\nAccept: */*\r\nX-Request-Id: r1\r\nTracestate: a=b\r\n\r\n',
    );
    const x = one(c.out('HTTP/1.1 200 OK\r\nSet-Cookie: s=1\r\nset-cookie: t=2\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n'));
    assert.deepEqual(x.request.headers, {
      host: 'h',
      'x-forwarded-for': '1.1.1.1, 2.2.2.2',
      'x-request-id': 'r1',
      tracestate: 'a=b',
    });
    assert.deepEqual(res(x).headers, {}); // responses keep no headers
    const json = JSON.stringify(x);
    for (const secret of ['eA==', 'Basic', 'sid', 's=1', 't=2', 'y']) assert.ok(!json.includes(`"${secret}`), secret);
  });

  it('HTTP/1.0 request and response versions', () => {
    const c = new Conn();
    c.in('GET /old HTTP/1.0\r\n\r\n');
    const x = one(c.out('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi'));
    assert.equal(x.request.version, '1.0');
    assert.equal(res(x).version, '1.0');
  });
});

// --- keep-alive and pipelining ------------------------------------------------------

describe('http1: keep-alive and pipelining', () => {
  it('many sequential exchanges on one connection', () => {
    const c = new Conn();
    for (let i = 0; i < 50; i++) {
      assert.deepEqual(c.in(get(`/item/${i}`)), []);
      const x = one(c.out(ok(`body-${i}`)));
      assert.equal(x.request.target, `/item/${i}`);
      assert.equal(res(x).bodySize, `body-${i}`.length);
    }
    assert.equal(c.p.counters.exchanges, 50);
  });

  it('pipelined requests in one read are paired FIFO with responses in one write', () => {
    const c = new Conn();
    assert.deepEqual(c.in(get('/a') + get('/b') + get('/c'), { cap: 4096 }), []);
    const xs = c.out(ok('A') + 'HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nBB' + ok('CCC'), { cap: 4096 });
    assert.deepEqual(
      xs.map((x) => [x.request.target, res(x).status, res(x).bodySize]),
      [
        ['/a', 200, 1],
        ['/b', 404, 2],
        ['/c', 200, 3],
      ],
    );
  });

  it('pipelined requests, responses in separate writes, HEAD in the middle frames without body', () => {
    const c = new Conn();
    c.in(get('/a') + 'HEAD /b HTTP/1.1\r\nHost: h\r\n\r\n' + get('/c'), { cap: 4096 });
    assert.equal(one(c.out(ok('aaaa'))).request.target, '/a');
    // HEAD: Content-Length describes the GET body, none follows
    const xb = one(c.out('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n'));
    assert.equal(xb.request.method, 'HEAD');
    assert.equal(res(xb).bodySize, 0);
    assert.equal(one(c.out(ok('c'))).request.target, '/c');
  });

  it('a response body ending inside a call with the next response visible in the prefix', () => {
    const c = new Conn();
    c.out(get('/1') + get('/2'), { cap: 4096 });
    // one read: 100-byte body then the next response, all within the 256-byte prefix
    const body = 'x'.repeat(100);
    const xs = c.in(ok(body) + ok('yy'));
    assert.deepEqual(
      xs.map((x) => [x.request.target, res(x).bodySize]),
      [
        ['/1', 100],
        ['/2', 2],
      ],
    );
  });

  it('tolerates empty lines between messages', () => {
    const c = new Conn();
    c.in('POST /p HTTP/1.1\r\nContent-Length: 2\r\n\r\nab\r\n');
    one(c.out(ok('')));
    c.in('\r\n' + get('/next'));
    assert.equal(one(c.out(ok('z'))).request.target, '/next');
    assert.equal(c.p.error, undefined);
  });
});

// --- bodies ---------------------------------------------------------------------------

describe('http1: Content-Length bodies', () => {
  it('1 MiB response written in 16 KiB calls with 256-byte prefixes: exact end, then keep-alive continues', () => {
    const c = new Conn();
    c.in(get('/big'));
    const total = 1 << 20;
    const head = `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${total}\r\n\r\n`;
    const chunk = 16384;
    // first write: head + first 16 KiB - head bytes of body
    const first = Buffer.concat([Buffer.from(head, 'latin1'), bytesOf(chunk - head.length)]);
    assert.deepEqual(c.out(first), []);
    let sent = chunk - head.length;
    let got: Exchange[] = [];
    let calls = 1;
    while (sent < total) {
      const n = Math.min(chunk, total - sent);
      got = c.out(bytesOf(256, 0x00), { bytes: n });
      calls++;
      sent += n;
      if (sent < total) assert.deepEqual(got, [], 'not complete before the last byte');
    }
    const lastWrite = c.last;
    assert.ok(lastWrite);
    const x = one(got);
    assert.equal(calls, 65);
    assert.equal(res(x).bodySize, total);
    assert.equal(res(x).size, head.length + total);
    assert.equal(res(x).tsEnd, lastWrite.tsEnd);
    // the connection is still in sync
    c.in(get('/after'));
    assert.equal(one(c.out(ok('k'))).request.target, '/after');
    assert.equal(c.p.counters.headersTruncated, 0);
    assert.equal(c.p.counters.desync, 0);
  });

  it('request body split across reads and a large upload counted by bytes', () => {
    const c = new Conn();
    c.in('PUT /blob HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n' + 'z'.repeat(100), { cap: 256 });
    c.in(bytesOf(256), { bytes: 50000 });
    assert.deepEqual(c.out(ok('early?')), [], 'response before the request ended waits for the request');
    const x = one(c.in(bytesOf(256), { bytes: 49900 }));
    assert.equal(x.request.bodySize, 100000);
    assert.equal(res(x).status, 200);
  });

  it('Connection: close with Content-Length completes before the close', () => {
    const c = new Conn();
    c.in(get('/'));
    const x = one(c.out('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc'));
    assert.equal(res(x).bodySize, 3);
    assert.deepEqual(c.end(), []);
  });
});

describe('http1: responses without a body', () => {
  it('204 and 304 (even with Content-Length) end at the head', () => {
    const c = new Conn();
    c.in(get('/a') + get('/b'), { cap: 4096 });
    const xs = c.out('HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 512\r\nETag: "x"\r\n\r\n');
    assert.deepEqual(
      xs.map((x) => [res(x).status, res(x).bodySize]),
      [
        [204, 0],
        [304, 0],
      ],
    );
    c.in(get('/c'));
    assert.equal(res(one(c.out(ok('!')))).bodySize, 1);
  });

  it('100 Continue does not end the exchange; the final response does', () => {
    const c = new Conn();
    c.out('POST /upload HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n');
    assert.deepEqual(c.in('HTTP/1.1 100 Continue\r\n\r\n'), []);
    c.out('hello');
    assert.deepEqual(c.in('HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n'), []);
    const x = one(c.in('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    assert.equal(res(x).status, 200);
    assert.equal(x.request.bodySize, 5);
    assert.equal(c.p.counters.interim, 2);
  });

  it('100 Continue and the final response in one read', () => {
    const c = new Conn();
    c.out('POST /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n');
    c.out('x');
    const x = one(c.in('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n'));
    assert.equal(res(x).status, 500);
  });
});

describe('http1: EOF-delimited bodies and end()', () => {
  it('HTTP/1.0 response without Content-Length ends at end(), at the last chunk', () => {
    const c = new Conn();
    c.out('GET /legacy HTTP/1.0\r\n\r\n');
    assert.deepEqual(c.in('HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>'), []);
    assert.deepEqual(c.in(bytesOf(256), { bytes: 5000 }), []);
    const lastRead = c.last;
    c.t += 1_000_000; // the close comes much later
    const x = one(c.end());
    assert.ok(lastRead);
    assert.equal(x.incomplete, undefined);
    assert.equal(res(x).bodySize, 6 + 5000);
    assert.equal(res(x).tsEnd, lastRead.tsEnd);
    assert.deepEqual(c.p.push({ dir: 'in', tsStart: 0, tsEnd: 0, bytes: 3, data: Buffer.from('abc'), tid: 1 }), []);
  });

  it('Transfer-Encoding other than chunked in a response reads until EOF', () => {
    const c = new Conn();
    c.in(get('/'));
    c.out('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b');
    assert.equal(res(one(c.end())).bodySize, 2);
  });

  it('requests in flight at the close are reported incomplete, in order; a cut response keeps its head', () => {
    const c = new Conn();
    c.in(get('/a') + get('/b') + get('/c'), { cap: 4096 });
    c.out('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial');
    const xs = c.end();
    assert.deepEqual(
      xs.map((x) => [x.request.target, x.response?.status, x.incomplete]),
      [
        ['/a', 200, 'eof'],
        ['/b', undefined, 'eof'],
        ['/c', undefined, 'eof'],
      ],
    );
    assert.equal(c.p.counters.incomplete, 3);
    assert.deepEqual(c.end(), [], 'end() twice reports nothing more');
  });

  it('a request cut in its body is reported incomplete', () => {
    const c = new Conn();
    c.in('POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345');
    const x = one(c.end());
    assert.equal(x.incomplete, 'eof');
    assert.equal(x.response, undefined);
    assert.equal(x.request.bodySize, 5);
  });
});

// --- chunked --------------------------------------------------------------------------

describe('http1: chunked transfer-encoding', () => {
  const chunkedHead = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';

  it('fully visible chunks, extensions, trailers, a size line split across calls', () => {
    const c = new Conn();
    c.in(get('/stream'));
    assert.deepEqual(c.out(chunkedHead + '5;ext=1\r\nhello\r\n'), []);
    assert.deepEqual(c.out('1'), []);
    assert.deepEqual(c.out('0\r'), []);
    assert.deepEqual(c.out('\n0123456789abcdef\r\n0\r\nX-Checksum: 1\r\n'), []);
    const x = one(c.out('\r\n'));
    assert.equal(res(x).bodySize, 5 + 16);
    assert.equal(c.p.counters.chunkedBlind, 0);
    assert.equal(c.p.counters.inferredEnds, 0);
    c.in(get('/next'));
    assert.equal(one(c.out(ok('n'))).request.target, '/next');
  });

  it('whole chunked response in one write, then keep-alive', () => {
    const c = new Conn();
    c.in(get('/a'));
    const x = one(c.out(chunkedHead + '3\r\nabc\r\n0\r\n\r\n'));
    assert.equal(res(x).bodySize, 3);
    c.in(get('/b'));
    assert.equal(one(c.out(ok('b'))).request.target, '/b');
  });

  it('chunk data beyond the prefix is counted, not read (one writev per chunk, 256-byte prefix)', () => {
    const c = new Conn();
    c.in(get('/big'));
    c.out(chunkedHead);
    for (let i = 0; i < 64; i++) {
      // "4000\r\n" + 16384 bytes + "\r\n" in one call; only the size line and data start are captured
      const prefix = Buffer.concat([Buffer.from('4000\r\n'), bytesOf(250)]);
      assert.deepEqual(c.out(prefix, { bytes: 6 + 16384 + 2 }), []);
    }
    const x = one(c.out('0\r\n\r\n'));
    assert.equal(res(x).bodySize, 64 * 16384);
    assert.equal(c.p.counters.chunkedBlind, 0, 'framing never lost');
  });

  it('size lines beyond the prefix: blind, ended by a fully captured call ending in 0\\r\\n\\r\\n', () => {
    const c = new Conn();
    c.in(get('/go'));
    // bufio-style: 4 KiB writes that cut the chunk stream anywhere
    c.out(chunkedHead + '1f40\r\n' + 'a'.repeat(100), { bytes: 4096 });
    c.out(bytesOf(256), { bytes: 4096 }); // rest of the first chunk and the next size line, unseen
    assert.equal(c.p.counters.chunkedBlind, 1);
    assert.deepEqual(c.out(bytesOf(256), { bytes: 4096 }), []);
    const x = one(c.out('bbbbbbbbbb\r\n0\r\n\r\n'));
    const last = c.last;
    assert.ok(last);
    assert.equal(res(x).tsEnd, last.tsEnd);
    assert.equal(c.p.error, undefined);
    c.in(get('/again'));
    assert.equal(one(c.out(ok('1'))).request.target, '/again');
  });

  it('blind: a terminator at the end of a prefix that is not the whole call does not end the body', () => {
    const c = new Conn();
    c.in(get('/b'));
    c.out(chunkedHead + '1000\r\n' + 'a'.repeat(100), { bytes: 1000 });
    c.out(bytesOf(256), { bytes: 8000 }); // framing lost
    assert.equal(c.p.counters.chunkedBlind, 1);
    const prefix = Buffer.concat([bytesOf(249), Buffer.from('\r\n0\r\n\r\n')]);
    assert.deepEqual(c.out(prefix, { bytes: 5000 }), [], 'the call goes on past its prefix');
    assert.deepEqual(c.out('data ending in 10\r\n\r\n'), [], '"10\\r\\n\\r\\n" is not a last chunk');
    const x = one(c.out('tail\r\n0\r\n\r\n'));
    assert.equal(res(x).status, 200);
  });

  it('blind chunked response (client role) ended by the next request: ends at its last read', () => {
    const c = new Conn();
    c.out(get('/a'));
    c.in(chunkedHead + '2000\r\n' + 'a'.repeat(200), { bytes: 4000 });
    // the rest of the 8 KiB chunk, its CRLF and "0\r\n\r\n", past the prefix
    c.in(bytesOf(256), { bytes: 8192 - (4000 - chunkedHead.length - 6) + 7 });
    assert.equal(c.p.counters.chunkedBlind, 1);
    const lastRead = c.last;
    assert.ok(lastRead);
    const x = one(c.out(get('/b')));
    assert.equal(x.request.target, '/a');
    assert.equal(res(x).tsEnd, lastRead.tsEnd);
    assert.equal(c.p.counters.inferredEnds, 1);
    const y = one(c.in(ok('b')));
    assert.equal(y.request.target, '/b');
  });

  it('blind chunked response ended by idle() after idleNs, not before', () => {
    const c = new Conn({ idleNs: 1_000_000 });
    c.in(get('/sse'));
    c.out(chunkedHead + '2000\r\n' + 'a'.repeat(200), { bytes: 9000 });
    const last = c.last;
    assert.ok(last);
    assert.deepEqual(c.p.idle(last.tsEnd + 999_999), []);
    const x = one(c.p.idle(last.tsEnd + 1_000_000));
    assert.equal(res(x).tsEnd, last.tsEnd);
  });

  it('blind chunked response ended by the close', () => {
    const c = new Conn();
    c.in(get('/x'));
    c.out(chunkedHead + 'ffff\r\n' + 'a'.repeat(100), { bytes: 70000 });
    const x = one(c.end());
    assert.equal(x.incomplete, undefined);
    assert.equal(res(x).status, 200);
  });

  it('chunked request upload with visible framing', () => {
    const c = new Conn();
    c.in('POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n');
    c.in('0\r\n\r\n');
    const x = one(c.out(ok('')));
    assert.equal(x.request.bodySize, 4);
    assert.equal(x.request.headers['transfer-encoding'], 'chunked');
  });

  it('Transfer-Encoding wins over Content-Length', () => {
    const c = new Conn();
    c.in(get('/'));
    const x = one(c.out('HTTP/1.1 200 OK\r\nContent-Length: 999\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n'));
    assert.equal(res(x).bodySize, 1);
  });
});

// --- captures shorter than the message ---------------------------------------------

describe('http1: split and truncated heads', () => {
  it('a header block split across reads at every position', () => {
    const reqText = get('/split', 'User-Agent: ua\r\nX-Request-Id: abc\r\n');
    for (let a = 1; a < reqText.length; a++) {
      for (const b of [a + 1, Math.floor((a + reqText.length) / 2), reqText.length]) {
        if (b <= a || b > reqText.length) continue;
        const c = new Conn();
        c.in(reqText.slice(0, a));
        if (b > a) c.in(reqText.slice(a, b));
        if (b < reqText.length) c.in(reqText.slice(b));
        const x = one(c.out(ok('ok')));
        assert.equal(x.request.target, '/split', `split at ${a},${b}`);
        assert.equal(x.request.headers['x-request-id'], 'abc');
        assert.equal(x.request.size, reqText.length);
      }
    }
  });

  it('a response head split across reads, "\\r\\n\\r" | "\\n"', () => {
    const c = new Conn();
    c.out(get('/'));
    assert.deepEqual(c.in('HTTP/1.1 200 OK\r\nContent-Len'), []);
    assert.deepEqual(c.in('gth: 3\r\n\r'), []);
    const x = one(c.in('\nabc'));
    assert.equal(res(x).bodySize, 3);
  });

  it('a 4 KB request head written in one call with 256 bytes captured', () => {
    const c = new Conn();
    const head = `GET /dash HTTP/1.1\r\nHost: app\r\nCookie: ${'c'.repeat(4000)}\r\nX-Request-Id: late\r\n\r\n`;
    assert.deepEqual(c.out(head), []); // client; only the first 256 bytes captured
    const reqCall = c.last;
    assert.equal(c.p.counters.headersTruncated, 1);
    const x = one(c.in(ok('fine')));
    assert.ok(reqCall);
    assert.equal(x.request.method, 'GET');
    assert.equal(x.request.target, '/dash');
    assert.deepEqual(x.request.headers, { host: 'app' }, 'cookie never kept, unseen headers unknown');
    assert.equal(x.request.tsEnd, reqCall.tsEnd);
    assert.equal(x.request.size, head.length);
    assert.equal(x.request.bodySize, 0);
    // keep-alive continues
    c.out(get('/next'));
    assert.equal(one(c.in(ok('n'))).request.target, '/next');
  });

  it('truncated head with the body in the same write, then the next request', () => {
    const c = new Conn();
    const head = `POST /form HTTP/1.1\r\nContent-Length: 500\r\nX-Big: ${'h'.repeat(3000)}\r\n\r\n${'b'.repeat(500)}`;
    c.in(head); // server role
    const x = one(c.out(ok('')));
    assert.equal(x.request.bodySize, 500, 'declared Content-Length reported');
    assert.equal(x.request.size, head.length);
    c.in(get('/next'));
    assert.equal(one(c.out(ok('n'))).request.target, '/next');
    assert.equal(c.p.error, undefined);
  });

  it('truncated head then the body in later writes: the request ends at its last write', () => {
    const c = new Conn();
    c.out(`POST /u HTTP/1.1\r\nContent-Length: 20000\r\nX-Big: ${'h'.repeat(1000)}\r\n\r\n`);
    c.out(bytesOf(256), { bytes: 10000 });
    c.out(bytesOf(256), { bytes: 10000 });
    const lastBody = c.last;
    assert.ok(lastBody);
    const x = one(c.in(ok('')));
    assert.equal(x.request.tsEnd, lastBody.tsEnd);
    assert.equal(x.request.bodySize, 20000);
  });

  it('idle() leaves a quiet request in TAIL alone until idleNs', () => {
    const c = new Conn({ idleNs: 1e9 });
    c.in(`POST /slow HTTP/1.1\r\nContent-Length: 3\r\nX-Big: ${'h'.repeat(500)}\r\n\r\n`);
    const head = c.last;
    assert.ok(head);
    assert.deepEqual(c.p.idle(head.tsEnd + 1e9 - 1), []);
    c.in('abc'); // the body, absorbed by the request
    assert.equal(c.p.error, undefined);
    const x = one(c.out(ok('')));
    assert.equal(x.request.tsEnd, head.tsEnd + 10);
  });

  it('a truncated head read in two calls (server) is absorbed until the response', () => {
    const c = new Conn();
    const head = `GET /h HTTP/1.1\r\nX-Big: ${'h'.repeat(3000)}\r\n\r\n`;
    c.in(head.slice(0, 1448), { cap: 256 });
    c.in(head.slice(1448), { cap: 256 });
    const x = one(c.out(ok('ok')));
    assert.equal(x.request.size, head.length);
    assert.equal(c.p.error, undefined);
  });

  it('truncated response head (client): ended by the next request, at its last read', () => {
    const c = new Conn();
    c.out(get('/a'));
    c.in(`HTTP/1.1 200 OK\r\nSet-Cookie: ${'s'.repeat(2000)}\r\nContent-Length: 10\r\n\r\n`);
    c.in('0123456789');
    const last = c.last;
    assert.ok(last);
    const x = one(c.out(get('/b')));
    assert.equal(res(x).status, 200);
    assert.equal(res(x).tsEnd, last.tsEnd);
    assert.deepEqual(res(x).headers, {}, 'set-cookie never kept; content-length was beyond the prefix');
    assert.equal(res(one(c.in(ok('b')))).bodySize, 1);
    assert.equal(c.p.error, undefined);
  });

  it('a start line split into tiny reads after an inferred end is held back, then parsed', () => {
    const c = new Conn();
    c.out(get('/a'));
    c.in(`HTTP/1.1 200 OK\r\nX-Big: ${'s'.repeat(600)}\r\n\r\n`);
    c.in('H'); // could be body or the start of "HTTP/1.1": held back
    c.in('ello, body');
    const bodyEnd = c.last;
    assert.ok(bodyEnd);
    const x = one(c.out(get('/b')));
    assert.equal(res(x).tsEnd, bodyEnd.tsEnd, 'the held call turned out to be body');
    assert.deepEqual(c.in('HTTP/1.'), []);
    assert.deepEqual(c.in('1 404 Nope\r\nContent-Length: 2\r\n\r\n'), []);
    const y = one(c.in('no'));
    assert.equal(y.request.target, '/b');
    assert.equal(res(y).status, 404);
  });

  it('a request split as "P" | "OST ..." after an inferred end gets method POST', () => {
    const c = new Conn();
    c.in(`GET /a HTTP/1.1\r\nX-Big: ${'h'.repeat(600)}\r\n\r\n`); // server, TAIL
    one(c.out(ok('a'))); // rule 2 ended the request, the response completed
    assert.deepEqual(c.in('P'), []);
    c.in('OST /b HTTP/1.1\r\nContent-Length: 1\r\n\r\nz');
    const x = one(c.out(ok('b')));
    assert.equal(x.request.method, 'POST');
    assert.equal(x.request.target, '/b');
  });

  it('after an inferred end, a call that is not a start line means the inference was wrong: desync', () => {
    const c = new Conn();
    c.in(`POST /a HTTP/1.1\r\nX-Big: ${'h'.repeat(600)}\r\n\r\n`); // body length unknown
    one(c.out(ok('early'))); // the server answered: request assumed complete
    c.in('more body bytes, lower-case');
    assert.equal(c.p.error, 'desync');
  });

  describe('pipelining and inferred ends', () => {
    it('a TAIL request followed by another request (pipelining) stops: bytes may hide requests', () => {
      const c = new Conn();
      c.out(`GET /a HTTP/1.1\r\nX-Big: ${'h'.repeat(600)}\r\n\r\n`);
      assert.deepEqual(c.out(get('/b')), []);
      assert.equal(c.p.error, 'desync');
      assert.deepEqual(c.in(ok('a') + ok('b'), { cap: 4096 }), []);
    });

    it('a TAIL response followed by another response start (pipelining) stops', () => {
      const c = new Conn();
      c.out(get('/a'));
      c.in(`HTTP/1.1 200 OK\r\nX-Big: ${'s'.repeat(600)}\r\n\r\n`);
      assert.deepEqual(c.in(ok('b')), []);
      assert.equal(c.p.error, 'desync');
    });

    it('once pipelining was seen, a head longer than the capture stops instead of guessing', () => {
      const c = new Conn();
      c.out(get('/a') + get('/b'), { cap: 4096 });
      const xs = c.in(ok('a') + `HTTP/1.1 200 OK\r\nX-Big: ${'s'.repeat(600)}\r\n\r\n`);
      assert.equal(one(xs).request.target, '/a');
      assert.equal(c.p.error, 'desync');
    });

    it('blind chunked response with later requests queued cannot end by inference', () => {
      const c = new Conn();
      c.out(get('/a') + get('/b'), { cap: 4096 });
      c.in('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n' + 'x'.repeat(100), { bytes: 9000 });
      c.in('tail\r\n0\r\n\r\n'); // may be /b's terminator, not /a's
      assert.equal(c.p.error, 'desync');
      assert.deepEqual(c.got, []);
    });

    it('a request whose end was inferred, then pipelining before its response: stop', () => {
      const c = new Conn({ idleNs: 100 });
      c.out('POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n' + 'x'.repeat(100), { bytes: 9000 });
      const last = c.last;
      assert.ok(last);
      c.p.idle(last.tsEnd + 1000); // request end inferred
      c.out(get('/next'));
      assert.equal(c.p.error, 'desync');
    });
  });

  describe('interim responses with long heads', () => {
    const hints = `HTTP/1.1 103 Early Hints\r\nLink: <${'/x'.repeat(400)}>; rel=preload\r\n\r\n`;
    it('a long 103 in its own call, then the final response', () => {
      const c = new Conn();
      c.out(get('/page'));
      c.in(hints);
      const x = one(c.in(ok('<html>')));
      assert.equal(res(x).status, 200);
      assert.equal(c.p.counters.interim, 1);
    });
    it('a long 103 that absorbed more calls may hide the final response: a start line then stops', () => {
      const c = new Conn();
      c.out(get('/page'));
      c.in(hints);
      c.in('more unseen bytes', { bytes: 900, cap: 4 });
      assert.deepEqual(c.in(ok('x')), []);
      assert.equal(c.p.error, 'desync');
    });
    it('a long 103 then the next request: the final response was hidden, stop', () => {
      const c = new Conn();
      c.out(get('/page'));
      c.in(hints);
      assert.deepEqual(c.out(get('/next')), []);
      assert.equal(c.p.error, 'desync');
    });
  });

  it('a truncated head ended by 100 Continue is not ended (the body comes after it)', () => {
    const c = new Conn();
    c.out(`PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\nX-Big: ${'h'.repeat(600)}\r\n\r\n`);
    c.in('HTTP/1.1 100 Continue\r\n\r\n');
    c.out('body');
    const last = c.last;
    assert.ok(last);
    const x = one(c.in(ok('')));
    assert.equal(x.request.tsEnd, last.tsEnd);
    assert.equal(c.p.error, undefined);
  });

  it('a request line longer than the capture: target is the visible prefix', () => {
    const c = new Conn();
    const path = '/search?q=' + 'x'.repeat(1000);
    c.in(`GET ${path} HTTP/1.1\r\nHost: h\r\n\r\n`);
    const x = one(c.out(ok('r')));
    assert.equal(x.request.method, 'GET');
    assert.ok(path.startsWith(x.request.target));
    assert.equal(x.request.target.length, 256 - 4);
    assert.equal(x.request.version, '1.1');
  });
});

// --- errors ---------------------------------------------------------------------------

describe('http1: malformed input and desync', () => {
  const rejects = (name: string, feed: (c: Conn) => void, reason: string | RegExp) => {
    it(name, () => {
      const c = new Conn();
      feed(c);
      if (typeof reason === 'string') assert.equal(c.p.error, reason);
      else assert.match(c.p.error ?? '', reason);
      const before = c.got.length;
      // afterwards: nothing, whatever comes
      assert.deepEqual(c.in(get('/x')), []);
      assert.deepEqual(c.out(ok('y')), []);
      assert.deepEqual(c.end(), []);
      assert.equal(c.got.length, before);
    });
  };

  rejects('binary noise', (c) => c.in(Buffer.from([0x00, 0xff, 0x13, 0x37, 0x42, 0x99])), 'not http');
  rejects('a TLS ClientHello', (c) => c.out(Buffer.from('160301020001', 'hex')), 'not http');
  rejects('a server-first protocol', (c) => c.in('220 mail.example.com ESMTP\r\n'), 'not http');
  rejects('a response before any request', (c) => c.in('HTTP/1.1 200 OK\r\n\r\n'), 'not http');
  rejects('lower-case method', (c) => c.in('get / HTTP/1.1\r\n\r\n'), 'not http');
  rejects('bad version', (c) => c.in('GET / HTTX/1.1\r\n\r\n'), 'bad request line');
  rejects('missing target', (c) => c.in('GET HTTP/1.1\r\n\r\n'), 'bad request line');
  rejects('HTTP/2 prior-knowledge preface', (c) => c.out('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), 'http2');
  rejects('bad status line', (c) => {
    c.in(get('/'));
    c.out('HTTP/1.1 2x0 OK\r\n\r\n');
  }, 'bad status line');
  rejects('garbage instead of a response', (c) => {
    c.in(get('/'));
    c.out(Buffer.from([1, 2, 3, 4, 5]));
  }, 'bad status line');
  rejects('a header line without a colon', (c) => c.in('GET / HTTP/1.1\r\nHost h\r\n\r\n'), 'bad header');
  rejects('bad Content-Length', (c) => c.in('POST / HTTP/1.1\r\nContent-Length: 12a\r\n\r\n'), 'bad content-length');
  rejects('conflicting Content-Length', (c) => c.in('POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n'), 'bad content-length');
  rejects('request Transfer-Encoding without chunked', (c) => c.in('POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n'), 'bad transfer-encoding');
  rejects('bad chunk size', (c) => {
    c.in(get('/'));
    c.out('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n');
  }, 'bad chunk size');
  rejects('no CRLF after chunk data', (c) => {
    c.in(get('/'));
    c.out('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY');
  }, 'bad chunk');
  rejects('a header block over 64 KiB (all captured)', (c) => {
    c.in('GET / HTTP/1.1\r\n');
    for (let i = 0; i < 70; i++) c.in(`X-Pad-${i}: ${'p'.repeat(1000)}\r\n`, { cap: 4096 });
  }, 'headers too large');
  rejects('a header block over 64 KiB in one captured call', (c) => {
    c.in(`GET / HTTP/1.1\r\nX-Pad: ${'p'.repeat(70000)}\r\n\r\n`, { cap: 80000 });
  }, 'headers too large');
  rejects('a response with no request', (c) => {
    c.in('POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc');
    one(c.out(ok('')));
    c.out(ok('again'));
  }, 'unpaired response');
  rejects('a response while the request head is still incomplete', (c) => {
    c.in('GET / HTTP/1.1\r\nHost: a\r\n');
    c.out(ok(''));
  }, 'unpaired response');
  rejects('noise after a complete exchange on the same side', (c) => {
    c.in(get('/a'));
    c.in('\x00\x01garbage');
  }, 'bad request line');

  it('drops exchanges completed in the same push as malformed input', () => {
    const c = new Conn();
    c.in(get('/a'));
    assert.deepEqual(c.out(ok('a') + '\x00\x00\x00junk'), []);
    assert.equal(c.p.error, 'bad status line');
    assert.equal(c.p.counters.malformed, 1);
  });

  it('too many pipelined requests', () => {
    const c = new Conn({ maxPending: 4 });
    c.in(get('/1') + get('/2') + get('/3') + get('/4') + get('/5'), { cap: 4096 });
    assert.equal(c.p.error, 'too many pending');
  });

  it('desync: a pipelined request starting beyond the captured prefix', () => {
    const c = new Conn();
    const first = `POST /a HTTP/1.1\r\nContent-Length: 300\r\n\r\n${'b'.repeat(300)}`;
    c.in(first + get('/b')); // only 256 bytes captured: /b's request line is unseen
    assert.equal(c.p.error, 'desync');
    assert.equal(c.p.counters.desync, 1);
    assert.equal(c.p.counters.malformed, 0);
    assert.deepEqual(c.out(ok('a')), []);
    assert.deepEqual(c.end(), []);
  });

  it('desync keeps the exchange that ended exactly before the unseen start', () => {
    const c = new Conn();
    c.out(get('/a') + get('/b'), { cap: 4096 });
    const xs = c.in(ok('x'.repeat(400)) + ok('second'));
    assert.equal(one(xs).request.target, '/a');
    assert.equal(res(one(xs)).bodySize, 400);
    assert.equal(c.p.error, 'desync');
    assert.deepEqual(c.in(ok('more')), []);
  });

  it('a call with nothing captured where a message must start is a desync', () => {
    const c = new Conn();
    c.in(get('/a'));
    one(c.out(ok('a')));
    c.in(Buffer.alloc(0), { bytes: 100 });
    assert.equal(c.p.error, 'desync');
  });
});

describe('http1: protocol switches', () => {
  it('101 Switching Protocols reports the exchange and stops', () => {
    const c = new Conn();
    c.in(get('/ws', 'Connection: Upgrade\r\nUpgrade: websocket\r\n'));
    const x = one(c.out('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello'));
    assert.equal(res(x).status, 101);
    assert.equal(c.p.error, 'upgrade');
    assert.deepEqual(c.in(Buffer.from([0x81, 0x85, 1, 2, 3, 4])), []);
    assert.equal(c.p.counters.malformed, 0);
  });

  it('CONNECT 200 reports the exchange and stops (tunnel)', () => {
    const c = new Conn();
    c.out('CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n');
    const x = one(c.in('HTTP/1.1 200 Connection Established\r\n\r\n'));
    assert.equal(x.request.target, 'db:5432');
    assert.equal(c.p.error, 'tunnel');
  });
});

describe('http1: mid-stream attach and shared counters', () => {
  it('midStream skips until a request line, then traces', () => {
    const c = new Conn({ midStream: true });
    assert.deepEqual(c.out(bytesOf(256), { bytes: 10000 }), []); // tail of an older response
    assert.deepEqual(c.out('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), []);
    assert.equal(c.p.error, undefined);
    assert.equal(c.p.connectionRole, undefined);
    c.in(get('/fresh'));
    assert.equal(c.p.connectionRole, 'server');
    assert.equal(one(c.out(ok('!'))).request.target, '/fresh');
    assert.equal(c.p.counters.skippedBytes, 10000 + 38);
  });

  it('midStream gives up after maxSkipBytes', () => {
    const c = new Conn({ midStream: true, maxSkipBytes: 1000 });
    c.in(bytesOf(10), { bytes: 600 });
    assert.equal(c.p.error, undefined);
    c.in(bytesOf(10), { bytes: 600 });
    assert.equal(c.p.error, 'no request line');
  });

  it('one counters object aggregates many parsers', () => {
    const counters = newHttp1Counters();
    for (let i = 0; i < 3; i++) {
      const c = new Conn({ counters });
      c.in(get('/'));
      c.out(ok(''));
    }
    const bad = new Conn({ counters });
    bad.in('\x00');
    assert.equal(counters.exchanges, 3);
    assert.equal(counters.malformed, 1);
  });
});

// --- properties -----------------------------------------------------------------------

/** deterministic PRNG */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Ex {
  target: string;
  status: number;
  reqBody: number;
  resBody: number;
}

/** A keep-alive client conversation with assorted framings; returns the wire bytes per message. */
function conversation(r: () => number, n: number): { msgs: { dir: Direction; bytes: Buffer }[]; want: Ex[] } {
  const msgs: { dir: Direction; bytes: Buffer }[] = [];
  const want: Ex[] = [];
  for (let i = 0; i < n; i++) {
    const kind = Math.floor(r() * 6);
    const target = `/r/${i}`;
    const reqBody = kind === 1 ? Math.floor(r() * 3000) : 0;
    const reqHead =
      kind === 1
        ? `POST ${target} HTTP/1.1\r\nHost: h\r\nContent-Length: ${reqBody}\r\n\r\n`
        : `${kind === 4 ? 'HEAD' : 'GET'} ${target} HTTP/1.1\r\nHost: h\r\nUser-Agent: prop\r\n\r\n`;
    msgs.push({ dir: 'out', bytes: Buffer.concat([Buffer.from(reqHead, 'latin1'), bytesOf(reqBody)]) });
    let status = 200;
    let resBody = 0;
    let wire: Buffer;
    if (kind === 2) {
      const sizes = Array.from({ length: 1 + Math.floor(r() * 4) }, () => 1 + Math.floor(r() * 2000));
      resBody = sizes.reduce((a, b) => a + b, 0);
      const parts: Buffer[] = [Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'latin1')];
      for (const s of sizes) parts.push(Buffer.from(`${s.toString(16)}\r\n`, 'latin1'), bytesOf(s, 0x63), Buffer.from('\r\n'));
      parts.push(Buffer.from('0\r\n\r\n'));
      wire = Buffer.concat(parts);
    } else if (kind === 3) {
      status = 204;
      wire = Buffer.from('HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n', 'latin1');
    } else if (kind === 4) {
      wire = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 777\r\n\r\n', 'latin1');
    } else {
      status = kind === 5 ? 503 : 200;
      resBody = Math.floor(r() * 5000);
      wire = Buffer.concat([Buffer.from(`HTTP/1.1 ${status} X\r\nContent-Length: ${resBody}\r\n\r\n`, 'latin1'), bytesOf(resBody, 0x64)]);
    }
    msgs.push({ dir: 'in', bytes: wire });
    want.push({ target, status, reqBody, resBody });
  }
  return { msgs, want };
}

/** Cut each message into random calls (never merging messages). */
function cut(r: () => number, msg: Buffer, maxCall: number): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (off < msg.length) {
    const n = 1 + Math.floor(r() * maxCall);
    out.push(msg.subarray(off, off + n));
    off += n;
  }
  return out;
}

/**
 * A conversation with assorted framings (both roles, optional pipelining), cut into calls
 * that may coalesce messages of one direction, captured to a random prefix size. Reports
 * how many exchanges came out, how many were mispaired, and how many complete responses
 * ended at another call than the one holding their last byte.
 */
function adversarial(seed: number): { err: string | undefined; got: number; total: number; wrong: number; badEnd: number; cap: number; pipeline: boolean } {
  const r = rng(seed);
  const L = (t: string): Buffer => Buffer.from(t, 'latin1');
  const n = 8 + Math.floor(r() * 8);
  const ex: { req: Buffer; res: Buffer[]; target: string; status: number }[] = [];
  for (let i = 0; i < n; i++) {
    const k = Math.floor(r() * 9);
    const target = `/r/${i}`;
    const big = r() < 0.25 ? `X-Big: ${'h'.repeat(Math.floor(r() * 3000))}\r\n` : '';
    const method = k === 4 ? 'HEAD' : k === 1 || k === 7 ? 'POST' : 'GET';
    const body = method === 'POST' ? Math.floor(r() * 2000) : 0;
    const req = Buffer.concat([
      L(`${method} ${target} HTTP/1.1\r\nHost: h\r\n${big}${method === 'POST' ? `Content-Length: ${body}\r\n` : ''}\r\n`),
      bytesOf(body, 0x70),
    ]);
    const rbig = r() < 0.2 ? `Set-Cookie: ${'s'.repeat(Math.floor(r() * 3000))}\r\n` : '';
    const res: Buffer[] = [];
    let status = 200;
    if (k === 7) res.push(L('HTTP/1.1 100 Continue\r\n\r\n'));
    if (k === 2) {
      const parts = [L(`HTTP/1.1 200 OK\r\n${rbig}Transfer-Encoding: chunked\r\n\r\n`)];
      const m = 1 + Math.floor(r() * 4);
      for (let j = 0; j < m; j++) {
        const sz = 1 + Math.floor(r() * 3000);
        parts.push(L(`${sz.toString(16)}\r\n`), bytesOf(sz, 0x63), L('\r\n'));
      }
      parts.push(L('0\r\n\r\n'));
      res.push(Buffer.concat(parts));
    } else if (k === 3) {
      status = 204;
      res.push(L(`HTTP/1.1 204 No Content\r\n${rbig}\r\n`));
    } else if (k === 4) {
      res.push(L(`HTTP/1.1 200 OK\r\n${rbig}Content-Length: 777\r\n\r\n`));
    } else if (k === 8) {
      status = 304;
      res.push(L(`HTTP/1.1 304 Not Modified\r\n${rbig}\r\n`));
    } else {
      status = k === 5 ? 503 : 200;
      const rb = Math.floor(r() * 6000);
      res.push(Buffer.concat([L(`HTTP/1.1 ${status} X\r\n${rbig}Content-Length: ${rb}\r\n\r\n`), bytesOf(rb, 0x64)]));
    }
    ex.push({ req, res, target, status });
  }
  const pipeline = r() < 0.3;
  const server = r() < 0.5;
  const reqDir: Direction = server ? 'in' : 'out';
  const resDir: Direction = server ? 'out' : 'in';
  // runs of one direction: [message bytes, index of the exchange it completes or -1]
  const runs: { dir: Direction; msgs: [Buffer, number][] }[] = [];
  for (let i = 0; i < ex.length; ) {
    const batch = pipeline ? ex.slice(i, i + 1 + Math.floor(r() * 3)) : ex.slice(i, i + 1);
    runs.push({ dir: reqDir, msgs: batch.map((e) => [e.req, -1]) });
    runs.push({ dir: resDir, msgs: batch.flatMap((e, j) => e.res.map((b, k): [Buffer, number] => [b, k === e.res.length - 1 ? i + j : -1])) });
    i += batch.length;
  }
  const cap = r() < 0.2 ? Math.floor(r() * 24) : 16 + Math.floor(r() * 300);
  const coalesce = r() < 0.5;
  const p = new Http1Parser({ idleNs: 1e15 });
  const got: Exchange[] = [];
  const trueEnd: number[] = [];
  let t = 0;
  for (const run of runs) {
    const pieces = coalesce ? [run.msgs] : run.msgs.map((m) => [m]);
    const maxCall = 1 + Math.floor(r() * (r() < 0.3 ? 40 : 5000));
    for (const piece of pieces) {
      const buf = Buffer.concat(piece.map((m) => m[0]));
      const ends: [number, number][] = [];
      let o = 0;
      for (const [b, fin] of piece) {
        o += b.length;
        ends.push([o, fin]);
      }
      for (let off = 0; off < buf.length; ) {
        const len = Math.min(1 + Math.floor(r() * maxCall), buf.length - off);
        t += 10;
        for (const [e, fin] of ends) if (fin >= 0 && e > off && e <= off + len) trueEnd[fin] = t + 5;
        const part = buf.subarray(off, off + len);
        got.push(...p.push({ dir: run.dir, tsStart: t, tsEnd: t + 5, bytes: len, data: part.subarray(0, cap), tid: 1 }));
        off += len;
      }
    }
  }
  got.push(...p.end(t + 1000));
  let wrong = 0;
  let badEnd = 0;
  let last = -1;
  for (const x of got) {
    // a target may be cut by a tiny capture: the next exchange whose target it prefixes
    let k = ex.findIndex((e) => e.target === x.request.target);
    if (k <= last) k = ex.findIndex((e, j) => j > last && x.request.target.length > 0 && e.target.startsWith(x.request.target));
    const w = ex[k];
    if (w === undefined || (x.response !== undefined && x.response.status !== w.status)) wrong++;
    else if (x.response !== undefined && x.incomplete === undefined && x.response.tsEnd !== trueEnd[k]) badEnd++;
    last = k;
  }
  return { err: p.error, got: got.length, total: ex.length, wrong, badEnd, cap, pipeline };
}

describe('http1: properties', () => {
  it('fully captured, cut at random: every exchange exact, in order', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const r = rng(seed);
      const { msgs, want } = conversation(r, 12);
      const c = new Conn();
      for (const m of msgs) for (const part of cut(r, m.bytes, 1 + Math.floor(r() * 600))) c.call(m.dir, part, { cap: part.length });
      c.end();
      assert.equal(c.p.error, undefined, `seed ${seed}`);
      assert.deepEqual(
        c.got.map((x) => ({ target: x.request.target, status: x.response?.status, reqBody: x.request.bodySize, resBody: x.response?.bodySize })),
        want,
        `seed ${seed}`,
      );
      assert.ok(c.got.every((x) => x.incomplete === undefined));
    }
  });

  it('partial captures: whatever is reported is the right exchange, never a wrong one', () => {
    let reported = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const r = rng(seed * 7919);
      const { msgs, want } = conversation(r, 10);
      const cap = 16 + Math.floor(r() * 300);
      const c = new Conn();
      for (const m of msgs) for (const part of cut(r, m.bytes, 1 + Math.floor(r() * 3000))) c.call(m.dir, part, { cap });
      c.end();
      for (let i = 0; i < c.got.length; i++) {
        const x = c.got[i];
        const w = want[i];
        assert.ok(x && w);
        assert.equal(x.request.target, w.target, `seed ${seed} #${i}`);
        if (x.response) assert.equal(x.response.status, w.status, `seed ${seed} #${i}`);
      }
      reported += c.got.length;
    }
    assert.ok(reported > 2900, `nearly all exchanges reported (${reported})`);
  });

  it('adversarial: both roles, coalesced calls, long heads, 1xx, blind chunks, tiny captures', () => {
    const stats = { plain: 0, plainClean: 0, piped: 0, reported: 0 };
    for (let seed = 1; seed <= 1500; seed++) {
      const o = adversarial(seed);
      stats.reported += o.got;
      if (!o.pipeline) {
        // without pipelining every inference rule is sound: never a wrong pair or a wrong end
        assert.equal(o.wrong, 0, `seed ${seed}: wrong pair`);
        assert.equal(o.badEnd, 0, `seed ${seed}: wrong response end`);
        if (o.cap >= 64) {
          stats.plain++;
          assert.equal(o.err, undefined, `seed ${seed}`);
          assert.equal(o.got, o.total, `seed ${seed}: all traced`);
          stats.plainClean++;
        }
      } else if (o.cap >= 64) {
        // with pipelining messages can hide in unseen bytes: the parser stops rather than mispair
        stats.piped++;
        assert.equal(o.wrong, 0, `seed ${seed}: wrong pair (pipelined)`);
      }
    }
    assert.ok(stats.plain > 500 && stats.piped > 100, JSON.stringify(stats));
  });

  it('random bytes never throw', () => {
    const r = rng(42);
    for (let i = 0; i < 2000; i++) {
      const c = new Conn({ midStream: r() < 0.3 });
      const prefix = r() < 0.5 ? get('/') : '';
      c.in(prefix);
      for (let k = 0; k < 5; k++) {
        const b = Buffer.alloc(1 + Math.floor(r() * 300));
        for (let j = 0; j < b.length; j++) b[j] = Math.floor(r() * 256);
        // sprinkle HTTP-ish tokens into the noise
        if (r() < 0.3) b.write('HTTP/1.1 200 OK\r\n', Math.floor(r() * b.length), 'latin1');
        if (r() < 0.3) b.write('\r\n\r\n', Math.floor(r() * b.length), 'latin1');
        c.call(r() < 0.5 ? 'in' : 'out', b, { bytes: b.length + Math.floor(r() * 3) * 100, cap: Math.floor(r() * b.length) });
      }
      c.p.idle(1e15);
      c.end();
    }
  });
});
