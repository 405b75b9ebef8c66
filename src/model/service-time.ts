// Where a trace's time went, per service: each span's exclusive ("self") time, summed by
// the service that recorded it. Self time is the span's duration minus the part of it its
// children cover (their union, clipped to the span, so parallel children are not counted
// twice and a child that outlives its parent takes no more than the parent had). A client
// span's self time is what its service waited on the network and the peer's queue beyond
// the server span under it. The sum over services is the time covered by the trace's spans.

import type { Span } from './span.js';

export interface ServiceTime {
  service: string;
  /** exclusive time of the service's spans, ns */
  selfNs: number;
  spans: number;
  errors: number;
}

/** per service, most time first; `serviceOf` names a span's service (resource service.name) */
export function timePerService(spans: readonly Span[], serviceOf: (s: Span) => string): ServiceTime[] {
  const children = new Map<string, Span[]>();
  const ids = new Set(spans.map((s) => s.spanId));
  for (const s of spans) {
    if (!s.parentSpanId || !ids.has(s.parentSpanId) || s.parentSpanId === s.spanId) continue;
    const list = children.get(s.parentSpanId);
    if (list) list.push(s);
    else children.set(s.parentSpanId, [s]);
  }
  const out = new Map<string, ServiceTime>();
  for (const s of spans) {
    const start = s.startTimeUnixNano;
    const end = start + BigInt(Math.max(0, Math.round(s.durationNano)));
    const covered = unionWithin(children.get(s.spanId) ?? [], start, end);
    const svc = serviceOf(s);
    const t = out.get(svc) ?? { service: svc, selfNs: 0, spans: 0, errors: 0 };
    t.selfNs += Number(end - start - covered);
    t.spans++;
    if (s.status === 'error') t.errors++;
    out.set(svc, t);
  }
  return [...out.values()].sort((a, b) => b.selfNs - a.selfNs || a.service.localeCompare(b.service));
}

/** length of the union of the spans' intervals, clipped to [lo, hi] */
function unionWithin(spans: readonly Span[], lo: bigint, hi: bigint): bigint {
  const iv = spans
    .map((c) => {
      const a = c.startTimeUnixNano;
      const b = a + BigInt(Math.max(0, Math.round(c.durationNano)));
      return [a < lo ? lo : a, b > hi ? hi : b] as const;
    })
    .filter(([a, b]) => b > a)
    .sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  let total = 0n;
  let curA = 0n;
  let curB = -1n;
  for (const [a, b] of iv) {
    if (curB < curA || a > curB) {
      if (curB > curA) total += curB - curA;
      curA = a;
      curB = b;
    } else if (b > curB) curB = b;
  }
  if (curB > curA) total += curB - curA;
  return total;
}
