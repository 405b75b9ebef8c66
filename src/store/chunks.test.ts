import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DuckDBInstance, DuckDBTypeId, type DuckDBConnection } from '@duckdb/node-api';
import { CHUNK_ROWS, I64Column, NumberColumn, U64HexColumn, UuidHexColumn, VarcharColumn, checkColumns, toDataChunk } from './chunks.js';

// Each column writer against DuckDB itself: rows written through the buffers are read back
// with SQL and compared with what DuckDB makes of the same values as literals.

const STRINGS = [
  '',
  'a',
  'GET',
  'abcdefghijkl', // 12: the longest inline string
  'abcdefghijklm', // 13: the shortest assigned one
  'é', // non-ASCII: always assigned
  'héllo wörld!',
  '漢字😀',
  '\u0000nul',
  'x'.repeat(5000),
];

describe('column buffers into DuckDB data chunks', () => {
  let con: DuckDBConnection;
  let instance: DuckDBInstance;
  before(async () => {
    instance = await DuckDBInstance.create(':memory:');
    con = await instance.connect();
    await con.run(
      `CREATE TABLE t (i INTEGER, v VARCHAR, u UUID, s UBIGINT, b BIGINT, k UTINYINT, r UINTEGER, d DOUBLE)`,
    );
  });
  after(() => {
    con.closeSync();
    instance.closeSync();
  });

  it('round-trips every value kind, nulls and chunk reuse over several chunks', async () => {
    const app = await con.createAppender('t');
    const types = Array.from({ length: app.columnCount }, (_, i) => app.columnType(i));
    const cols = {
      i: new NumberColumn(DuckDBTypeId.UINTEGER),
      v: new VarcharColumn(),
      u: new UuidHexColumn(),
      s: new U64HexColumn(),
      b: new I64Column(),
      k: new NumberColumn(DuckDBTypeId.UTINYINT),
      r: new NumberColumn(DuckDBTypeId.UINTEGER),
      d: new NumberColumn(DuckDBTypeId.DOUBLE),
    };
    const list = [cols.i, cols.v, cols.u, cols.s, cols.b, cols.k, cols.r, cols.d];
    const ids = ['00000000000000000000000000000001', 'ffffffffffffffffffffffffffffffff', '80000000000000000000000000000000', '7fffffffffffffffffffffffffffffff', '0123456789ABCDEFfedcba9876543210'];
    const spans = ['0000000000000001', 'ffffffffffffffff', '8000000000000000', 'DEADBEEF00c0ffee'];
    const bigs = [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1];
    const total = CHUNK_ROWS * 2 + 77;
    let n = 0;
    for (let row = 0; row < total; row++) {
      cols.i.set(n, row);
      // every 7th row null in the nullable columns, so the validity is copied in some chunks and reset after
      const nul = row % 7 === 3;
      if (nul) for (const c of [cols.v, cols.u, cols.s, cols.b, cols.k, cols.r, cols.d]) c.setNull(n);
      else {
        cols.v.set(n, STRINGS[row % STRINGS.length] as string);
        cols.u.set(n, ids[row % ids.length] as string);
        cols.s.set(n, spans[row % spans.length] as string);
        if (row % 2) cols.b.setCount(n, bigs[row % bigs.length] as number);
        else cols.b.setBig(n, -(2n ** 63n) + BigInt(row));
        cols.k.set(n, row % 256);
        cols.r.set(n, 4_000_000_000 + row);
        cols.d.set(n, row / 4);
      }
      if (++n === CHUNK_ROWS) {
        app.appendDataChunk(toDataChunk(types, list, n));
        n = 0;
      }
    }
    app.appendDataChunk(toDataChunk(types, list, n));
    app.flushSync();
    app.closeSync();

    const rows = (await con.runAndReadAll(`SELECT i, v, replace(u::VARCHAR, '-', ''), s, b, k, r, d FROM t ORDER BY i`)).getRows();
    assert.equal(rows.length, total);
    for (let row = 0; row < total; row++) {
      const got = rows[row]!;
      assert.equal(got[0], row);
      if (row % 7 === 3) {
        assert.deepEqual(got.slice(1), [null, null, null, null, null, null, null], `row ${row}`);
        continue;
      }
      const expB = row % 2 ? BigInt(bigs[row % bigs.length]!) : -(2n ** 63n) + BigInt(row);
      assert.deepEqual(
        got.slice(1),
        [
          STRINGS[row % STRINGS.length],
          (ids[row % ids.length] as string).toLowerCase(),
          BigInt(`0x${spans[row % spans.length]}`),
          expB,
          row % 256,
          4_000_000_000 + row,
          row / 4,
        ],
        `row ${row}`,
      );
    }
    // UUIDs order like their text (DuckDB's flipped top bit)
    const order = (await con.runAndReadAll(`SELECT DISTINCT replace(u::VARCHAR, '-', '') x FROM t WHERE u IS NOT NULL ORDER BY u`)).getRows();
    const text = order.map((r) => String(r[0]));
    assert.deepEqual(text, [...text].sort());
    // string comparisons see inline strings exactly as DuckDB's own
    const eq = (await con.runAndReadAll(`SELECT count(*) FROM t WHERE v = 'abcdefghijkl' OR v = 'GET' OR v = ''`)).getRows();
    const want = Array.from({ length: total }, (_, r) => r).filter((r) => r % 7 !== 3 && ['abcdefghijkl', 'GET', ''].includes(STRINGS[r % STRINGS.length]!)).length;
    assert.equal(Number(eq[0]![0]), want);
    const groups = (await con.runAndReadAll(`SELECT v, count(*)::INTEGER FROM t WHERE v IS NOT NULL GROUP BY v ORDER BY v`)).getRows();
    const counts = new Map<string, number>();
    for (let r = 0; r < total; r++) if (r % 7 !== 3) counts.set(STRINGS[r % STRINGS.length]!, (counts.get(STRINGS[r % STRINGS.length]!) ?? 0) + 1);
    assert.deepEqual(new Map(groups.map((g) => [String(g[0]), Number(g[1])])), counts);
    for (const s of ['a', 'GET', 'é']) {
      const c = (await con.runAndReadAll(`SELECT count(*)::INTEGER FROM t WHERE v = $1`, [s])).getRows();
      assert.equal(c[0]![0], counts.get(s), s);
    }
  });

  it('a long value repeated within a chunk is assigned once and read back in every row', async () => {
    await con.run('CREATE TABLE rep (i INTEGER, v VARCHAR)');
    const app = await con.createAppender('rep');
    const types = Array.from({ length: app.columnCount }, (_, i) => app.columnType(i));
    const i = new NumberColumn(DuckDBTypeId.UINTEGER);
    const v = new VarcharColumn();
    const longs = ['http://127.0.0.1:8080/orders/1234', 'GET /orders/{id} and more', 'ünïcode repeated value'];
    // more values in turn than the column remembers as recent: repeats found by the map
    const many = Array.from({ length: 7 }, (_, k) => `a value cycling with others ${k}`);
    const want: (string | null)[] = [];
    for (let r = 0; r < CHUNK_ROWS; r++) {
      i.set(r, r);
      // repeats of three long values (equal strings, not the same objects), a unique one now
      // and then, inline ones and nulls between; in the second half seven values in turn
      const long = r < CHUNK_ROWS / 2 ? `${longs[r % 3]!} `.trimEnd() : many[r % 7]!;
      const s = r % 11 === 0 ? `unique value number ${r}` : r % 5 === 0 ? 'short' : r % 13 === 0 ? null : long;
      if (s === null) v.setNull(r);
      else v.set(r, s);
      want.push(s);
    }
    app.appendDataChunk(toDataChunk(types, [i, v], CHUNK_ROWS));
    // a second chunk from the same buffers: the repeats of the first are not carried over
    i.set(0, CHUNK_ROWS);
    v.set(0, longs[0]!);
    want.push(longs[0]!);
    app.appendDataChunk(toDataChunk(types, [i, v], 1));
    app.flushSync();
    app.closeSync();
    const rows = (await con.runAndReadAll('SELECT v FROM rep ORDER BY i')).getRows();
    assert.deepEqual(
      rows.map((r) => r[0]),
      want,
    );
  });

  it('refuses buffers whose layout does not match the table, and an abandoned chunk leaves nothing behind', async () => {
    await con.run('CREATE TABLE u (v VARCHAR, k UTINYINT)');
    const app = await con.createAppender('u');
    const types = Array.from({ length: app.columnCount }, (_, i) => app.columnType(i));
    assert.throws(() => checkColumns(types, [new NumberColumn(DuckDBTypeId.UTINYINT), new VarcharColumn()]), /do not match the table \(VARCHAR, UTINYINT\)/);
    assert.throws(() => checkColumns(types, [new VarcharColumn()]), /do not match/);
    const v = new VarcharColumn();
    const k = new NumberColumn(DuckDBTypeId.UTINYINT);
    checkColumns(types, [v, k]);
    // rows written, then abandoned (a chunk that could not be made): a null and a long string
    v.setNull(0);
    v.set(1, 'a long string that needs its own call');
    k.setNull(1);
    assert.throws(() => toDataChunk(types, [v, k], CHUNK_ROWS + 1), RangeError);
    v.reset();
    k.reset();
    v.set(0, 'x');
    k.set(0, 7);
    app.appendDataChunk(toDataChunk(types, [v, k], 1));
    app.flushSync();
    app.closeSync();
    assert.deepEqual((await con.runAndReadAll('SELECT v, k FROM u')).getRows(), [['x', 7]]);
  });
});
