// The OTLP/gRPC receiver against malformed calls: 1,500 calls made by mutating real Export
// requests (the OpenTelemetry JS SDK's spans serialized by @opentelemetry/otlp-transformer, the
// serializer its gRPC exporter uses; metrics and logs requests from the generated definitions),
// sent by a real gRPC client (@grpc/grpc-js) and, for what a well-behaved client never sends
// (damaged compression, an unknown grpc-encoding, a message cut short, two messages in a unary
// call, a request that is not gRPC), as raw HTTP/2 with node:http2, and bytes that are not HTTP/2
// at all. Every call must be answered
// with the gRPC status its input calls for, never a crash; the counters must add up; afterwards the
// receiver still serves and every span stored before is still there. Server and store run in this
// process on a real in-memory DuckStore: a crash of the receiver is a crash of this test. Call #i
// is mutated the same way on every run (seeded per call), and a failure names its number.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { connect, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { Client, credentials, Metadata, status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { SpanKind, SpanStatusCode, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { DuckStore } from '../src/store/index.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import { OTLP_GRPC_SERVICES, OtlpGrpcReceiver } from '../src/server/otlp-grpc.js';
import { mutateBytes, rng } from './fuzz-bytes.js';
import { setTimeout as sleep } from 'node:timers/promises';

const MAX_BODY = 64 * 1024;
const TOTAL = 1500;
const CONCURRENCY = 8;
const TRACES = `/${OTLP_GRPC_SERVICES.traces}/Export`;
const PATHS = [TRACES, `/${OTLP_GRPC_SERVICES.metrics}/Export`, `/${OTLP_GRPC_SERVICES.logs}/Export`];


function sdkSpans(n: number, tag: string) {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ resource: resourceFromAttributes({ 'service.name': `grpc-fuzz-${tag}` }), spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  const tracer = provider.getTracer('grpc-fuzz', '0.0.1');
  for (let i = 0; i < n; i++) {
    const root = tracer.startSpan(`GET /items/${i}`, { kind: SpanKind.SERVER, attributes: { 'http.route': '/items/{id}', 'http.response.status_code': 200 + i, 'app.list': ['a', 'b'] } });
    root.addEvent('step', { n: i });
    if (i % 3 === 0) root.setStatus({ code: SpanStatusCode.ERROR, message: `failure ${i}` });
    tracer.startSpan(`child ${i}`, { links: [{ context: root.spanContext() }] }, trace.setSpan(ROOT_CONTEXT, root)).end();
    root.end();
  }
  return exporter.getFinishedSpans();
}

const traceRequest = (spans: ReturnType<typeof sdkSpans>): Buffer => Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!);

/** a call: through grpc-js, or raw HTTP/2 frames */
interface Call {
  what: string;
  path: string;
  body: Buffer;
  /** the codes this input may get (a mutated message can still be a valid one) */
  expect: string[];
  gzip?: boolean;
  raw?: { contentType: string; encoding?: string; frames: Buffer };
}

const pass = (b: Buffer) => b;

