// Exemplars of TraceQL metrics range queries (metrics-query.ts), on a real DuckStore with spans
// whose durations are known, so the expected picks are computed here independently: per series
// and step the slowest span (min/max_over_time: the span with the lowest/highest value), at most
// `exemplars` per series (the most extreme steps), with Tempo's shape: labels trace:id and
// span:id (hex), value, timestampMs (the span's start). Also through /api/metrics/query_range.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Span } from '../model/index.js';
import { parseTraceQL } from '../traceql/index.js';
import { startServer, type RunningServer } from '../server/server.js';
import { DuckStore } from './index.js';
import type { Exemplar, QueryRangeResponse } from './index.js';

const MS = 1_000_000n;
const S = 1000n * MS;
const BASE = 1_700_000_000n * S; // a whole number of 10 s steps
const STEP = 10n * S;

interface Made {
  service: string;
  step: number;
  traceId: string;
  spanId: string;
  start: bigint;
  durationMs: number;
}

/** 2 services x 6 steps x 5 spans, durations from a formula: the expected picks are computable */
function dataset(): Made[] {
  const out: Made[] = [];
  let n = 0;
  for (const service of ['checkout', 'search']) {
    for (let step = 0; step < 6; step++) {
      for (let k = 0; k < 5; k++) {
        n++;
        out.push({
          service,
          step,
          traceId: n.toString(16).padStart(32, 'a'),
          spanId: (0xf00000000 + n).toString(16).padStart(16, '0'),
          start: BASE + BigInt(step) * STEP + BigInt(k) * S,
          // distinct everywhere; the slowest step differs per service
          durationMs: 10 + ((step * 7 + k * 13 + (service === 'search' ? 5 : 0)) % 37) * 3 + k,
        });
      }
    }
  }
  return out;
}

const exOf = (e: Exemplar) => {
  const label = (k: string) => (e.labels.find((l) => l.key === k)?.value as { stringValue?: string } | undefined)?.stringValue;
  return { trace: label('trace:id'), span: label('span:id'), value: e.value, ts: e.timestampMs };
};

