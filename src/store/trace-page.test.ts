// The UI's trace list (trace-page.ts) against a reference computed here from the spans the
// plain search returns: same traces, same order (newest or slowest first), same pages, same
// per-trace figures, for filters, spanset queries and traces with very many matching spans.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Span } from '../model/index.js';
import { parseTraceQL } from '../traceql/index.js';
import { DuckStore, type TraceRow } from './index.js';

const NOW = BigInt(Date.now()) * 1_000_000n;
const MS = 1_000_000n;
const SERVICES = ['a', 'b', 'c', 'd'];

let seed = 11;
const rand = (): number => ((seed = (seed * 1664525 + 1013904223) >>> 0), seed / 4294967296);
const hex = (n: number, w: number): string => n.toString(16).padStart(w, '0');

interface Made {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  service: string;
  name: string;
  start: bigint;
  dur: number;
  error: boolean;
}

/** traces of 1-6 spans over the last 10 minutes; durations collide across traces (ties), never within one */
function makeTraces(n: number): Made[] {
  const out: Made[] = [];
  let span = 1;
  for (let t = 0; t < n; t++) {
    const traceId = hex(0x1000 + ((t * 7919) % 100_003), 32);
    const t0 = NOW - BigInt(Math.floor(rand() * 600_000)) * MS;
    const size = 1 + Math.floor(rand() * 6);
    // a quarter of the traces lack their root (its parent id points at an unstored span)
    const ids: string[] = [rand() < 0.25 ? hex(0xdead0000 + t, 16) : ''];
    const used = new Set<number>();
    for (let i = 0; i < size; i++) {
      let dur = (1 + Math.floor(rand() * 20)) * 1_000_000;
      while (used.has(dur)) dur += 1000;
      used.add(dur);
      const spanId = hex(span++, 16);
      out.push({
        traceId,
        spanId,
        parentSpanId: ids[Math.floor(rand() * ids.length)]!,
        service: SERVICES[Math.floor(rand() * SERVICES.length)]!,
        name: `op-${i}`,
        start: t0 + BigInt(i) * MS,
        dur,
        error: rand() < 0.1,
      });
      if (ids[0] !== '' && i === 0) ids.length = 0;
      ids.push(spanId);
    }
  }
  return out;
}

function toSpan(m: Made): Span {
  return Span.from({
    traceId: m.traceId,
    spanId: m.spanId,
    parentSpanId: m.parentSpanId,
    name: m.name,
    kind: m.name === 'op-0' ? 'server' : 'client',
    startTimeUnixNano: m.start,
    durationNano: m.dur,
    status: m.error ? 'error' : 'unset',
    resource: { 'service.name': m.service, 'process.pid': SERVICES.indexOf(m.service) + 1 },
    attributes: {},
  });
}

/** the list as the definition says: traces with a match, by their newest (or slowest) matching span */
function reference(all: Made[], matching: Set<string>, order: 'start' | 'duration'): { id: string; row: Omit<TraceRow, 'services'> }[] {
  const byTrace = new Map<string, Made[]>();
  for (const m of all) byTrace.set(m.traceId, [...(byTrace.get(m.traceId) ?? []), m]);
  const out: { id: string; key: [number, bigint]; row: Omit<TraceRow, 'services'> }[] = [];
  for (const [id, spans] of byTrace) {
    const hits = spans.filter((s) => matching.has(s.spanId));
    if (hits.length === 0) continue;
    const top = hits.reduce((a, b) => (b.dur > a.dur ? b : a));
    const newest = hits.reduce((a, b) => (b.start > a.start ? b : a));
    const ids = new Set(spans.map((s) => s.spanId));
    const roots = spans
      .filter((s) => s.parentSpanId === '' || !ids.has(s.parentSpanId))
      .sort((a, b) => Number(a.parentSpanId !== '') - Number(b.parentSpanId !== '') || (a.start < b.start ? -1 : 1));
    const start = spans.reduce((a, s) => (s.start < a ? s.start : a), spans[0]!.start);
    const end = spans.reduce((a, s) => (s.start + BigInt(s.dur) > a ? s.start + BigInt(s.dur) : a), 0n);
    out.push({
      id,
      key: order === 'start' ? [0, newest.start] : [top.dur, hits.filter((h) => h.dur === top.dur).reduce((a, h) => (h.start > a ? h.start : a), 0n)],
      row: {
        traceId: id,
        rootService: roots[0]!.service,
        rootName: roots[0]!.name,
        startNs: start,
        durationNs: Number(end - start),
        spanCount: spans.length,
        errorCount: spans.filter((s) => s.error).length,
        matched: hits.length,
        top: { spanId: top.spanId, service: top.service, name: top.name, durationNs: top.dur, startNs: top.start },
      },
    });
  }
  out.sort((x, y) => y.key[0] - x.key[0] || (y.key[1] > x.key[1] ? 1 : y.key[1] < x.key[1] ? -1 : 0) || (x.id < y.id ? -1 : 1));
  return out;
}