describe('OTLP/gRPC receiver fuzzing: malformed, oversized, wrong-method calls', { timeout: 600_000 }, () => {
  let store: DuckStore;
  let server: RunningServer;
  let grpc: OtlpGrpcReceiver;
  let plain: Client;
  let zipped: Client;
  let h2: ClientHttp2Session;
  const storedBefore: string[] = [];

  const viaClient = (c: Call): Promise<string> =>
    new Promise((resolve) => {
      const client = c.gzip ? zipped : plain;
      client.makeUnaryRequest(c.path, pass, pass, c.body, new Metadata(), { deadline: Date.now() + 60_000 }, (err: ServiceError | null) => {
        resolve(err ? (GrpcStatus[err.code] ?? String(err.code)) : 'OK');
      });
    });

  const viaRaw = (c: Call): Promise<string> =>
    new Promise((resolve, reject) => {
      const r = c.raw!;
      const req = h2.request({ ':method': 'POST', ':path': c.path, 'content-type': r.contentType, te: 'trailers', ...(r.encoding ? { 'grpc-encoding': r.encoding } : {}) });
      let status = '';
      let http = 0;
      req.on('response', (h) => {
        http = Number(h[':status']);
        if (h['grpc-status'] !== undefined) status = GrpcStatus[Number(h['grpc-status'])] ?? String(h['grpc-status']);
      });
      req.on('trailers', (t: IncomingHttpHeaders) => {
        if (t['grpc-status'] !== undefined) status = GrpcStatus[Number(t['grpc-status'])] ?? String(t['grpc-status']);
      });
      req.on('data', () => {});
      req.on('close', () => resolve(status || (http && http !== 200 ? `http_${http}` : 'no answer')));
      req.on('error', (e: Error) => reject(new Error(`${c.what}: ${e.message}`)));
      req.end(r.frames);
    });

  const frame = (msg: Buffer, compressed = false, declared = msg.length): Buffer => {
    const head = Buffer.alloc(5);
    head[0] = compressed ? 1 : 0;
    head.writeUInt32BE(declared, 1);
    return Buffer.concat([head, msg]);
  };

  before(async () => {
    store = await DuckStore.open({ flushIntervalMs: 100 });
    server = await startServer({ store, status: () => ({}), metrics: () => '', otlp: { maxBodyBytes: MAX_BODY } }, { host: '127.0.0.1', port: 0 });
    grpc = await OtlpGrpcReceiver.start({ receiver: server.otlp, host: '127.0.0.1', port: 0 });
    assert.ok(grpc.callsObserved, 'grpc-js HTTP/2 servers reached: every call is counted');
    plain = new Client(grpc.address, credentials.createInsecure());
    zipped = new Client(grpc.address, credentials.createInsecure(), { 'grpc.default_compression_algorithm': 2 });
    h2 = connect(`http://${grpc.address}`);
    h2.on('error', () => {});
    // spans stored before the fuzzing, through the gRPC receiver itself
    const spans = sdkSpans(20, 'before');
    for (const s of spans) if (!storedBefore.includes(s.spanContext().traceId)) storedBefore.push(s.spanContext().traceId);
    assert.equal(await viaClient({ what: 'before', path: TRACES, body: traceRequest(spans), expect: ['OK'] }), 'OK');
    await store.flush();
    for (const id of storedBefore) assert.equal((await store.trace(id)).length, 2, `trace ${id} stored`);
  });
  after(async () => {
    plain?.close();
    zipped?.close();
    h2?.close();
    await grpc?.close();
    await server?.close();
    await store?.shutdown();
  });

  it(`${TOTAL} mutated calls: every one answered with its status, counted, nothing stored before is lost`, async () => {
    const SEED = 20261207;
    let random = rng(SEED);
    const int = (n: number) => Math.floor(random() * n);
    const require = createRequire(import.meta.url);
    /* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-assignment */
    const root = require('otel-otlp-transformer-protobufjs/build/src/generated/root.js');
    const M = root.opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest;
    const L = root.opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest;
    const metricsReq = { resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: 'calls', sum: { dataPoints: [{ asInt: 3, timeUnixNano: '1700000000000000000' }], aggregationTemporality: 2, isMonotonic: true } }] }] }] };
    const logsReq = { resourceLogs: [{ scopeLogs: [{ logRecords: [{ timeUnixNano: '1700000000000000000', body: { stringValue: 'hello' } }] }] }] };
    const seeds: { path: string; body: Buffer }[] = [];
    for (let i = 0; i < 4; i++) seeds.push({ path: TRACES, body: traceRequest(sdkSpans(1 + i * 3, `seed${i}`)) });
    seeds.push({ path: PATHS[1]!, body: Buffer.from(M.encode(M.fromObject(metricsReq)).finish() as Uint8Array) });
    seeds.push({ path: PATHS[2]!, body: Buffer.from(L.encode(L.fromObject(logsReq)).finish() as Uint8Array) });
    /* eslint-enable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-assignment */

    const DECODED = ['OK', 'INVALID_ARGUMENT'];
    const WRONG_PATHS = [
      `/${OTLP_GRPC_SERVICES.traces}/Exprt`,
      `/${OTLP_GRPC_SERVICES.traces}/export`,
      '/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export',
      '/grpc.health.v1.Health/Check',
      '/jaeger.api_v2.CollectorService/PostSpans',
      '/x',
      '/',
    ];

    const make = (i: number): Call => {
      random = rng(SEED + i);
      const seed = seeds[int(seeds.length)]!;
      const pick = int(100);
      if (pick < 45) {
        const [body, w] = mutateBytes(seed.body, int);
        return { what: `#${i} ${seed.path} ${w}`, path: seed.path, body, expect: DECODED };
      }
      if (pick < 50) return { what: `#${i} unchanged`, path: seed.path, body: seed.body, expect: ['OK'] };
      if (pick < 55) return { what: `#${i} empty message`, path: seed.path, body: Buffer.alloc(0), expect: ['OK'] };
      if (pick < 62) return { what: `#${i} random bytes`, path: seed.path, body: Buffer.from(Array.from({ length: int(512) }, () => int(256))), expect: DECODED };
      if (pick < 68) {
        const [body, w] = int(2) ? mutateBytes(seed.body, int) : [seed.body, 'intact'];
        return { what: `#${i} gzip (${w})`, path: seed.path, body, gzip: true, expect: DECODED };
      }
      if (pick < 74) {
        // over the limit: on the wire, or only once decompressed (a gzip bomb)
        if (int(2)) return { what: `#${i} oversized`, path: seed.path, body: Buffer.alloc(MAX_BODY + 1 + int(MAX_BODY), 0x0a), expect: ['RESOURCE_EXHAUSTED'] };
        return { what: `#${i} gzip bomb`, path: seed.path, body: Buffer.alloc(MAX_BODY * (2 + int(8))), gzip: true, expect: ['RESOURCE_EXHAUSTED'] };
      }
      if (pick < 84) return { what: `#${i} wrong method`, path: WRONG_PATHS[int(WRONG_PATHS.length)]!, body: seed.body, expect: ['UNIMPLEMENTED'] };
      // raw HTTP/2: what grpc-js as a client would never send
      const kind = int(5);
      const base = { path: seed.path, body: seed.body };
      switch (kind) {
        case 0: {
          const z = gzipSync(seed.body);
          for (let k = 0; k < 4; k++) {
            const at = 10 + int(z.length - 10);
            z[at] = z[at]! ^ 0xff;
          }
          return { ...base, what: `#${i} raw: damaged gzip`, expect: ['INTERNAL', ...DECODED], raw: { contentType: 'application/grpc', encoding: 'gzip', frames: frame(z, true) } };
        }
        case 1:
          return { ...base, what: `#${i} raw: grpc-encoding br`, expect: ['UNIMPLEMENTED'], raw: { contentType: 'application/grpc', encoding: 'br', frames: frame(seed.body, true) } };
        case 2:
          return { ...base, what: `#${i} raw: not gRPC`, expect: ['http_415'], raw: { contentType: ['application/json', 'text/plain', 'application/x-protobuf'][int(3)]!, frames: seed.body } };
        case 3:
          // the length prefix promises more than the stream carries: grpc-js sees a unary call
          // without a message, and answers that UNIMPLEMENTED (as two messages below)
          return { ...base, what: `#${i} raw: message cut short`, expect: ['UNIMPLEMENTED'], raw: { contentType: 'application/grpc', frames: frame(seed.body, false, seed.body.length + 1 + int(1000)) } };
        default:
          return { ...base, what: `#${i} raw: two messages in a unary call`, expect: ['UNIMPLEMENTED'], raw: { contentType: 'application/grpc+proto', frames: Buffer.concat([frame(seed.body), frame(seed.body)]) } };
      }
    };

    const countsBefore = structuredClone(grpc.calls);
    const byCode = new Map<string, number>();
    let wrongMethod = 0;
    let next = 0;
    const worker = async () => {
      while (next < TOTAL) {
        const i = next++;
        const c = make(i);
        const code = c.raw ? await viaRaw(c) : await viaClient(c);
        assert.ok(c.expect.includes(code), `${c.what}: answered ${code}, expected ${c.expect.join(' or ')}`);
        byCode.set(code, (byCode.get(code) ?? 0) + 1);
        if (c.what.includes('wrong method')) wrongMethod++;
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    process.stdout.write(`# codes: ${JSON.stringify(Object.fromEntries(byCode))}\n`);
    for (const code of ['OK', 'INVALID_ARGUMENT', 'RESOURCE_EXHAUSTED', 'UNIMPLEMENTED', 'http_415']) assert.ok((byCode.get(code) ?? 0) > 0, `the corpus reaches ${code}`);
    assert.ok((byCode.get('INVALID_ARGUMENT') ?? 0) > 200, 'many malformed messages reach the decoder');

    // every call counted once by the code it got (the receiver counts from the HTTP/2 stream when it closes)
    const deadline = Date.now() + 10_000;
    const seen = () => Object.values(grpc.calls).reduce((a, m) => a + Object.values(m).reduce((x, y) => x + y, 0), 0) - Object.values(countsBefore).reduce((a, m) => a + Object.values(m).reduce((x, y) => x + y, 0), 0);
    while (seen() < TOTAL && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(seen(), TOTAL, 'every call counted');
    for (const [code, n] of byCode) {
      const counted = Object.values(grpc.calls).reduce((a, m) => a + (m[code] ?? 0), 0) - Object.values(countsBefore).reduce((a, m) => a + (m[code] ?? 0), 0);
      assert.equal(counted, n, `calls answered ${code}`);
    }
    assert.equal(grpc.internalErrors, 0, 'no call failed inside osprey');
    assert.equal(grpc.calls.unknown.UNIMPLEMENTED! - (countsBefore.unknown.UNIMPLEMENTED ?? 0), wrongMethod, 'calls of unknown methods are labelled method="unknown"');
    // the calls that reached the decoder are counted by the receiver shared with OTLP/HTTP
    const decoded = Object.values(server.otlp.counters.requests).reduce((a, s) => a + s.accepted + s.partial + s.refused, 0);
    assert.equal(decoded, (byCode.get('OK') ?? 0) + (byCode.get('INVALID_ARGUMENT') ?? 0) + 1, 'every call that reached the decoder (OK and INVALID_ARGUMENT are only its answers) counted once by the OTLP receiver, and the one before');

    // bytes that are not HTTP/2 at all (an HTTP/1 request, TLS, noise): the connection is closed,
    // no call is made, the receiver carries on
    const noise = [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), Buffer.from('160301', 'hex'), Buffer.from(Array.from({ length: 300 }, (_, k) => (k * 37) % 256))];
    for (const bytes of noise) {
      await new Promise<void>((resolve) => {
        const sock = netConnect({ host: '127.0.0.1', port: Number(grpc.address.split(':')[1]) }, () => sock.end(bytes));
        sock.on('data', () => {});
        sock.on('error', () => resolve());
        sock.on('close', () => resolve());
        sock.setTimeout(10_000, () => sock.destroy());
      });
    }

    // still serving, and what was stored before is all there
    const again = sdkSpans(2, 'after');
    assert.equal(await viaClient({ what: 'after', path: TRACES, body: traceRequest(again), expect: ['OK'] }), 'OK');
    await store.flush();
    for (const id of storedBefore) assert.equal((await store.trace(id)).length, 2, `trace ${id} still stored`);
    assert.equal((await store.trace(again[0]!.spanContext().traceId)).length, 2, 'a good call after the fuzzing is stored');
  });

  it('at most 16 connections at once: the next is closed and counted, and one is taken again once others go', async () => {
    // three connections are open already (the two clients and the raw session); fill up to the bound
    const refused0 = grpc.status().otlp_grpc_connections_refused ?? 0;
    const extra: ClientHttp2Session[] = [];
    const open = async (): Promise<ClientHttp2Session> => {
      const s = connect(`http://${grpc.address}`);
      s.on('error', () => {});
      await new Promise<void>((resolve) => {
        s.once('remoteSettings', () => resolve());
        s.once('close', () => resolve());
      });
      return s;
    };
    for (let i = 0; i < 20; i++) extra.push(await open());
    await sleep(300);
    const closed = extra.filter((s) => s.closed || s.destroyed);
    assert.ok(closed.length >= 4, `${closed.length} of 20 more connections closed`);
    assert.equal((grpc.status().otlp_grpc_connections_refused ?? 0) - refused0, closed.length);
    for (const s of extra) s.destroy();
    await sleep(300);
    const again = await open();
    assert.ok(!again.closed && !again.destroyed, 'a connection is taken again');
    again.destroy();
  });
});
