// RED and service-graph rollups against brute force over the same spans: exact counts and
// sums, bucket boundaries, retention pruning, restart and rebuild; the same numbers as
// /metrics (MetricsGenerator) for the same spans; and the same edges and /metrics when the
// store takes the metrics generator's pairing (shareServiceGraph) as when both pair.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Span, type Attributes, type SpanKind, type SpanStatus } from '../model/index.js';
import { MetricsGenerator, ServiceGraph, exposition } from '../metrics/index.js';
import { parseTraceQL } from '../traceql/index.js';
import { DuckStore, type EdgeStats, type ServiceStats } from './index.js';
import { ROLLUP_BUCKET_NS, bucketStart } from './rollups.js';

const MIN = ROLLUP_BUCKET_NS;
/** a bucket boundary some hours ago (retention by age is off unless a test sets it) */
const BASE = bucketStart(BigInt(Date.now() - 3 * 3600_000) * 1_000_000n);

let seed = 11;
const rand = (): number => {
  seed = (seed * 1664525 + 1013904223) >>> 0;
  return seed / 4294967296;
};
let seq = 1;
const id = (len: number): string => (seq++).toString(16).padStart(len, '0');

const RES = ['front', 'api', 'db', 'worker'].map((s, i): Attributes => ({ 'service.name': s, 'process.pid': 100 + i }));

interface Gen {
  spans: Span[];
}

/** traces: front server → client → api server → client → db server, plus lone worker spans; some start exactly on bucket boundaries */
function generate(traces: number, spread: bigint): Gen {
  const spans: Span[] = [];
  for (let t = 0; t < traces; t++) {
    const traceId = id(32);
    // every 7th trace starts exactly on a bucket boundary, the others anywhere in `spread`
    const start = t % 7 === 0 ? BASE + MIN * BigInt(t % 5) : BASE + BigInt(Math.floor(rand() * Number(spread)));
    const dur = (): number => Math.floor(50_000 + rand() * 3e8 * rand() * rand());
    const st = (p: number): SpanStatus => (rand() < p ? 'error' : rand() < 0.5 ? 'unset' : 'ok');
    const mk = (res: number, kind: SpanKind, parent: string, s: bigint): Span => Span.from({
      traceId,
      spanId: id(16),
      parentSpanId: parent,
      name: `${kind} ${res}`,
      kind,
      startTimeUnixNano: s,
      durationNano: dur(),
      status: st(0.1),
      resource: RES[res] as Attributes,
      attributes: { 'http.request.method': 'GET' },
    });
    const root = mk(0, 'server', id(16), start); // parent from an untraced caller: no `user` edge, no wait
    const c1 = mk(0, 'client', root.spanId, start + 1000n);
    const s1 = mk(1, 'server', c1.spanId, start + 2000n);
    const c2 = mk(1, 'client', s1.spanId, start + 3000n);
    const s2 = mk(2, 'server', c2.spanId, start + 4000n);
    const w = mk(3, 'internal', '', start);
    spans.push(root, c1, s1, c2, s2, w);
  }
  return { spans };
}

/** services() computed from the spans themselves, with the rollups' window rule */
function bruteServices(spans: Span[], since: bigint, until: bigint): Map<string, Pick<ServiceStats, 'spanCount' | 'basis' | 'requestCount' | 'errorCount' | 'durationSumNs'>> {
  const lo = bucketStart(since);
  const inWin = spans.filter((s) => bucketStart(s.startTimeUnixNano) >= lo && bucketStart(s.startTimeUnixNano) <= until);
  const out = new Map<string, Pick<ServiceStats, 'spanCount' | 'basis' | 'requestCount' | 'errorCount' | 'durationSumNs'>>();
  for (const svc of new Set(inWin.map((s) => String(s.resource['service.name'])))) {
    const all = inWin.filter((s) => s.resource['service.name'] === svc);
    const srv = all.filter((s) => s.kind === 'server');
    const basis = srv.length > 0 ? srv : all;
    out.set(svc, {
      spanCount: all.length,
      basis: srv.length > 0 ? 'server' : 'all',
      requestCount: basis.length,
      errorCount: basis.filter((s) => s.status === 'error').length,
      durationSumNs: basis.reduce((n, s) => n + s.durationNano, 0),
    });
  }
  return out;
}

