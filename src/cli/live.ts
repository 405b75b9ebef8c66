// The terminal view of `osprey up`: per service rate, errors and p95, the
// slowest recent traces and the commands to dig in. Redrawn on a TTY; a line
// every 30 s otherwise.
import type { DuckStore } from '../store/index.js';
import { bucketStart as rollupWindowStart } from '../store/window.js';
import { parseTraceQL } from '../traceql/index.js';
import { fmtDuration, table } from './format.js';

const WINDOW_NS = 60_000_000_000n;

export class LiveSummary {
  #timer: NodeJS.Timeout | undefined;
  #busy = false;
  #lines = 0;
  constructor(
    private readonly store: DuckStore,
    private readonly url: string,
    private readonly tty: boolean,
    private readonly startedMs: number,
  ) {}

  start(): void {
    this.#timer = setInterval(() => void this.#draw(), this.tty ? 2000 : 30000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  async #draw(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      const now = BigInt(Date.now()) * 1_000_000n;
      const services = (await this.store.services(now - WINDOW_NS)).filter((s) => s.requestCount > 0);
      // services() counts whole rollup buckets: the window really starts at its bucket
      const seconds = Math.min(Number(now - rollupWindowStart(now - WINDOW_NS)) / 1e9, (Date.now() - this.startedMs) / 1000);
      for (const s of services) s.ratePerSec = seconds > 0 ? s.requestCount / seconds : 0;
      if (!this.tty) {
        const total = services.reduce((a, s) => a + s.ratePerSec, 0);
        process.stderr.write(`osprey: last 60s: ${services.length} services, ${total.toFixed(1)} req/s, ${this.store.stats().rows} spans stored\n`);
        return;
      }
      const slow = await this.store.search({ query: parseTraceQL('{ kind = server }'), startNs: now - WINDOW_NS, limit: 5, order: 'duration_desc' });
      let out = table(
        ['SERVICE', 'REQ/S', 'ERRORS', 'P50', 'P95', 'P99'],
        services
          .sort((a, b) => b.ratePerSec - a.ratePerSec)
          .slice(0, 12)
          .map((s) => [s.service, s.ratePerSec.toFixed(1), `${s.errorPct.toFixed(1)}%`, fmtDuration(s.p50Ns), fmtDuration(s.p95Ns), fmtDuration(s.p99Ns)]),
      );
      out += '\nslowest server spans (last 60 s):\n';
      out += slow.length
        ? table(
            ['DURATION', 'SERVICE', 'NAME', 'TRACE'],
            slow.map((s) => [fmtDuration(s.durationNano), String(s.resource['service.name']), s.name, s.traceId]),
          )
        : '  none yet\n';
      const first = slow[0]?.traceId ?? '<trace-id>';
      out += `\ndig in:  osprey trace ${first}\n         osprey query --since 5m '{ duration > 100ms && kind = server }'\n         osprey graph    (API ${this.url})\n`;
      const lines = out.split('\n').length;
      // redraw in place: move up over the previous frame and clear below
      process.stdout.write(`${this.#lines ? `\x1b[${this.#lines}A` : ''}\x1b[J${out}`);
      this.#lines = lines - 1;
    } catch {
      // the summary is best effort; the API shows the same data
    } finally {
      this.#busy = false;
    }
  }
}
