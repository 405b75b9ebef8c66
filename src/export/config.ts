// Where and how to export: `osprey up --export URL` and the standard OpenTelemetry exporter
// variables (specification: "OpenTelemetry Protocol Exporter", configuration options):
//   OTEL_EXPORTER_OTLP_ENDPOINT            base URL; http/protobuf appends /v1/traces, /v1/metrics
//   OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT   per signal, used as given
//   OTEL_EXPORTER_OTLP[_{TRACES,METRICS}]_PROTOCOL http/protobuf (default) | grpc
//   OTEL_EXPORTER_OTLP[_{TRACES,METRICS}]_HEADERS  k=v,k2=v2 (values %-decoded)
//   OTEL_EXPORTER_OTLP[_{TRACES,METRICS}]_COMPRESSION gzip | none
//   OTEL_EXPORTER_OTLP[_{TRACES,METRICS}]_TIMEOUT    ms per request (default 10000)
//   OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER    otlp | none
//   OTEL_METRIC_EXPORT_INTERVAL                     ms between metric exports
// A flag wins over a variable; a signal's variable wins over the general one.
// Deviations from the specification's defaults, on purpose:
// - compression defaults to gzip (the spec says none): the node budget is <= 1 MB/s at 5k req/s
//   and OTLP spans compress ~6x (docs/export.md);
// - metrics are sent every 15 s (the spec says 60 s): Tempo's metrics-generator collection
//   interval, so dashboards built for it see the same resolution.
export class ExportConfigError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

export type OtlpProtocol = 'http/protobuf' | 'grpc';
export type Signal = 'traces' | 'metrics';

export interface ExportTarget {
  signal: Signal;
  protocol: OtlpProtocol;
  /** http/protobuf: the full URL of the signal (…/v1/traces); grpc: http(s)://host:port */
  url: string;
  /** extra request headers (gRPC metadata); values are secrets: never logged */
  headers: Record<string, string>;
  compression: 'gzip' | 'none';
  timeoutMs: number;
}

export interface ExportConfig {
  traces?: ExportTarget;
  metrics?: ExportTarget;
  /** bytes of encoded, compressed spans the queue may hold */
  queueBytes: number;
  metricsIntervalMs: number;
}

export interface ExportFlags {
  /** --export URL */
  endpoint?: string;
  /** --export-protocol */
  protocol?: string;
  /** --export-queue SIZE */
  queue?: string;
}

/**
 * Default queue: 256 MiB of gzip-compressed OTLP. At 47 bytes per span measured on a recorded
 * stream, 60-100 expected for more varied real traffic (docs/export.md), that is 2.7-5.7 M
 * spans: a 5-minute collector outage at 5k spans/s (1.5 M spans) is ridden out with room to spare.
 */
export const DEFAULT_QUEUE_BYTES = 256 * 2 ** 20;
export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_METRICS_INTERVAL_MS = 15_000;

const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30 };

/** "256MB", "64MiB", "1GB", "500000" (bytes) → bytes; undefined when it does not parse */
export function parseSize(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$/i.exec(s.trim());
  if (!m) return undefined;
  const n = Number(m[1]) * (SIZE_UNITS[(m[2] ?? 'b').toLowerCase()] ?? NaN);
  return Number.isFinite(n) && n >= 1 ? Math.floor(n) : undefined;
}

/** OTEL_EXPORTER_OTLP_HEADERS: `k=v,k2=v2`, keys trimmed, values %-decoded */
export function parseHeaders(s: string | undefined, source: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!s) return out;
  for (const part of s.split(',')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    const key = eq > 0 ? part.slice(0, eq).trim() : '';
    if (!key) throw new ExportConfigError(`${source}: "${part.trim().slice(0, 40)}" is not key=value`, 'write headers as key=value pairs separated by commas');
    let value = part.slice(eq + 1).trim();
    try {
      value = decodeURIComponent(value);
    } catch {
      // not %-encoded: taken as written
    }
    out[key.toLowerCase()] = value;
  }
  return out;
}

function protocolOf(v: string, source: string): OtlpProtocol {
  if (v === 'http/protobuf' || v === 'grpc') return v;
  if (v === 'http/json') throw new ExportConfigError(`${source}=http/json is not supported`, 'use http/protobuf (the default) or grpc');
  throw new ExportConfigError(`${source} must be http/protobuf or grpc, got "${v}"`);
}

function checkUrl(u: string, source: string): URL {
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    throw new ExportConfigError(`${source} "${u}" is not a URL`, 'give the collector as http://HOST:PORT, e.g. http://localhost:4318 (OTLP/HTTP) or, with grpc, http://localhost:4317');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ExportConfigError(`${source} "${u}" must start with http:// or https://`, 'e.g. http://localhost:4318');
  }
  if (url.username || url.password) {
    throw new ExportConfigError(`${source} must not carry credentials in the URL`, 'pass them as a header: OTEL_EXPORTER_OTLP_HEADERS=authorization=...');
  }
  return url;
}

