// One request to the collector and what became of it: delivered, worth retrying (and when),
// or refused for good. The exporter's queue decides what to do with that; a transport never
// retries by itself.
//
// OTLP/gRPC goes through the official transport (@opentelemetry/otlp-grpc-exporter-base).
// OTLP/HTTP is a plain POST here rather than otlp-exporter-base's HTTP delegate: that delegate
// retries inside one request timeout (at most 5 times) and then reports a bare failure, without
// the HTTP status or the Retry-After it saw. The queue has to ride out a 5-minute outage,
// honour Retry-After exactly and tell a refused batch (400: dropped, counted) from an
// unavailable collector (503: kept, retried), so it needs that information.
import { gunzipSync } from 'node:zlib';
import http from 'node:http';
import https from 'node:https';
import { Metadata, status as GrpcStatus, credentials as grpcCredentials } from '@grpc/grpc-js';
import { ExportResultCode } from '@opentelemetry/core';
import { createOtlpGrpcExportDelegate } from '@opentelemetry/otlp-grpc-exporter-base';
import type { ExportTarget } from './config.js';

export type SendResult =
  | { kind: 'ok'; /** the response body (partial success), when any */ response?: Uint8Array }
  | { kind: 'retry'; reason: string; /** the server asked for this wait (Retry-After, RetryInfo) */ retryAfterMs?: number }
  | { kind: 'fail'; reason: string };

export interface Transport {
  /** body: the encoded request, gzip-compressed when `compressed` */
  send(body: Uint8Array, compressed: boolean): Promise<SendResult>;
  shutdown(): void;
}

const USER_AGENT = 'osprey/0.1.0 (OTLP exporter)';
const MAX_RESPONSE = 4 << 20;

/** the OTLP/HTTP statuses worth retrying (specification: "Retryable Response Codes") */
export function retryableHttpStatus(s: number): boolean {
  return s === 429 || s === 502 || s === 503 || s === 504;
}

/** Retry-After as ms: delta-seconds or an HTTP date; undefined when absent or unreadable */
export function parseRetryAfter(v: string | undefined, now = Date.now()): number | undefined {
  if (v === undefined || v.trim() === '') return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

export class HttpTransport implements Transport {
  readonly #url: URL;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  readonly #agent: http.Agent;
  readonly #request: typeof http.request;

  constructor(target: ExportTarget) {
    this.#url = new URL(target.url);
    this.#headers = { ...target.headers, 'content-type': 'application/x-protobuf', 'user-agent': USER_AGENT };
    this.#timeoutMs = target.timeoutMs;
    const secure = this.#url.protocol === 'https:';
    this.#agent = secure ? new https.Agent({ keepAlive: true, maxSockets: 2 }) : new http.Agent({ keepAlive: true, maxSockets: 2 });
    this.#request = secure ? https.request : http.request;
  }

  send(body: Uint8Array, compressed: boolean): Promise<SendResult> {
    return new Promise((resolve) => {
      let settled = false;
      const done = (r: SendResult): void => {
        if (settled) return;
        settled = true;
        resolve(r);
      };
      const headers: Record<string, string> = { ...this.#headers, 'content-length': String(body.length) };
      if (compressed) headers['content-encoding'] = 'gzip';
      const req = this.#request(this.#url, { method: 'POST', headers, agent: this.#agent }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size <= MAX_RESPONSE) chunks.push(c);
        });
        res.on('error', (err) => done({ kind: 'retry', reason: `response: ${err.message}` }));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const data = Buffer.concat(chunks);
          if (status >= 200 && status < 300) done({ kind: 'ok', response: data });
          else if (retryableHttpStatus(status)) {
            const ra: string | undefined = res.headers['retry-after'];
            done({ kind: 'retry', reason: `HTTP ${status}`, retryAfterMs: parseRetryAfter(ra) });
          } else done({ kind: 'fail', reason: `HTTP ${status}${errorText(data, res.headers['content-type'])}` });
        });
      });
      req.setTimeout(this.#timeoutMs, () => {
        req.destroy();
        done({ kind: 'retry', reason: `no answer within ${this.#timeoutMs} ms` });
      });
      // connection refused or reset, DNS not (yet) resolving: the collector may come (back)
      req.on('error', (err: NodeJS.ErrnoException) => done({ kind: 'retry', reason: err.code ?? err.message }));
      req.end(body);
    });
  }

  shutdown(): void {
    this.#agent.destroy();
  }
}

