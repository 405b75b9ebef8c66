// The OTLP/gRPC receiver of a real `osprey up`, with real clients:
// - the official OpenTelemetry JS SDK exporting with @opentelemetry/exporter-trace-otlp-grpc
//   (test/fixtures/otel-sdk-app.mjs, PROTOCOL=grpc): its spans are stored and found by TraceQL;
// - the real OpenTelemetry Collector (built by test/otelcol.ts) receiving OTLP/HTTP and exporting
//   with its `otlp` (gRPC) exporter to osprey: what the collector forwards is stored as sent;
// - the startup output and `osprey status` name the receiver's address; /metrics counts the calls.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { SpanKind, SpanStatusCode, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { spawnChild, type Child } from '../src/proc/index.js';
import { freePort, OSPREY, ospreyApi, ospreyUp, type OspreyUp, run } from './helpers.js';
import { startOtelcol, type Otelcol } from './otelcol.js';

const APP = fileURLToPath(new URL('../../test/fixtures/otel-sdk-app.mjs', import.meta.url));


describe('OTLP/gRPC receiver: the OpenTelemetry JS SDK and the OpenTelemetry Collector exporting to osprey up', { timeout: 420_000 }, () => {
  let osprey: OspreyUp;
  let grpcPort: number;
  const apps: Child[] = [];
  let otelcol: Otelcol | undefined;

  const api = ospreyApi(() => osprey, () => otelcol?.log() ?? '');
  const { get, spans, metric } = api;
  const poll = <T>(what: string, f: () => Promise<T | undefined>, ms = 60_000): Promise<T> => api.poll(what, f, ms);
  const okCalls = async () => metric(await get('/metrics'), 'osprey_otlp_grpc_calls_total{method="traces",code="OK"}');

  before(async () => {
    grpcPort = await freePort();
    osprey = await ospreyUp(['--memory', '--listen', `127.0.0.1:${await freePort()}`, '--no-ui', '--otlp-grpc', `127.0.0.1:${grpcPort}`]);
  });
  after(async () => {
    for (const a of apps) await a.stop();
    await otelcol?.stop();
    await osprey?.stop();
  });

  it('the startup output and osprey status name the receiver', async () => {
    assert.match(osprey.err(), new RegExp(`OTLP/gRPC receiver: 127\\.0\\.0\\.1:${grpcPort} `));
    const text = await run(OSPREY, ['status', '--server', osprey.url]);
    assert.match(text.stdout, new RegExp(`otlp/grpc: listening on 127\\.0\\.0\\.1:${grpcPort}`));
    const json = JSON.parse((await run(OSPREY, ['status', '--server', osprey.url, '--json'])).stdout) as { otlpGrpc: { listening: string }; counters: Record<string, number> };
    assert.equal(json.otlpGrpc.listening, `127.0.0.1:${grpcPort}`);
    assert.equal(json.counters.otlp_grpc_calls_observed, 1, 'every call is counted by its status');
  });

  it('exporter-trace-otlp-grpc: every SDK span is stored as sent and found by TraceQL', async () => {
    const service = `sdk-grpc-${process.pid}`;
    const callsBefore = await okCalls();
    const port = await freePort();
    const child = await spawnChild('node', [APP], {
      name: service,
      env: { OTLP_URL: `http://127.0.0.1:${grpcPort}`, PROTOCOL: 'grpc', PORT: String(port), SERVICE: service },
    });
    apps.push(child);
    await child.waitForOutput('stdout', /listening/, 20_000);
    for (let i = 0; i < 3; i++) assert.equal((await run('curl', ['-sS', `http://127.0.0.1:${port}/work?i=${i}`])).stdout, 'done\n');
    const got = await poll('6 SDK spans', async () => {
      const s = await spans(`{ resource.service.name = "${service}" }`);
      return s.length >= 6 ? s : undefined;
    });
    assert.equal(got.length, 6, 'three server spans and three internal children, nothing twice');
    for (const s of got.filter((x) => x.kind === 'server')) {
      assert.equal(s.name, 'GET /work');
      assert.equal(s.attributes['http.route'], '/work');
      assert.equal(s.attributes['otel.scope.name'], 'osprey-test-app');
      assert.equal(s.resource['deployment.environment.name'], 'test');
      const inner = got.find((c) => c.parentSpanId === s.spanId);
      assert.equal(inner?.name, 'compute');
      assert.equal(inner?.attributes['work.items'], 3);
    }
    // Tempo's search, as Grafana calls it
    const q = `{ resource.service.name = "${service}" && span.http.route = "/work" && kind = server }`;
    const search = JSON.parse(await get(`/api/search?q=${encodeURIComponent(q)}&limit=50`)) as { traces: { traceID: string; rootServiceName: string }[] };
    assert.equal(search.traces.length, 3);
    for (const t of search.traces) assert.equal(t.rootServiceName, service);
    // one Export call per span (SimpleSpanProcessor), each answered OK and counted
    assert.ok((await okCalls()) - callsBefore >= 6);
  });

  it('the OpenTelemetry Collector exports to osprey with its otlp (gRPC) exporter', async () => {
    otelcol = await startOtelcol(
      (p) => `receivers: { otlp: { protocols: { http: { endpoint: 127.0.0.1:${p.http} }, grpc: { endpoint: 127.0.0.1:${p.grpc} } } } }
processors: { batch: { timeout: 200ms } }
exporters: { otlp: { endpoint: 127.0.0.1:${grpcPort}, tls: { insecure: true }, compression: gzip } }
service: { pipelines: { traces: { receivers: [otlp], processors: [batch], exporters: [otlp] } } }
`,
    );
    const callsBefore = await okCalls();
    // spans made by the SDK in this process, sent to the collector over OTLP/HTTP
    const service = `via-otelcol-${process.pid}`;
    const exporter = new InMemorySpanExporter();
    const provider = new TracerProvider({ resource: resourceFromAttributes({ 'service.name': service, 'host.name': 'collector-test' }), spanProcessors: [new SimpleSpanProcessor({ exporter })] });
    const tracer = provider.getTracer('collector-test', '2.0.0');
    for (let i = 0; i < 5; i++) {
      const root = tracer.startSpan(`POST /orders/${i}`, { kind: SpanKind.SERVER, attributes: { 'http.route': '/orders/{id}', 'http.response.status_code': i === 4 ? 503 : 201, 'order.items': i } });
      if (i === 4) root.setStatus({ code: SpanStatusCode.ERROR, message: 'no stock' });
      tracer.startSpan('SELECT orders', { kind: SpanKind.CLIENT, attributes: { 'db.system.name': 'postgresql' } }, trace.setSpan(ROOT_CONTEXT, root)).end();
      root.end();
    }
    const sent = exporter.getFinishedSpans();
    const r = await fetch(`${otelcol.httpEndpoint}/v1/traces`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-protobuf' },
      body: Buffer.from(ProtobufTraceSerializer.serializeRequest(sent)!),
    });
    assert.equal(r.status, 200, await r.text());

    const got = await poll('10 spans forwarded by the collector', async () => {
      const s = await spans(`{ resource.service.name = "${service}" }`);
      return s.length >= 10 ? s : undefined;
    });
    assert.equal(got.length, 10);
    for (const s of sent) {
      const g = got.find((x) => x.spanId === s.spanContext().spanId);
      assert.ok(g, `span ${s.name} forwarded`);
      assert.equal(g.traceId, s.spanContext().traceId);
      assert.equal(g.name, s.name);
      assert.equal(g.parentSpanId, s.parentSpanContext?.spanId ?? '');
      assert.equal(g.resource['host.name'], 'collector-test');
      assert.equal(g.attributes['otel.scope.name'], 'collector-test');
    }
    const failed = got.find((x) => x.name === 'POST /orders/4');
    assert.equal(failed?.status, 'error');
    assert.equal(failed?.attributes['http.response.status_code'], 503);
    const errors = JSON.parse(await get(`/api/search?q=${encodeURIComponent(`{ resource.service.name = "${service}" && status = error }`)}`)) as { traces: unknown[] };
    assert.equal(errors.traces.length, 1);
    assert.ok((await okCalls()) > callsBefore, 'the collector\'s Export calls were answered OK');
    assert.doesNotMatch(otelcol.log(), /Exporting failed|rpc error/, 'the collector reports no export error');
  });
});
