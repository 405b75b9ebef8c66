// The OTLP/HTTP receiver: POST /v1/traces, /v1/metrics, /v1/logs on the server's listener, so an
// OpenTelemetry SDK pointed at http://127.0.0.1:7070 (OTEL_EXPORTER_OTLP_ENDPOINT) sends here.
//
// The rules it implements (opentelemetry-proto docs/specification.md, "OTLP/HTTP"):
// - bodies are protobuf (Content-Type application/x-protobuf) or JSON (application/json);
//   anything else is 415. Content-Encoding gzip or deflate, or none; another encoding is 415.
// - the body is read up to a limit (maxBodyBytes, on the wire and again after decompression):
//   over it, 413 at once (the rest of the body is discarded unread). All requests being
//   read at once share a byte budget (maxInFlightBytes): over it, 503 with Retry-After, which
//   OTLP clients retry.
// - a body that does not decode is 400 (clients must not retry it); the error body is a
//   google.rpc.Status in the request's encoding.
// - success is 200 with Export*ServiceResponse in the request's encoding; partial_success is set
//   only when something was refused (rejected_* > 0) or is worth a warning (span events and links
//   over the per-span limits, or links without valid ids, dropped and counted on their span).
// - traces become spans of the model (otlp-decode.ts) and go where the agent's spans go (the
//   store; in `osprey up` also the RED metrics and the export). A span with a broken id or time is
//   refused alone, counted by reason and named in the partial-success message.
// - metrics and logs: the store keeps spans only. They are decoded (a malformed body is still a
//   400), then answered 200 with every data point / log record reported as rejected in
//   partial_success (so the client logs it and does not retry) and counted in /metrics: never a
//   silent 200 that loses data.
// Every outcome is counted (osprey_otlp_* in /metrics and osprey status).
import type { IncomingMessage } from 'node:http';
import { promisify } from 'node:util';
import { gunzip, inflate } from 'node:zlib';
import type { Span } from '../model/index.js';
import type { MetricFamily } from '../metrics/prometheus.js';
import {
  countDataPoints,
  countLogRecords,
  decodeRequest,
  encodeResponse,
  MAX_EVENTS_PER_SPAN,
  MAX_LINKS_PER_SPAN,
  OtlpDecodeError,
  SPAN_REJECT_REASONS,
  toSpans,
  type Signal,
  type SpanRejectReason,
} from './otlp-decode.js';
import { loadProtos } from './tempo-proto.js';
import type protobuf from 'protobufjs';

const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);

export const SIGNALS: readonly Signal[] = ['traces', 'metrics', 'logs'];

