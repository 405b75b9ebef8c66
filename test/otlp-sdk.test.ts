// The OTLP/HTTP receiver with the official OpenTelemetry JS SDK as the client: a real Node app
// (test/fixtures/otel-sdk-app.mjs: sdk-trace + exporter-trace-otlp-proto or -http JSON) exports
// to a real `osprey up`; its spans are stored beside the eBPF spans, and when the app propagates
// traceparent, SDK spans and spans Osprey captured from the kernel form one trace.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { spawnChild, type Child } from '../src/proc/index.js';
import protobuf from 'protobufjs';
import { freePort, ospreyApi, ospreyUp, type OspreyUp, type Proc, run, type SpanJson, startServer } from './helpers.js';

const PROTO = fileURLToPath(new URL('../../proto/', import.meta.url));
let tempo: protobuf.Root | undefined;
/** Tempo's query messages from proto/tempopb, as test/grafana-client.test.ts loads them */
function tempoRoot(): protobuf.Root {
  if (!tempo) {
    tempo = new protobuf.Root();
    tempo.resolvePath = (_o, target) => PROTO + target;
    tempo.loadSync('tempopb/tempo.proto');
  }
  return tempo;
}

const APP = fileURLToPath(new URL('../../test/fixtures/otel-sdk-app.mjs', import.meta.url));


