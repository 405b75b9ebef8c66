// Repeated string columns (span name, service, per-connection attributes...) as codes of the
// `strings` table (schema.ts SPAN_CODED): a new store keeps each distinct string once and a
// number per span, reads the strings back on every path (spans, filters, tag values, trace
// summaries, metrics by(), the compare views), also when a string
// has several codes (the writer's cache forgot it); a store made before (VARCHAR columns)
// opens, writes and reads as before. The TraceQL conformance test runs its corpus over such
// attributes against the reference evaluator; this one checks where the values are.

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
import { DDL, SCHEMA_VERSION, SPAN_CODED } from './schema.js';
import { STRINGS_CACHED, StringCodes } from './strings.js';
import { Params } from './compile.js';
import type { StoreCore } from './core.js';

const NOW = BigInt(Date.now()) * 1_000_000n;
const MS = 1_000_000n;

let seq = 0;
/** a server span as the agent makes it, from this client */
function mk(client: string, agent: string | undefined, host: string | number): Span {
  seq++;
  const attributes: Record<string, string | number> = {
    'http.request.method': 'GET',
    'url.path': `/r/${seq}`,
    'network.peer.address': client,
    'network.peer.port': 40000 + seq,
    'client.address': client,
    'server.address': host,
    'http.response.status_code': 200,
  };
  if (agent !== undefined) attributes['user_agent.original'] = agent;
  return Span.from({
    traceId: seq.toString(16).padStart(32, '0'),
    spanId: seq.toString(16).padStart(16, '0'),
    parentSpanId: '',
    name: 'GET',
    kind: 'server',
    startTimeUnixNano: NOW - BigInt(1000 - seq) * MS,
    durationNano: 1000 + seq,
    status: 'unset',
    resource: { 'service.name': 'svc' },
    attributes,
  });
}

const UA = 'Mozilla/5.0 (X11; Linux x86_64) "quoted" é';
/** the spans each test stores: two clients, repeated strings, a numeric server.address (JSON), a missing user agent */
const SPANS: readonly Span[] = [
  mk('10.0.0.1', 'curl/8.5.0', 'api.local'),
  mk('10.0.0.1', 'curl/8.5.0', 'api.local'),
  mk('10.0.0.2', UA, 'api.local'),
  mk('10.0.0.2', undefined, 7),
];

const rows = fileRows;

const ids = async (store: DuckStore, q: string): Promise<number[]> =>
  (await store.search({ query: parseTraceQL(q), limit: 100 })).map((s) => parseInt(s.spanId, 16)).sort((a, b) => a - b);

