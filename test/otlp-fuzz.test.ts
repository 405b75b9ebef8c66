// The OTLP receiver against malformed, truncated and oversized bodies: 10,000+ requests made by
// mutating real ones (the OpenTelemetry JS SDK's spans, serialized by the same
// @opentelemetry/otlp-transformer serializers its OTLP exporters use; metrics and logs requests
// encoded with the OpenTelemetry generated definitions). Every request must be answered with
// an OTLP status (200, 400, 413, 415), never a 5xx, never a crash; the counters must add up;
// afterwards the server still serves and every span stored before the fuzzing is still there.
// The server runs in this process on a real in-memory DuckStore: a crash of the receiver would
// be a crash of this test. Request #i is mutated the same way on every run (seeded per request;
// only the ids the SDK draws at random differ), and a failure names its number.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { request } from 'node:http';
import { gzipSync } from 'node:zlib';
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { SpanKind, SpanStatusCode, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { DuckStore } from '../src/store/index.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import { mutateBytes, rng } from './fuzz-bytes.js';

const MAX_BODY = 64 * 1024;
const TOTAL = 10_000;
const CONCURRENCY = 8;
const OK_STATUSES = new Set([200, 400, 413, 415]);


interface Req {
  path: string;
  type: string | undefined;
  encoding: string | undefined;
  body: Buffer;
  what: string;
}

/** real SDK spans: every attribute type, events, links, error status, nesting, all kinds */
function sdkSpans(n: number, tag: string) {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ resource: resourceFromAttributes({ 'service.name': `fuzz-${tag}`, 'host.name': 'h' }), spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  const tracer = provider.getTracer('fuzz', '0.0.1');
  const kinds = [SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL, SpanKind.PRODUCER, SpanKind.CONSUMER];
  for (let i = 0; i < n; i++) {
    const root = tracer.startSpan(`GET /items/${i}`, {
      kind: kinds[i % kinds.length],
      attributes: { 'http.route': '/items/{id}', 'http.response.status_code': 200 + i, 'app.ratio': i / 7, 'app.flag': i % 2 === 0, 'app.list': ['a', 'b'], 'app.nums': [1, 2, 3] },
    });
    root.addEvent('step', { n: i });
    if (i % 3 === 0) root.setStatus({ code: SpanStatusCode.ERROR, message: `failure ${i}` });
    const ctx = trace.setSpan(ROOT_CONTEXT, root);
    const child = tracer.startSpan(`child ${i}`, { links: [{ context: root.spanContext(), attributes: { why: 'x' } }] }, ctx);
    child.end();
    root.end();
  }
  return exporter.getFinishedSpans();
}

describe('OTLP receiver fuzzing: malformed, truncated, oversized bodies', { timeout: 600_000 }, () => {
  let store: DuckStore;
  let server: RunningServer;
  const storedBefore: string[] = [];

  const send = (r: Req): Promise<{ status: number; type: string; body: Buffer }> =>
    new Promise((resolve, reject) => {
      const u = new URL(server.url);
      const headers: Record<string, string | number> = { 'content-length': r.body.length };
      if (r.type !== undefined) headers['content-type'] = r.type;
      if (r.encoding !== undefined) headers['content-encoding'] = r.encoding;
      const req = request({ host: u.hostname, port: u.port, method: 'POST', path: r.path, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('error', (e) => reject(new Error(`${r.what}: ${e.message}`)));
      req.end(r.body);
    });

  before(async () => {
    store = await DuckStore.open({ flushIntervalMs: 100 });
    server = await startServer({ store, status: () => ({}), metrics: () => '', otlp: { maxBodyBytes: MAX_BODY } }, { host: '127.0.0.1', port: 0 });
    // spans stored before the fuzzing, through the receiver itself
    const spans = sdkSpans(20, 'before');
    for (const s of spans) if (!storedBefore.includes(s.spanContext().traceId)) storedBefore.push(s.spanContext().traceId);
    const r = await send({ path: '/v1/traces', type: 'application/x-protobuf', encoding: undefined, body: Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!), what: 'before' });
    assert.equal(r.status, 200);
    await store.flush();
    for (const id of storedBefore) assert.equal((await store.trace(id)).length, 2, `trace ${id} stored`);
  });
  after(async () => {
    await server?.close();
    await store?.shutdown();
  });

  it(`${TOTAL} mutated requests: every one answered, no 5xx, counted, nothing stored before is lost`, async () => {
    // each request from its own seeded generator (make() below is synchronous): request #i is
    // the same on every run, whatever order the concurrent senders take them in
    const SEED = 20261206;
    let random = rng(SEED);
    const int = (n: number) => Math.floor(random() * n);
    // seeds: real requests of each signal and encoding
    const require = createRequire(import.meta.url);
    // eslint-disable-next-line @typescript-eslint/no-unsafe-assignment
    const root = require('otel-otlp-transformer-protobufjs/build/src/generated/root.js');
    /* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-assignment */
    const metricsReq = {
      resourceMetrics: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'fuzz' } }] },
          scopeMetrics: [{ metrics: [{ name: 'calls', sum: { dataPoints: [{ asInt: 3, timeUnixNano: '1700000000000000000' }], aggregationTemporality: 2, isMonotonic: true } }] }],
        },
      ],
    };
    const logsReq = { resourceLogs: [{ scopeLogs: [{ logRecords: [{ timeUnixNano: '1700000000000000000', body: { stringValue: 'hello' }, traceId: Buffer.alloc(16, 7) }] }] }] };
    const M = root.opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest;
    const L = root.opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest;
    const seeds: { path: string; json: boolean; body: Buffer }[] = [];
    for (let i = 0; i < 4; i++) {
      const spans = sdkSpans(1 + i * 3, `seed${i}`);
      seeds.push({ path: '/v1/traces', json: false, body: Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!) });
      seeds.push({ path: '/v1/traces', json: true, body: Buffer.from(JsonTraceSerializer.serializeRequest(spans)!) });
    }
    seeds.push({ path: '/v1/metrics', json: false, body: Buffer.from(M.encode(M.fromObject(metricsReq)).finish() as Uint8Array) });
    seeds.push({ path: '/v1/metrics', json: true, body: Buffer.from(JSON.stringify(metricsReq)) });
    seeds.push({ path: '/v1/logs', json: false, body: Buffer.from(L.encode(L.fromObject(logsReq)).finish() as Uint8Array) });
    /* eslint-enable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-assignment */

    const seedBodies = seeds.map((x) => x.body);
    /** JSON mutations that keep it JSON: wrong types, nulls, huge or negative numbers, bad ids */
    const mutateJson = (b: Buffer): [Buffer, string] => {
      const doc = JSON.parse(b.toString()) as unknown;
      const nodes: [Record<string, unknown> | unknown[], string | number][] = [];
      const walk = (v: unknown): void => {
        if (Array.isArray(v)) {
          v.forEach((x, i) => {
            nodes.push([v, i]);
            walk(x);
          });
        } else if (v && typeof v === 'object') {
          for (const k of Object.keys(v)) {
            nodes.push([v as Record<string, unknown>, k]);
            walk((v as Record<string, unknown>)[k]);
          }
        }
      };
      walk(doc);
      const replacements: unknown[] = [null, 0, -1, 1e308, '18446744073709551616', '-5', '', 'zz', 'ABCDEF', true, [], {}, [1, 'x', null], { a: { b: [] } }, 'x'.repeat(5000), 2 ** 64];
      const n = 1 + int(3);
      for (let i = 0; i < n && nodes.length; i++) {
        const [parent, key] = nodes[int(nodes.length)]!;
        (parent as Record<string | number, unknown>)[key] = replacements[int(replacements.length)];
      }
      return [Buffer.from(JSON.stringify(doc)), `JSON values replaced (${n})`];
    };

    const make = (i: number): Req => {
      random = rng(SEED + i);
      const seed = seeds[int(seeds.length)]!;
      const type = seed.json ? 'application/json' : 'application/x-protobuf';
      let body: Buffer;
      let what: string;
      const pick = int(100);
      if (pick < 40) [body, what] = mutateBytes(seed.body, int, seedBodies);
      else if (pick < 55 && seed.json) [body, what] = mutateJson(seed.body);
      else if (pick < 60) [body, what] = [seed.body, 'unchanged'];
      else if (pick < 75) {
        // gzip: of a mutated body, or gzip data itself damaged, or labelled gzip without being it
        const [m, w] = mutateBytes(seed.body, int, seedBodies);
        const z = gzipSync(int(2) ? m : seed.body);
        const k = int(3);
        const req: Req = { path: seed.path, type, encoding: 'gzip', body: k === 0 ? z : k === 1 ? mutateBytes(z, int, seedBodies)[0] : m, what: `#${i} gzip ${['of ' + w, 'damaged', 'not gzip'][k]}` };
        return req;
      } else if (pick < 80) {
        // oversized: on the wire, or only once decompressed (a gzip bomb)
        if (int(2)) return { path: seed.path, type, encoding: undefined, body: Buffer.alloc(MAX_BODY + 1 + int(MAX_BODY), 0x0a), what: `#${i} oversized` };
        return { path: seed.path, type, encoding: 'gzip', body: gzipSync(Buffer.alloc(MAX_BODY * (2 + int(8)))), what: `#${i} gzip bomb` };
      } else if (pick < 88) {
        // the wrong label: protobuf as JSON and back, no type, another type, an unknown encoding
        const types = [seed.json ? 'application/x-protobuf' : 'application/json', undefined, 'text/plain', 'application/grpc', 'application/json; charset=utf-8'];
        const t = types[int(types.length)];
        return { path: seed.path, type: t, encoding: int(5) === 0 ? 'br' : undefined, body: seed.body, what: `#${i} content-type ${String(t)}` };
      } else if (pick < 94) [body, what] = [Buffer.from(Array.from({ length: int(512) }, () => int(256))), 'random bytes'];
      else [body, what] = [Buffer.alloc(0), 'empty body'];
      return { path: seed.path, type, encoding: undefined, body, what: `#${i} ${seed.path} ${what}` };
    };

    const byStatus = new Map<number, number>();
    let next = 0;
    const worker = async () => {
      while (next < TOTAL) {
        const i = next++;
        const r = make(i);
        const res = await send(r);
        assert.ok(OK_STATUSES.has(res.status), `${r.what}: status ${res.status} ${res.body.toString().slice(0, 200)}`);
        byStatus.set(res.status, (byStatus.get(res.status) ?? 0) + 1);
        // an OTLP answer: in the request's encoding when that was known
        if (res.status === 200) assert.match(res.type, r.type?.includes('json') ? /^application\/json/ : /^application\/x-protobuf/, r.what);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));

    const counted = server.counters;
    assert.equal(counted.internalErrors, 0, 'no request failed inside osprey');
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    let total = 0;
    for (const m of metrics.matchAll(/^osprey_otlp_requests_total\{[^}]*\} (\d+)$/gm)) total += Number(m[1]);
    assert.equal(total, TOTAL + 1, 'every request counted once (and the one before)');
    for (const s of [400, 413, 415]) assert.ok((byStatus.get(s) ?? 0) > 0, `the corpus reaches ${s}`);
    assert.ok((byStatus.get(200) ?? 0) > 500, 'and many are accepted');
    process.stdout.write(`# statuses: ${JSON.stringify(Object.fromEntries(byStatus))}\n`);

    // still serving, and what was stored before is all there
    assert.equal(await (await fetch(`${server.url}/api/echo`)).text(), 'echo');
    const again = sdkSpans(2, 'after');
    const r = await send({ path: '/v1/traces', type: 'application/x-protobuf', encoding: undefined, body: Buffer.from(ProtobufTraceSerializer.serializeRequest(again)!), what: 'after' });
    assert.equal(r.status, 200);
    await store.flush();
    for (const id of storedBefore) assert.equal((await store.trace(id)).length, 2, `trace ${id} still stored`);
    assert.equal((await store.trace(again[0]!.spanContext().traceId)).length, 2, 'a good request after the fuzzing is stored');
  });
});
