// Micro-benchmark: HTTP/1 framing + pairing throughput on one core (exchanges per second).
// Needs a build first (npx tsc -p tsconfig.json). Run: node bench/http1-parse.mjs [seconds]
// Synthetic keep-alive streams as the kernel reports them (256-byte captured prefixes);
// chunks are built once so the loop measures the parser, not Buffer allocation.

import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const candidates = ['dist/src/agent/protocols/http1.js', 'dist/agent/protocols/http1.js'].map((p) => join(root, p));
const found = candidates.find((p) => existsSync(p));
if (!found) {
  console.error(`build first: none of ${candidates.join(', ')} exists`);
  process.exit(1);
}
const { Http1Parser, newHttp1Counters } = await import(pathToFileURL(found).href);

const seconds = Number(process.argv[2] ?? 2);
const CAP = 256;

function chunk(dir, text, bytes) {
  const full = typeof text === 'string' ? Buffer.from(text, 'latin1') : text;
  return { dir, tsStart: 0, tsEnd: 0, bytes: bytes ?? full.length, data: full.subarray(0, CAP), tid: 1 };
}

const request =
  'GET /api/v1/users/12345/orders?limit=20 HTTP/1.1\r\nHost: orders.svc.cluster.local:8080\r\n' +
  'User-Agent: Go-http-client/1.1\r\nAccept: application/json\r\n' +
  'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nAccept-Encoding: gzip\r\n\r\n';
const body = '{"orders":[' + '{"id":1,"total":9.99},'.repeat(20) + '{"id":0}]}';
const response =
  'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n' +
  `Content-Length: ${body.length}\r\n\r\n${body}`;

const scenarios = {
  // one read per request, one write per response (header + small body), server side
  'keep-alive, small JSON (server)': [chunk('in', request), chunk('out', response)],
  // client side: same bytes, other directions
  'keep-alive, small JSON (client)': [chunk('out', request), chunk('in', response)],
  // response header, then a 64 KiB body in four 16 KiB writes: only prefixes captured
  'keep-alive, 64 KiB body in 4 writes': [
    chunk('in', request),
    chunk('out', 'HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 65536\r\n\r\n'),
    ...Array.from({ length: 4 }, () => chunk('out', Buffer.alloc(CAP, 0x61), 16384)),
  ],
  // chunked response: head, 3 chunks written as "size CRLF data CRLF", terminator
  'keep-alive, chunked (3 chunks)': [
    chunk('in', request),
    chunk('out', 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n'),
    ...Array.from({ length: 3 }, () => chunk('out', Buffer.concat([Buffer.from('1000\r\n'), Buffer.alloc(CAP - 6, 0x62)]), 6 + 4096 + 2)),
    chunk('out', '0\r\n\r\n'),
  ],
  // request head larger than the capture (cookies): end of head inferred
  'keep-alive, 2 KB request head (truncated)': [
    chunk('in', request.replace('\r\n\r\n', `\r\nCookie: ${'c'.repeat(2000)}\r\n\r\n`)),
    chunk('out', response),
  ],
};

function run(name, calls) {
  const counters = newHttp1Counters();
  const perConn = 1000; // exchanges per connection, then a new parser (connection churn)
  let exchanges = 0;
  let t = 0;
  const deadline = performance.now() + seconds * 1000;
  const start = performance.now();
  while (performance.now() < deadline) {
    const p = new Http1Parser({ counters });
    for (let i = 0; i < perConn; i++) {
      for (const c of calls) {
        t += 1000;
        c.tsStart = t;
        c.tsEnd = t + 500;
        exchanges += p.push(c).length;
      }
    }
    exchanges += p.end(t).length;
    if (p.error !== undefined) throw new Error(`${name}: parser error ${p.error}`);
  }
  const s = (performance.now() - start) / 1000;
  const rate = exchanges / s;
  console.log(`${name.padEnd(44)} ${Math.round(rate).toLocaleString('en-US').padStart(12)} exchanges/s  (${(1e9 / rate).toFixed(0)} ns each)`);
}

console.log(`node ${process.version}, ${seconds}s per scenario, one core`);
for (const [name, calls] of Object.entries(scenarios)) run(name, calls);
