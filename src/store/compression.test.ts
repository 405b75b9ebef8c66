// Fixed per-column compression of `spans` (schema.ts SPAN_COMPRESSION): new stores get the
// fixed methods, stores created before (DuckDB choosing every column's method) open, read and
// append as before.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { Span } from '../model/index.js';
import { parseTraceQL } from '../traceql/index.js';
import { DuckStore } from './index.js';
import { DDL, SCHEMA_VERSION, SPAN_COMPRESSION } from './schema.js';

const NOW = BigInt(Date.now()) * 1_000_000n;

/** an agent-like HTTP span: small ids, one path (DuckDB alone would pick bitpacking and a dictionary) */
function mk(i: number): Span {
  return Span.from({
    traceId: (i + 1).toString(16).padStart(32, '0'),
    spanId: (i + 1).toString(16).padStart(16, '0'),
    parentSpanId: '',
    name: 'GET /items',
    kind: 'server',
    startTimeUnixNano: NOW - BigInt(10_000 - i) * 1_000_000n,
    durationNano: 1000 + i,
    status: 'unset',
    resource: { 'service.name': `svc-${i % 2}` },
    attributes: { 'http.request.method': 'GET', 'url.path': '/items', 'http.response.status_code': 200 },
  });
}

/** compression of each column of `spans` in a closed store file: column → methods seen */
async function methods(file: string): Promise<Map<string, Set<string>>> {
  const inst = await DuckDBInstance.create(file, { access_mode: 'READ_ONLY' });
  try {
    const c = await inst.connect();
    try {
      const rows = (await c.runAndReadAll(`SELECT column_name, compression FROM pragma_storage_info('spans') WHERE segment_type <> 'VALIDITY'`)).getRows();
      const out = new Map<string, Set<string>>();
      for (const [col, m] of rows) {
        const set = out.get(String(col)) ?? new Set<string>();
        set.add(String(m));
        out.set(String(col), set);
      }
      return out;
    } finally {
      c.closeSync();
    }
  } finally {
    inst.closeSync();
  }
}

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'osprey-compression-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('spans column compression', () => {
  it('a new store stores its stable columns with the fixed methods', async () => {
    const db = join(dir, 'new.duckdb');
    const s = await DuckStore.open({ path: db });
    s.append(Array.from({ length: 3000 }, (_, i) => mk(i)));
    await s.flush();
    assert.equal((await s.search({ query: parseTraceQL('{ span.url.path = "/items" }'), limit: 5000 })).length, 3000);
    await s.shutdown(); // checkpoints
    const m = await methods(db);
    // these differ from what DuckDB picks for this data on its own (see the test below)
    assert.deepEqual([...(m.get('url_path') ?? [])], ['FSST']);
    assert.deepEqual([...(m.get('span_id') ?? [])], ['Uncompressed']);
    for (const [col, method] of Object.entries(SPAN_COMPRESSION)) {
      const want = { dictionary: 'Dictionary', fsst: 'FSST', bitpacking: 'BitPacking', uncompressed: 'Uncompressed' }[method];
      // a segment whose values are all equal is stored as a constant whatever the method
      const got = [...(m.get(col) ?? [])].filter((x) => x !== 'Constant');
      assert.ok(got.length === 0 || (got.length === 1 && got[0] === want), `${col}: ${got.join()}`);
    }
    // and it reads back after a restart
    const s2 = await DuckStore.open({ path: db });
    try {
      assert.equal(s2.stats().rows, 3000);
      const found = await s2.search({ query: parseTraceQL('{ span.http.request.method = "GET" && resource.service.name = "svc-1" }'), limit: 5000 });
      assert.equal(found.length, 1500);
      assert.deepEqual(await s2.trace(mk(42).traceId), [mk(42)]);
    } finally {
      await s2.shutdown();
    }
  });

  it('a store created before the fixed methods opens, reads and appends; its columns stay automatic', async () => {
    const db = join(dir, 'old.duckdb');
    // the tables as the store created them before: no USING COMPRESSION
    const inst = await DuckDBInstance.create(db);
    const c = await inst.connect();
    for (const stmt of DDL) await c.run(stmt.replace(/ USING COMPRESSION \w+/g, ''));
    await c.run(`INSERT INTO osprey_meta VALUES ('schema_version', '${SCHEMA_VERSION}')`);
    c.closeSync();
    inst.closeSync();

    const s = await DuckStore.open({ path: db });
    try {
      s.append(Array.from({ length: 3000 }, (_, i) => mk(i)));
      await s.flush();
      assert.equal((await s.search({ query: parseTraceQL('{ span.url.path = "/items" }'), limit: 5000 })).length, 3000);
    } finally {
      await s.shutdown();
    }
    const m = await methods(db);
    assert.ok(!m.get('url_path')?.has('FSST'), `url_path: ${[...(m.get('url_path') ?? [])].join()}`);
    assert.ok(!m.get('span_id')?.has('Uncompressed'), `span_id: ${[...(m.get('span_id') ?? [])].join()}`);
    const s2 = await DuckStore.open({ path: db });
    try {
      assert.equal(s2.stats().rows, 3000);
      assert.deepEqual(await s2.trace(mk(7).traceId), [mk(7)]);
    } finally {
      await s2.shutdown();
    }
  });
});
