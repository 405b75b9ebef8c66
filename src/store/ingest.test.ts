// Writing: spans converted on append() and committed by flushes; odd strings, refused spans,
// failed commits, resource GC with unflushed spans, checkpoints under a memory limit.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Span, type Attributes, type SpanInit } from '../model/index.js';
import { parseTraceQL } from '../traceql/index.js';
import { DuckStore, parseMemoryLimit } from './index.js';

const NOW = BigInt(Date.now()) * 1_000_000n;
const SEC = 1_000_000_000n;

let seq = 0;
function mkSpan(o: Partial<SpanInit> = {}): Span {
  seq++;
  return Span.from({
    traceId: seq.toString(16).padStart(32, '0'),
    spanId: seq.toString(16).padStart(16, '0'),
    parentSpanId: '',
    name: `span-${seq}`,
    kind: 'server',
    startTimeUnixNano: NOW - BigInt(seq) * 1000n,
    durationNano: 1000,
    status: 'unset',
    resource: { 'service.name': 'svc', 'process.pid': 1 },
    attributes: {},
    ...o,
  });
}

/** a private member, for failure injection and checks the public API cannot make */
function internal<T>(store: DuckStore, name: string): T {
  return (store as unknown as Record<string, T>)[name] as T;
}

async function count(store: DuckStore, sql: string): Promise<number> {
  const con = internal<{ runAndReadAll(sql: string): Promise<{ getRows(): unknown[][] }> }>(store, 'maint');
  return Number((await con.runAndReadAll(sql)).getRows()[0]?.[0]);
}

const ODD = [
  'a"b',
  'c,d',
  'e\nf',
  'g\r\nh',
  'i\\j',
  'k\tl',
  'm\u0000n',
  '\u0002x\u0002',
  'é漢字😀',
  '\u2028\u2029',
  "'; DROP TABLE spans; --",
  ' ',
  'x'.repeat(200_000),
];

