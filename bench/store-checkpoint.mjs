#!/usr/bin/env node
// What a checkpoint costs per span, by column compression: copies the `spans` of a store file
// (e.g. one left by `bench/pipeline.mjs --path FILE` or `bench/store-ingest.mjs --path FILE`)
// into a fresh file store with each configuration, 5120 rows per transaction as the store
// appends, and times CHECKPOINT once per row group (122,880 rows) as the store does. CPU of
// the whole process (DuckDB's threads do the work).
//   node bench/store-checkpoint.mjs FILE [--rounds 5] [--configs auto,fixed[,CONFIG.json...]] [--threads N]
// auto: DuckDB picks every column's method (stores made before session 10); fixed: the
// schema's SPAN_COMPRESSION; a JSON file: { column: method } to try others.
// Prints, per configuration, checkpoint CPU µs per span (min and median of the rounds), the
// file's bytes per span and the methods DuckDB used. Asserts nothing.
// --threads 1: DuckDB's threads; one thread does all the work on the calling thread, without
// the CPU idle workers spend looking for tasks (steadier on a busy machine).
// The configurations run in a different order each round (the first one of a round ran slower).

import { readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { DuckDBInstance } from '@duckdb/node-api';
import { loadDist, option } from './lib/script.mjs';

const { SPAN_COMPRESSION } = await loadDist('store/schema.js');
const SRC = process.argv[2];
if (!SRC || SRC.startsWith('--')) throw new Error('usage: node bench/store-checkpoint.mjs FILE [--rounds 5] [--configs auto,fixed]');
const ROUNDS = Number(option('rounds', 5));
const THREADS = option('threads', undefined);
const ROW_GROUP = 122_880;
const BATCH = 5120;
const configs = option('configs', 'auto,fixed')
  .split(',')
  .map((c) => [c, c === 'auto' ? {} : c === 'fixed' ? SPAN_COMPRESSION : JSON.parse(readFileSync(c, 'utf8'))]);

const src = await DuckDBInstance.create(SRC, { access_mode: 'READ_ONLY' });
const sc = await src.connect();
const cols = (await sc.runAndReadAll(`SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = 'spans' ORDER BY ordinal_position`)).getRows();
const total = Number((await sc.runAndReadAll('SELECT count(*) FROM spans')).getRows()[0][0]);
sc.closeSync();
src.closeSync();
if (total < ROW_GROUP) throw new Error(`${SRC}: ${total} spans, fewer than a row group (${ROW_GROUP})`);

const cpu = Object.fromEntries(configs.map(([n]) => [n, []]));
const info = {};
for (let r = 0; r < ROUNDS; r++) {
  // rotated each round: no configuration always runs first
  for (const [name, force] of configs.slice(r % configs.length).concat(configs.slice(0, r % configs.length))) {
    const f = `/tmp/osprey-checkpoint-${process.pid}.duckdb`;
    for (const x of [f, `${f}.wal`]) rmSync(x, { force: true });
    const inst = await DuckDBInstance.create(f, { checkpoint_threshold: '10GB', ...(THREADS !== undefined ? { threads: THREADS } : {}) });
    const c = await inst.connect();
    try {
      await c.run(`ATTACH '${SRC}' AS src (READ_ONLY)`);
      const ddl = cols.map(([n, t, nul]) => `${n} ${t}${nul === 'NO' ? ' NOT NULL' : ''}${force[n] ? ` USING COMPRESSION ${force[n]}` : ''}`);
      await c.run(`CREATE TABLE spans (${ddl.join(', ')})`);
      await c.run('CHECKPOINT');
      let us = 0;
      let rows = 0;
      for (let off = 0; off + ROW_GROUP <= total; off += ROW_GROUP) {
        for (let k = 0; k < ROW_GROUP; k += BATCH) await c.run(`INSERT INTO spans SELECT * FROM src.spans LIMIT ${BATCH} OFFSET ${off + k}`);
        const c0 = process.cpuUsage();
        await c.run('CHECKPOINT');
        const d = process.cpuUsage(c0);
        us += d.user + d.system;
        rows += ROW_GROUP;
      }
      cpu[name].push(us / rows);
      const m = (await c.runAndReadAll(`SELECT column_name, string_agg(DISTINCT compression, '/') FROM pragma_storage_info('spans') WHERE segment_type <> 'VALIDITY' GROUP BY column_name, column_id ORDER BY column_id`)).getRows();
      info[name] = { methods: m.map(([col, how]) => `${col}=${how}`).join(' '), rows };
    } finally {
      c.closeSync();
      inst.closeSync();
    }
    info[name].bytesPerSpan = statSync(f).size / info[name].rows;
    for (const x of [f, `${f}.wal`]) rmSync(x, { force: true });
  }
}
console.log(`${SRC}: ${total} spans, ${ROUNDS} rounds; ${availableParallelism()} cpus, load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
for (const [name] of configs) {
  const v = cpu[name].slice().sort((a, b) => a - b);
  console.log(`${name.padEnd(8)} checkpoint CPU µs/span min ${v[0].toFixed(2)} median ${v[Math.floor(v.length / 2)].toFixed(2)}, ${info[name].bytesPerSpan.toFixed(1)} bytes/span`);
  console.log(`         ${info[name].methods}`);
}
