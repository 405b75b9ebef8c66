// Human output: durations, tables, trace trees.
import type { SpanJson } from '../model/index.js';

export function fmtDuration(ns: number): string {
  if (ns >= 60e9) return `${(ns / 60e9).toFixed(1)}m`;
  if (ns >= 1e9) return `${(ns / 1e9).toFixed(2)}s`;
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(ns >= 100e6 ? 0 : 1)}ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(0)}µs`;
  return `${Math.round(ns)}ns`;
}

export function fmtTime(unixNano: string): string {
  const ms = Number(BigInt(unixNano) / 1_000_000n);
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 23);
}

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[line(headers), ...rows.map(line)].join('\n')}\n`;
}

export function spanRows(spans: SpanJson[]): string {
  return table(
    ['START', 'DURATION', 'SERVICE', 'KIND', 'STATUS', 'NAME', 'TRACE'],
    spans.map((s) => [
      fmtTime(s.startTimeUnixNano),
      fmtDuration(s.durationNano),
      String(s.resource['service.name'] ?? ''),
      s.kind,
      s.status === 'unset' ? '' : s.status,
      s.name,
      s.traceId,
    ]),
  );
}

/** a trace as an indented tree, children in start order */
export function traceTree(spans: SpanJson[]): string {
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string, SpanJson[]>();
  const roots: SpanJson[] = [];
  for (const s of spans) {
    if (s.parentSpanId && ids.has(s.parentSpanId)) {
      const l = children.get(s.parentSpanId) ?? [];
      l.push(s);
      children.set(s.parentSpanId, l);
    } else roots.push(s);
  }
  const byStart = (a: SpanJson, b: SpanJson) => (BigInt(a.startTimeUnixNano) < BigInt(b.startTimeUnixNano) ? -1 : 1);
  const t0 = spans.reduce((m, s) => (BigInt(s.startTimeUnixNano) < m ? BigInt(s.startTimeUnixNano) : m), BigInt(spans[0]?.startTimeUnixNano ?? 0));
  const out: string[] = [];
  const walk = (s: SpanJson, prefix: string, last: boolean, top: boolean) => {
    const offset = Number(BigInt(s.startTimeUnixNano) - t0);
    const status = s.status === 'error' ? '  ERROR' : '';
    const code = s.attributes['http.response.status_code'];
    const missing = !top || !s.parentSpanId ? '' : '  (parent not stored)';
    out.push(
      `${prefix}${top ? '' : last ? '└─ ' : '├─ '}${s.resource['service.name']} ${s.kind} ${s.name}${code !== undefined ? ` ${code}` : ''}  ${fmtDuration(s.durationNano)} @+${fmtDuration(offset)}${status}  [${s.attributes['osprey.link'] ?? ''}]${missing}`,
    );
    const kids = (children.get(s.spanId) ?? []).sort(byStart);
    kids.forEach((k, i) => walk(k, top ? prefix : prefix + (last ? '   ' : '│  '), i === kids.length - 1, false));
  };
  roots.sort(byStart).forEach((r) => walk(r, '', true, true));
  return `${out.join('\n')}\n`;
}
