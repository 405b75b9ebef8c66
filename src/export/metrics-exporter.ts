// RED span metrics and service-graph metrics (Tempo's names and labels, from src/metrics) to
// the collector every `intervalMs` as cumulative OTLP metrics. No queue: each export carries the
// whole cumulative state, so a failed one is made good by the next; a failure is counted and the
// next tick sends fresh values (the collector's remote-write exporter then writes them with
// their own timestamps, so nothing is lost but resolution).
import { gzip } from 'node:zlib';
import { promisify } from 'node:util';
import type { Attributes } from '../model/index.js';
import type { MetricFamily } from '../metrics/prometheus.js';
import { describeTarget, type ExportTarget } from './config.js';
import { encodeMetrics, rejectedDataPoints } from './otlp.js';
import { createTransport, type Transport } from './transport.js';

const gzipAsync = promisify(gzip);

export interface MetricExportCounters {
  /** exports delivered */
  exports: number;
  /** exports that failed (collector unavailable or refusing); the next one carries their data */
  failed: number;
  /** data points delivered */
  points: number;
  /** data points the collector rejected in a partial success */
  pointsRejected: number;
  /** exports skipped because the previous one was still in flight */
  skipped: number;
}

export interface MetricsExporterOptions {
  target: ExportTarget;
  intervalMs: number;
  /** the families to export (called once per interval) */
  families: () => MetricFamily[];
  /** the resource of the metrics (osprey itself: service.name, host.name …) */
  resource: Attributes;
  log?: (line: string) => void;
  transport?: Transport;
}

export class MetricsExporter {
  readonly counters: MetricExportCounters = { exports: 0, failed: 0, points: 0, pointsRejected: 0, skipped: 0 };
  readonly target: ExportTarget;
  readonly #opts: MetricsExporterOptions;
  readonly #transport: Transport;
  readonly #startNs = BigInt(Date.now()) * 1_000_000n;
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | undefined;
  #lastError = '';
  #closed = false;

  constructor(opts: MetricsExporterOptions) {
    this.#opts = opts;
    this.target = opts.target;
    this.#transport = opts.transport ?? createTransport(opts.target);
  }

  start(): this {
    this.#timer ??= setInterval(() => void this.exportNow(), this.#opts.intervalMs);
    this.#timer.unref();
    return this;
  }

  /** one export of the current values (skipped while the previous one is in flight) */
  exportNow(): Promise<void> {
    if (this.#inFlight) {
      this.counters.skipped++;
      return this.#inFlight;
    }
    this.#inFlight = this.#export().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #export(): Promise<void> {
    const log = this.#opts.log ?? (() => {});
    const { bytes, points } = encodeMetrics(this.#opts.families(), this.#opts.resource, this.#startNs, BigInt(Date.now()) * 1_000_000n);
    if (points === 0) return;
    const compressed = this.target.compression === 'gzip';
    const body = compressed ? await gzipAsync(bytes) : bytes;
    const r = await this.#transport.send(body, compressed);
    if (r.kind === 'ok') {
      const { rejected, message } = rejectedDataPoints(r.response);
      this.counters.exports++;
      this.counters.points += points - Math.min(points, rejected);
      this.counters.pointsRejected += Math.min(points, rejected);
      if (this.#lastError) log(`export: metrics to ${describeTarget(this.target)} delivered again`);
      if (rejected > 0 && message !== this.#lastError) log(`export: the collector rejected ${rejected} of ${points} metric data points (${message})`);
      this.#lastError = rejected > 0 ? message : '';
      return;
    }
    this.counters.failed++;
    if (r.reason !== this.#lastError) {
      log(
        `export: metrics to ${describeTarget(this.target)} failed (${r.reason})${r.kind === 'fail' ? ': refused, check the endpoint and protocol' : ''}; the next export (every ${this.#opts.intervalMs / 1000} s) carries the same cumulative values`,
      );
    }
    this.#lastError = r.reason;
  }

  /** a last export of the final values, then stop. Idempotent. */
  async shutdown(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#inFlight;
    await this.exportNow().catch(() => undefined);
    this.#transport.shutdown();
  }
}