/** a base endpoint plus the signal path (the spec: append v1/<signal>, one slash between) */
function withSignalPath(base: URL, signal: Signal): string {
  const path = base.pathname.endsWith('/') ? base.pathname : `${base.pathname}/`;
  return `${base.origin}${path}v1/${signal}${base.search}`;
}

function intEnv(env: NodeJS.ProcessEnv, name: string, min: number): number | undefined {
  const v = env[name];
  if (v === undefined || v.trim() === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new ExportConfigError(`${name} must be an integer >= ${min} (milliseconds), got "${v}"`);
  return n;
}

/** The export configuration, or undefined when nothing asks for export. Throws ExportConfigError. */
export function resolveExportConfig(flags: ExportFlags, env: NodeJS.ProcessEnv = process.env): ExportConfig | undefined {
  const queueBytes = flags.queue === undefined ? DEFAULT_QUEUE_BYTES : parseSize(flags.queue);
  if (queueBytes === undefined) throw new ExportConfigError(`--export-queue must be a size such as 256MB or 64MiB, got "${flags.queue}"`);
  const metricsIntervalMs = intEnv(env, 'OTEL_METRIC_EXPORT_INTERVAL', 100) ?? DEFAULT_METRICS_INTERVAL_MS;
  const general = flags.endpoint ?? (env.OTEL_EXPORTER_OTLP_ENDPOINT || undefined);

  const target = (signal: Signal): ExportTarget | undefined => {
    const S = signal.toUpperCase();
    const exporterVar = `OTEL_${S}_EXPORTER`;
    const which = (env[exporterVar] ?? 'otlp').trim().toLowerCase();
    if (which === 'none') return undefined;
    if (which !== 'otlp' && which !== '') throw new ExportConfigError(`${exporterVar}=${which} is not supported`, 'osprey exports OTLP (otlp) or nothing (none)');
    const protoVar = env[`OTEL_EXPORTER_OTLP_${S}_PROTOCOL`] ? `OTEL_EXPORTER_OTLP_${S}_PROTOCOL` : 'OTEL_EXPORTER_OTLP_PROTOCOL';
    const protoEnv = env[protoVar];
    const protocol = flags.protocol !== undefined ? protocolOf(flags.protocol, '--export-protocol') : protoEnv ? protocolOf(protoEnv, protoVar) : 'http/protobuf';
    // --export replaces every endpoint variable; a signal's own endpoint is used as given
    const own = flags.endpoint === undefined ? env[`OTEL_EXPORTER_OTLP_${S}_ENDPOINT`] || undefined : undefined;
    let url: string;
    if (own !== undefined) {
      url = checkUrl(own, `OTEL_EXPORTER_OTLP_${S}_ENDPOINT`).toString();
    } else if (general !== undefined) {
      const base = checkUrl(general, flags.endpoint !== undefined ? '--export' : 'OTEL_EXPORTER_OTLP_ENDPOINT');
      url = protocol === 'grpc' ? base.origin : withSignalPath(base, signal);
    } else {
      return undefined;
    }
    const compVar = env[`OTEL_EXPORTER_OTLP_${S}_COMPRESSION`] ? `OTEL_EXPORTER_OTLP_${S}_COMPRESSION` : 'OTEL_EXPORTER_OTLP_COMPRESSION';
    const comp = (env[compVar] ?? 'gzip').trim().toLowerCase() || 'gzip';
    if (comp !== 'gzip' && comp !== 'none') throw new ExportConfigError(`${compVar} must be gzip or none, got "${comp}"`);
    const timeoutMs = intEnv(env, `OTEL_EXPORTER_OTLP_${S}_TIMEOUT`, 1) ?? intEnv(env, 'OTEL_EXPORTER_OTLP_TIMEOUT', 1) ?? DEFAULT_TIMEOUT_MS;
    const headers = {
      ...parseHeaders(env.OTEL_EXPORTER_OTLP_HEADERS, 'OTEL_EXPORTER_OTLP_HEADERS'),
      ...parseHeaders(env[`OTEL_EXPORTER_OTLP_${S}_HEADERS`], `OTEL_EXPORTER_OTLP_${S}_HEADERS`),
    };
    return { signal, protocol, url, headers, compression: comp, timeoutMs };
  };

  const traces = target('traces');
  const metrics = target('metrics');
  if (!traces && !metrics) return undefined;
  return { traces, metrics, queueBytes, metricsIntervalMs };
}

/** "http/protobuf http://c:4318/v1/traces" for log lines: the URL without query (it may carry tokens) */
export function describeTarget(t: ExportTarget): string {
  const u = new URL(t.url);
  return `${t.protocol} ${u.origin}${t.protocol === 'grpc' ? '' : u.pathname}${Object.keys(t.headers).length ? ` (+${Object.keys(t.headers).length} headers)` : ''}`;
}
