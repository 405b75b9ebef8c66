// The collector the export tests use is real and does what they rely on: it loads the
// components of the manifest, validates configs (and rejects a broken one), and an OTLP/HTTP
// request posted to it comes out of the file exporter.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { run, waitFor } from '../src/proc/index.js';
import { otelcolBinary, readFileExport, startOtelcol, validateOtelcolConfig, type Otelcol } from './otelcol.js';

// a cold build compiles the collector from source (minutes); cached afterwards
const BUILD_MS = 40 * 60_000;
let col: Otelcol | undefined;

before(async () => {
  await otelcolBinary();
}, { timeout: BUILD_MS });

after(async () => {
  await col?.stop();
});

test('the binary has every component of the manifest', async () => {
  const r = await run(await otelcolBinary(), ['components']);
  assert.equal(r.code, 0, r.stderr);
  for (const name of ['otlp', 'batch', 'memory_limiter', 'k8s_attributes', 'otlp_grpc', 'otlp_http', 'prometheus_remote_write', 'file', 'debug']) {
    assert.match(r.stdout, new RegExp(`name: ${name}\\n`), name);
  }
});

test('validate accepts a good config (old component names too) and rejects a bad one', async () => {
  const good = `receivers: { otlp: { protocols: { grpc: { endpoint: 127.0.0.1:0 } } } }
processors: { batch: {}, memory_limiter: { check_interval: 1s, limit_mib: 100 }, k8sattributes: {} }
exporters: { otlphttp: { endpoint: http://127.0.0.1:1 }, prometheusremotewrite: { endpoint: http://127.0.0.1:1/api/v1/write } }
service:
  pipelines:
    traces: { receivers: [otlp], processors: [memory_limiter, batch], exporters: [otlphttp] }
    metrics: { receivers: [otlp], processors: [batch], exporters: [prometheusremotewrite] }
`;
  await validateOtelcolConfig(good);
  await assert.rejects(validateOtelcolConfig(good.replace('batch: {}', 'batch: { bogus_key: 1 }')), /bogus_key/);
  await assert.rejects(validateOtelcolConfig(good.replace('otlphttp: {', 'nosuch: {')), /nosuch/);
});

test('OTLP/HTTP in, file exporter out', async () => {
  col = await startOtelcol(
    (p, dir) => `receivers: { otlp: { protocols: { http: { endpoint: 127.0.0.1:${p.http} }, grpc: { endpoint: 127.0.0.1:${p.grpc} } } } }
exporters: { file: { path: ${join(dir, 'traces.jsonl')}, flush_interval: 100ms } }
service: { pipelines: { traces: { receivers: [otlp], exporters: [file] } } }
`,
  );
  const body = {
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'smoke' } }] },
        scopeSpans: [{ spans: [{ traceId: '0102030405060708090a0b0c0d0e0f10', spanId: '0102030405060708', name: 'GET /x', kind: 2, startTimeUnixNano: '1', endTimeUnixNano: '2' }] }],
      },
    ],
  };
  const res = await fetch(`${col.httpEndpoint}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(res.status, 200, await res.text());
  const rows = await waitFor('the span in the file', () => {
    const r = readFileExport<typeof body>(join(col!.dir, 'traces.jsonl'));
    return r.length > 0 && r;
  }, 10_000);
  const span = rows[0]?.resourceSpans[0]?.scopeSpans[0]?.spans[0];
  assert.equal(span?.traceId, '0102030405060708090a0b0c0d0e0f10');
  assert.equal(span?.name, 'GET /x');
});
