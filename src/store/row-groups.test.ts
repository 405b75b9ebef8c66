// Row-group commits of a file store without a WAL (SpanWriter.scheduleFlush): under load the
// writer commits whole row groups, which DuckDB compresses and writes at the commit; at a low
// rate spans are committed flushIntervalMs after they arrive, as without row groups.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Span } from '../model/index.js';
import { parseTraceQL } from '../traceql/index.js';
import { DuckStore, ROW_GROUP_ROWS } from './index.js';

const NOW = BigInt(Date.now()) * 1_000_000n;
let seq = 0;

function spans(n: number): Span[] {
  const out: Span[] = [];
  for (let i = 0; i < n; i++) {
    seq++;
    out.push(
      Span.from({
        traceId: seq.toString(16).padStart(32, '0'),
        spanId: seq.toString(16).padStart(16, '0'),
        parentSpanId: '',
        name: `GET /items/${seq % 50}`,
        kind: 'server',
        startTimeUnixNano: NOW + BigInt(seq) * 1000n,
        durationNano: 1000 + (seq % 977),
        status: 'unset',
        resource: { 'service.name': 'svc', 'process.pid': 1 },
        attributes: { 'http.request.method': 'GET', 'url.path': `/items/${seq}`, 'http.response.status_code': 200 },
      }),
    );
  }
  return out;
}

/** rows of a query on the store's own maintenance connection (the file's catalog is its default) */
async function rows(store: DuckStore, sql: string): Promise<unknown[][]> {
  const con = (store as unknown as { maint: { runAndReadAll(sql: string): Promise<{ getRows(): unknown[][] }> } }).maint;
  return (await con.runAndReadAll(sql)).getRows();
}

