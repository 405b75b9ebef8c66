// Spans → OTLP batches → a bounded queue → the collector, one request at a time.
//
//   consume(spans)     the agent's sink (hot path): appends references to the open batch
//   cut                every `batchDelayMs`, or once the batch holds `batchSpans`: encode
//                      (protobuf, otlp.ts) and gzip, both on the JS thread (see #enqueue)
//   queue              encoded batches, bounded in BYTES (`queueBytes`, compressed size).
//                      A batch that does not fit is dropped whole and counted (queue_full),
//                      as the collector's own sending_queue does: what is queued is never
//                      thrown away for newer data, so an outage costs its newest spans, and
//                      exactly as many as the counter says.
//   send               the head of the queue; delivered → sent; 429/502/503/504, gRPC
//                      UNAVAILABLE & co, connection errors and timeouts → the batch stays at the
//                      head and is sent again after Retry-After (when the collector gave one)
//                      or an exponential backoff (1 s doubling to 30 s, ±20% jitter), without
//                      end: the queue budget, not a retry count, bounds an outage; any other
//                      refusal (400, 401, 413, gRPC INVALID_ARGUMENT …) → dropped (rejected),
//                      counted, logged once per reason, and the exporter carries on.
// Every span handed to consume() ends up in exactly one of: sent, dropped{reason}, or still
// queued/open (gauges), so sent + Σ dropped + queued == consumed at all times.
import { gzipSync } from 'node:zlib';
import type { Span } from '../model/index.js';
import type { ExportTarget } from './config.js';
import { describeTarget } from './config.js';
import { encodeSpans, rejectedSpans } from './otlp.js';
import { createTransport, type SendResult, type Transport } from './transport.js';

