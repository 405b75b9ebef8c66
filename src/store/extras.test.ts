// Span events and links in the store (extras.ts): they come back whole with their trace, a span
// without any stores no row for them, and retention takes them with their spans.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Span, type SpanInit } from '../model/index.js';
import { parseTraceQL } from '../traceql/index.js';
import { Params } from './compile.js';
import type { StoreCore } from './core.js';
import { DuckStore } from './index.js';

const NOW = BigInt(Date.now()) * 1_000_000n;
const tid = (n: number): string => n.toString(16).padStart(32, '0');
const sid = (n: number): string => n.toString(16).padStart(16, '0');

function span(n: number, start: bigint, more: Partial<SpanInit> = {}): Span {
  return Span.from({
    traceId: tid(n),
    spanId: sid(n),
    parentSpanId: '',
    name: `op ${n}`,
    kind: 'server',
    startTimeUnixNano: start,
    durationNano: 1_000_000,
    status: 'unset',
    resource: { 'service.name': 'svc' },
    attributes: { 'http.request.method': 'GET' },
    ...more,
  });
}

/** rows of a table, read past the store's API (tests only) */
async function count(store: DuckStore, table: string): Promise<number> {
  const core = (store as unknown as { core: StoreCore }).core;
  return Number((await core.query(`SELECT count(*) FROM ${table}`, new Params()))[0]?.[0]);
}

describe('span events and links in the store', () => {
  it('come back whole by trace id; spans without them store no rows and read back without them', async () => {
    const store = await DuckStore.open({});
    try {
      const withAll = span(1, NOW, {
        events: [
          { timeUnixNano: NOW + 5n, name: 'exception', attributes: { 'exception.type': 'E', 'exception.escaped': true, n: 1.5 } },
          { timeUnixNano: NOW + 9n, name: 'log', attributes: {} },
        ],
        links: [{ traceId: tid(77), spanId: sid(78), attributes: { why: 'retry' } }],
        droppedEvents: 4,
        droppedLinks: 1,
      });
      const child = span(2, NOW + 1n, { traceId: tid(1), parentSpanId: sid(1) });
      const plain = span(3, NOW + 2n);
      store.append([withAll, child, plain]);
      await store.flush();
      assert.equal(await count(store, 'span_events'), 2);
      assert.equal(await count(store, 'span_links'), 1);
      assert.equal(await count(store, 'span_drops'), 1);

      const t = await store.trace(tid(1));
      assert.equal(t.length, 2);
      const a = t.find((s) => s.spanId === sid(1))!;
      assert.deepEqual(a.events, withAll.events);
      assert.deepEqual(a.links, withAll.links);
      assert.equal(a.droppedEvents, 4);
      assert.equal(a.droppedLinks, 1);
      const b = t.find((s) => s.spanId === sid(2))!;
      assert.equal(b.events, undefined);
      assert.equal(b.links, undefined);
      assert.equal(b.droppedEvents, 0);
      const p = (await store.trace(tid(3)))[0]!;
      assert.equal(p.events, undefined);
      assert.deepEqual(p.toInit(), plain.toInit());

      // TraceQL sees them (the conformance corpus covers the operators)
      const found = await store.search({ query: parseTraceQL(`{ event:name = "exception" && link:traceID = "${tid(77)}" }`), limit: 10 });
      assert.deepEqual(found.map((s) => s.spanId), [sid(1)]);
      assert.deepEqual((await store.search({ query: parseTraceQL('{ event.n > 1 }'), limit: 10 })).map((s) => s.spanId), [sid(1)]);
      assert.deepEqual((await store.search({ query: parseTraceQL('{ event:timeSinceStart = 9ns }'), limit: 10 })).map((s) => s.spanId), [sid(1)]);
      assert.deepEqual((await store.search({ query: parseTraceQL('{ event.n = nil }'), limit: 10 })).map((s) => s.spanId).sort(), [sid(2), sid(3)]);
    } finally {
      await store.shutdown();
    }
  });

  it('a link with a broken id is not stored but counted as dropped; an unreadable event refuses its span alone', async () => {
    const store = await DuckStore.open({});
    try {
      const s = span(5, NOW, { links: [{ traceId: 'nothex', spanId: sid(1), attributes: {} }, { traceId: tid(9), spanId: sid(9), attributes: {} }] });
      const bad = span(6, NOW);
      bad.events = [
        {
          timeUnixNano: NOW,
          name: 'x',
          get attributes(): Record<string, string> {
            throw new Error('unreadable');
          },
        },
      ];
      store.append([s, bad]);
      await store.flush();
      const got = (await store.trace(tid(5)))[0]!;
      assert.deepEqual(got.links, [{ traceId: tid(9), spanId: sid(9), attributes: {} }]);
      assert.equal(got.droppedLinks, 1);
      assert.deepEqual(await store.trace(tid(6)), []);
      assert.equal(store.stats().spansRejected, 1);
      assert.equal(await count(store, 'span_events'), 0, 'no row of the refused span');
    } finally {
      await store.shutdown();
    }
  });

  it('retention deletes them with their spans', async () => {
    const store = await DuckStore.open({ retention: { maxSpans: 10, intervalMs: 0 } });
    try {
      const old = NOW - 600_000_000_000n; // ten minutes ago: rollup buckets apart from the new ones
      const spans: Span[] = [];
      for (let i = 1; i <= 20; i++) {
        const start = i <= 10 ? old + BigInt(i) : NOW + BigInt(i);
        spans.push(span(i, start, { events: [{ timeUnixNano: start + 1n, name: 'e', attributes: { i } }], links: [{ traceId: tid(100 + i), spanId: sid(1), attributes: {} }], droppedEvents: 1 }));
      }
      store.append(spans);
      await store.flush();
      assert.equal(await count(store, 'span_events'), 20);
      const r = await store.enforceRetention();
      assert.equal(r.deletedByCount, 10);
      assert.equal(await count(store, 'span_events'), 10);
      assert.equal(await count(store, 'span_links'), 10);
      assert.equal(await count(store, 'span_drops'), 10);
      assert.equal((await store.trace(tid(15)))[0]?.events?.[0]?.attributes.i, 15);
    } finally {
      await store.shutdown();
    }
  });
});
