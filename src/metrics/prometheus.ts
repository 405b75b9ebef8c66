// Prometheus text exposition (format 0.0.4) of osprey's own counters and gauges and of the
// span-derived histograms. Empty label values are left out (Prometheus treats an empty value as
// an absent label, and remote write forbids them); label values are escaped.

export interface Sample {
  labels?: Record<string, string>;
  value: number;
}

/** one classic histogram series */
export interface HistogramSample {
  labels?: Record<string, string>;
  /** per-bucket counts, NOT cumulative: counts[i] = observations in (bounds[i-1], bounds[i]],
   *  counts[bounds.length] = observations above the last bound (the +Inf bucket) */
  counts: ArrayLike<number>;
  sum: number;
  count: number;
}

export type MetricFamily =
  | { name: string; help: string; type: 'counter' | 'gauge'; samples: Sample[] }
  | { name: string; help: string; type: 'histogram'; /** upper bounds, ascending, without +Inf */ bounds: readonly number[]; samples: HistogramSample[] };

const escape = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const escapeHelp = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const NEEDS_ESCAPE = /[\\\n"]/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Go's strconv.FormatFloat(v, 'g', -1, 64) spelling of special values, as Prometheus writes them */
export function formatValue(v: number): string {
  if (Number.isFinite(v)) return String(v);
  if (Number.isNaN(v)) return 'NaN';
  return v > 0 ? '+Inf' : '-Inf';
}

/** `a="x",b="y"` (no braces); empty values dropped, names sanitized, values escaped */
export function labelText(labels: Record<string, string> | undefined): string {
  if (!labels) return '';
  let out = '';
  for (const k in labels) {
    const v = labels[k];
    if (v === undefined || v === '') continue;
    const name = LABEL_NAME.test(k) ? k : k.replace(/[^a-zA-Z0-9_]/g, '_').replace(/^([0-9])/, '_$1');
    out += `${out ? ',' : ''}${name}="${NEEDS_ESCAPE.test(v) ? escape(v) : v}"`;
  }
  return out;
}

/** an append-only byte buffer: a scrape of thousands of histogram series is megabytes, and
 *  building it from strings leaves millions of short-lived string pieces to collect */
class Writer {
  #buf = Buffer.allocUnsafe(64 * 1024);
  #len = 0;

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#len + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.#buf.copy(next, 0, 0, this.#len);
    this.#buf = next;
  }

  /** any string (UTF-8) */
  text(s: string): void {
    this.#room(s.length * 3);
    this.#len += this.#buf.write(s, this.#len, 'utf8');
  }

  /** a string known to be ASCII (names, numbers) */
  ascii(s: string): void {
    this.#room(s.length);
    this.#len += this.#buf.write(s, this.#len, 'latin1');
  }

  bytes(b: Buffer): void {
    this.#room(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }

  /** a non-negative integer count, then a newline */
  countLine(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) return this.ascii(`${formatValue(n)}\n`);
    this.#room(18);
    const buf = this.#buf;
    let end = this.#len;
    let digits = 1;
    for (let v = n; v >= 10; v = Math.floor(v / 10)) digits++;
    end += digits;
    for (let v = n, i = end - 1; i >= this.#len; i--, v = Math.floor(v / 10)) buf[i] = 48 + (v % 10);
    buf[end] = 10;
    this.#len = end + 1;
  }

  toString(): string {
    return this.#buf.toString('utf8', 0, this.#len);
  }
}

export function exposition(families: MetricFamily[]): string {
  const w = new Writer();
  for (const f of families) {
    w.text(`# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`);
    if (f.type === 'histogram') {
      const les = f.bounds.map((b) => Buffer.from(`le="${formatValue(b)}"} `));
      les.push(Buffer.from('le="+Inf"} '));
      for (const s of f.samples) {
        const l = labelText(s.labels);
        const pre = Buffer.from(`${f.name}_bucket{${l}${l ? ',' : ''}`);
        let cum = 0;
        for (let i = 0; i < les.length; i++) {
          cum += s.counts[i] ?? 0;
          w.bytes(pre);
          w.bytes(les[i]!);
          w.countLine(cum);
        }
        const braces = l ? `{${l}}` : '';
        w.text(`${f.name}_sum${braces} ${formatValue(s.sum)}\n${f.name}_count${braces} ${s.count}\n`);
      }
      continue;
    }
    for (const s of f.samples) {
      const l = labelText(s.labels);
      w.text(`${f.name}${l ? `{${l}}` : ''} ${Number.isFinite(s.value) ? s.value : 0}\n`);
    }
  }
  return w.toString();
}
