// The OTLP/gRPC receiver: opentelemetry.proto.collector.{trace,metrics,logs}.v1.*Service/Export
// on a listener of its own (`osprey up --otlp-grpc`, default 127.0.0.1:4317): the port and
// protocol OpenTelemetry SDKs and the Collector's `otlp` exporter use when told nothing else.
//
// The rules it implements (opentelemetry-proto docs/specification.md, "OTLP/gRPC"):
// - unary Export calls over @grpc/grpc-js. The message bytes go, as they are, to the same
//   OtlpReceiver as POST /v1/<signal> (otlp-receiver.ts), which decodes them with the
//   OpenTelemetry JS generated definitions (otlp-decode.ts): the same checks, size limit,
//   in-flight byte budget, partial-success answers and osprey_otlp_* counters. (Decoding in the
//   handler, not in grpc-js's deserializer, is what lets a bad message get INVALID_ARGUMENT with
//   the reason: grpc-js answers a deserializer's exception with a bare INTERNAL.)
// - refusals as gRPC codes: a message that does not decode INVALID_ARGUMENT (the client must not
//   retry); osprey busy decoding others UNAVAILABLE (retried); nowhere to put spans
//   FAILED_PRECONDITION.
// - grpc-js itself answers, before any handler runs: a message over the limit (its
//   max_receive_message_length, the receiver's maxBodyBytes, checked on the wire and after
//   decompression) RESOURCE_EXHAUSTED, without RetryInfo so it is not retried; an unknown
//   service or method UNIMPLEMENTED; compression it cannot undo INTERNAL or UNIMPLEMENTED; a
//   request that is not gRPC HTTP 415. grpc-js offers no hook for those answers, so every call
//   is counted from its HTTP/2 stream when the stream closes, by method and by the status it was
//   answered with (osprey_otlp_grpc_calls_total): every call, whoever answered it.
// - memory: one message is at most maxBodyBytes; a connection carries at most MAX_STREAMS calls
//   at once (HTTP/2 SETTINGS), and at most MAX_SESSIONS connections are open at once (more are
//   closed at once and counted): grpc-js buffers at most MAX_SESSIONS x MAX_STREAMS messages.
//   The HTTP receiver's in-flight budget does not apply here (grpc-js has buffered a message
//   before the handler sees it), hence these bounds.
import type { Http2Server, Http2Session, IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { createServer as createNetServer } from 'node:net';
import { Server, ServerCredentials, status as GrpcStatus, type sendUnaryData, type ServerUnaryCall, type ServiceDefinition } from '@grpc/grpc-js';
import type { MetricFamily } from '../metrics/prometheus.js';
import type { Signal } from './otlp-decode.js';
import { SIGNALS, type OtlpMessageResult, type OtlpReceiver } from './otlp-receiver.js';

/** the gRPC service of each signal (opentelemetry-proto, collector/<signal>/v1/*_service.proto) */
export const OTLP_GRPC_SERVICES: Readonly<Record<Signal, string>> = {
  traces: 'opentelemetry.proto.collector.trace.v1.TraceService',
  metrics: 'opentelemetry.proto.collector.metrics.v1.MetricsService',
  logs: 'opentelemetry.proto.collector.logs.v1.LogsService',
};

/** the default address: the port every OTLP exporter uses for gRPC; loopback only, like the HTTP listener */
export const OTLP_GRPC_DEFAULT = { host: '127.0.0.1', port: 4317 } as const;

/** calls one connection may have open at once (grpc-js buffers each one's message) */
const MAX_STREAMS = 32;
/** connections open at once; an exporter keeps one (a collector a few) */
const MAX_SESSIONS = 16;

/** the label of a call: its signal, or `unknown` for a path that is none of the services' Export */
export type GrpcCallMethod = Signal | 'unknown';
const METHODS: readonly GrpcCallMethod[] = [...SIGNALS, 'unknown'];
/** codes always in /metrics (others appear once seen) */
const USUAL_CODES = ['OK', 'INVALID_ARGUMENT', 'RESOURCE_EXHAUSTED', 'UNIMPLEMENTED', 'UNAVAILABLE', 'INTERNAL', 'CANCELLED'];

export interface OtlpGrpcOptions {
  receiver: OtlpReceiver;
  host: string;
  port: number;
}

export class OtlpGrpcError extends Error {
  constructor(
    message: string,
    readonly hint: string,
    /** the errno code of the listen failure (EADDRINUSE...), when there is one */
    readonly code: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'OtlpGrpcError';
  }
}

const passBytes = (b: Buffer): Buffer => b;

function serviceDefinition(signal: Signal): ServiceDefinition {
  return {
    Export: {
      path: `/${OTLP_GRPC_SERVICES[signal]}/Export`,
      requestStream: false,
      responseStream: false,
      // bytes in, bytes out: OtlpReceiver decodes and encodes (see the top of this file)
      requestSerialize: passBytes,
      requestDeserialize: passBytes,
      responseSerialize: passBytes,
      responseDeserialize: passBytes,
    },
  };
}

/** a refusal of OtlpReceiver (as its HTTP status) as the gRPC code OTLP/gRPC prescribes */
function grpcCode(r: Extract<OtlpMessageResult, { ok: false }>): GrpcStatus {
  if (r.reason === 'no_destination') return GrpcStatus.FAILED_PRECONDITION;
  if (r.status === 503) return GrpcStatus.UNAVAILABLE;
  if (r.status === 413) return GrpcStatus.RESOURCE_EXHAUSTED;
  return GrpcStatus.INVALID_ARGUMENT;
}

/** how a call's stream was answered: a gRPC code name, http_<status>, or no_answer (the client reset it first) */
function answerOf(stream: ServerHttp2Stream): string {
  let heads: OutgoingHttpHeaders | undefined;
  let trailers: OutgoingHttpHeaders | undefined;
  try {
    heads = stream.sentHeaders;
    trailers = stream.sentTrailers;
  } catch {
    return 'no_answer';
  }
  // a normal answer carries grpc-status in its trailers; a trailers-only answer (every error
  // sent before any message) in its headers
  const code = trailers?.['grpc-status'] ?? heads?.['grpc-status'];
  if (code !== undefined) return GrpcStatus[Number(code)] ?? `code_${String(code)}`;
  const http = heads?.[':status'];
  if (http !== undefined && Number(http) !== 200) return `http_${String(http)}`;
  return 'no_answer';
}

export class OtlpGrpcReceiver {
  /** calls by method and by the status they were answered with */
  readonly calls: Record<GrpcCallMethod, Record<string, number>>;
  /** handler failures that are bugs (answered INTERNAL) */
  internalErrors = 0;
  /** connections open now, and those closed at once because MAX_SESSIONS were open */
  private sessions = 0;
  private sessionsRefused = 0;
  /** false when grpc-js's HTTP/2 servers could not be reached: then calls are not counted by code */
  callsObserved = false;
  private closed = false;

  private constructor(
    private readonly server: Server,
    private readonly receiver: OtlpReceiver,
    /** host:port it listens on ([v6]:port) */
    readonly address: string,
  ) {
    this.calls = Object.fromEntries(METHODS.map((m) => [m, Object.fromEntries(USUAL_CODES.map((c) => [c, 0]))])) as Record<GrpcCallMethod, Record<string, number>>;
  }

  /** listens on host:port and serves until close() */
  static async start(opts: OtlpGrpcOptions): Promise<OtlpGrpcReceiver> {
    const server = new Server({
      'grpc.max_receive_message_length': opts.receiver.maxBodyBytes,
      'grpc.max_send_message_length': 1 << 20,
      'grpc.max_concurrent_streams': MAX_STREAMS,
    });
    const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
    let port: number;
    try {
      // grpc-js writes its own bind failure to stderr before rejecting: a taken port (the usual
      // failure, e.g. a local collector on 4317) is found first with a plain listen, so osprey's
      // message is the only one. grpc-js's bind below still reports whatever this misses.
      if (opts.port !== 0) await probeListen(opts.host, opts.port);
      port = await new Promise<number>((resolve, reject) =>
        server.bindAsync(`${host}:${opts.port}`, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
      );
    } catch (err) {
      server.forceShutdown();
      throw bindError(err as Error, `${host}:${opts.port}`);
    }
    const r = new OtlpGrpcReceiver(server, opts.receiver, `${host}:${port}`);
    for (const signal of SIGNALS) {
      server.addService(serviceDefinition(signal), { Export: r.exportHandler(signal) });
    }
    r.observeCalls();
    return r;
  }

  private exportHandler(signal: Signal) {
    return (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>): void => {
      let r: OtlpMessageResult;
      try {
        r = this.receiver.handleMessage(signal, call.request);
      } catch (err) {
        this.internalErrors++;
        callback({ code: GrpcStatus.INTERNAL, details: `internal error: ${err instanceof Error ? err.message : String(err)}` });
        return;
      }
      if (r.ok) callback(null, Buffer.from(r.response.buffer, r.response.byteOffset, r.response.byteLength));
      else callback({ code: grpcCode(r), details: r.message });
    };
  }

  /**
   * Counts every call from its HTTP/2 stream (see the top of this file). grpc-js keeps its
   * HTTP/2 servers in a private map: read, not changed, and if a grpc-js release renames it the
   * receiver still serves, callsObserved is false and osprey status says the counts are missing.
   */
  private observeCalls(): void {
    const servers = (this.server as unknown as { http2Servers?: unknown }).http2Servers;
    if (!(servers instanceof Map)) return;
    for (const h2 of (servers as Map<Http2Server, unknown>).keys()) {
      h2.on('session', (session: Http2Session) => {
        if (this.sessions >= MAX_SESSIONS) {
          this.sessionsRefused++;
          session.destroy();
          return;
        }
        this.sessions++;
        session.once('close', () => this.sessions--);
      });
      h2.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
        const method = methodOf(String(headers[':path'] ?? ''));
        stream.once('close', () => {
          const code = answerOf(stream);
          const m = this.calls[method];
          m[code] = (m[code] ?? 0) + 1;
        });
      });
      this.callsObserved = true;
    }
  }

  /** stops listening; calls in progress get 5 s to finish */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 5000);
      this.server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** counters for osprey status: calls by method and code (those that happened), and whether they are counted at all */
  status(): Record<string, number> {
    const out: Record<string, number> = {
      otlp_grpc_calls_observed: this.callsObserved ? 1 : 0,
      otlp_grpc_internal_errors: this.internalErrors,
      otlp_grpc_connections_refused: this.sessionsRefused,
    };
    for (const m of METHODS) for (const [code, n] of Object.entries(this.calls[m])) if (n > 0) out[`otlp_grpc_calls_${m}_${code}`] = n;
    return out;
  }

  /** counters for /metrics */
  families(): MetricFamily[] {
    return [
      {
        name: 'osprey_otlp_grpc_calls_total',
        help: 'OTLP/gRPC calls by method (the signal of the service called, unknown for any other path) and the gRPC status they were answered with (http_415: not gRPC; no_answer: the client reset the call first). Includes what grpc-js refuses itself: RESOURCE_EXHAUSTED (over the size limit), UNIMPLEMENTED (unknown method).',
        type: 'counter',
        samples: METHODS.flatMap((method) => Object.entries(this.calls[method]).map(([code, value]) => ({ labels: { method, code }, value }))),
      },
      { name: 'osprey_otlp_grpc_internal_errors_total', help: 'OTLP/gRPC calls that failed inside osprey (INTERNAL).', type: 'counter', samples: [{ value: this.internalErrors }] },
    ];
  }
}

