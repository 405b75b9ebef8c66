#!/usr/bin/env node
// The live agent's memory over a paced run: runs `osprey up` (default file store), drives wrk
// paced against nginx (keep-alive) and samples every --every seconds the agent's RSS split as
// /proc/<pid>/smaps_rollup splits it (anonymous vs file-backed), V8's heap (status API) and the
// store's DuckDB memory; at the end the CPU of all its threads per request, the anonymous
// mappings by kind (/proc/<pid>/smaps) and the peak (VmHWM).
//   node bench/memory.mjs [--rate 4000] [--seconds 60] [--every 10] [--args '--flag ...']
// Environment reaches the agent (MALLOC_ARENA_MAX=..., DUCKDB_JE_MALLOC_CONF=..., NODE_OPTIONS=...).
// bin/osprey's defaults are replaced by a value in the environment: the allocators as they were
// before session 10 are MALLOC_ARENA_MAX=16 (glibc's own for 2 cores) DUCKDB_JE_MALLOC_CONF=abort_conf:false.
// --rate 0: wrk unpaced (saturation, 50 connections, 2 threads), as bench/run.mjs measures the peak.
// Needs root. Prints a table; asserts nothing.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTracefs, ospreyMode, runWrk, startNginxStatic } from './lib/load.mjs';
import { CLK_TCK, installCleanup, log, sleep } from './lib/proc.mjs';
import { option } from './lib/script.mjs';

const RATE = Number(option('rate', 4000));
const SECONDS = Number(option('seconds', 60));
const EVERY = Number(option('every', 10));
const ARGS = String(option('args', '')).split(/\s+/).filter(Boolean);

const mb = (kb) => (kb / 1024).toFixed(0).padStart(5);

function rollup(pid) {
  const s = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? NaN);
  const st = readFileSync(`/proc/${pid}/status`, 'utf8');
  const hwm = Number(/^VmHWM:\s+(\d+)/m.exec(st)?.[1] ?? NaN);
  const threads = Number(/^Threads:\s+(\d+)/m.exec(st)?.[1] ?? NaN);
  return { rss: kb('Rss'), anon: kb('Anonymous'), file: kb('Rss') - kb('Anonymous'), hwm, threads };
}

function cpuSec(pid) {
  let t = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const s = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      t += (Number(f[11]) + Number(f[12])) / CLK_TCK;
    } catch {
      // the thread ended
    }
  }
  return t;
}

/**
 * Anonymous resident memory by kind of mapping: [heap] (brk, the main malloc arena), the 64 MiB
 * reservations of glibc's other malloc arenas (a mapping of 64 MiB minus a rounding, or part of
 * one), thread stacks, and the rest (mmap'd blocks: V8's pages, large mallocs, DuckDB's buffers).
 */
function anonByKind(pid) {
  const text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const out = { heap: 0, arenas: 0, arenaCount: 0, stack: 0, other: 0, otherLarge: [] };
  let cur;
  const flush = () => {
    if (!cur || cur.anon === 0) return;
    if (cur.name === '[heap]') out.heap += cur.anon;
    else if (cur.name.startsWith('[stack')) out.stack += cur.anon;
    else if (cur.name === '' && cur.size <= 65536 && cur.arenaLike) {
      out.arenas += cur.anon;
      out.arenaCount++;
    } else {
      out.other += cur.anon;
      if (cur.anon >= 4096) out.otherLarge.push(`${cur.range} ${cur.name || 'anon'} ${(cur.anon / 1024).toFixed(0)}/${(cur.size / 1024).toFixed(0)} MB`);
    }
  };
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      flush();
      const start = BigInt(`0x${m[1]}`);
      const end = BigInt(`0x${m[2]}`);
      // a glibc arena is a 64 MiB-aligned reservation: its used rw part followed by a ---p rest
      const aligned = start % (64n << 20n) === 0n;
      cur = { range: `${m[1]}`, name: m[4].trim(), size: Number((end - start) / 1024n), anon: 0, arenaLike: aligned && m[3] === 'rw-p' };
      continue;
    }
    const a = /^Anonymous:\s+(\d+)/.exec(line);
    if (a && cur) cur.anon = Number(a[1]);
  }
  flush();
  return out;
}

