#!/usr/bin/env node
// Where the live agent's CPU goes, by thread: runs `osprey up`, drives wrk paced against
// nginx (keep-alive), and reads utime/stime of every thread of the agent from
// /proc/<pid>/task before and after. Threads are grouped by name: the ring-buffer reader names
// itself "osprey-ringbuf"; Node 20 names none of its threads, so V8's GC and compiler helpers
// and libuv's pool (zlib, fs, and DuckDB's statements, which run there with --store-threads 1;
// DuckDB's own workers with more) keep the process's name ("node") and are one group here,
// "node (unnamed)", apart from the JS thread (the thread whose id is the pid). (A libuv that
// names its pool "libuv-worker" would make that a group of its own.)
//   node bench/threads.mjs [--rate 4000] [--seconds 8] [--warm 2] [--store memory|file|none] [--prof DIR] [--close]
// --close: wrk sends "Connection: close" (a new connection per request), as bench/run.mjs's *-close scenarios.
// --warm SEC: paced load before the measured run (V8 compiles the hot code in the first
//   seconds; a longer warm-up measures the steady state)
// --store none: export-only (--no-store), OTLP/HTTP to a sink in this process that answers 200.
// --prof DIR: also a CPU profile of the agent's JS thread (node --cpu-prof) into DIR.
// --attach 'CMD {pid}': runs CMD (a shell command, {pid} replaced by the agent's pid) during
//   the measured run and prints its output after the table: `strace -c -f -p {pid}`,
//   `perf record -g -p {pid} -o FILE`... It ends with SIGINT when the run ends.
// --up-args 'ARGS': more arguments for `osprey up`, split on spaces (e.g. '--store-threads 2').
// --counters: also every status counter that moved during the measured run, per request.
// Needs root. Prints a table; asserts nothing.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTracefs, ospreyMode, runWrk, startNginxStatic } from './lib/load.mjs';
import { CLK_TCK, installCleanup, log, sleep } from './lib/proc.mjs';
import { option } from './lib/script.mjs';

const RATE = Number(option('rate', 4000));
const SECONDS = Number(option('seconds', 8));
const STORE = option('store', 'file');
const PROF = option('prof', undefined);
const WARM = Number(option('warm', 2));
const ATTACH = option('attach', undefined);
const UP_ARGS = option('up-args', '').split(' ').filter((a) => a !== '');
const CLOSE = process.argv.includes('--close');
const COUNTERS = process.argv.includes('--counters');

function threads(pid) {
  const out = new Map();
  const processName = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const s = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      // a thread that never named itself has its creator's name: under Node 20 all but ours
      const label = tid === String(pid) ? `${name} (JS thread)` : name === processName ? `${name} (unnamed)` : name;
      out.set(tid, { name: label, user: Number(f[11]) / CLK_TCK, sys: Number(f[12]) / CLK_TCK });
    } catch {
      // the thread ended
    }
  }
  return out;
}

installCleanup();
ensureTracefs();
const dir = mkdtempSync(join(tmpdir(), 'osprey-threads-'));
try {
  const nginx = await startNginxStatic(dir);
  let sink;
  let exportTo;
  if (STORE === 'none') {
    sink = createServer((req, res) => req.resume().on('end', () => res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end()));
    await new Promise((r) => sink.listen(0, '127.0.0.1', r));
    exportTo = `http://127.0.0.1:${sink.address().port}`;
  }
  const osprey = await ospreyMode({ dir, memory: STORE === 'memory', profDir: PROF, exportTo, extraArgs: UP_ARGS }).start();
  try {
    const url = `http://127.0.0.1:${nginx.port}/`;
    await runWrk({ url, seconds: WARM, rate: RATE, connections: 20, threads: 1, dir, close: CLOSE }); // warm-up
    await sleep(1000);
    let attached;
    let attachOut = '';
    if (ATTACH) {
      attached = spawn('/bin/sh', ['-c', ATTACH.replaceAll('{pid}', String(osprey.pid))], { stdio: ['ignore', 'pipe', 'pipe'] });
      attached.stdout.on('data', (d) => (attachOut += d));
      attached.stderr.on('data', (d) => (attachOut += d));
      await sleep(500);
    }
    const c0 = await osprey.sample();
    const t0 = threads(osprey.pid);
    const w = await runWrk({ url, seconds: SECONDS, rate: RATE, connections: 20, threads: 1, dir, close: CLOSE });
    const t1 = threads(osprey.pid);
    const c1 = await osprey.sample();
    if (attached) {
      const ended = new Promise((r) => attached.on('close', r));
      attached.kill('SIGINT');
      await Promise.race([ended, sleep(10_000)]);
    }
    const groups = new Map();
    for (const [tid, b] of t1) {
      const a = t0.get(tid) ?? { user: 0, sys: 0 };
      const g = groups.get(b.name) ?? { n: 0, user: 0, sys: 0 };
      g.n++;
      g.user += b.user - a.user;
      g.sys += b.sys - a.sys;
      groups.set(b.name, g);
    }
    const reqs = w.requests;
    log(`${reqs} requests in ${SECONDS} s (${Math.round(reqs / SECONDS)} req/s), store: ${STORE}`);
    console.log(`thread                        n   user µs/req  sys µs/req`);
    let tu = 0;
    let ts = 0;
    for (const [name, g] of [...groups].sort((a, b) => b[1].user + b[1].sys - a[1].user - a[1].sys)) {
      if (g.user + g.sys === 0) continue;
      tu += g.user;
      ts += g.sys;
      console.log(`${name.padEnd(28)} ${String(g.n).padStart(2)}  ${((g.user * 1e6) / reqs).toFixed(1).padStart(11)}  ${((g.sys * 1e6) / reqs).toFixed(1).padStart(10)}`);
    }
    console.log(`${'all'.padEnd(28)}     ${((tu * 1e6) / reqs).toFixed(1).padStart(11)}  ${((ts * 1e6) / reqs).toFixed(1).padStart(10)}   = ${(((tu + ts) * 1e6) / reqs).toFixed(1)} µs/req, ${(((tu + ts) / SECONDS / (reqs / SECONDS)) * 1e4).toFixed(3)} cores per 10k req/s`);
    // the agent traces every process on the machine: spans and events per request above 2 and
    // ~4.6 mean other traffic (another engineer's tests) was traced too, and paid for here
    const d = (k) => (c1[k] ?? 0) - (c0[k] ?? 0);
    console.log(`agent spans/req ${(d('agent_spans') / reqs).toFixed(2)}, events/req ${(d('agent_events') / reqs).toFixed(2)}, batches/req ${(d('batches') / reqs).toFixed(3)}; µs per span ${(((tu + ts) * 1e6) / Math.max(1, d('agent_spans'))).toFixed(1)}`);
    // spans the store could not keep (buffer full while it fell behind): counted, never silent
    console.log(`store: spans dropped ${d('store_spansDropped')}, checkpoints ${d('store_checkpoints')}`);
    if (COUNTERS) {
      for (const k of Object.keys(c1).sort()) {
        if (typeof c1[k] === 'number' && d(k) !== 0) console.log(`  ${k.padEnd(40)} ${(d(k) / reqs).toFixed(3)}/req`);
      }
    }
    if (attached) console.log(attachOut);
  } finally {
    await osprey.stop();
    await nginx.stop();
    sink?.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
