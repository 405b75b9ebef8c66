import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Span } from '../model/index.js';
import { parseTraceQL } from '../traceql/index.js';
import { DuckStore } from './index.js';
import { clusters } from './trace-ranges.js';

const NOW = BigInt(Date.now()) * 1_000_000n;
const MS = 1_000_000n;
const SEC = 1_000_000_000n;

describe('trace ranges', () => {
  it('clusters: overlapping ranges merge, ranges are clipped, past max the smallest gaps merge', () => {
    const r = (lo: number, hi: number) => ({ lo: BigInt(lo), hi: BigInt(hi) });
    const got = clusters(
      [
        ['c', r(50, 60)],
        ['a', r(0, 10)],
        ['b', r(5, 20)],
        ['d', r(100, 110)],
        ['e', r(113, 120)],
        ['f', r(500, 600)],
      ],
      undefined,
      undefined,
      3,
      0n,
    );
    // gaps: a+b | 30 | c | 40 | d | 3 | e | 380 | f → the two widest (380, 40) stay
    assert.deepEqual(
      got.map((c) => [c.ids, c.lo, c.hi]),
      [
        [['a', 'b', 'c'], 0n, 60n],
        [['d', 'e'], 100n, 120n],
        [['f'], 500n, 600n],
      ],
    );
    const clipped = clusters([['a', r(0, 10)], ['b', r(20, 30)], ['c', r(40, 50)]], 25n, 45n, 3, 0n);
    assert.deepEqual(clipped.map((c) => [c.ids, c.lo, c.hi]), [[['b'], 25n, 30n], [['c'], 40n, 45n]]);
    // close ranges merge by default (5 s)
    const s = 1_000_000_000n;
    assert.deepEqual(clusters([['a', { lo: 0n, hi: s }], ['b', { lo: 5n * s, hi: 6n * s }], ['c', { lo: 12n * s, hi: 13n * s }]]).map((c) => c.ids), [['a', 'b'], ['c']]);
    assert.deepEqual(clusters([]), []);
  });

  for (const gapRows of [undefined, 0]) describe(`searchTraces over traces far apart, spread over several flushes${gapRows === 0 ? ', one scan per trace' : ''}`, () => {
    // 80 traces 90 s apart over 2 h; each trace's spans arrive in two or three flushes (the
    // children first, the root later, for some a late span 40 s or 100 s later, the latter
    // overlapping the next trace's range); every third trace has an error. More traces than a
    // union has branches, so clusters merge.
    let store: DuckStore;
    const all: Span[] = [];
    const T = 80;
    const start = (i: number): bigint => NOW - BigInt(T - i) * 90n * SEC;
    const tid = (i: number): string => (0xabc000 + i).toString(16).padStart(32, '0');
    const sid = (i: number, k: number): string => (i * 16 + k + 1).toString(16).padStart(16, '0');
    const span = (i: number, k: number, o: { parent: number | undefined; svc: string; at: bigint; dur: bigint; error?: boolean; kind?: 'server' | 'client' }): Span =>
      Span.from({
        traceId: tid(i),
        spanId: sid(i, k),
        parentSpanId: o.parent === undefined ? '' : sid(i, o.parent),
        name: `${o.svc}-${k}`,
        kind: o.kind ?? 'server',
        startTimeUnixNano: o.at,
        durationNano: Number(o.dur),
        status: o.error ? 'error' : 'unset',
        resource: { 'service.name': o.svc },
        attributes: {},
      });

    before(async () => {
      store = await DuckStore.open();
      // by default these few spans lie in one row group and are read by one scan; with 0
      // every trace 90 s from the next is its own scan, more than a union's 32: clusters merge
      if (gapRows !== undefined) (store as unknown as { queries: { gapRows: number } }).queries.gapRows = gapRows;
      const children: Span[] = [];
      const roots: Span[] = [];
      const late: Span[] = [];
      for (let i = 0; i < T; i++) {
        const t = start(i);
        roots.push(span(i, 0, { parent: undefined, svc: 'front', at: t, dur: 500n * MS }));
        children.push(span(i, 1, { parent: 0, svc: 'front', at: t + 10n * MS, dur: 200n * MS, kind: 'client' }));
        children.push(span(i, 2, { parent: 1, svc: 'back', at: t + 20n * MS, dur: 100n * MS, error: i % 3 === 0 }));
        if (i % 5 === 0) late.push(span(i, 3, { parent: 0, svc: 'back', at: t + (i % 2 === 0 ? 100n : 40n) * SEC, dur: 5n * MS, error: i % 3 === 0 }));
      }
      all.push(...children, ...roots, ...late);
      for (const batch of [children, roots, late]) {
        store.append(batch);
        await store.flush();
      }
    });
    after(async () => {
      await store.shutdown();
    });

    /** the expected answer, from the spans in JS: the newest traces by their last matching span */
    function expected(match: (s: Span) => boolean, limit: number, picks: number, w: { startNs?: bigint; endNs?: bigint }) {
      const inWin = (s: Span): boolean => (w.startNs === undefined || s.startTimeUnixNano >= w.startNs) && (w.endNs === undefined || s.startTimeUnixNano <= w.endNs);
      const byTrace = new Map<string, Span[]>();
      for (const s of all) if (match(s) && inWin(s)) byTrace.set(s.traceId, [...(byTrace.get(s.traceId) ?? []), s]);
      const last = (ss: Span[]): bigint => ss.reduce((m, s) => (s.startTimeUnixNano > m ? s.startTimeUnixNano : m), -1n);
      const ids = [...byTrace.keys()].sort((a, b) => {
        const la = last(byTrace.get(a) as Span[]);
        const lb = last(byTrace.get(b) as Span[]);
        return la > lb ? -1 : la < lb ? 1 : a < b ? -1 : 1;
      });
      return ids.slice(0, limit).map((id) => {
        const ms = (byTrace.get(id) as Span[]).sort((a, b) => (a.startTimeUnixNano < b.startTimeUnixNano ? -1 : 1));
        const spans = all.filter((s) => s.traceId === id);
        const t0 = spans.reduce((m, s) => (s.startTimeUnixNano < m ? s.startTimeUnixNano : m), spans[0]?.startTimeUnixNano as bigint);
        const t1 = spans.reduce((m, s) => (s.startTimeUnixNano + BigInt(s.durationNano) > m ? s.startTimeUnixNano + BigInt(s.durationNano) : m), 0n);
        const stats: Record<string, { spanCount: number; errorCount: number }> = {};
        for (const s of spans) {
          const svc = String(s.resource['service.name']);
          const st = (stats[svc] ??= { spanCount: 0, errorCount: 0 });
          st.spanCount++;
          if (s.status === 'error') st.errorCount++;
        }
        return {
          id,
          matched: ms.length,
          picked: ms.slice(0, picks).map((s) => s.spanId),
          root: 'front/front-0',
          start: t0,
          duration: Number(t1 - t0),
          stats,
        };
      });
    }

    const cases: [string, (s: Span) => boolean][] = [
      ['{ status = error }', (s) => s.status === 'error'],
      ['{ resource.service.name = "back" && duration < 50ms }', (s) => s.resource['service.name'] === 'back' && s.durationNano < 50e6],
      ['{ }', () => true],
    ];
    const windows: { startNs?: bigint; endNs?: bigint }[] = [{}, { startNs: NOW - 3600n * SEC }, { startNs: NOW - 100n * 60n * SEC, endNs: NOW - 30n * 60n * SEC }];
    for (const [text, match] of cases) {
      for (const w of windows) {
        for (const limit of [3, 40]) {
          it(`${text} limit ${limit} in ${w.startNs === undefined ? 'all time' : `${(NOW - w.startNs) / SEC}..${w.endNs === undefined ? 0 : (NOW - w.endNs) / SEC} s ago`}`, async () => {
            const want = expected(match, limit, 2, w);
            const got = await store.searchTraces({ query: parseTraceQL(text), limit, spansPerSpanSet: 2, ...w });
            assert.deepEqual(
              got.map((t) => ({
                id: t.traceID,
                matched: t.spanSet.matched,
                picked: t.spanSet.spans.map((s) => s.spanId),
                root: `${t.rootServiceName}/${t.rootTraceName}`,
                start: t.startTimeUnixNano,
                duration: t.durationNano,
                stats: t.serviceStats,
              })),
              want,
            );
          });
        }
      }
    }
  });
});