/** a short, printable reason from an error body (OTLP/HTTP errors are a google.rpc.Status, often text) */
function errorText(data: Buffer, type: string | undefined): string {
  if (data.length === 0) return '';
  if (type && /json|text/.test(type)) return `: ${data.toString('utf8', 0, 200).replace(/\s+/g, ' ').trim()}`;
  // protobuf Status{1 code, 2 message}: show the message's printable bytes
  const printable = data.toString('latin1', 0, 300).replace(/[^\x20-\x7e]+/g, ' ').trim();
  return printable ? `: ${printable.slice(0, 200)}` : '';
}

// gRPC status codes the OTLP specification lists as retryable
const GRPC_RETRYABLE = new Set<number>([
  GrpcStatus.CANCELLED,
  GrpcStatus.DEADLINE_EXCEEDED,
  GrpcStatus.RESOURCE_EXHAUSTED,
  GrpcStatus.ABORTED,
  GrpcStatus.OUT_OF_RANGE,
  GrpcStatus.UNAVAILABLE,
  GrpcStatus.DATA_LOSS,
]);

const GRPC_SERVICES: Record<ExportTarget['signal'], { name: string; path: string }> = {
  traces: { name: 'TraceExportService', path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export' },
  metrics: { name: 'MetricsExportService', path: '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export' },
};

/** the official OTLP/gRPC transport; the delegate's serializer passes our encoded bytes through */
export class GrpcTransport implements Transport {
  readonly #delegate;
  /** the response of the export in flight (the exporter sends one request at a time) */
  #response: Uint8Array | undefined;

  constructor(target: ExportTarget) {
    const u = new URL(target.url);
    const port = u.port || (u.protocol === 'https:' ? '443' : '80');
    const serializer = {
      serializeRequest: (bytes: Uint8Array) => bytes,
      deserializeResponse: (data: Uint8Array) => {
        this.#response = data;
        return {};
      },
    };
    const svc = GRPC_SERVICES[target.signal];
    this.#delegate = createOtlpGrpcExportDelegate(
      {
        url: `${u.hostname.includes(':') ? `[${u.hostname}]` : u.hostname}:${port}`,
        metadata: () => {
          const md = new Metadata();
          for (const [k, v] of Object.entries(target.headers)) md.set(k, v);
          return md;
        },
        credentials: () => (u.protocol === 'https:' ? grpcCredentials.createSsl() : grpcCredentials.createInsecure()),
        compression: target.compression,
        timeoutMillis: target.timeoutMs,
        concurrencyLimit: 2,
        userAgent: USER_AGENT,
      },
      serializer,
      'osprey_otlp_grpc_exporter',
      { name: target.signal === 'traces' ? 'span' : 'metric_data_point', countItems: () => 0 },
      undefined,
      svc.name,
      svc.path,
    );
  }

  send(body: Uint8Array, compressed: boolean): Promise<SendResult> {
    // gRPC compresses each message itself (grpc-encoding), from the plain bytes
    const plain = compressed ? gunzipSync(body) : body;
    this.#response = undefined;
    return new Promise((resolve) => {
      this.#delegate.export(plain, (result) => {
        if (result.code === ExportResultCode.SUCCESS) {
          resolve({ kind: 'ok', response: this.#response });
          return;
        }
        const err: (Error & { code?: unknown; details?: string }) | undefined = result.error;
        if (typeof err?.code === 'number') {
          const name = GrpcStatus[err.code] ?? String(err.code);
          const reason = `gRPC ${name}${err.details ? `: ${err.details.slice(0, 200)}` : ''}`;
          resolve(GRPC_RETRYABLE.has(err.code) ? { kind: 'retry', reason } : { kind: 'fail', reason });
        } else {
          resolve({ kind: 'retry', reason: err?.message ?? 'export failed' });
        }
      });
    });
  }

  shutdown(): void {
    void this.#delegate.shutdown();
  }
}

export function createTransport(target: ExportTarget): Transport {
  return target.protocol === 'grpc' ? new GrpcTransport(target) : new HttpTransport(target);
}