export const DROP_REASONS = ['queue_full', 'rejected', 'partial_rejected', 'encode_error', 'shutdown'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export interface SpanExportCounters {
  /** spans handed to the exporter */
  consumed: number;
  /** spans the collector accepted */
  sent: number;
  /** span deliveries tried again (a batch of n spans retried once adds n) */
  retried: number;
  /** requests that failed and were tried again */
  retries: number;
  /** requests delivered */
  requests: number;
  /** bytes delivered (on the wire, compressed when compression is on) */
  sentBytes: number;
  /** plain (uncompressed) protobuf bytes encoded */
  encodedBytes: number;
  dropped: Record<DropReason, number>;
}

export interface SpanExporterOptions {
  target: ExportTarget;
  /** most bytes the queue holds (compressed batches) */
  queueBytes: number;
  /** spans per request (default 1024) */
  batchSpans?: number;
  /** an open batch is cut at the latest after this long, ms (default 1000) */
  batchDelayMs?: number;
  /** initial and longest backoff between retries, ms (default 1000 and 30000) */
  backoffMs?: readonly [number, number];
  /** progress and error lines ("export: …") */
  log?: (line: string) => void;
  /** for tests: the transport (default: from target.protocol) */
  transport?: Transport;
}

interface Batch {
  bytes: Uint8Array;
  spans: number;
}

export class SpanExporter {
  readonly counters: SpanExportCounters = {
    consumed: 0,
    sent: 0,
    retried: 0,
    retries: 0,
    requests: 0,
    sentBytes: 0,
    encodedBytes: 0,
    dropped: { queue_full: 0, rejected: 0, partial_rejected: 0, encode_error: 0, shutdown: 0 },
  };
  readonly target: ExportTarget;
  readonly queueLimitBytes: number;
  readonly #transport: Transport;
  readonly #batchSpans: number;
  readonly #batchDelayMs: number;
  readonly #backoff: readonly [number, number];
  readonly #log: (line: string) => void;
  readonly #compress: boolean;

  #open: Span[] = [];
  #queue: Batch[] = [];
  #queuedSpans = 0;
  /** queued batches' bytes */
  #queuedBytes = 0;
  #sending = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #cutTimer: NodeJS.Timeout | undefined;
  #cutScheduled = false;
  #nextBackoff: number;
  /** since when the collector has been failing (0: it is not), and the last reason */
  #failingSince = 0;
  #lastFailure = '';
  #lastFailureLog = 0;
  #refusals = new Set<string>();
  #closed = false;
  #idle: (() => void)[] = [];

  constructor(opts: SpanExporterOptions) {
    this.target = opts.target;
    this.queueLimitBytes = opts.queueBytes;
    this.#transport = opts.transport ?? createTransport(opts.target);
    this.#batchSpans = opts.batchSpans ?? 1024;
    this.#batchDelayMs = opts.batchDelayMs ?? 1000;
    this.#backoff = opts.backoffMs ?? [1000, 30_000];
    this.#nextBackoff = this.#backoff[0];
    this.#log = opts.log ?? (() => {});
    this.#compress = opts.target.compression === 'gzip';
    this.#cutTimer = setInterval(() => this.#cut(), this.#batchDelayMs);
    this.#cutTimer.unref();
  }

  /** spans queued (not yet delivered, not dropped) */
  get queuedSpans(): number {
    return this.#queuedSpans;
  }

  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** spans in the batch not cut yet */
  get openSpans(): number {
    return this.#open.length;
  }

  /** the agent's sink: keeps references only; the work happens when the batch is cut */
  consume(spans: readonly Span[]): void {
    if (this.#closed) {
      this.counters.consumed += spans.length;
      this.counters.dropped.shutdown += spans.length;
      return;
    }
    this.counters.consumed += spans.length;
    const open = this.#open;
    for (let i = 0; i < spans.length; i++) open.push(spans[i]!);
    if (open.length >= this.#batchSpans && !this.#cutScheduled) {
      this.#cutScheduled = true;
      setImmediate(() => this.#cut());
    }
  }

  #cut(): void {
    this.#cutScheduled = false;
    while (this.#open.length > 0) {
      const spans = this.#open.length > this.#batchSpans ? this.#open.splice(0, this.#batchSpans) : this.#open;
      if (spans === this.#open) this.#open = [];
      this.#enqueue(spans);
    }
  }

  #enqueue(spans: Span[]): void {
    let plain: Uint8Array;
    try {
      plain = encodeSpans(spans);
    } catch (err) {
      this.counters.dropped.encode_error += spans.length;
      this.#log(`export: could not encode ${spans.length} spans (${(err as Error).message}); dropped, counted as osprey_export_dropped_spans_total{reason="encode_error"}`);
      return;
    }
    const n = spans.length;
    this.counters.encodedBytes += plain.length;
    if (this.#queuedBytes + plain.length > this.queueLimitBytes) {
      this.counters.dropped.queue_full += n;
      return;
    }
    if (!this.#compress) {
      this.#push({ bytes: plain, spans: n });
      return;
    }
    // level 1: half the CPU of level 6 (1.3 against 2.6 µs per span on recorded agent spans,
    // docs/export.md) for 6% more bytes (50 against 47 B per span); the node budget of 1 MB/s
    // at 5k req/s still holds. memLevel 9 (a 256 KiB hash table instead of 128): 1.19 -> 1.08 µs
    // per span, the same bytes. chunkSize 64 KiB: a batch's output (~50 KiB for 1,024 agent
    // spans) in one piece, not 16 KiB pieces to join. On the JS thread, not zlib's thread pool:
    // the pool's hand-offs (the task queued, its completion and the output handed back to the
    // JS thread) cost more CPU than they move off the thread, 2.0-2.2 against 1.5-1.6 µs per span
    // in all threads for the same 538 KB batches (session 17, 4 alternated rounds; live
    // export-only mode ~1 µs per request less). A batch of 1,024 spans holds the thread ~1.5 ms,
    // which the ring buffer's batches ride out.
    let gz: Buffer;
    try {
      gz = gzipSync(plain, { level: 1, memLevel: 9, chunkSize: 64 * 1024 });
    } catch (err) {
      this.counters.dropped.encode_error += n;
      this.#log(`export: could not compress ${n} spans (${(err as Error).message}); dropped (reason encode_error)`);
      return;
    }
    this.#push({ bytes: gz, spans: n });
  }

  #push(b: Batch): void {
    this.#queue.push(b);
    this.#queuedSpans += b.spans;
    this.#queuedBytes += b.bytes.length;
    this.#pump();
  }

  #pump(): void {
    if (this.#closed) return this.#checkIdle();
    if (this.#sending || this.#retryTimer !== undefined) return;
    const head = this.#queue[0];
    if (head === undefined) {
      this.#checkIdle();
      return;
    }
    this.#sending = true;
    this.#transport.send(head.bytes, this.#compress).then(
      (r) => this.#settle(head, r),
      (err: Error) => this.#settle(head, { kind: 'retry', reason: err.message }),
    );
  }

  #settle(head: Batch, r: SendResult): void {
    this.#sending = false;
    const c = this.counters;
    if (r.kind === 'retry' && this.#closed) {
      // the last try of shutdown() failed: nothing more will be sent
      this.#queue.shift();
      this.#queuedSpans -= head.spans;
      this.#queuedBytes -= head.bytes.length;
      c.dropped.shutdown += head.spans;
      this.#log(`export: stopping with ${head.spans} spans not delivered (${r.reason}; counted as dropped, reason shutdown)`);
      return this.#checkIdle();
    }
    if (r.kind === 'retry') {
      c.retries++;
      c.retried += head.spans;
      const wait = r.retryAfterMs !== undefined ? Math.min(r.retryAfterMs, 10 * 60_000) : this.#jittered();
      this.#noteFailure(r.reason, wait);
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = undefined;
        this.#pump();
      }, wait);
      this.#retryTimer.unref();
      return;
    }
    this.#queue.shift();
    this.#queuedSpans -= head.spans;
    this.#queuedBytes -= head.bytes.length;
    if (r.kind === 'ok') {
      const { rejected, message } = rejectedSpans(r.response);
      const rej = Math.min(rejected, head.spans);
      c.requests++;
      c.sentBytes += head.bytes.length;
      c.sent += head.spans - rej;
      if (rej > 0) {
        c.dropped.partial_rejected += rej;
        this.#logRefusal(`partial:${message}`, `export: the collector accepted a batch but rejected ${rej} of its ${head.spans} spans${message ? ` (${message})` : ''}; counted as osprey_export_dropped_spans_total{reason="partial_rejected"}`);
      }
      if (this.#failingSince) {
        this.#log(`export: ${describeTarget(this.target)} is accepting spans again after ${Math.round((Date.now() - this.#failingSince) / 1000)} s (${this.queuedSpans} spans still queued)`);
        this.#failingSince = 0;
      }
      this.#nextBackoff = this.#backoff[0];
    } else {
      c.dropped.rejected += head.spans;
      this.#logRefusal(
        r.reason,
        `export: ${describeTarget(this.target)} refused a batch of ${head.spans} spans for good (${r.reason}); dropped, counted as osprey_export_dropped_spans_total{reason="rejected"}. Check the endpoint URL and protocol (--export, OTEL_EXPORTER_OTLP_*); further refusals for this reason are counted, not logged`,
      );
    }
    this.#pump();
  }

  #jittered(): number {
    const b = this.#nextBackoff;
    this.#nextBackoff = Math.min(this.#backoff[1], b * 2);
    return Math.round(b * (0.8 + Math.random() * 0.4));
  }

  /** one line when an outage starts, then one every 30 s while it lasts */
  #noteFailure(reason: string, waitMs: number): void {
    const now = Date.now();
    if (!this.#failingSince || reason !== this.#lastFailure || now - this.#lastFailureLog > 30_000) {
      this.#log(
        `export: ${describeTarget(this.target)} unavailable (${reason}); ${this.queuedSpans} spans (${Math.round(this.#queuedBytes / 2 ** 20)} of ${Math.round(this.queueLimitBytes / 2 ** 20)} MiB) queued, retrying in ${(waitMs / 1000).toFixed(1)} s`,
      );
      this.#lastFailureLog = now;
    }
    if (!this.#failingSince) this.#failingSince = now;
    this.#lastFailure = reason;
  }

  #logRefusal(key: string, line: string): void {
    if (this.#refusals.has(key) || this.#refusals.size > 100) return;
    this.#refusals.add(key);
    this.#log(line);
  }

  #checkIdle(): void {
    if (this.#sending) return;
    if (this.#queue.length > 0 && !this.#closed) return;
    const waiting = this.#idle;
    this.#idle = [];
    for (const w of waiting) w();
  }

  /** cuts the open batch and resolves once everything queued is delivered or dropped, or after timeoutMs */
  async forceFlush(timeoutMs = 10_000): Promise<boolean> {
    this.#cut();
    if (this.#queue.length === 0 && !this.#sending) return true;
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      new Promise<boolean>((r) => this.#idle.push(() => r(true))),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    return drained;
  }

  /**
   * Sends what it can within graceMs (a collector that is down gets one last try, not the
   * rest of its backoff), then counts what is left as dropped (reason shutdown). Idempotent.
   */
  async shutdown(graceMs = 5000): Promise<void> {
    if (this.#closed) return;
    clearInterval(this.#cutTimer);
    this.#cut();
    if (this.#retryTimer !== undefined) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
      this.#pump();
    }
    const deadline = Date.now() + graceMs;
    // a failing collector is not waited for beyond its one retry above
    while (Date.now() < deadline && (this.#sending || (this.#queue.length > 0 && this.#retryTimer === undefined))) {
      await new Promise((r) => setTimeout(r, 20));
    }
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    // a request still in flight settles by itself (sent, or dropped as shutdown); the rest goes
    const inFlight = this.#sending ? this.#queue[0] : undefined;
    const rest = inFlight ? this.#queue.slice(1) : this.#queue;
    const left = rest.reduce((n, b) => n + b.spans, 0);
    if (left > 0) {
      this.counters.dropped.shutdown += left;
      this.#log(`export: stopping with ${left} spans not delivered (counted as dropped, reason shutdown)`);
    }
    this.#queue = inFlight ? [inFlight] : [];
    this.#queuedSpans = inFlight?.spans ?? 0;
    this.#queuedBytes = inFlight?.bytes.length ?? 0;
    if (inFlight) await new Promise<void>((r) => this.#idle.push(r));
    this.#transport.shutdown();
  }
}