/** listens on host:port and closes at once: rejects with the errno error if it cannot */
function probeListen(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.once('error', reject);
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

function methodOf(path: string): GrpcCallMethod {
  for (const s of SIGNALS) if (path === `/${OTLP_GRPC_SERVICES[s]}/Export`) return s;
  return 'unknown';
}

/** a listen failure (the probe's errno error, or grpc-js's "No address added…" with the errno inside) in words */
function bindError(err: Error, where: string): OtlpGrpcError {
  const code = (err as NodeJS.ErrnoException).code ?? /\b(EADDRINUSE|EADDRNOTAVAIL|EACCES|ENOTFOUND|EAI_AGAIN)\b/.exec(err.message)?.[1];
  switch (code) {
    case 'EADDRINUSE':
      return new OtlpGrpcError(`cannot listen for OTLP/gRPC on ${where}: the port is in use`, 'another OpenTelemetry Collector or osprey may hold it: pass --otlp-grpc HOST:PORT or --otlp-grpc off', code, { cause: err });
    case 'EADDRNOTAVAIL':
      return new OtlpGrpcError(`cannot listen for OTLP/gRPC on ${where}: not an address of this machine`, 'use a local address, e.g. --otlp-grpc 127.0.0.1:4317 or 0.0.0.0:4317', code, { cause: err });
    case 'EACCES':
      return new OtlpGrpcError(`cannot listen for OTLP/gRPC on ${where}: permission denied`, 'ports below 1024 need root or CAP_NET_BIND_SERVICE; pick a higher port', code, { cause: err });
    default:
      return new OtlpGrpcError(`cannot listen for OTLP/gRPC on ${where}: ${err.message}`, 'pass --otlp-grpc HOST:PORT with an IP address of this machine, or --otlp-grpc off', code, { cause: err });
  }
}