describe('OTLP receiver: the OpenTelemetry JS SDK exporting to osprey up', { timeout: 240_000 }, () => {
  let osprey: OspreyUp;
  const apps: Child[] = [];
  let py: Proc | undefined;

  const { get, spans, poll, metric } = ospreyApi(() => osprey);
  const startApp = async (service: string, protocol: 'proto' | 'json', downstream?: string): Promise<number> => {
    const port = await freePort();
    const child = await spawnChild('node', [APP], {
      name: service,
      env: { OTLP_URL: osprey.url, PROTOCOL: protocol, PORT: String(port), SERVICE: service, DOWNSTREAM: downstream },
    });
    apps.push(child);
    await child.waitForOutput('stdout', /listening/, 20_000);
    return port;
  };

  before(async () => {
    osprey = await ospreyUp(['--memory', '--listen', `127.0.0.1:${await freePort()}`, '--no-ui']);
  });
  after(async () => {
    for (const a of apps) await a.stop();
    await py?.stop();
    await osprey?.stop();
  });

  for (const protocol of ['proto', 'json'] as const) {
    it(`exporter-trace-otlp-${protocol === 'proto' ? 'proto (protobuf)' : 'http (JSON)'}: every SDK span is stored, as sent, and counted`, async () => {
      const service = `sdk-${protocol}-${process.pid}`;
      const before = await get('/metrics');
      const port = await startApp(service, protocol);
      for (let i = 0; i < 3; i++) assert.equal((await run('curl', ['-sS', `http://127.0.0.1:${port}/work?i=${i}`])).stdout, 'done\n');
      const got = await poll('6 SDK spans', async () => {
        const s = await spans(`{ resource.service.name = "${service}" }`);
        return s.length >= 6 ? s : undefined;
      });
      assert.equal(got.length, 6, 'three server spans and three internal children, nothing twice');
      const servers = got.filter((s) => s.kind === 'server');
      const inner = got.filter((s) => s.kind === 'internal');
      assert.equal(servers.length, 3);
      assert.equal(inner.length, 3);
      for (const s of servers) {
        assert.equal(s.name, 'GET /work');
        assert.equal(s.parentSpanId, '', 'a root: curl sent no traceparent');
        assert.equal(s.attributes['http.route'], '/work');
        assert.equal(s.attributes['http.response.status_code'], 200);
        assert.equal(s.attributes['otel.scope.name'], 'osprey-test-app');
        assert.equal(s.attributes['otel.scope.version'], '1.2.3');
        assert.equal(s.resource['deployment.environment.name'], 'test');
        const child = inner.find((c) => c.parentSpanId === s.spanId);
        assert.ok(child, 'each server span has its compute child');
        assert.equal(child.traceId, s.traceId);
        assert.equal(child.name, 'compute');
        assert.equal(child.attributes['work.items'], 3);
      }
      // by trace id, through Tempo's API: both spans, the "compute" span with its event
      const t = JSON.parse(await get(`/api/traces/${servers[0]!.traceId}`)) as { batches: { scopeSpans: { spans: { name: string; events?: unknown[] }[] }[] }[] };
      const byId = t.batches.flatMap((b) => b.scopeSpans.flatMap((s) => s.spans));
      assert.equal(byId.length, 2);
      const events = byId.find((s) => s.name === 'compute')?.events as { name: string; attributes: { key: string; value: unknown }[] }[] | undefined;
      assert.equal(events?.length, 1);
      assert.equal(events[0]!.name, 'computed');
      assert.deepEqual(events[0]!.attributes, [{ key: 'work.result', value: { stringValue: 'ok' } }]);
      assert.equal(byId.find((s) => s.name === 'GET /work')?.events, undefined, 'a span without events has none');
      // counted: spans received; no event dropped (each span has one at most)
      const now = await get('/metrics');
      assert.ok(metric(now, 'osprey_otlp_received_spans_total') - metric(before, 'osprey_otlp_received_spans_total') >= 6);
      assert.equal(metric(now, 'osprey_otlp_dropped_span_events_total'), metric(before, 'osprey_otlp_dropped_span_events_total'));
      assert.ok(metric(now, 'osprey_otlp_requests_total{signal="traces",outcome="accepted"}') > metric(before, 'osprey_otlp_requests_total{signal="traces",outcome="accepted"}'));
      assert.equal(metric(now, 'osprey_otlp_requests_total{signal="traces",outcome="refused"}'), 0);
    });
  }

  for (const protocol of ['proto', 'json'] as const) {
    it(`${protocol}: a span with an exception event and a link to another trace is found by event:name and link:traceID, and comes back whole by id`, async () => {
      const service = `sdk-fail-${protocol}-${process.pid}`;
      const port = await startApp(service, protocol);
      const linkTrace = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
      const linkSpan = [...crypto.getRandomValues(new Uint8Array(8))].map((b) => b.toString(16).padStart(2, '0')).join('');
      const c = await run('curl', ['-sS', `http://127.0.0.1:${port}/fail?link=${linkTrace}-${linkSpan}`]);
      assert.equal(c.stdout, 'failed\n', c.stderr);
      // TraceQL over the osprey API and Tempo's search: by the event and by the link
      const [span] = await poll('the span, by event:name', async () => {
        const s = await spans(`{ event:name = "exception" && resource.service.name = "${service}" }`);
        return s.length ? s : undefined;
      });
      assert.ok(span);
      assert.equal(span.name, 'GET /fail');
      assert.deepEqual((await spans(`{ link:traceID = "${linkTrace}" }`)).map((s) => s.spanId), [span.spanId]);
      assert.deepEqual((await spans(`{ link:spanID = "${linkSpan}" && link."link.reason" = "retry-of" }`)).map((s) => s.spanId), [span.spanId]);
      assert.deepEqual((await spans(`{ event.exception.type = "TypeError" && resource.service.name = "${service}" }`)).map((s) => s.spanId), [span.spanId]);
      assert.deepEqual(await spans(`{ event:name = "exception" && resource.service.name = "${service}" && event:timeSinceStart > 1h }`), []);
      const search = JSON.parse(await get(`/api/search?q=${encodeURIComponent(`{ link:traceID = "${linkTrace}" }`)}&limit=20`)) as { traces: { traceID: string }[] };
      assert.deepEqual(search.traces.map((t) => t.traceID), [span.traceId]);

      // whole by id, osprey JSON: the event (secrets redacted as in span attributes) and the link
      const full = (JSON.parse(await get(`/api/osprey/traces/${span.traceId}`)) as { spans: (SpanJson & { events?: { name: string; timeUnixNano: string; attributes: Record<string, unknown> }[]; links?: { traceId: string; spanId: string; attributes: Record<string, unknown> }[] })[] }).spans;
      const s = full.find((x) => x.spanId === span.spanId);
      assert.ok(s?.events && s.links);
      assert.equal(s.events.length, 1);
      const ev = s.events[0]!;
      assert.equal(ev.name, 'exception');
      assert.equal(ev.attributes['exception.type'], 'TypeError');
      assert.match(String(ev.attributes['exception.message']), /^upstream refused Authorization: Bearer REDACTED$/);
      assert.doesNotMatch(JSON.stringify(full), /sk-live|tok-123/, 'no secret stored');
      assert.match(String(ev.attributes['exception.stacktrace']), /TypeError/);
      assert.ok(BigInt(ev.timeUnixNano) >= BigInt(span.startTimeUnixNano ?? 0));
      assert.deepEqual(s.links, [{ traceId: linkTrace, spanId: linkSpan, attributes: { 'link.reason': 'retry-of', 'api.token': 'REDACTED' } }]);

      // and in Tempo's protobuf, decoded with the message definitions Grafana uses (proto/tempopb)
      const r = await fetch(`${osprey.url}/api/v2/traces/${span.traceId}`, { headers: { accept: 'application/protobuf' } });
      assert.equal(r.status, 200);
      const T = tempoRoot().lookupType('tempopb.TraceByIDResponse');
      const msg = T.toObject(T.decode(new Uint8Array(await r.arrayBuffer())), { longs: String, enums: String, bytes: String }) as {
        trace: { resourceSpans: { scopeSpans: { spans: { spanId: string; events: { name: string; timeUnixNano: string; attributes: { key: string; value: { stringValue?: string } }[] }[]; links: { traceId: string; spanId: string }[] }[] }[] }[] };
      };
      const ps = msg.trace.resourceSpans.flatMap((x) => x.scopeSpans.flatMap((y) => y.spans)).find((x) => x.spanId === Buffer.from(span.spanId, 'hex').toString('base64'));
      assert.ok(ps);
      assert.equal(ps.events.length, 1);
      assert.equal(ps.events[0]!.name, 'exception');
      assert.equal(ps.events[0]!.timeUnixNano, ev.timeUnixNano);
      assert.equal(ps.events[0]!.attributes.find((a) => a.key === 'exception.type')?.value.stringValue, 'TypeError');
      assert.deepEqual(ps.links.map((l) => [Buffer.from(l.traceId, 'base64').toString('hex'), Buffer.from(l.spanId, 'base64').toString('hex')]), [[linkTrace, linkSpan]]);
    });
  }

  it('an SDK app that propagates traceparent and the eBPF spans around it are ONE trace', async () => {
    // unmodified curl -> SDK app (exports its spans) -> plain python http.server (traced by eBPF only)
    const pyPort = await freePort();
    py = await startServer('python3', ['-m', 'http.server', String(pyPort), '--bind', '127.0.0.1'], pyPort);
    const service = `sdk-link-${process.pid}`;
    const port = await startApp(service, 'proto', `http://127.0.0.1:${pyPort}/downstream-${process.pid}`);
    const traceId = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
    const callerSpan = 'a1b2c3d4e5f60718';
    const c = await run('curl', ['-sS', '-H', `traceparent: 00-${traceId}-${callerSpan}-01`, `http://127.0.0.1:${port}/work`]);
    assert.equal(c.stdout, 'done\n', c.stderr);

    const trace = await poll('SDK and eBPF spans of the trace', async () => {
      const r = await fetch(`${osprey.url}/api/osprey/traces/${traceId}`);
      if (r.status === 404) return undefined; // not stored yet
      assert.equal(r.status, 200);
      const all = ((await r.json()) as { spans: SpanJson[] }).spans;
      const sdkClient = all.find((s) => s.kind === 'client' && s.resource['service.name'] === service);
      const pyServer = all.find((s) => s.kind === 'server' && s.attributes['url.path'] === `/downstream-${process.pid}`);
      const ebpfApp = all.find((s) => s.kind === 'server' && s.attributes['osprey.link'] === 'traceparent' && s.attributes['url.path'] === '/work');
      return sdkClient && pyServer && ebpfApp ? { all, sdkClient, pyServer, ebpfApp } : undefined;
    });
    const sdkServer = trace.all.find((s) => s.kind === 'server' && s.resource['service.name'] === service && s.attributes['otel.scope.name']);
    assert.ok(sdkServer, 'the SDK server span is in the trace');
    assert.equal(sdkServer.parentSpanId, callerSpan, 'the SDK continued the caller\'s context');
    assert.equal(trace.sdkClient.parentSpanId, sdkServer.spanId);
    // the python server is not instrumented: Osprey saw its request in the kernel, read the
    // traceparent the SDK injected, and made the SDK's client span its parent
    assert.equal(trace.pyServer.parentSpanId, trace.sdkClient.spanId, 'eBPF span of the plain server is the child of the SDK client span');
    assert.equal(trace.pyServer.attributes['osprey.link'], 'traceparent');
    assert.equal(trace.pyServer.attributes['otel.scope.name'], undefined, 'captured by eBPF, not sent over OTLP');
    // and the app's own request, seen from the kernel, hangs under the same caller
    assert.equal(trace.ebpfApp.parentSpanId, callerSpan);
    for (const s of trace.all) assert.equal(s.traceId, traceId);

    // Tempo's search finds the trace by the SDK's attribute and by the eBPF span's
    const search = JSON.parse(await get(`/api/search?q=${encodeURIComponent(`{ span.otel.scope.name = "osprey-test-app" && resource.service.name = "${service}" }`)}&limit=50`)) as {
      traces: { traceID: string }[];
    };
    assert.ok(search.traces.some((t) => t.traceID === traceId));
  });
});
