// The OTEL_EXPORTER_OTLP_* rules (specification: OTLP exporter configuration) and --export.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_QUEUE_BYTES, parseHeaders, parseSize, resolveExportConfig } from './config.js';
import { parseRetryAfter } from './transport.js';

describe('export configuration', () => {
  it('nothing configured: no export', () => {
    assert.equal(resolveExportConfig({}, {}), undefined);
  });

  it('--export URL: http/protobuf with the signal paths appended, gzip, the default queue', () => {
    const c = resolveExportConfig({ endpoint: 'http://col:4318' }, {})!;
    assert.equal(c.traces?.url, 'http://col:4318/v1/traces');
    assert.equal(c.metrics?.url, 'http://col:4318/v1/metrics');
    assert.equal(c.traces?.protocol, 'http/protobuf');
    assert.equal(c.traces?.compression, 'gzip');
    assert.equal(c.traces?.timeoutMs, 10_000);
    assert.equal(c.queueBytes, DEFAULT_QUEUE_BYTES);
    // a base path keeps one slash before v1/
    assert.equal(resolveExportConfig({ endpoint: 'https://gw/otlp/' }, {})!.traces?.url, 'https://gw/otlp/v1/traces');
  });

  it('the variables: a signal endpoint is used as given, a signal setting wins over the general one, the flag over both', () => {
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://base:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:9999/custom',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf',
      OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20abc, x-a = 1',
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-a=2',
      OTEL_EXPORTER_OTLP_COMPRESSION: 'none',
      OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: '2500',
      OTEL_METRIC_EXPORT_INTERVAL: '5000',
    };
    const c = resolveExportConfig({}, env)!;
    assert.deepEqual(
      { url: c.traces?.url, protocol: c.traces?.protocol, headers: c.traces?.headers, compression: c.traces?.compression },
      { url: 'http://traces:9999/custom', protocol: 'http/protobuf', headers: { authorization: 'Bearer abc', 'x-a': '2' }, compression: 'none' },
    );
    // metrics: grpc to the base endpoint, as is
    assert.equal(c.metrics?.protocol, 'grpc');
    assert.equal(c.metrics?.url, 'http://base:4318');
    assert.equal(c.metrics?.timeoutMs, 2500);
    assert.equal(c.metricsIntervalMs, 5000);
    // --export replaces every endpoint variable; --export-protocol every protocol variable
    const f = resolveExportConfig({ endpoint: 'http://flag:4317', protocol: 'grpc' }, env)!;
    assert.equal(f.traces?.url, 'http://flag:4317');
    assert.equal(f.traces?.protocol, 'grpc');
  });

  it('OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER=none switch a signal off', () => {
    const c = resolveExportConfig({ endpoint: 'http://c:4318' }, { OTEL_METRICS_EXPORTER: 'none' })!;
    assert.ok(c.traces);
    assert.equal(c.metrics, undefined);
    assert.equal(resolveExportConfig({ endpoint: 'http://c:4318' }, { OTEL_METRICS_EXPORTER: 'none', OTEL_TRACES_EXPORTER: 'none' }), undefined);
  });

  it('bad values: a clear error naming the setting', () => {
    assert.throws(() => resolveExportConfig({ endpoint: 'c:4318' }, {}), /--export "c:4318" must start with http/);
    assert.throws(() => resolveExportConfig({ endpoint: 'not a url' }, {}), /is not a URL/);
    assert.throws(() => resolveExportConfig({ endpoint: 'http://u:p@c:4318' }, {}), /credentials/);
    assert.throws(() => resolveExportConfig({ endpoint: 'http://c:4318', protocol: 'http/json' }, {}), /http\/json is not supported/);
    assert.throws(() => resolveExportConfig({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_EXPORTER_OTLP_PROTOCOL: 'thrift' }), /OTEL_EXPORTER_OTLP_PROTOCOL must be/);
    assert.throws(() => resolveExportConfig({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_EXPORTER_OTLP_COMPRESSION: 'zstd' }), /COMPRESSION must be gzip or none/);
    assert.throws(() => resolveExportConfig({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_EXPORTER_OTLP_TIMEOUT: '-1' }), /TIMEOUT must be an integer/);
    assert.throws(() => resolveExportConfig({ endpoint: 'http://c', queue: 'lots' }, {}), /--export-queue must be a size/);
    assert.throws(() => parseHeaders('novalue', 'OTEL_EXPORTER_OTLP_HEADERS'), /is not key=value/);
  });

  it('sizes and Retry-After', () => {
    assert.equal(parseSize('256MiB'), 256 * 2 ** 20);
    assert.equal(parseSize('3KB'), 3000);
    assert.equal(parseSize('1000'), 1000);
    assert.equal(parseSize('0'), undefined);
    assert.equal(parseRetryAfter('7'), 7000);
    assert.equal(parseRetryAfter(new Date(Date.UTC(2030, 0, 1, 0, 0, 30)).toUTCString(), Date.UTC(2030, 0, 1, 0, 0, 0)), 30_000);
    assert.equal(parseRetryAfter('soon'), undefined);
    assert.equal(parseRetryAfter(undefined), undefined);
  });
});