/** what every kind of store must answer the same about SPANS (span ids 1-4 after `base`) */
async function reads(store: DuckStore, base: number): Promise<void> {
  const at = (...n: number[]): number[] => n.map((x) => x + base);
  for (const s of SPANS) assert.deepEqual(await store.trace(s.traceId), [s]);
  assert.deepEqual(await ids(store, '{ span.client.address = "10.0.0.1" }'), at(1, 2));
  assert.deepEqual(await ids(store, '{ span.network.peer.address != "10.0.0.1" }'), at(3, 4));
  assert.deepEqual(await ids(store, '{ span.user_agent.original =~ "Mozilla.*é" }'), at(3));
  assert.deepEqual(await ids(store, '{ span.user_agent.original = nil }'), at(4));
  assert.deepEqual(await ids(store, '{ span.server.address = 7 }'), at(4));
  assert.deepEqual(await ids(store, '{ span.server.address < "b" && span.client.address > "10.0.0.1" }'), at(3));
  assert.deepEqual(await ids(store, '{ span.client.address = span.network.peer.address && span.user_agent.original != nil }'), at(1, 2, 3));
  assert.deepEqual((await store.tagValues('span.client.address')).map((v) => v.value), ['10.0.0.1', '10.0.0.2']);
  assert.deepEqual((await store.tagValues('span.user_agent.original')).map((v) => v.value), [UA, 'curl/8.5.0']);
  assert.deepEqual(await ids(store, '{ name = "GET" && resource.service.name = "svc" && span.client.address = "10.0.0.2" }'), at(3, 4));
  assert.deepEqual(await ids(store, '{ rootName =~ "G.*" && rootServiceName = "svc" && name != "POST" }'), at(1, 2, 3, 4));
  assert.deepEqual(await ids(store, '{ resource.service.name != "svc" }'), []);
  assert.deepEqual((await store.tagValues('name')).map((v) => v.value), ['GET']);
  assert.deepEqual((await store.tagValues('rootServiceName')).map((v) => v.value), ['svc']);
  const traces = await store.searchTraces({ query: parseTraceQL('{ span.client.address = "10.0.0.2" }'), limit: 10 });
  assert.deepEqual(traces.map((t) => [t.rootServiceName, t.rootTraceName, Object.keys(t.serviceStats ?? {})]), [['svc', 'GET', ['svc']], ['svc', 'GET', ['svc']]]);
  const window = { startNs: NOW - 2000n * MS, endNs: NOW };
  const byClient = await store.metricsQuery(parseTraceQL('{ } | count_over_time() by (span.client.address)'), { ...window, stepNs: 2000n * MS });
  const counts = byClient.series.map((s) => [(s.labels[0]?.value as { stringValue: string }).stringValue, s.samples.reduce((a, x) => a + x.value, 0)]).sort();
  assert.deepEqual(counts, [['10.0.0.1', 2], ['10.0.0.2', 2]]);
  // the compare() metrics function groups the columns itself
  const cmpQ = await store.metricsQuery(parseTraceQL('{ } | compare({ span.client.address = "10.0.0.1" })'), { ...window, stepNs: 2000n * MS });
  const sides = cmpQ.series
    .filter((s) => s.labels[1]?.key === 'span.client.address' && !String((s.labels[0]?.value as { stringValue: string }).stringValue).endsWith('_total'))
    .map((s) => [(s.labels[0]?.value as { stringValue: string }).stringValue, (s.labels[1]?.value as { stringValue: string }).stringValue, s.samples.reduce((a, x) => a + x.value, 0)])
    .sort();
  assert.deepEqual(sides, [['baseline', '10.0.0.2', 2], ['selection', '10.0.0.1', 2]]);
  const cmp = await store.analysis.compare({ query: parseTraceQL('{ }'), ...window, selStartNs: window.startNs, selEndNs: window.endNs, minNs: 0, maxNs: 1e12 });
  const hosts = cmp.dimensions.find((d) => d.name === 'server.address')?.values.map((v) => [v.value, v.selected]);
  assert.deepEqual(hosts, [['api.local', 3]]);
}