export const REFUSAL_REASONS = [
  /** body over maxBodyBytes, compressed or not (413) */
  'too_large',
  /** Content-Type or Content-Encoding not accepted (415) */
  'unsupported_media_type',
  /** gzip/deflate data that does not decompress (400) */
  'bad_compression',
  /** not an OTLP message of the signal (400) */
  'malformed',
  /** the client stopped sending before the end of the body */
  'incomplete',
  /** the in-flight byte budget is used up (503, retry) */
  'busy',
  /** nowhere to put spans (no store, no export) (503) */
  'no_destination',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export interface OtlpReceiverOptions {
  /** where accepted spans go; undefined: /v1/traces answers 503 no_destination */
  ingest: ((spans: Span[]) => void) | undefined;
  /** largest body, on the wire and decompressed (default 32 MiB) */
  maxBodyBytes?: number;
  /** bytes of all bodies being read at once (default 128 MiB) */
  maxInFlightBytes?: number;
}

export interface OtlpCounters {
  requests: Record<Signal, { accepted: number; partial: number; refused: number }>;
  refused: Record<Signal, Record<RefusalReason, number>>;
  spansReceived: number;
  spansRejected: Record<SpanRejectReason, number>;
  spanEventsDropped: number;
  spanLinksDropped: number;
  dataPointsRejected: number;
  logRecordsRejected: number;
}

export interface OtlpReply {
  status: number;
  type: string;
  headers?: Record<string, string>;
  body: Uint8Array | string;
}

type Encoding = 'protobuf' | 'json';

/** the outcome of handleMessage: the Export*ServiceResponse, or a refusal as its HTTP status */
export type OtlpMessageResult =
  | { ok: true; response: Uint8Array }
  | { ok: false; status: number; reason: RefusalReason; message: string };

class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly reason: RefusalReason,
    message: string,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

let statusType: protobuf.Type | undefined;

export class OtlpReceiver {
  readonly counters: OtlpCounters;
  private readonly maxBody: number;
  private readonly maxInFlight: number;
  private inFlight = 0;

  constructor(private readonly opts: OtlpReceiverOptions) {
    this.maxBody = opts.maxBodyBytes ?? 32 << 20;
    this.maxInFlight = Math.max(opts.maxInFlightBytes ?? 128 << 20, this.maxBody);
    const per = <T>(f: () => T) => Object.fromEntries(SIGNALS.map((s) => [s, f()])) as Record<Signal, T>;
    this.counters = {
      requests: per(() => ({ accepted: 0, partial: 0, refused: 0 })),
      refused: per(() => Object.fromEntries(REFUSAL_REASONS.map((r) => [r, 0])) as Record<RefusalReason, number>),
      spansReceived: 0,
      spansRejected: Object.fromEntries(SPAN_REJECT_REASONS.map((r) => [r, 0])) as Record<SpanRejectReason, number>,
      spanEventsDropped: 0,
      spanLinksDropped: 0,
      dataPointsRejected: 0,
      logRecordsRejected: 0,
    };
  }

  /** the largest message or body accepted, in bytes (on the wire and decompressed) */
  get maxBodyBytes(): number {
    return this.maxBody;
  }

  async handle(signal: Signal, req: IncomingMessage): Promise<OtlpReply> {
    let encoding: Encoding | undefined;
    try {
      encoding = contentEncoding(req.headers['content-type']);
      if (signal === 'traces' && !this.opts.ingest) {
        throw new Refusal(503, 'no_destination', 'this osprey keeps no spans and exports none', { 'retry-after': '60' });
      }
      const body = await this.readBody(req);
      const message = decodeRequest(signal, body, encoding);
      return this.accept(signal, message, encoding);
    } catch (err) {
      const r = this.refused(signal, err);
      return { ...errorBody(r.status, r.message, encoding), ...(r.headers ? { headers: r.headers } : {}) };
    }
  }

  /**
   * One OTLP protobuf message that came by another transport (OTLP/gRPC, otlp-grpc.ts), already
   * read and decompressed by it: the same checks, limits, counters and partial-success answer
   * as a POST /v1/<signal>. The in-flight byte budget covers the decoding, which is where a
   * message grows (decoded objects are several times the wire size).
   */
  handleMessage(signal: Signal, body: Uint8Array): OtlpMessageResult {
    let reserved = 0;
    try {
      if (signal === 'traces' && !this.opts.ingest) throw new Refusal(503, 'no_destination', 'this osprey keeps no spans and exports none');
      if (body.length > this.maxBody) throw this.tooLarge(`the message is ${body.length} bytes`);
      if (this.inFlight + body.length > this.maxInFlight) throw new Refusal(503, 'busy', 'osprey is decoding too many OTLP messages at once: retry shortly');
      this.inFlight += body.length;
      reserved = body.length;
      const reply = this.accept(signal, decodeRequest(signal, body, 'protobuf'), 'protobuf');
      return { ok: true, response: reply.body as Uint8Array };
    } catch (err) {
      const r = this.refused(signal, err);
      return { ok: false, status: r.status, reason: r.reason, message: r.message };
    } finally {
      this.inFlight -= reserved;
    }
  }

  /** counts a refusal; anything that is not one (a bug) is thrown on */
  private refused(signal: Signal, err: unknown): Refusal {
    if (err instanceof OtlpDecodeError) err = new Refusal(400, 'malformed', err.message);
    if (!(err instanceof Refusal)) throw err;
    this.counters.requests[signal].refused++;
    this.counters.refused[signal][err.reason]++;
    return err;
  }

  private accept(signal: Signal, message: protobuf.Message, encoding: Encoding): OtlpReply {
    const type = encoding === 'json' ? 'application/json' : 'application/x-protobuf';
    let partial: { rejected: number; message: string } | undefined;
    if (signal === 'traces') {
      const batch = toSpans(message);
      if (batch.spans.length) this.opts.ingest!(batch.spans);
      this.counters.spansReceived += batch.spans.length;
      let rejected = 0;
      for (const r of SPAN_REJECT_REASONS) {
        this.counters.spansRejected[r] += batch.rejected[r];
        rejected += batch.rejected[r];
      }
      this.counters.spanEventsDropped += batch.droppedEvents;
      this.counters.spanLinksDropped += batch.droppedLinks;
      const notes: string[] = [];
      if (rejected) notes.push(`${rejected} span(s) refused, e.g. ${batch.firstRejection}`);
      if (batch.droppedEvents || batch.droppedLinks) {
        notes.push(
          `${batch.droppedEvents} span event(s) and ${batch.droppedLinks} link(s) not kept: over ${MAX_EVENTS_PER_SPAN} events or ${MAX_LINKS_PER_SPAN} links per span, or a link without a valid trace and span id (counted in their spans' dropped counts)`,
        );
      }
      if (notes.length) partial = { rejected, message: notes.join('; ') };
    } else if (signal === 'metrics') {
      const n = countDataPoints(message);
      this.counters.dataPointsRejected += n;
      if (n) partial = { rejected: n, message: `osprey stores traces only: ${n} metric data point(s) not kept; send metrics to Prometheus or Mimir` };
    } else {
      const n = countLogRecords(message);
      this.counters.logRecordsRejected += n;
      if (n) partial = { rejected: n, message: `osprey stores traces only: ${n} log record(s) not kept; send logs to Loki` };
    }
    if (partial && partial.rejected > 0) this.counters.requests[signal].partial++;
    else this.counters.requests[signal].accepted++;
    return { status: 200, type, body: encodeResponse(signal, encoding, partial) };
  }

  /** the whole body, decompressed, within the limits */
  private async readBody(req: IncomingMessage): Promise<Uint8Array> {
    const enc = String(req.headers['content-encoding'] ?? '').trim().toLowerCase();
    if (enc !== '' && enc !== 'identity' && enc !== 'gzip' && enc !== 'deflate') {
      throw new Refusal(415, 'unsupported_media_type', `Content-Encoding "${enc.slice(0, 40)}" is not supported: send gzip, deflate or no encoding`);
    }
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > this.maxBody) throw this.tooLarge(`the body is ${declared} bytes`);
    const raw = await this.collect(req, Number.isFinite(declared) ? declared : 0);
    if (enc === 'gzip' || enc === 'deflate') {
      try {
        return await (enc === 'gzip' ? gunzipAsync : inflateAsync)(raw, { maxOutputLength: this.maxBody });
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) throw this.tooLarge('the body decompresses to more');
        throw new Refusal(400, 'bad_compression', `the ${enc} body does not decompress (${e.message})`);
      }
    }
    return raw;
  }

  private tooLarge(what: string): Refusal {
    return new Refusal(413, 'too_large', `${what} than the ${this.maxBody} bytes a request may carry: send smaller batches (e.g. the SDK's maxExportBatchSize)`);
  }

  private collect(req: IncomingMessage, declared: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let reserved = 0;
      let done = false;
      const reserve = (n: number): boolean => {
        if (this.inFlight + n > this.maxInFlight) return false;
        this.inFlight += n;
        reserved += n;
        return true;
      };
      const finish = (err?: Refusal): void => {
        if (done) return;
        done = true;
        this.inFlight -= reserved;
        req.off('data', onData).off('end', onEnd).off('error', onError).off('aborted', onAborted);
        if (err) {
          // the rest of the body is read and thrown away (node's server does the same for a body
          // nobody reads), so the client gets its answer and the connection stays usable:
          // closing it with bytes unread would reset it before the client reads the answer.
          // Node's requestTimeout bounds how long a client may keep sending.
          req.resume();
          reject(err);
        } else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
      };
      const busy = () =>
        new Refusal(503, 'busy', 'osprey is reading too many OTLP requests at once: retry shortly', { 'retry-after': '1' });
      // a declared length is reserved up front, so that a burst of large requests is refused
      // before it is read, not halfway through
      if (declared > 0 && !reserve(declared)) {
        finish(busy());
        return;
      }
      const onData = (c: Buffer): void => {
        size += c.length;
        if (size > this.maxBody) return finish(this.tooLarge('the body is larger'));
        if (size > reserved && !reserve(size - reserved)) return finish(busy());
        chunks.push(c);
      };
      const onEnd = (): void => finish();
      const onError = (): void => finish(new Refusal(400, 'incomplete', 'the request body ended early'));
      const onAborted = onError;
      req.on('data', onData).on('end', onEnd).on('error', onError).on('aborted', onAborted);
    });
  }

  /** counters for osprey status */
  status(): Record<string, number> {
    const c = this.counters;
    const out: Record<string, number> = {
      otlp_spans_received: c.spansReceived,
      otlp_span_events_dropped: c.spanEventsDropped,
      otlp_span_links_dropped: c.spanLinksDropped,
      otlp_data_points_rejected: c.dataPointsRejected,
      otlp_log_records_rejected: c.logRecordsRejected,
    };
    for (const r of SPAN_REJECT_REASONS) out[`otlp_spans_rejected_${r}`] = c.spansRejected[r];
    for (const s of SIGNALS) {
      out[`otlp_${s}_requests_accepted`] = c.requests[s].accepted;
      out[`otlp_${s}_requests_partial`] = c.requests[s].partial;
      out[`otlp_${s}_requests_refused`] = c.requests[s].refused;
    }
    return out;
  }

  /** counters for /metrics */
  families(): MetricFamily[] {
    const c = this.counters;
    return [
      {
        name: 'osprey_otlp_requests_total',
        help: 'OTLP requests (OTLP/HTTP and OTLP/gRPC) by signal and outcome: accepted whole, partial (some items refused), refused (4xx/5xx, gRPC error).',
        type: 'counter',
        samples: SIGNALS.flatMap((signal) =>
          (['accepted', 'partial', 'refused'] as const).map((outcome) => ({ labels: { signal, outcome }, value: c.requests[signal][outcome] })),
        ),
      },
      {
        name: 'osprey_otlp_refused_requests_total',
        help: 'OTLP requests refused whole, by signal and reason (too_large 413, unsupported_media_type 415, malformed/bad_compression 400, busy 503...; gRPC refusals of grpc-js itself are in osprey_otlp_grpc_calls_total).',
        type: 'counter',
        samples: SIGNALS.flatMap((signal) => REFUSAL_REASONS.map((reason) => ({ labels: { signal, reason }, value: c.refused[signal][reason] }))),
      },
      { name: 'osprey_otlp_received_spans_total', help: 'Spans received over OTLP and handed to the store (and export).', type: 'counter', samples: [{ value: c.spansReceived }] },
      {
        name: 'osprey_otlp_rejected_spans_total',
        help: 'Spans refused one by one inside accepted OTLP requests (reported to the sender as partial success), by reason.',
        type: 'counter',
        samples: SPAN_REJECT_REASONS.map((reason) => ({ labels: { reason }, value: c.spansRejected[reason] })),
      },
      {
        name: 'osprey_otlp_dropped_span_events_total',
        help: 'Span events received over OTLP and not kept: over the per-span limit (their spans are kept, with the count in dropped_events_count).',
        type: 'counter',
        samples: [{ value: c.spanEventsDropped }],
      },
      {
        name: 'osprey_otlp_dropped_span_links_total',
        help: 'Span links received over OTLP and not kept: over the per-span limit or without a valid trace and span id (their spans are kept, with the count in dropped_links_count).',
        type: 'counter',
        samples: [{ value: c.spanLinksDropped }],
      },
      {
        name: 'osprey_otlp_rejected_data_points_total',
        help: 'Metric data points received on /v1/metrics and not kept (osprey stores traces only; reported as partial success).',
        type: 'counter',
        samples: [{ labels: { reason: 'not_stored' }, value: c.dataPointsRejected }],
      },
      {
        name: 'osprey_otlp_rejected_log_records_total',
        help: 'Log records received on /v1/logs and not kept (osprey stores traces only; reported as partial success).',
        type: 'counter',
        samples: [{ labels: { reason: 'not_stored' }, value: c.logRecordsRejected }],
      },
    ];
  }
}

/** the request's body encoding from its Content-Type, or a 415 */
function contentEncoding(ct: string | undefined): Encoding {
  const type = String(ct ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'application/x-protobuf' || type === 'application/protobuf') return 'protobuf';
  if (type === 'application/json') return 'json';
  throw new Refusal(
    415,
    'unsupported_media_type',
    type === '' ? 'no Content-Type: send application/x-protobuf or application/json' : `Content-Type "${type.slice(0, 60)}" is not OTLP: send application/x-protobuf or application/json`,
  );
}

/** google.rpc.Status (code INVALID_ARGUMENT, or UNAVAILABLE for 503) in the request's encoding; JSON when it is unknown */
function errorBody(status: number, message: string, encoding: Encoding | undefined): { status: number; type: string; body: Uint8Array | string } {
  const code = status === 503 ? 14 : status === 413 ? 8 : 3;
  if (encoding === 'protobuf') {
    statusType ??= loadProtos(['google/rpc/status.proto']).lookupType('google.rpc.Status');
    return { status, type: 'application/x-protobuf', body: statusType.encode(statusType.fromObject({ code, message })).finish() };
  }
  return { status, type: 'application/json', body: JSON.stringify({ code, message }) };
}
