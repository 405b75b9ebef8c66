// File-backed store: restart, crash safety (SIGKILL of a writer process), retention.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Span, type SpanInit } from '../model/index.js';
import { parseTraceQL } from '../traceql/index.js';
import { DuckStore } from './index.js';

const NOW = BigInt(Date.now()) * 1_000_000n;
const SEC = 1_000_000_000n;
const STORE_URL = new URL('./index.js', import.meta.url).href;
const MODEL_URL = new URL('../model/index.js', import.meta.url).href;

function mk(i: number, extra: Partial<SpanInit> = {}): Span {
  return Span.from({
    traceId: (i + 1).toString(16).padStart(32, '0'),
    spanId: (i + 1).toString(16).padStart(16, '0'),
    parentSpanId: '',
    name: `GET /r/${i}`,
    kind: 'server',
    startTimeUnixNano: NOW - BigInt(100_000 - i) * 1_000_000n,
    durationNano: 1000 + i,
    status: i % 10 === 0 ? 'error' : 'unset',
    resource: { 'service.name': `svc-${i % 3}`, 'process.pid': 100 + (i % 3) },
    attributes: { 'http.request.method': 'GET', 'http.response.status_code': 200, n: i },
    ...extra,
  });
}

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'osprey-store-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `code` in a child node process (ESM; `DuckStore`, `Span`, `mk`, `DB` in scope); resolves with the child once `marker` is printed. */
function child(db: string, code: string, marker: RegExp): Promise<{ proc: ReturnType<typeof spawn>; out: () => string }> {
  const src = `
    const { DuckStore } = await import(${JSON.stringify(STORE_URL)});
    const { Span } = await import(${JSON.stringify(MODEL_URL)});
    const DB = ${JSON.stringify(db)};
    const NOW = ${NOW}n;
    const mk = ${mk.toString()};
    ${code}
  `;
  const proc = spawn(process.execPath, ['--input-type=module', '-e', src], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child timed out; stdout=${out} stderr=${err}`)), 30_000);
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (marker.test(out)) {
        clearTimeout(timer);
        resolve({ proc, out: () => out });
      }
    });
    proc.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
    });
    proc.on('exit', (codeNum) => {
      clearTimeout(timer);
      if (!marker.test(out)) reject(new Error(`child exited ${codeNum}; stdout=${out} stderr=${err}`));
    });
  });
}

function kill9(proc: ReturnType<typeof spawn>): Promise<void> {
  return new Promise((resolve) => {
    proc.on('exit', () => resolve());
    proc.kill('SIGKILL');
  });
}

describe('DuckStore on disk', () => {
  it('a restart keeps the data, the resources and the counters that matter', async () => {
    const db = join(dir, 'restart', 'osprey.duckdb'); // parent directory is created
    const s1 = await DuckStore.open({ path: db });
    // a second open of the same file in this process would corrupt it
    await assert.rejects(DuckStore.open({ path: join(dir, 'restart', '.', 'osprey.duckdb') }), /already open/);
    const spans = Array.from({ length: 50 }, (_, i) => mk(i));
    s1.append(spans);
    await s1.flush();
    const before = await s1.trace(spans[7]?.traceId ?? '');
    await s1.shutdown();

    const s2 = await DuckStore.open({ path: db });
    try {
      assert.equal(s2.stats().rows, 50);
      assert.equal(s2.stats().resources, 3);
      assert.deepStrictEqual(await s2.trace(spans[7]?.traceId ?? ''), before);
      assert.deepStrictEqual(before, [spans[7]]);
      const found = await s2.search({ query: parseTraceQL('{ resource.process.pid = 101 && status = error }'), limit: 100 });
      assert.deepEqual(found.map((s) => s.attributes['n']).sort((a, b) => Number(a) - Number(b)), [10, 40]);
      // the span attribute keys seen before the restart are still known
      assert.deepEqual((await s2.search({ query: parseTraceQL('{ span.n = 7 }'), limit: 10 })).map((s) => s.name), ['GET /r/7']);
      assert.equal((await s2.search({ query: parseTraceQL('{ .n >= 0 }'), limit: 100 })).length, 50);
      // known resources are reused after a restart, not duplicated
      s2.append([mk(1000)]);
      await s2.flush();
      assert.equal(s2.stats().resources, 3);
      assert.equal(s2.stats().rows, 51);
    } finally {
      await s2.shutdown();
    }
    // and once more after appending in the second life
    const s3 = await DuckStore.open({ path: db });
    try {
      assert.equal(s3.stats().rows, 51);
    } finally {
      await s3.shutdown();
    }
  });

  it('with a WAL, kill -9 loses at most the unflushed batch', async () => {
    const db = join(dir, 'crash1.duckdb');
    const { proc } = await child(
      db,
      `
      const st = await DuckStore.open({ path: DB, wal: true, flushSpans: 100000, flushIntervalMs: 3600000, retention: { intervalMs: 0 } });
      st.append(Array.from({ length: 1000 }, (_, i) => mk(i)));
      await st.flush();
      st.append(Array.from({ length: 500 }, (_, i) => mk(1000 + i)));   // buffered, never flushed
      process.stdout.write('buffered ' + st.stats().buffered + '\\n');
      setInterval(() => {}, 1000);
      `,
      /buffered 500\n/,
    );
    await kill9(proc);
    const st = await DuckStore.open({ path: db });
    try {
      assert.equal(st.stats().rows, 1000);
      const all = await st.search({ query: parseTraceQL('{}'), limit: 10_000 });
      assert.equal(all.length, 1000);
      assert.deepStrictEqual(await st.trace(mk(999).traceId), [mk(999)]);
      // the reopened store is writable
      st.append([mk(5000)]);
      await st.flush();
      assert.equal(st.stats().rows, 1001);
    } finally {
      await st.shutdown();
    }
  });

  it('with a WAL, kill -9 during continuous writing: acknowledged batches survive, batches are atomic', async () => {
    const db = join(dir, 'crash2.duckdb');
    const BATCH = 250;
    const { proc, out } = await child(
      db,
      `
      const st = await DuckStore.open({ path: DB, wal: true, flushSpans: 100000, flushIntervalMs: 3600000, retention: { intervalMs: 0 } });
      for (let k = 0; ; k++) {
        st.append(Array.from({ length: ${BATCH} }, (_, i) => mk(k * ${BATCH} + i)));
        await st.flush();
        process.stdout.write('acked ' + k + '\\n');
      }
      `,
      /acked 5\n/,
    );
    await new Promise((r) => setTimeout(r, 30)); // let it be in the middle of later batches
    await kill9(proc);
    const acked = [...out().matchAll(/acked (\d+)/g)].map((m) => Number(m[1]));
    const lastAcked = Math.max(...acked);
    const st = await DuckStore.open({ path: db });
    try {
      const rows = st.stats().rows;
      assert.equal(rows % BATCH, 0, `rows ${rows} is a whole number of batches`);
      assert.ok(rows >= (lastAcked + 1) * BATCH, `rows ${rows} >= acknowledged ${(lastAcked + 1) * BATCH}`);
      const spans = await st.search({ query: parseTraceQL('{}'), limit: 1_000_000 });
      assert.equal(spans.length, rows);
      const ns = new Set(spans.map((s) => s.attributes['n']));
      for (let i = 0; i < rows; i++) assert.ok(ns.has(i), `span ${i} present`);
    } finally {
      await st.shutdown();
    }
  });

  it('without a WAL (the default), kill -9 loses the spans since the last checkpoint, which runs within the interval', async () => {
    const db = join(dir, 'crash-nowal.duckdb');
    const { proc, out } = await child(
      db,
      `
      const st = await DuckStore.open({ path: DB, checkpointIntervalMs: 300, flushSpans: 100000, flushIntervalMs: 3600000, retention: { intervalMs: 0 } });
      st.append(Array.from({ length: 1000 }, (_, i) => mk(i)));
      await st.flush();
      process.stdout.write('after flush unsynced ' + st.stats().spansUnsynced + '\\n');
      // no further flush: the time bound alone must write them into the file
      while (st.stats().spansUnsynced > 0) await new Promise((r) => setTimeout(r, 20));
      process.stdout.write('checkpoints ' + st.stats().checkpoints + '\\n');
      st.append(Array.from({ length: 500 }, (_, i) => mk(1000 + i)));
      await st.flush();
      process.stdout.write('unsynced ' + st.stats().spansUnsynced + '\\n');
      // the event loop never turns again: no timer can checkpoint these 500 before the kill
      for (;;) {}
      `,
      /unsynced 500\n/,
    );
    assert.match(out(), /after flush unsynced 1000\n/);
    assert.match(out(), /checkpoints [1-9]/);
    await kill9(proc);
    assert.equal(existsSync(`${db}.wal`), false, 'no write-ahead log is written');
    const st = await DuckStore.open({ path: db });
    try {
      assert.equal(st.stats().rows, 1000);
      assert.equal((await st.search({ query: parseTraceQL('{}'), limit: 10_000 })).length, 1000);
      assert.deepStrictEqual(await st.trace(mk(999).traceId), [mk(999)]);
      assert.deepStrictEqual(await st.trace(mk(1000).traceId), []);
      // the services rollup was rebuilt from the spans the file kept, not left with the lost ones
      const svc = await st.services(NOW - 3600n * SEC);
      assert.equal(svc.reduce((n, x) => n + x.spanCount, 0), 1000);
      st.append([mk(5000)]);
      await st.flush();
      assert.equal(st.stats().rows, 1001);
    } finally {
      await st.shutdown();
    }
    // a normal shutdown syncs everything
    const again = await DuckStore.open({ path: db });
    try {
      assert.equal(again.stats().rows, 1001);
      assert.equal(again.stats().spansUnsynced, 0);
    } finally {
      await again.shutdown();
    }
  });

  it('retention deletes on disk and the result survives a restart', async () => {
    const db = join(dir, 'retention.duckdb');
    const s1 = await DuckStore.open({ path: db, retention: { maxAgeMs: 600_000, intervalMs: 0 } });
    s1.append([
      ...Array.from({ length: 20 }, (_, i) => mk(i, { startTimeUnixNano: NOW - 3600n * SEC + BigInt(i) })),
      ...Array.from({ length: 5 }, (_, i) => mk(100 + i)),
    ]);
    await s1.flush();
    assert.deepEqual(await s1.enforceRetention(), { deletedByAge: 20, deletedByCount: 0 });
    assert.equal(s1.stats().retentionDeletedSpans, 20);
    await s1.shutdown();
    const s2 = await DuckStore.open({ path: db, retention: { maxAgeMs: 600_000, intervalMs: 0 } });
    try {
      assert.equal(s2.stats().rows, 5);
      assert.equal((await s2.search({ query: parseTraceQL('{}'), limit: 100 })).length, 5);
    } finally {
      await s2.shutdown();
    }
  });
});