/** opens the store file, appends `spans`, checks what it reads of SPANS, closes it */
async function storeAndRead(db: string, spans: readonly Span[], base = 0): Promise<void> {
  const store = await DuckStore.open({ path: db });
  try {
    store.append(spans);
    await store.flush();
    await reads(store, base);
  } finally {
    await store.shutdown();
  }
}

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'osprey-coded-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('repeated string columns as codes', () => {
  it('a new store keeps each string once and codes on the spans, and reads them back', async () => {
    const db = join(dir, 'new.duckdb');
    await storeAndRead(db, SPANS);
    assert.equal(SCHEMA_VERSION, '4');
    const types = new Map((await rows(db, `SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'spans'`)).map((r) => [r[0], r[1]]));
    for (const col of SPAN_CODED) assert.equal(types.get(col), 'UINTEGER', col);
    const strings = (await rows(db, 'SELECT s FROM strings ORDER BY id')).map((r) => r[0]);
    assert.deepEqual(strings, ['GET', 'svc', '10.0.0.1', 'api.local', 'curl/8.5.0', '10.0.0.2', UA]);
    const stored = await rows(db, 'SELECT name, service, namespace, net_peer_address, client_address, server_address, user_agent, attributes FROM spans ORDER BY start_ns');
    assert.deepEqual(stored, [
      [1, 2, null, 3, 3, 4, 5, null],
      [1, 2, null, 3, 3, 4, 5, null],
      [1, 2, null, 6, 6, 4, 7, null],
      [1, 2, null, 6, 6, null, null, '{"server.address":7}'],
    ]);
    // after a restart: the strings are known, the same ones get no new rows
    await storeAndRead(db, []);
    const again = SPANS.map((s) => mk(s.attr('client.address') as string, s.attr('user_agent.original') as string | undefined, s.attr('server.address') as string | number));
    const store = await DuckStore.open({ path: db });
    try {
      store.append(again);
      await store.flush();
      assert.deepEqual(await ids(store, '{ span.client.address = "10.0.0.2" }'), [3, 4, 7, 8]);
    } finally {
      await store.shutdown();
    }
    assert.deepEqual((await rows(db, 'SELECT count(*) FROM strings')).map((r) => Number(r[0])), [7]);
  });

  it('reads a string that has several codes as one value everywhere', async () => {
    // what the writer leaves after its cache forgot a string (strings.ts): the same text under a
    // new code, used by later spans
    const db = join(dir, 'dup.duckdb');
    await storeAndRead(db, SPANS);
    const inst = await DuckDBInstance.create(db);
    const c = await inst.connect();
    await c.run(`INSERT INTO strings SELECT id + 100, s FROM strings`);
    await c.run(`UPDATE spans SET name = name + 100, service = service + 100, client_address = client_address + 100, net_peer_address = net_peer_address + 100,
                  server_address = server_address + 100, user_agent = user_agent + 100 WHERE span_id IN (2, 3)`);
    c.closeSync();
    inst.closeSync();
    await storeAndRead(db, []);
  });

  it('a store made with VARCHAR columns keeps every value in its column', async () => {
    const db = join(dir, 'old.duckdb');
    const inst = await DuckDBInstance.create(db);
    const c = await inst.connect();
    for (const stmt of DDL) await c.run(stmt.replace(new RegExp(`(${[...SPAN_CODED].join('|')}) UINTEGER`, 'g'), '$1 VARCHAR'));
    await c.run(`INSERT INTO osprey_meta VALUES ('schema_version', '3')`);
    c.closeSync();
    inst.closeSync();
    await storeAndRead(db, SPANS);
    const stored = await rows(db, 'SELECT name, service, client_address, server_address, user_agent FROM spans ORDER BY start_ns');
    assert.deepEqual(stored, [
      ['GET', 'svc', '10.0.0.1', 'api.local', 'curl/8.5.0'],
      ['GET', 'svc', '10.0.0.1', 'api.local', 'curl/8.5.0'],
      ['GET', 'svc', '10.0.0.2', 'api.local', UA],
      ['GET', 'svc', '10.0.0.2', null, null],
    ]);
    assert.deepEqual(await rows(db, 'SELECT count(*) FROM strings'), [[0n]]);
  });

  it('retention deletes the strings no span uses, once a cache of new ones came, and keeps the cached ones', async () => {
    // span names with ids in them: every span a new string
    const store = await DuckStore.open({ retention: { maxSpans: 100, maxAgeMs: Infinity, intervalMs: 0 } });
    try {
      const n = STRINGS_CACHED + 5000;
      const named = (i: number, name: string): Span => {
        const s = mk('10.0.0.9', undefined, 'api.local');
        s.name = name;
        s.setStartNs(NOW - BigInt(n - i) * 1000n);
        return s;
      };
      // rows of `strings`, read past the store's API
      const core = (store as unknown as { core: StoreCore }).core;
      const count = async (): Promise<number> => Number((await core.query('SELECT count(*) FROM strings', new Params()))[0]?.[0]);
      for (let i = 0; i < n; i += 10_000) {
        store.append(Array.from({ length: Math.min(10_000, n - i) }, (_, k) => named(i + k, `op ${i + k}`)));
        await store.flush();
      }
      // every name, and the service, the address and the host twice (again after the cache started over)
      assert.equal(await count(), n + 6);
      await store.enforceRetention();
      // the names of the 100 spans kept and the ones cached since the cache started over
      const left = await count();
      assert.ok(left < 5200 && left > 100, `strings left: ${left}`);
      const kept = await store.search({ query: parseTraceQL('{ span.client.address = "10.0.0.9" }'), limit: 200 });
      assert.equal(kept.length, 100);
      for (const s of kept) assert.match(s.name, /^op \d+$/);
      // a name forgotten and deleted comes back with a new code; one still cached (since the
      // cache started over at the 65,537th string) keeps its code, also when no span used it
      store.append([named(n, 'op 3'), named(n + 1, `op ${n - 1}`), named(n + 2, 'op 66000')]);
      await store.flush();
      assert.equal(await count(), left + 1);
      const names = (await store.search({ query: parseTraceQL(`{ name = "op 3" || name = "op ${n - 1}" || name = "op 66000" }`), limit: 10 })).map((s) => s.name);
      assert.deepEqual(names.sort(), ['op 3', 'op 66000', `op ${n - 1}`, `op ${n - 1}`]);
    } finally {
      await store.shutdown();
    }
  });

  it('stores each code once when a failed flush had committed part of the strings (the appender commits every 204,800 rows)', async () => {
    // strings of failed flushes pile up (unstoredStrings) until one stores them; DuckDB's appender
    // commits what it holds every 204,800 rows by itself, so a failure later in that append must
    // not make the next flush append the committed ones again: a code twice in `strings` makes
    // every lookup of it fail ("more than one row returned by a subquery")
    const store = await DuckStore.open({ maxBuffered: 1_000_000, retention: { maxSpans: Infinity, maxAgeMs: Infinity, intervalMs: 0 } });
    type Writer = { openAppenders(): Promise<void>; dropAppenders(): void; stringAppender?: { flushSync(): void } };
    const writer = (store as unknown as { writer: Writer }).writer;
    const core = (store as unknown as { core: StoreCore }).core;
    const open = writer.openAppenders.bind(writer);
    try {
      const named = (i: number): Span => {
        const s = mk('10.0.0.9', undefined, 'api.local');
        s.name = `op ${i}`;
        return s;
      };
      // flushes that fail before the strings: their codes wait for the next one
      writer.dropAppenders();
      writer.openAppenders = () => Promise.reject(new Error('injected: open failed'));
      const n = 210_000;
      for (let i = 0; i < n; i += 10_000) {
        store.append(Array.from({ length: 10_000 }, (_, k) => named(i + k)));
        await store.flush().catch(() => undefined);
      }
      // then one that fails at the end of the strings' append, after the appender committed 204,800 of them
      writer.openAppenders = async () => {
        await open();
        const app = writer.stringAppender;
        if (app) app.flushSync = () => { throw new Error('injected: strings flush failed'); };
      };
      store.append([named(n)]);
      await store.flush().catch(() => undefined);
      writer.openAppenders = open;
      store.append([named(n + 1)]);
      await store.flush();
      const [dups] = (await core.query('SELECT count(*) - count(DISTINCT id) FROM strings', new Params()))[0] ?? [];
      assert.equal(Number(dups), 0);
      assert.deepEqual((await store.tagValues('name')).map((v) => v.value), [`op ${n + 1}`]);
    } finally {
      writer.openAppenders = open;
      await store.shutdown();
    }
  });

  it('filters by codes looked up before the query, and by a lookup in the query when they are too many to inline', async () => {
    const store = await DuckStore.open({ retention: { maxSpans: Infinity, maxAgeMs: Infinity, intervalMs: 0 } });
    try {
      const n = 10_005;
      store.append(Array.from({ length: n }, (_, i) => {
        const s = mk(`10.1.${i >> 8}.${i & 255}`, undefined, 'api.local');
        s.name = `op ${i}`;
        s.setStartNs(NOW - BigInt(i + 1) * 1000n);
        return s;
      }));
      await store.flush();
      const window = { startNs: NOW - 2000n * MS, endNs: NOW, stepNs: 2000n * MS };
      const count = async (q: string): Promise<number> =>
        (await store.metricsQuery(parseTraceQL(`${q} | count_over_time()`), window)).series.reduce((a, s) => a + s.samples.reduce((b, x) => b + x.value, 0), 0);
      // Queries.lookupCodes inlines at most 10,000 codes
      assert.equal(await count('{ name =~ "op .*" }'), n);
      assert.equal(await count('{ name !~ "op 1.*" && span.client.address =~ "10[.]1[.].*" }'), n - 1 - 10 - 100 - 1000 - 5);
      assert.equal(await count('{ name = "op 7" || span.client.address = "10.1.0.8" }'), 2);
      assert.equal(await count('{ !(name = "op 7") }'), n - 1);
      assert.equal(await count('{ name = "nothing" }'), 0);
      assert.equal(await count('{ span.user_agent.original != "x" && !(name = "nothing") }'), 0);
    } finally {
      await store.shutdown();
    }
  });

  it('gives a string met again after the bound a new code, never an old code to another string', () => {
    const codes = new StringCodes(2);
    const fresh: [number, string][] = [];
    assert.equal(codes.code('a', fresh), 1);
    assert.equal(codes.code('b', fresh), 2);
    assert.equal(codes.code('a', fresh), 1);
    assert.equal(codes.code('c', fresh), 3);
    // 'a' was forgotten with the others when 'c' came
    assert.equal(codes.code('a', fresh), 4);
    assert.deepEqual(fresh, [[1, 'a'], [2, 'b'], [3, 'c'], [4, 'a']]);
    const loaded = new StringCodes();
    loaded.load([[9, 'x'], [4, 'x']], 12);
    assert.equal(loaded.code('x', fresh), 9);
    assert.equal(loaded.code('y', fresh), 13);
  });
});
