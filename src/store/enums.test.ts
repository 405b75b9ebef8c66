// Closed-set hot string columns as DuckDB ENUMs (schema.ts SPAN_ENUMS): a new store keeps the
// set's values as codes and any other value in the attribute JSON, and reads both back as the
// same attribute; a store made before (VARCHAR columns) opens, writes and reads as before.
// The TraceQL conformance test runs its whole corpus over such methods against the reference
// evaluator; this one checks where the values are and the other read paths.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { Span } from '../model/index.js';
import { parseTraceQL } from '../traceql/index.js';
import { DuckStore } from './index.js';
import { fileRows } from './test-rows.js';
import { DDL, SCHEMA_VERSION, SPAN_ENUMS } from './schema.js';

const NOW = BigInt(Date.now()) * 1_000_000n;
const MS = 1_000_000n;

let seq = 0;
/** an HTTP span as the agent makes it, with these request fields */
function mk(method: string, version: string, scheme: string, link: string): Span {
  seq++;
  const s = Span.from({
    traceId: seq.toString(16).padStart(32, '0'),
    spanId: seq.toString(16).padStart(16, '0'),
    parentSpanId: '',
    name: `${method} /x`,
    kind: 'server',
    startTimeUnixNano: NOW - BigInt(1000 - seq) * MS,
    durationNano: 1000 + seq,
    status: 'unset',
    resource: { 'service.name': 'svc' },
    attributes: {
      'http.request.method': method,
      'network.protocol.name': 'http',
      'network.protocol.version': version,
      'url.scheme': scheme,
      'osprey.link': link,
      'url.path': '/x',
      'http.response.status_code': 200,
    },
  });
  return s;
}

/** the spans both tests store (in different files) */
const SPANS: readonly Span[] = [
  mk('GET', '1.1', 'http', 'tuple'),
  mk('POST', '2', 'https', 'thread'),
  mk('PROPFIND', '1.1', 'http', 'none'),
  mk('get', '1.2', 'gopher', 'elsewhere'),
];

const rows = fileRows;

const names = async (store: DuckStore, q: string): Promise<string[]> =>
  (await store.search({ query: parseTraceQL(q), limit: 100 })).map((s) => s.name).sort();

/** what both kinds of store must answer the same */
async function reads(store: DuckStore): Promise<void> {
  for (const s of SPANS) assert.deepEqual(await store.trace(s.traceId), [s]);
  assert.deepEqual(await names(store, '{ span.http.request.method = "GET" }'), ['GET /x']);
  assert.deepEqual(await names(store, '{ span.http.request.method = "PROPFIND" }'), ['PROPFIND /x']);
  assert.deepEqual(await names(store, '{ span.http.request.method != "GET" }'), ['POST /x', 'PROPFIND /x', 'get /x']);
  assert.deepEqual(await names(store, '{ span.http.request.method =~ "P.*" }'), ['POST /x', 'PROPFIND /x']);
  // strings order as text ("G" < "P" < "g"), not as the ENUM's list
  assert.deepEqual(await names(store, '{ span.http.request.method > "H" }'), ['POST /x', 'PROPFIND /x', 'get /x']);
  assert.deepEqual(await names(store, '{ span.network.protocol.version = "1.2" }'), ['get /x']);
  assert.deepEqual(await names(store, '{ span.url.scheme = "https" || span.url.scheme = "gopher" }'), ['POST /x', 'get /x']);
  assert.deepEqual(await names(store, '{ span.osprey.link != "tuple" && span.osprey.link != "thread" }'), ['PROPFIND /x', 'get /x']);
  assert.deepEqual(await names(store, '{ span.http.request.method = nil }'), []);
  const values = (await store.tagValues('span.http.request.method')).map((v) => v.value);
  assert.deepEqual(values, ['GET', 'POST', 'PROPFIND', 'get']);
  const byMethod = await store.metricsQuery(parseTraceQL('{ } | count_over_time() by (span.http.request.method)'), {
    startNs: NOW - 2000n * MS,
    endNs: NOW,
    stepNs: 2000n * MS,
  });
  const series = byMethod.series.map((s) => (s.labels[0]?.value as { stringValue: string }).stringValue).sort();
  assert.deepEqual(series, ['GET', 'POST', 'PROPFIND', 'get']);
  const cmp = await store.analysis.compare({
    query: parseTraceQL('{ }'),
    startNs: NOW - 2000n * MS,
    endNs: NOW,
    selStartNs: NOW - 2000n * MS,
    selEndNs: NOW,
    minNs: 0,
    maxNs: 1e12,
  });
  const methods = cmp.dimensions.find((d) => d.name === 'http.request.method')?.values.map((v) => v.value).sort();
  assert.deepEqual(methods, ['GET', 'POST', 'PROPFIND', 'get']);
}

/** opens the store file, appends `spans`, checks what it reads of SPANS, closes it */
async function storeAndRead(db: string, spans: readonly Span[]): Promise<void> {
  const store = await DuckStore.open({ path: db });
  try {
    store.append(spans);
    await store.flush();
    await reads(store);
  } finally {
    await store.shutdown();
  }
}