installCleanup();
ensureTracefs();
const dir = mkdtempSync(join(tmpdir(), 'osprey-memory-'));
try {
  const nginx = await startNginxStatic(dir);
  const osprey = await ospreyMode({ dir, extraArgs: ARGS }).start();
  try {
    const url = `http://127.0.0.1:${nginx.port}/`;
    const pid = osprey.pid;
    const row = async (label) => {
      const r = rollup(pid);
      const st = await osprey.api('/api/osprey/status');
      const m = st.memory ?? {};
      const M = (b) => (b === undefined ? '-' : (b / 2 ** 20).toFixed(0)).padStart(3);
      const duck = m.store ? `${M(m.store.usedBytes)} ${Object.entries(m.store.byTag).map(([k, v]) => `${k}:${(v / 2 ** 20).toFixed(0)}`).join(',')}` : '-';
      console.log(
        `${label.padEnd(8)} rss ${mb(r.rss)} MB  anon ${mb(r.anon)}  file ${mb(r.file)}  hwm ${mb(r.hwm)}  v8 ${M(m.v8?.totalBytes)}/${M(m.v8?.usedBytes)} young ${M(m.v8?.newSpaceBytes)} external ${M(st.self?.externalBytes)} (buffers ${M(st.self?.arrayBuffersBytes)})  duckdb ${duck}  spans ${st.counters?.store_rows ?? '-'}`,
      );
    };
    await row('start');
    await runWrk({ url, seconds: 2, rate: RATE || 4000, connections: 20, threads: 1, dir }); // warm-up
    await sleep(1000);
    const s0 = (await osprey.sample()).agent_spans ?? 0;
    const c0 = cpuSec(pid);
    const t0 = Date.now();
    const wrk = runWrk(RATE > 0 ? { url, seconds: SECONDS, rate: RATE, connections: 20, threads: 1, dir } : { url, seconds: SECONDS, connections: 50, threads: 2, dir });
    let done = false;
    let w;
    // the peak between the samples: the highest anonymous memory of each second
    const perSecond = [];
    // a checkpoint empties the write-ahead log: the seconds where it shrank
    const checkpoints = new Set();
    let lastWal = 0;
    const walSize = () => {
      try {
        return statSync(join(dir, 'osprey-data-1', 'spans.duckdb.wal')).size;
      } catch {
        return 0;
      }
    };
    const fast = setInterval(() => {
      const i = Math.floor((Date.now() - t0) / 1000);
      try {
        const a = rollup(pid).anon;
        perSecond[i] = Math.max(perSecond[i] ?? 0, a);
        const wal = walSize();
        if (wal < lastWal) checkpoints.add(i);
        lastWal = wal;
      } catch {
        // ended
      }
    }, 100);
    wrk.then((x) => ((done = true), (w = x)), () => (done = true));
    for (let next = EVERY; !done; ) {
      await sleep(200);
      if (!done && Date.now() - t0 >= next * 1000) {
        await row(`${next} s`);
        next += EVERY;
      }
    }
    w = await wrk;
    clearInterval(fast);
    console.log(`anonymous MB, highest of each second (* a checkpoint ended): ${perSecond.map((a, i) => `${Math.round(a / 1024)}${checkpoints.has(i) ? '*' : ''}`).join(' ')}`);
    const c1 = cpuSec(pid);
    const spans = ((await osprey.sample()).agent_spans ?? 0) - s0;
    await row('end');
    await sleep(5000);
    await row('idle 5 s');
    const k = anonByKind(pid);
    const kb = (x) => `${(x / 1024).toFixed(1)} MB`;
    console.log(`anonymous: [heap] ${kb(k.heap)}, malloc arenas ${kb(k.arenas)} in ${k.arenaCount}, stacks ${kb(k.stack)}, other ${kb(k.other)}`);
    for (const l of k.otherLarge.slice(0, 12)) console.log(`  ${l}`);
    const reqs = w.requests;
    log(`${reqs} requests in ${SECONDS} s (${Math.round(reqs / SECONDS)} req/s); agent CPU ${(((c1 - c0) * 1e6) / reqs).toFixed(1)} µs/req (all threads), ${(spans / reqs).toFixed(2)} spans/req (above 2: other traffic on the machine traced too), ${(((c1 - c0) * 1e6) / Math.max(1, spans)).toFixed(1)} µs/span; load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  } finally {
    const r = await osprey.stop();
    log(`peak RSS (VmHWM) ${r.hwmMb.toFixed(0)} MB`);
    await nginx.stop();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