/** edges() from the spans: a client span and its server child (bucket of the client's start) */
function bruteEdges(spans: Span[], since: bigint, until: bigint): Map<string, Pick<EdgeStats, 'count' | 'errorCount' | 'clientSumNs' | 'serverSumNs'>> {
  const lo = bucketStart(since);
  const byParent = new Map(spans.filter((s) => s.kind === 'server').map((s) => [`${s.traceId}/${s.parentSpanId}`, s]));
  const out = new Map<string, Pick<EdgeStats, 'count' | 'errorCount' | 'clientSumNs' | 'serverSumNs'>>();
  for (const c of spans) {
    if (c.kind !== 'client') continue;
    const s = byParent.get(`${c.traceId}/${c.spanId}`);
    const b = bucketStart(c.startTimeUnixNano);
    if (!s || b < lo || b > until) continue;
    const key = `${String(c.resource['service.name'])}->${String(s.resource['service.name'])}`;
    const e = out.get(key) ?? { count: 0, errorCount: 0, clientSumNs: 0, serverSumNs: 0 };
    e.count++;
    if (c.status === 'error' || s.status === 'error') e.errorCount++;
    e.clientSumNs += c.durationNano;
    e.serverSumNs += s.durationNano;
    out.set(key, e);
  }
  return out;
}

function sameServices(got: ServiceStats[], want: ReturnType<typeof bruteServices>, what: string): void {
  assert.deepEqual(got.map((s) => s.service), [...want.keys()].sort(), what);
  for (const s of got) {
    const w = want.get(s.service);
    assert.deepEqual(
      { spanCount: s.spanCount, basis: s.basis, requestCount: s.requestCount, errorCount: s.errorCount },
      { spanCount: w?.spanCount, basis: w?.basis, requestCount: w?.requestCount, errorCount: w?.errorCount },
      `${what}: ${s.service}`,
    );
    // sums of integer ns are exact in a double below 2^53
    assert.equal(s.durationSumNs, w?.durationSumNs, `${what}: ${s.service} duration sum`);
  }
}

function sameEdges(got: EdgeStats[], want: ReturnType<typeof bruteEdges>, what: string): void {
  const g = new Map(got.map((e) => [`${e.caller}->${e.callee}`, { count: e.count, errorCount: e.errorCount, clientSumNs: e.clientSumNs, serverSumNs: e.serverSumNs }]));
  assert.deepEqual(g, want, what);
}

const OPTS = { rollups: { intervalMs: 0 }, retention: { intervalMs: 0, maxAgeMs: Infinity, maxSpans: Infinity } } as const;