describe('DuckStore writing', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'osprey-ingest-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('odd strings round-trip exactly in every string field', async () => {
    const store = await DuckStore.open();
    try {
      const spans = ODD.map((v) =>
        mkSpan({
          name: v,
          status: 'error',
          statusMessage: v,
          resource: { 'service.name': v, 'k8s.namespace.name': v, [v]: v, 'process.pid': 7 },
          attributes: { [v]: v, 'url.path': v, 'http.route': v, 'http.request.method': v, 'http.response.status_code': 500, n: -0.5 },
        }),
      );
      store.append(spans);
      await store.flush();
      for (const s of spans) assert.deepStrictEqual(await store.trace(s.traceId), [s], JSON.stringify(s.name.slice(0, 20)));
      // the hot columns hold the same strings
      for (const v of ODD.filter((x) => !/[\u0000-\u001f]/.test(x) && x.length < 100)) {
        const q = parseTraceQL(`{ span.http.route = ${JSON.stringify(v)} && resource.service.name = ${JSON.stringify(v)} }`);
        assert.equal((await store.search({ query: q, limit: 5 })).length, 1, JSON.stringify(v));
      }
    } finally {
      await store.shutdown();
    }
  });

  it('a span that cannot be converted is refused and counted; the rest of its batch is stored', async () => {
    const store = await DuckStore.open({ flushIntervalMs: 60_000 });
    try {
      const bad = mkSpan();
      bad.extra = {
        get boom(): string {
          throw new Error('boom');
        },
      };
      const good = [mkSpan({ attributes: { a: 1 } }), mkSpan({ attributes: { b: 'x' } })];
      store.append([good[0] as Span, bad, good[1] as Span]);
      assert.equal(store.stats().spansRejected, 1);
      assert.equal(store.stats().buffered, 2);
      await store.flush();
      assert.equal(store.stats().rows, 2);
      assert.equal(store.stats().flushErrors, 0);
      for (const s of good) assert.deepStrictEqual(await store.trace(s.traceId), [s]);
      assert.deepEqual(await store.trace(bad.traceId), []);
    } finally {
      await store.shutdown();
    }
  });

  it('a batch that fails to commit is dropped and counted; its new resources and keys are stored with the next one', async () => {
    const store = await DuckStore.open({ flushIntervalMs: 60_000 });
    try {
      store.append([mkSpan({ attributes: { first: 1 } })]);
      await store.flush();
      // the next batch brings a new resource and a new key, then the resource append fails
      const res = { 'service.name': 'newcomer', 'process.pid': 99 };
      store.append([mkSpan({ resource: res, attributes: { fresh: 'k' } })]);
      internal<{ flushSync(): void }>(internal<DuckStore>(store, 'writer'), 'resAppender').flushSync = () => {
        throw new Error('injected failure');
      };
      await assert.rejects(store.flush(), /injected failure/);
      let st = store.stats();
      assert.equal(st.flushErrors, 1);
      assert.equal(st.spansDropped, 1);
      assert.equal(st.rows, 1);
      // a later span of the same process is stored, and so is its resource
      const later = mkSpan({ resource: res, attributes: { fresh: 'again' } });
      store.append([later]);
      await store.flush();
      st = store.stats();
      assert.equal(st.rows, 2);
      assert.equal(await count(store, `SELECT count(*) FROM resources WHERE service = 'newcomer'`), 1);
      assert.equal(await count(store, `SELECT count(*) FROM span_keys WHERE key = 'fresh'`), 1);
      assert.deepStrictEqual(await store.trace(later.traceId), [later]);
      assert.equal((await store.search({ query: parseTraceQL('{ span.fresh = "again" }'), limit: 5 })).length, 1);
    } finally {
      await store.shutdown();
    }
  });

  it('resource GC keeps resources that appended, not yet flushed spans use', async () => {
    const store = await DuckStore.open({ flushIntervalMs: 60_000, retention: { maxAgeMs: 3600_000, intervalMs: 0 } });
    try {
      const res = { 'service.name': 'comeback', 'process.pid': 5 };
      store.append([mkSpan({ resource: res, startTimeUnixNano: NOW - 2n * 3600n * SEC })]);
      await store.flush();
      const pending = mkSpan({ resource: res, name: 'pending' });
      store.append([pending]);
      // the old span goes, its resource has no stored span left, but `pending` uses it
      assert.deepEqual(await store.enforceRetention(), { deletedByAge: 1, deletedByCount: 0 });
      await store.enforceRetention(); // a second GC forgets whatever the first retired
      await store.flush();
      assert.deepStrictEqual(await store.trace(pending.traceId), [pending]);
      assert.equal(await count(store, `SELECT count(*) FROM resources WHERE service = 'comeback'`), 1);
    } finally {
      await store.shutdown();
    }
  });

  it('buffered and dropped count converted spans', async () => {
    const store = await DuckStore.open({ flushSpans: 3, maxBuffered: 7, flushIntervalMs: 60_000 });
    store.append(Array.from({ length: 10 }, () => mkSpan()));
    assert.equal(store.stats().buffered, 7);
    assert.equal(store.stats().spansDropped, 3);
    await store.flush();
    assert.equal(store.stats().rows, 7);
    assert.equal(store.stats().flushes, 3, '3 + 3 + 1');
    await store.shutdown();
  });

  it('while a checkpoint holds up the commits the buffer takes up to maxBufferedCheckpoint, until the backlog is back under maxBuffered', async () => {
    const path = join(dir, 'checkpoint-backlog.duckdb');
    const store = await DuckStore.open({ path, flushSpans: 3, maxBuffered: 10, maxBufferedCheckpoint: 25, flushIntervalMs: 60_000, checkpointIntervalMs: 10, retention: { intervalMs: 0 } });
    // the writer's connection: its CHECKPOINTs wait until the test releases them
    const con = internal<{ run(sql: string): Promise<unknown> }>(internal<DuckStore>(store, 'writer'), 'writer');
    const run = con.run.bind(con);
    let entered!: () => void;
    const inCheckpoint = new Promise<void>((r) => (entered = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    con.run = async (sql) => {
      if (sql === 'CHECKPOINT') {
        entered();
        await released;
      }
      return run(sql);
    };
    try {
      store.append([mkSpan()]);
      await store.flush(); // a commit: the time bound's checkpoint follows
      // its timer is unref'd: this one keeps the process alive meanwhile
      const alive = setInterval(() => undefined, 1000);
      await inCheckpoint.finally(() => clearInterval(alive));
      store.append(Array.from({ length: 30 }, () => mkSpan()));
      let st = store.stats();
      assert.equal(st.buffered, 25, 'the larger bound while the checkpoint runs');
      assert.equal(st.spansDropped, 5, 'what is beyond it is dropped and counted');
      const drained = store.flush(); // queued behind the checkpoint
      release();
      await drained;
      st = store.stats();
      assert.equal(st.rows, 26);
      assert.equal(st.buffered, 0);
      assert.ok(st.checkpoints >= 1);
      assert.ok(st.lastCheckpointMs > 0);
      // drained: the bound is maxBuffered again
      store.append(Array.from({ length: 15 }, () => mkSpan()));
      st = store.stats();
      assert.equal(st.buffered, 10);
      assert.equal(st.spansDropped, 10);
      await store.flush();
      assert.equal(store.stats().rows, 36);
      assert.equal(await count(store, 'SELECT count(*) FROM spans'), 36);
    } finally {
      release();
      await store.shutdown();
    }
  });

  it('parseMemoryLimit', () => {
    assert.equal(parseMemoryLimit('128MB'), 128e6);
    assert.equal(parseMemoryLimit('1.5GiB'), 1.5 * 2 ** 30);
    assert.equal(parseMemoryLimit(' 2 gb '), 2e9);
    for (const bad of ['', '128', 'MB', '-1MB', '0MB', '1XB', "1GB'; DROP"]) assert.equal(parseMemoryLimit(bad), undefined, bad);
  });

  it('a file store under a small memory limit takes more spans than fit in it, and checkpoints them', async () => {
    const path = join(dir, 'bounded.duckdb');
    const N = 130_000; // a little over a row group, ~60 MB of span data
    // 40 MB: with 19 hot attribute columns and the rollup tables (schema version 2) a
    // checkpoint pins more blocks than the 24 MB that sufficed for 4 columns and one JSON
    // text (at 32 MB it fails, and DuckDB then invalidates the database)
    const store = await DuckStore.open({ path, memoryLimit: '40MB', flushSpans: 10_000, retention: { intervalMs: 0, maxAgeMs: Infinity, maxSpans: Infinity } });
    try {
      const resources = Array.from({ length: 4 }, (_, i) => ({ 'service.name': `s${i}`, 'process.pid': i }));
      for (let i = 0; i < N; i += 10_000) {
        store.append(
          Array.from({ length: 10_000 }, (_, j) =>
            mkSpan({
              name: `GET /r/${(i + j) % 50}`,
              resource: resources[(i + j) % 4] as Attributes,
              attributes: { 'http.request.method': 'GET', 'url.path': `/r/${i + j}`, 'http.response.status_code': 200, 'user_agent.original': randomBytes(100).toString('hex') },
            }),
          ),
        );
        await store.flush();
      }
      const st = store.stats();
      assert.equal(st.rows, N);
      assert.equal(st.flushErrors, 0);
      assert.equal(st.spansDropped, 0);
      // checkpoints moved the data into the file and emptied the WAL
      // (columns compress well: 100 random bytes of user agent per span are most of it)
      assert.ok(statSync(path).size > 5e6, `file ${statSync(path).size} bytes`);
      const wal = `${path}.wal`;
      assert.ok(!existsSync(wal) || statSync(wal).size < 40e6, `wal ${existsSync(wal) ? statSync(wal).size : 0} bytes`);
      assert.equal(await count(store, 'SELECT count(*) FROM spans'), N);
      const svc = await store.services(0n, NOW + SEC);
      assert.equal(svc.reduce((n, s) => n + s.spanCount, 0), N);
    } finally {
      await store.shutdown();
    }
  });
});