/** the store's tables in a new file as `ddl` rewrites them, marked with schema `version` (as another build would leave them) */
async function makeTables(db: string, ddl: (stmt: string) => string, version: string): Promise<void> {
  const inst = await DuckDBInstance.create(db);
  const c = await inst.connect();
  for (const stmt of DDL) await c.run(ddl(stmt));
  await c.run(`INSERT INTO osprey_meta VALUES ('schema_version', '${version}')`);
  c.closeSync();
  inst.closeSync();
}

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'osprey-enums-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('closed-set columns as ENUM', () => {
  it('a new store keeps the set as codes and other values in the JSON, and reads both back', async () => {
    const db = join(dir, 'new.duckdb');
    await storeAndRead(db, SPANS);
    assert.deepEqual(await rows(db, `SELECT value FROM osprey_meta WHERE key = 'schema_version'`), [[SCHEMA_VERSION]]);
    assert.equal(SCHEMA_VERSION, '4');
    const types = await rows(db, `SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'spans'`);
    for (const col of Object.keys(SPAN_ENUMS)) assert.match(String(types.find((r) => r[0] === col)?.[1]), /^ENUM\(/, col);
    const stored = await rows(db, `SELECT http_method, net_protocol_version, url_scheme, osprey_link, attributes FROM spans ORDER BY start_ns`);
    assert.deepEqual(stored, [
      ['GET', '1.1', 'http', 'tuple', null],
      ['POST', '2', 'https', 'thread', null],
      [null, '1.1', 'http', 'none', '{"http.request.method":"PROPFIND"}'],
      [null, null, null, null, '{"http.request.method":"get","network.protocol.version":"1.2","url.scheme":"gopher","osprey.link":"elsewhere"}'],
    ]);
    // and after a restart
    await storeAndRead(db, []);
  });

  it('hot attributes put straight into `extra` get their columns, of every kind; a value of another type stays in the JSON', async () => {
    const db = join(dir, 'extra.duckdb');
    const s = mk('GET', '1.1', 'http', 'tuple');
    s.method = undefined;
    s.path = undefined;
    s.statusCode = undefined;
    s.scheme = undefined;
    // not through setAttr: the writer finds them in `extra` (an ENUM, a string, a number, a code, an ENUM outside its set)
    s.extra = { 'http.request.method': 'PUT', 'url.path': '/direct', 'http.response.status_code': 201, 'http.route': '/r/:id', 'url.scheme': 'gopher', 'server.port': 'eighty' };
    const store = await DuckStore.open({ path: db });
    try {
      store.append([s]);
      await store.flush();
      assert.deepEqual(await names(store, '{ span.http.response.status_code = 201 && span.url.path = "/direct" && span.http.route = "/r/:id" }'), ['GET /x']);
    } finally {
      await store.shutdown();
    }
    const stored = await rows(db, `SELECT http_method, url_path, http_status_code, http_route IS NOT NULL, url_scheme, server_port, attributes FROM spans`);
    assert.deepEqual(stored, [['PUT', '/direct', 201, true, null, null, '{"server.port":"eighty","url.scheme":"gopher"}']]);
  });

  it('a store made with VARCHAR columns keeps every value in its column', async () => {
    const db = join(dir, 'old.duckdb');
    await makeTables(db, (stmt) => stmt.replace(/ENUM\([^)]*\)/g, 'VARCHAR'), '2');
    await storeAndRead(db, SPANS);
    const stored = await rows(db, `SELECT http_method, url_scheme, attributes FROM spans ORDER BY start_ns`);
    assert.deepEqual(stored, [
      ['GET', 'http', null],
      ['POST', 'https', null],
      ['PROPFIND', 'http', null],
      ['get', 'gopher', null],
    ]);
  });

  it('a store whose ENUM has fewer values keeps the others in the JSON, and `=` finds them there', async () => {
    // as a store made by a build whose set had fewer methods would be
    const db = join(dir, 'fewer.duckdb');
    await makeTables(db, (stmt) => stmt.replace(/http_method ENUM\([^)]*\)/, "http_method ENUM('GET', 'HEAD')"), SCHEMA_VERSION);
    await storeAndRead(db, SPANS);
    const stored = await rows(db, `SELECT http_method, attributes FROM spans ORDER BY start_ns`);
    assert.deepEqual(stored.map((r) => r[0]), ['GET', null, null, null]);
    assert.match(String(stored[1]?.[1]), /"http.request.method":"POST"/);
    // `=` on a value this build's set has and the table's lacks reads the JSON
    const store = await DuckStore.open({ path: db });
    try {
      assert.deepEqual(await names(store, '{ span.http.request.method = "POST" }'), ['POST /x']);
    } finally {
      await store.shutdown();
    }
  });

  it('refuses a store of a schema version it does not read, saying which it reads', async () => {
    const db = join(dir, 'future.duckdb');
    await makeTables(db, (stmt) => stmt, '9');
    await assert.rejects(DuckStore.open({ path: db }), /schema version 9, this build reads versions 2, 3 and 4/);
  });
});