describe('rollups', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'osprey-rollups-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('services() and edges() equal brute force over the same spans, for windows on and off bucket boundaries', async () => {
    const { spans } = generate(3000, 10n * MIN);
    const store = await DuckStore.open({ ...OPTS, flushSpans: 1000 });
    try {
      // appended in a shuffled order and in small ticks, so buckets are written while others are open
      const shuffled = [...spans].sort(() => rand() - 0.5);
      for (let i = 0; i < shuffled.length; i += 250) {
        store.append(shuffled.slice(i, i + 250));
        if (i % 2000 === 0) await store.flush();
      }
      await store.flush();
      const windows: [bigint, bigint][] = [
        [0n, BASE + 100n * MIN],
        [BASE, BASE + MIN - 1n], // exactly the first bucket
        [BASE + MIN, BASE + MIN], // a window of one instant on a boundary: that whole bucket
        [BASE + MIN + 1n, BASE + 3n * MIN - 1n], // inside buckets: widened at the start only
        [BASE + 2n * MIN - 1n, BASE + 2n * MIN], // straddling a boundary
        [BASE + 4n * MIN, BASE + 4n * MIN + 30n * 1_000_000_000n],
        [BASE + 50n * MIN, BASE + 60n * MIN], // nothing there
      ];
      for (const [since, until] of windows) {
        sameServices(await store.services(since, until), bruteServices(spans, since, until), `services ${since - BASE}..${until - BASE}`);
        sameEdges(await store.edges(since, until), bruteEdges(spans, since, until), `edges ${since - BASE}..${until - BASE}`);
      }
      const all = await store.services(0n, BASE + 100n * MIN);
      assert.ok(all.every((s) => s.quantiles === 'estimated' && s.p50Ns > 0 && s.p50Ns <= s.p95Ns && s.p95Ns <= s.p99Ns));
    } finally {
      await store.shutdown();
    }
  });

  it('retention prunes the rollups with the spans: by age whole buckets, by count also the part of a bucket it deletes', async () => {
    const { spans } = generate(2000, 10n * MIN);
    // by count: keep the newest 60% (the cut falls inside a bucket)
    const keep = Math.floor(spans.length * 0.6);
    const store = await DuckStore.open({ ...OPTS, retention: { intervalMs: 0, maxAgeMs: Infinity, maxSpans: keep } });
    try {
      store.append([...spans].sort((a, b) => (a.startTimeUnixNano < b.startTimeUnixNano ? -1 : 1)));
      await store.flush();
      const r = await store.enforceRetention();
      assert.ok(r.deletedByCount >= spans.length - keep, JSON.stringify(r));
      // what is left, read back from the store itself
      const stored = new Set((await store.search({ query: parseTraceQL('{}'), limit: 1_000_000 })).map((s) => s.spanId));
      const remaining = spans.filter((s) => stored.has(s.spanId));
      assert.equal(remaining.length, store.stats().rows);
      sameServices(await store.services(0n, BASE + 100n * MIN), bruteServices(remaining, 0n, BASE + 100n * MIN), 'after count retention');
      // edges of the bucket cut in part may still count pairs whose spans went: only whole buckets are compared
      const firstWhole = bucketStart(remaining.reduce((m, s) => (s.startTimeUnixNano < m ? s.startTimeUnixNano : m), BASE + 100n * MIN)) + MIN;
      sameEdges(await store.edges(firstWhole, BASE + 100n * MIN), bruteEdges(remaining, firstWhole, BASE + 100n * MIN), 'edges after count retention');
    } finally {
      await store.shutdown();
    }

    // by age: spans older than the cutoff's bucket go, with their buckets
    const now = BigInt(Date.now()) * 1_000_000n;
    const old = generate(500, 5n * MIN).spans; // hours ago
    const recent = old.map((s) => Span.from({ ...s.toInit(), spanId: id(16), startTimeUnixNano: s.startTimeUnixNano - BASE + bucketStart(now - 10n * MIN) }));
    const aged = await DuckStore.open({ ...OPTS, retention: { intervalMs: 0, maxAgeMs: 3600_000, maxSpans: Infinity } });
    try {
      aged.append([...old, ...recent]);
      await aged.flush();
      const before = await aged.services(0n, now + MIN);
      assert.equal(before.reduce((n, s) => n + s.spanCount, 0), old.length + recent.length);
      const r = await aged.enforceRetention();
      assert.equal(r.deletedByAge, old.length);
      sameServices(await aged.services(0n, now + MIN), bruteServices(recent, 0n, now + MIN), 'after age retention');
      sameEdges(await aged.edges(0n, now + MIN), bruteEdges(recent, 0n, now + MIN), 'edges after age retention');
    } finally {
      await aged.shutdown();
    }
  });

  it('a restart finds the same rollups; a rebuild from the spans gives them again', async () => {
    const { spans } = generate(1500, 6n * MIN);
    const path = join(dir, 'restart.duckdb');
    const until = BASE + 100n * MIN;
    let store = await DuckStore.open({ ...OPTS, path });
    store.append(spans);
    await store.flush();
    const svc = await store.services(0n, until);
    const edges = await store.edges(0n, until);
    sameServices(svc, bruteServices(spans, 0n, until), 'before restart');
    await store.shutdown();
    store = await DuckStore.open({ ...OPTS, path });
    try {
      assert.deepEqual(await store.services(0n, until), svc);
      assert.deepEqual(await store.edges(0n, until), edges);
      // rebuilding every bucket from the stored spans (what open() does after a crash for the
      // buckets that were still in memory) reads every span and gives the same numbers
      assert.equal(await store.rebuildRollups(true), spans.length);
      assert.deepEqual(await store.services(0n, until), svc);
      assert.deepEqual(await store.edges(0n, until), edges);
    } finally {
      await store.shutdown();
    }
  });

  it('the same numbers as /metrics (MetricsGenerator) for the same spans, virtual nodes included', async () => {
    let now = 1_700_000_000_000;
    const clock = (): number => now;
    const gen = new MetricsGenerator({ now: clock });
    const store = await DuckStore.open({ ...OPTS, rollups: { intervalMs: 0, now: clock } });
    try {
      const { spans } = generate(400, 3n * MIN);
      // plus true roots (→ `user` edges when their wait is over) and a database call
      const traceId = id(32);
      const rootSpan = Span.from({ ...(spans[0] as Span).toInit(), traceId, spanId: id(16), parentSpanId: '', kind: 'server' });
      const dbCall = Span.from({ ...(spans[1] as Span).toInit(), traceId, spanId: id(16), parentSpanId: rootSpan.spanId, kind: 'client', attributes: { 'db.system': 'postgresql', 'server.address': 'pg' } });
      const all = [...spans, rootSpan, dbCall];
      for (let i = 0; i < all.length; i += 100) {
        const tick = all.slice(i, i + 100);
        store.append(tick);
        gen.consume(tick);
      }
      now += 60_000; // past the 10 s wait: both expire what is left
      gen.tick();
      (store as unknown as { rollups: { tick(): void } }).rollups.tick();
      await store.flush();

      const fam = gen.families();
      const samplesOf = (name: string) => {
        const f = fam.find((x) => x.name === name);
        assert.ok(f && f.type !== 'histogram');
        return f.samples;
      };
      const histOf = (name: string) => {
        const f = fam.find((x) => x.name === name);
        assert.ok(f && f.type === 'histogram');
        return f.samples;
      };
      // RED: server spans per service (every service here but worker has some)
      for (const s of await store.services(0n, BASE + 100n * MIN)) {
        const kind = s.basis === 'server' ? 'SPAN_KIND_SERVER' : undefined;
        const calls = samplesOf('traces_spanmetrics_calls_total').filter((x) => x.labels?.service === s.service && (!kind || x.labels?.span_kind === kind));
        assert.equal(s.requestCount, calls.reduce((n, x) => n + x.value, 0), `${s.service} calls`);
        const errors = calls.filter((x) => x.labels?.status_code === 'STATUS_CODE_ERROR');
        assert.equal(s.errorCount, errors.reduce((n, x) => n + x.value, 0), `${s.service} errors`);
        const lat = histOf('traces_spanmetrics_latency').filter((x) => x.labels?.service === s.service && (!kind || x.labels?.span_kind === kind));
        assert.ok(Math.abs(s.durationSumNs / 1e9 - lat.reduce((n, x) => n + x.sum, 0)) < 1e-6, `${s.service} latency sum`);
      }
      // the service graph: the same edges, counts, failures and latency sums
      const edges = await store.edges(0n, BASE + 100n * MIN);
      const total = samplesOf('traces_service_graph_request_total');
      const failed = samplesOf('traces_service_graph_request_failed_total');
      const server = histOf('traces_service_graph_request_server_seconds');
      const key = (l: Record<string, string> | undefined) => `${l?.client}->${l?.server}/${l?.connection_type ?? ''}`;
      assert.deepEqual(edges.map((e) => `${e.caller}->${e.callee}/${e.connectionType}`).sort(), total.map((x) => key(x.labels)).sort());
      assert.ok(edges.some((e) => e.caller === 'user' && e.connectionType === 'virtual_node'), 'a user edge');
      assert.ok(edges.some((e) => e.callee === 'pg' && e.connectionType === 'database'), 'a database edge');
      for (const e of edges) {
        const k = `${e.caller}->${e.callee}/${e.connectionType}`;
        assert.equal(e.count, total.find((x) => key(x.labels) === k)?.value, `${k} count`);
        assert.equal(e.errorCount, failed.find((x) => key(x.labels) === k)?.value, `${k} failed`);
        assert.ok(Math.abs(e.serverSumNs / 1e9 - (server.find((x) => key(x.labels) === k)?.sum ?? NaN)) < 1e-6, `${k} server sum`);
      }
    } finally {
      await store.shutdown();
    }
  });

  it('one pairing for the store and /metrics (shareServiceGraph): the same edges, RED and /metrics as pairing twice', async () => {
    // one stream, replayed on one clock into both set-ups: the rollups.test traces (pairs over
    // three services, failures), plus true roots (`user` edges), calls named only by their
    // peer (peer virtual nodes), database calls, messaging, pairs whose halves arrive further
    // apart than the wait, spans without service.name, and two traces with the same span ids
    const { spans } = generate(600, 4n * MIN);
    const at = (s: Span): bigint => s.startTimeUnixNano;
    const base = spans[0] as Span;
    const mk = (o: Partial<Parameters<typeof Span.from>[0]> & { kind: SpanKind }): Span =>
      Span.from({ ...base.toInit(), spanId: id(16), parentSpanId: '', attributes: {}, status: 'unset', ...o });
    const extra: Span[] = [];
    const late: Span[] = [];
    for (let i = 0; i < 40; i++) {
      const src = spans[i * 6] as Span;
      const traceId = id(32);
      const start = at(src) + 7000n;
      const failed = (p: number): SpanStatus => (rand() < p ? 'error' : 'unset');
      const root = mk({ traceId, kind: 'server', resource: RES[0], startTimeUnixNano: start, status: failed(0.2) });
      extra.push(root);
      extra.push(mk({ traceId, kind: 'client', parentSpanId: root.spanId, resource: RES[0], startTimeUnixNano: start + 10n, attributes: { 'peer.service': 'payments' }, status: failed(0.3) }));
      extra.push(mk({ traceId, kind: 'client', parentSpanId: root.spanId, resource: RES[1], startTimeUnixNano: start + 20n, attributes: { 'db.system': 'postgresql', 'server.address': 'pg' } }));
      extra.push(mk({ traceId, kind: 'client', parentSpanId: root.spanId, resource: RES[1], startTimeUnixNano: start + 25n, attributes: { 'db.system.name': 'redis', 'network.peer.address': '10.0.0.9', 'network.peer.port': 6379 } }));
      const prod = mk({ traceId, kind: 'producer', parentSpanId: root.spanId, resource: RES[1], startTimeUnixNano: start + 30n });
      extra.push(prod, mk({ traceId, kind: 'consumer', parentSpanId: prod.spanId, resource: RES[3], startTimeUnixNano: start + 40n, status: failed(0.5) }));
      // a pair whose server half comes after the client's wait is over: both expire unpaired
      const c = mk({ traceId, kind: 'client', parentSpanId: root.spanId, resource: RES[0], startTimeUnixNano: start + 50n });
      extra.push(c);
      late.push(mk({ traceId, kind: 'server', parentSpanId: c.spanId, resource: RES[1], startTimeUnixNano: start + 60n }));
      // no service.name: counted by RED as unknown_service, left out of the graph
      const anon = mk({ traceId, kind: 'client', parentSpanId: root.spanId, resource: { 'process.pid': 7 }, startTimeUnixNano: start + 70n });
      extra.push(anon, mk({ traceId, kind: 'server', parentSpanId: anon.spanId, resource: { 'process.pid': 8 }, startTimeUnixNano: start + 80n }));
      // another trace reusing this client's span id (one pending-map key, two edges)
      const twin = id(32);
      const c2 = mk({ traceId: twin, spanId: c.spanId, kind: 'client', resource: RES[2], startTimeUnixNano: start + 90n });
      extra.push(c2, mk({ traceId: twin, kind: 'server', parentSpanId: c2.spanId, resource: RES[3], startTimeUnixNano: start + 95n }));
    }
    const stream = [...spans, ...extra].sort(() => rand() - 0.5);
    const ticks: Span[][] = [];
    for (let i = 0; i < stream.length; i += 100) ticks.push(stream.slice(i, i + 100));
    // 1 s per tick: the late servers come 13 s after the last client, past the 10 s wait
    for (let i = 0; i < 12; i++) ticks.push([]);
    ticks.push(late);
    const until = BASE + 100n * MIN;

    const run = async (shared: boolean) => {
      let now = 1_700_000_000_000;
      const clock = (): number => now;
      const gen = new MetricsGenerator({ now: clock });
      const store = await DuckStore.open({ ...OPTS, flushSpans: 1000, rollups: { intervalMs: 0, now: clock } });
      const rollups = (store as unknown as { rollups: { tick(): void; graph: ServiceGraph } }).rollups;
      try {
        if (shared) store.shareServiceGraph(gen.serviceGraph);
        for (let i = 0; i < ticks.length; i++) {
          const tick = ticks[i] as Span[];
          // as osprey up's sink: the store first, then the metrics generator
          store.append(tick);
          gen.consume(tick);
          now += 1000;
          gen.tick();
          rollups.tick();
          if (i % 4 === 0) await store.flush();
        }
        now += 60_000; // past every wait
        gen.tick();
        rollups.tick();
        await store.flush();
        const out = {
          metrics: exposition(gen.families()),
          edges: await store.edges(0n, until),
          services: await store.services(0n, until),
          graph: { ...gen.serviceGraph.counters },
          storeGraph: { ...rollups.graph.counters },
          maxItems: gen.serviceGraph.maxItems,
        };
        if (shared) {
          // a rebuild reads the stored spans back and the store's own graph pairs them (the
          // shared one sees only new spans): all at once, so every api -> db call pairs, where
          // live only the halves that arrived within the wait of each other did (the stream is
          // shuffled over ~40 s). Buckets still open are written first: rebuilding them while
          // they are in memory too would count them twice.
          await (store as unknown as { writer: { commitRollups(all: boolean): Promise<void> } }).writer.commitRollups(true);
          await store.rebuildRollups(true);
          const apiDb = (edges: EdgeStats[]) => edges.find((e) => e.caller === 'api' && e.callee === 'db' && e.connectionType === '')?.count;
          assert.ok((apiDb(out.edges) ?? 0) < 600);
          assert.equal(apiDb(await store.edges(0n, until)), 600, 'api -> db after a rebuild');
        }
        return out;
      } finally {
        await store.shutdown();
      }
    };
    const twice = await run(false);
    const once = await run(true);

    // the stream has every case in it
    const kinds = new Set(twice.edges.map((e) => `${e.caller}->${e.callee}/${e.connectionType}`));
    for (const k of ['user->front/virtual_node', 'front->payments/virtual_node', 'api->pg/database', 'api->10.0.0.9:6379/database', 'api->worker/messaging_system', 'db->worker/', 'front->api/']) assert.ok(kinds.has(k), `${k} in ${[...kinds].join(' ')}`);
    assert.ok(twice.edges.some((e) => e.errorCount > 0 && e.connectionType === 'messaging_system'), 'a failed consumer');
    assert.ok(twice.graph.expired >= 2 * late.length, `expired ${twice.graph.expired}`);
    assert.ok(twice.services.some((s) => s.service === 'unknown_service'));
    // paired twice, the two graphs agreed (nothing was dropped: the stream stays below both limits)
    assert.deepEqual(twice.storeGraph, twice.graph);
    assert.equal(twice.graph.droppedSpans, 0);

    // paired once: the store's own graph saw no span, and every consumer got the same numbers
    assert.equal(once.storeGraph.edges, 0);
    assert.equal(once.storeGraph.completed, 0);
    assert.deepEqual(once.graph, twice.graph);
    assert.deepEqual(once.edges, twice.edges);
    assert.deepEqual(once.services, twice.services);
    assert.equal(once.metrics, twice.metrics);
    // the shared graph keeps the store's larger pending limit
    assert.equal(twice.maxItems, 10_000);
    assert.equal(once.maxItems, 100_000);
  });

  it('a shared graph must wait as long as the rollups, and is shared once', async () => {
    const store = await DuckStore.open({ ...OPTS, rollups: { intervalMs: 0, waitMs: 5000 } });
    try {
      assert.throws(() => store.shareServiceGraph(new MetricsGenerator().serviceGraph), /waits 10000 ms for a pair, the rollups 5000 ms/);
      store.shareServiceGraph(new MetricsGenerator({ waitMs: 5000 }).serviceGraph);
      assert.throws(() => store.shareServiceGraph(new MetricsGenerator({ waitMs: 5000 }).serviceGraph), /already share/);
    } finally {
      await store.shutdown();
    }
  });
});