describe('TraceQL metrics exemplars', () => {
  let store: DuckStore;
  let server: RunningServer;
  const made = dataset();
  const range = { startNs: BASE, endNs: BASE + 6n * STEP - 1n, stepNs: STEP };
  const run = (q: string, exemplars: number): Promise<QueryRangeResponse> => store.metricsQuery(parseTraceQL(q), { ...range, exemplars });
  const seriesOf = (r: QueryRangeResponse, service: string) => r.series.find((s) => s.labels.some((l) => 'stringValue' in l.value && l.value.stringValue === service));

  before(async () => {
    store = await DuckStore.open({ retention: { maxAgeMs: Infinity, intervalMs: 0 } });
    store.append(
      made.map((m) =>
        Span.from({
          traceId: m.traceId,
          spanId: m.spanId,
          parentSpanId: '',
          name: 'GET /x',
          kind: 'server',
          startTimeUnixNano: m.start,
          durationNano: m.durationMs * 1_000_000,
          status: 'unset',
          resource: { 'service.name': m.service },
          attributes: { 'app.size': m.durationMs % 11 },
        }),
      ),
    );
    await store.flush();
    server = await startServer({ store, status: () => ({}), metrics: () => '' }, { host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    await server.close();
    await store.shutdown();
  });

  it('rate() by service: the slowest span of the slowest steps, value on the line, at most N per series', async () => {
    const r = await run('{ } | rate() by (resource.service.name)', 3);
    assert.equal(r.series.length, 2);
    for (const service of ['checkout', 'search']) {
      const s = seriesOf(r, service)!;
      assert.equal(s.samples.length, 6);
      const slowestPerStep = [0, 1, 2, 3, 4, 5].map((step) => made.filter((m) => m.service === service && m.step === step).sort((a, b) => b.durationMs - a.durationMs)[0]!);
      const expected = slowestPerStep.sort((a, b) => b.durationMs - a.durationMs).slice(0, 3);
      const got = s.exemplars.map(exOf);
      assert.equal(got.length, 3, 'bounded per series');
      assert.deepEqual(new Set(got.map((g) => g.span)), new Set(expected.map((e) => e.spanId)), `${service}: the slowest spans of the three slowest steps`);
      for (const g of got) {
        const m = made.find((x) => x.spanId === g.span)!;
        assert.equal(g.trace, m.traceId, 'trace:id is the span\'s trace, 32 hex');
        assert.equal(g.ts, String(m.start / MS), 'timestampMs: the span\'s start');
        const sample = s.samples.find((x) => x.timestampMs === String((BASE + BigInt(m.step) * STEP) / MS))!;
        assert.equal(g.value, sample.value, 'a rate exemplar sits on its sample');
        assert.equal(g.value, 0.5, '5 spans in a 10 s step');
      }
    }
  });

  it('max/min_over_time(duration): the span that made the sample; quantile_over_time: its duration in seconds', async () => {
    const max = await run('{ } | max_over_time(duration) by (resource.service.name)', 100);
    const min = await run('{ } | min_over_time(duration) by (resource.service.name)', 100);
    for (const service of ['checkout', 'search']) {
      const sMax = seriesOf(max, service)!;
      const sMin = seriesOf(min, service)!;
      assert.equal(sMax.exemplars.length, 6, 'one per step when N is larger than the steps');
      for (const [s, pickOf] of [
        [sMax, (xs: Made[]) => xs.sort((a, b) => b.durationMs - a.durationMs)[0]!],
        [sMin, (xs: Made[]) => xs.sort((a, b) => a.durationMs - b.durationMs)[0]!],
      ] as const) {
        for (const sample of s.samples) {
          const step = Number((BigInt(sample.timestampMs) * MS - BASE) / STEP);
          const want = pickOf(made.filter((m) => m.service === service && m.step === step));
          const ex = s.exemplars.map(exOf).find((e) => e.span === want.spanId);
          assert.ok(ex, `${service} step ${step}: exemplar is span ${want.spanId}`);
          assert.equal(ex.value, want.durationMs / 1000);
          assert.equal(ex.value, sample.value, 'the exemplar is the sample');
        }
      }
    }
    const q = await run('{ resource.service.name = "search" } | quantile_over_time(duration, 0.5, 0.99)', 2);
    assert.equal(q.series.length, 2, 'one series per quantile');
    for (const s of q.series) {
      assert.equal(s.exemplars.length, 2);
      for (const e of s.exemplars.map(exOf)) assert.equal(e.value, made.find((m) => m.spanId === e.span)!.durationMs / 1000);
    }
  });

  it('exemplars=0 gives none; query_range answers Tempo\'s shape, bounded by the exemplars parameter; instant answers carry none', async () => {
    assert.ok((await run('{ } | count_over_time()', 0)).series.every((s) => s.exemplars.length === 0));
    const q = encodeURIComponent('{ } | count_over_time() by (resource.service.name)');
    const win = `start=${BASE / S}&end=${(BASE + 6n * STEP - 1n) / S}&step=10s`;
    const body = async (path: string) => {
      const r = await fetch(`${server.url}${path}`);
      assert.equal(r.status, 200);
      return (await r.json()) as { series: { labels: unknown[]; samples: unknown[]; exemplars?: { labels: { key: string; value: { stringValue: string } }[]; value: number; timestampMs: string }[] }[] };
    };
    const one = await body(`/api/metrics/query_range?q=${q}&${win}&exemplars=1`);
    assert.equal(one.series.length, 2);
    for (const s of one.series) {
      assert.equal(s.exemplars?.length, 1);
      const e = s.exemplars[0]!;
      assert.deepEqual(e.labels.map((l) => l.key), ['trace:id', 'span:id']);
      assert.match(e.labels[0]!.value.stringValue, /^[0-9a-f]{32}$/);
      assert.match(e.labels[1]!.value.stringValue, /^[0-9a-f]{16}$/);
      assert.equal(typeof e.value, 'number');
      assert.match(e.timestampMs, /^\d+$/);
    }
    const dflt = await body(`/api/metrics/query_range?q=${q}&${win}`);
    assert.ok(dflt.series.every((s) => (s.exemplars?.length ?? 0) === 6), 'default: a few per series (here one per step)');
    const instant = await body(`/api/metrics/query?q=${q}&${win}`);
    assert.ok(instant.series.every((s) => s.exemplars === undefined));
    const bad = await fetch(`${server.url}/api/metrics/query_range?q=${q}&${win}&exemplars=lots`);
    assert.equal(bad.status, 400);
  });
});