describe('UI trace list (trace-page.ts)', () => {
  let store: DuckStore;
  let all: Made[];
  before(async () => {
    store = await DuckStore.open();
    all = makeTraces(400);
    store.append(all.map(toSpan));
    await store.flush();
  });
  after(async () => {
    await store.shutdown();
  });

  async function matchingIds(q: string): Promise<Set<string>> {
    const spans = await store.search({ query: parseTraceQL(q), limit: 100_000 });
    return new Set(spans.map((s) => s.spanId));
  }

  for (const q of ['{}', '{ resource.service.name = "b" }', '{ status = error }', '{ resource.service.name = "a" } >> { kind = client }', '{ name = "op-0" } && { duration > 15ms }']) {
    for (const order of ['start', 'duration'] as const) {
      it(`${q}, ${order === 'start' ? 'newest' : 'slowest'} first: every page as the reference cuts it, and the total`, async () => {
        const ref = reference(all, await matchingIds(q), order);
        assert.ok(ref.length > 5, `${q} matches some traces`);
        const opts = { query: parseTraceQL(q), order, startNs: NOW - 3_600_000n * MS, endNs: NOW + 1000n * MS };
        assert.equal(await store.analysis.traceCount(opts), ref.length);
        for (const [offset, limit] of [[0, 20], [20, 20], [ref.length - 3, 20], [0, 1000], [ref.length, 5]] as const) {
          const page = await store.analysis.traceList({ ...opts, offset, limit });
          const want = ref.slice(offset, offset + limit);
          assert.deepEqual(
            page.traces.map((t) => t.traceId),
            want.map((r) => r.id),
            `page ${offset}+${limit}`,
          );
          assert.equal(page.more, ref.length > offset + limit, `more after ${offset}+${limit}`);
          for (const [i, t] of page.traces.entries()) {
            const { services, ...rest } = t;
            assert.deepEqual(rest, want[i]!.row, `trace ${t.traceId}`);
            assert.deepEqual(services, [...new Set(all.filter((m) => m.traceId === t.traceId).map((m) => m.service))].sort());
          }
        }
        const both = await store.analysis.tracePage({ ...opts, offset: 0, limit: 10 });
        assert.equal(both.total, ref.length);
        assert.deepEqual(
          both.traces.map((t) => t.traceId),
          ref.slice(0, 10).map((r) => r.id),
        );
      });
    }
  }

  it('a window cuts the traces by their matching spans', async () => {
    const cut = NOW - 300_000n * MS;
    const opts = { query: parseTraceQL('{}'), order: 'start' as const, startNs: cut, endNs: NOW, offset: 0, limit: 1000 };
    const inWindow = new Set(all.filter((m) => m.start >= cut && m.start <= NOW).map((m) => m.spanId));
    const ref = reference(all, inWindow, 'start');
    const page = await store.analysis.traceList(opts);
    assert.deepEqual(
      page.traces.map((t) => t.traceId),
      ref.map((r) => r.id),
    );
    // matched counts only the spans inside the window
    assert.deepEqual(
      page.traces.map((t) => t.matched),
      ref.map((r) => r.row.matched),
    );
  });

  it('traces with more matching spans than the top-N reads: the same answer through the group-by', async () => {
    const big = await DuckStore.open({ retention: { maxSpans: 1_000_000 } });
    try {
      // one trace of 70,000 spans, all newer than the two small traces
      const spans: Span[] = [];
      const bigId = hex(0xb16, 32);
      for (let i = 0; i < 70_000; i++) {
        spans.push(Span.from({ traceId: bigId, spanId: hex(i + 1, 16), parentSpanId: i ? hex(1, 16) : '', name: 'bulk', kind: 'internal', startTimeUnixNano: NOW - 1000n * MS + BigInt(i) * 1000n, durationNano: 1000 + i, status: 'unset', resource: { 'service.name': 'bulk' }, attributes: {} }));
      }
      for (const [n, id] of [[1, 0xa], [2, 0xb]] as const) {
        spans.push(Span.from({ traceId: hex(id, 32), spanId: hex(100_000 + n, 16), parentSpanId: '', name: `small-${n}`, kind: 'server', startTimeUnixNano: NOW - 5000n * MS * BigInt(n), durationNano: 500, status: 'unset', resource: { 'service.name': 'small' }, attributes: {} }));
      }
      for (let i = 0; i < spans.length; i += 5000) {
        big.append(spans.slice(i, i + 5000));
        await big.flush();
      }
      const opts = { query: parseTraceQL('{}'), startNs: NOW - 3_600_000n * MS, endNs: NOW + 1000n * MS, offset: 0, limit: 2 };
      const newest = await big.analysis.traceList({ ...opts, order: 'start' });
      assert.deepEqual(
        newest.traces.map((t) => [t.traceId, t.matched]),
        [
          [bigId, 70_000],
          [hex(0xa, 32), 1],
        ],
      );
      assert.equal(newest.more, true);
      const slowest = await big.analysis.traceList({ ...opts, order: 'duration', offset: 1 });
      assert.deepEqual(
        slowest.traces.map((t) => t.top.name),
        ['small-1', 'small-2'],
      );
      assert.equal(slowest.more, false);
      assert.equal(await big.analysis.traceCount(opts), 3);
    } finally {
      await big.shutdown();
    }
  });
});
