#!/usr/bin/env node
// What one Appender flush of `spans` costs, by flush size: copies 245,760 spans of a store file
// (e.g. one left by `bench/store-ingest.mjs --path FILE`) into a fresh file store through the
// Appender, FLUSH rows per flushSync (one transaction each, as SpanWriter commits a batch), then
// checkpoints once. CPU of the whole process, per span, for the appends and for the checkpoint.
//   node bench/store-flush.mjs FILE [--sizes 2048,4096,8192,16384] [--rounds 3] [--threads 1] [--wal]
//                              [--row-group N]
// Sizes are multiples of 2048 (the chunks read from FILE). The database is attached with
// RECOVERY_MODE no_wal_writes unless --wal; DuckDB's own checkpoints are off (threshold 10GB).
// --row-group N: attached with ROW_GROUP_SIZE N (DuckDB's default is 122,880); a flush of at
// least N rows is then compressed and written at its commit (the store's row-group commits).
// The result also gives the file's bytes per span after the checkpoint.
// The sizes alternate in order each round. Prints one JSON line; asserts nothing.

import { rmSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { DuckDBInstance } from '@duckdb/node-api';
import { option } from './lib/script.mjs';

const SRC = process.argv[2];
if (!SRC || SRC.startsWith('--')) throw new Error('usage: node bench/store-flush.mjs FILE [--sizes 2048,4096] [--rounds 3] [--threads 1] [--wal] [--row-group N]');
const SIZES = option('sizes', '2048,4096,8192,16384').split(',').map(Number);
const ROUNDS = Number(option('rounds', 3));
const THREADS = option('threads', '1');
const WAL = process.argv.includes('--wal');
const ROW_GROUP = option('row-group', undefined);
const N = 245_760;
const cpu = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const res = {};
for (let r = 0; r < ROUNDS; r++) {
  for (const size of r % 2 ? SIZES.slice().reverse() : SIZES) {
    const f = `/tmp/osprey-flush-${process.pid}.duckdb`;
    for (const x of [f, `${f}.wal`]) rmSync(x, { force: true });
    const inst = await DuckDBInstance.create(':memory:', { memory_limit: '128MB', threads: THREADS, checkpoint_threshold: '10GB' });
    const c = await inst.connect();
    try {
      const attach = [WAL ? undefined : 'RECOVERY_MODE no_wal_writes', ROW_GROUP ? `ROW_GROUP_SIZE ${Number(ROW_GROUP)}` : undefined].filter(Boolean);
      await c.run(`ATTACH '${f}' AS db${attach.length ? ` (${attach.join(', ')})` : ''}`);
      await c.run('USE db');
      await c.run(`ATTACH '${SRC}' AS src (READ_ONLY)`);
      const ddl = String((await c.runAndReadAll(`SELECT sql FROM duckdb_tables() WHERE database_name = 'src' AND table_name = 'spans'`)).getRows()[0][0]);
      await c.run(ddl.replace(/CREATE TABLE (src\.)?(main\.)?/i, 'CREATE TABLE '));
      const rd = await c.run(`SELECT * FROM src.spans LIMIT ${N}`);
      const chunks = [];
      for (;;) {
        const ch = await rd.fetchChunk();
        if (!ch || ch.rowCount === 0) break;
        chunks.push(ch);
      }
      await c.run('DETACH src');
      await c.run('CHECKPOINT');
      const app = await c.createAppender('spans');
      const per = Math.max(1, Math.round(size / 2048));
      let rows = 0;
      const c0 = cpu();
      for (let k = 0; k < chunks.length; k += per) {
        for (let j = k; j < k + per && j < chunks.length; j++) {
          app.appendDataChunk(chunks[j]);
          rows += chunks[j].rowCount;
        }
        app.flushSync();
      }
      const append = cpu() - c0;
      const c1 = cpu();
      await c.run('CHECKPOINT');
      const ckpt = cpu() - c1;
      app.closeSync();
      (res[size] ??= { appendUsPerSpan: [], checkpointUsPerSpan: [], fileBytesPerSpan: [] }).appendUsPerSpan.push(Number((append / rows).toFixed(2)));
      res[size].checkpointUsPerSpan.push(Number((ckpt / rows).toFixed(2)));
      res[size].fileBytesPerSpan.push(Number((statSync(f).size / rows).toFixed(1)));
    } finally {
      c.closeSync();
      inst.closeSync();
      for (const x of [f, `${f}.wal`]) rmSync(x, { force: true });
    }
  }
}
console.log(JSON.stringify({ src: SRC, threads: THREADS, wal: WAL, rowGroup: ROW_GROUP === undefined ? 'default' : Number(ROW_GROUP), results: res, load: loadavg().map((x) => Number(x.toFixed(1))) }));