async function until(what: string, ok: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** per row group of `spans`: [rows, whether all its segments are in the file] */
async function rowGroups(store: DuckStore): Promise<[number, boolean][]> {
  const r = await rows(store, `SELECT max(count), bool_and(persistent) FROM pragma_storage_info('spans') GROUP BY row_group_id ORDER BY row_group_id`);
  return r.map(([n, p]) => [Number(n), p === true]);
}

describe('file store: whole row groups under load', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'osprey-rowgroups-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('commits each full row group at once, written to the file at its commit (before any checkpoint); the rest waits', async () => {
    const path = join(dir, 'full.duckdb');
    // timers far away: only a full row group is committed by itself
    let store = await DuckStore.open({ path, flushIntervalMs: 600_000, rowGroupWaitMs: 600_000, checkpointIntervalMs: 600_000 });
    store.append(spans(2 * ROW_GROUP_ROWS + 100));
    await until('two commits', () => store.stats().flushes >= 2);
    assert.equal(store.stats().flushes, 2);
    assert.equal(store.stats().buffered, 100);
    assert.equal(store.stats().checkpoints, 0);
    // compressed and in the file already: no checkpoint has run
    assert.deepEqual(await rowGroups(store), [
      [ROW_GROUP_ROWS, true],
      [ROW_GROUP_ROWS, true],
    ]);
    // an explicit flush commits the rest, which (a partial row group) waits in memory for a checkpoint
    await store.flush();
    assert.deepEqual(await rowGroups(store), [
      [ROW_GROUP_ROWS, true],
      [ROW_GROUP_ROWS, true],
      [100, false],
    ]);
    assert.equal(Number((await rows(store, 'SELECT count(*) FROM spans'))[0]![0]), 2 * ROW_GROUP_ROWS + 100);
    await store.shutdown();
    store = await DuckStore.open({ path });
    try {
      assert.equal(Number((await rows(store, 'SELECT count(*) FROM spans'))[0]![0]), 2 * ROW_GROUP_ROWS + 100);
      const found = await store.search({ query: parseTraceQL('{ span.url.path = "/items/7" }'), limit: 5 });
      assert.deepEqual(
        found.map((s) => s.attr('url.path')),
        ['/items/7'],
      );
    } finally {
      await store.shutdown();
    }
  });

  it('at a low rate commits flushIntervalMs after the first span, without waiting for a row group', async () => {
    const store = await DuckStore.open({ path: join(dir, 'slow.duckdb'), flushIntervalMs: 100, rowGroupWaitMs: 600_000 });
    try {
      store.append(spans(10));
      await until('the commit', () => store.stats().buffered === 0, 10_000);
      assert.equal(store.stats().flushes, 1);
    } finally {
      await store.shutdown();
    }
  });

  it('under load a batch that would fill its row group within rowGroupWaitMs waits for it, and is committed whatever it holds once it would not', async () => {
    // the rate is measured from the batch's first span: a long wait, so that it holds however
    // long the append itself takes (30,000 spans fill 32,768 within 60 s while the batch is
    // younger than 55 s)
    let store = await DuckStore.open({ path: join(dir, 'wait.duckdb'), flushIntervalMs: 50, rowGroupWaitMs: 60_000 });
    try {
      store.append(spans(30_000));
      await sleep(300);
      // without row groups it would have been committed 50 ms after its first span
      assert.equal(store.stats().flushes, 0);
      assert.equal(store.stats().buffered, 30_000);
    } finally {
      await store.shutdown();
    }
    // a short wait: the batch goes once its rate no longer fills it in time (by 1.5 s at the latest)
    store = await DuckStore.open({ path: join(dir, 'wait.duckdb'), flushIntervalMs: 50, rowGroupWaitMs: 1500 });
    try {
      store.append(spans(30_000));
      const appended = Date.now();
      await until('the commit', () => store.stats().buffered === 0, 15_000);
      assert.ok(Date.now() - appended < 8000, `committed ${Date.now() - appended} ms after the append`);
      assert.equal(store.stats().flushes, 1);
      assert.equal(Number((await rows(store, 'SELECT count(*) FROM spans'))[0]![0]), 60_000);
    } finally {
      await store.shutdown();
    }
  });

  it('a single append of more than a row group: the full one goes at once, the rest by the timer', async () => {
    // e.g. one OTLP request of 40k spans into an idle store: nothing else arrives after it
    const store = await DuckStore.open({ path: join(dir, 'rest.duckdb'), flushIntervalMs: 50, rowGroupWaitMs: 300, checkpointIntervalMs: 600_000 });
    try {
      store.append(spans(ROW_GROUP_ROWS + 100));
      await until('the rest committed', () => store.stats().buffered === 0, 5000);
      assert.equal(store.stats().flushes, 2);
      assert.equal(Number((await rows(store, 'SELECT count(*) FROM spans'))[0]![0]), ROW_GROUP_ROWS + 100);
    } finally {
      await store.shutdown();
    }
  });

  it('with maxBuffered below a row group, spans are not dropped waiting for a row group that cannot fill', async () => {
    // a long wait: the 8000 spans would fill a row group in time (if the buffer could hold one)
    const store = await DuckStore.open({ path: join(dir, 'small-buffer.duckdb'), maxBuffered: 10_000, flushIntervalMs: 100, rowGroupWaitMs: 60_000 });
    try {
      const [first, second] = [spans(8000), spans(8000)];
      store.append(first);
      await sleep(300);
      store.append(second);
      await store.flush();
      assert.equal(store.stats().spansDropped, 0);
      assert.equal(Number((await rows(store, 'SELECT count(*) FROM spans'))[0]![0]), 16_000);
    } finally {
      await store.shutdown();
    }
  });

  it('a full row group held up by a checkpoint does not make the batch being filled go early', async () => {
    const store = await DuckStore.open({ path: join(dir, 'held.duckdb'), flushIntervalMs: 100, rowGroupWaitMs: 10_000, checkpointIntervalMs: 600_000 });
    try {
      // the writer's queue busy, as while a checkpoint runs
      const writer = (store as unknown as { writer: { exclusive(fn: () => Promise<void>): Promise<void> } }).writer;
      const batch = spans(ROW_GROUP_ROWS + 20_000);
      let release!: () => void;
      const held = writer.exclusive(() => new Promise<void>((r) => (release = r)));
      // a full row group and 20,000 spans more: at that rate the next one fills well within 10 s
      store.append(batch);
      // the timer (100 ms) fires while the full row group waits for the queue
      await sleep(400);
      release();
      await held;
      await until('the full row group', () => store.stats().flushes >= 1);
      await sleep(500);
      assert.equal(store.stats().flushes, 1);
      assert.equal(store.stats().buffered, 20_000);
    } finally {
      await store.shutdown();
    }
  });

  it('an in-memory store and a file store with a WAL keep batches of flushSpans', async () => {
    for (const o of [{}, { path: join(dir, 'wal.duckdb'), wal: true }]) {
      const store = await DuckStore.open({ ...o, flushSpans: 1000, flushIntervalMs: 600_000 });
      try {
        // committed at once, in batches of 1000, with the timer far away
        store.append(spans(2500));
        await until('the commits', () => store.stats().buffered === 0);
        assert.equal(store.stats().flushes, 3, JSON.stringify(o));
      } finally {
        await store.shutdown();
      }
    }
  });
});
