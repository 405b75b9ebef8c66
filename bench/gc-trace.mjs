#!/usr/bin/env node
// V8's garbage collection in the live agent: runs `osprey up` (default file store) under
// --trace-gc (its own flags: --node 'FLAGS', e.g. --max-semi-space-size=8), drives wrk paced
// against nginx (keep-alive) and sums the pauses V8 reports on the JS thread, by kind, per
// request and per span. The pause is the JS thread's part of GC; helper threads' parallel
// work is in bench/threads.mjs's "other node threads".
//   node bench/gc-trace.mjs [--rate 4000] [--seconds 20] [--node '--max-semi-space-size=8']
// Needs root. Prints a table; asserts nothing.
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTracefs, runWrk, startNginxStatic } from './lib/load.mjs';
import { freePort, installCleanup, log, sleep } from './lib/proc.mjs';
import { option } from './lib/script.mjs';

const RATE = Number(option('rate', 4000));
const SECONDS = Number(option('seconds', 20));
const NODE_FLAGS = String(option('node', '')).split(/\s+/).filter(Boolean);
const ROOT = new URL('..', import.meta.url).pathname;

/** sums of "[pid:addr] N ms: Scavenge 30.1 (55.2) -> 20.3 (56.2) MB, 1.23 / 0.00 ms ..." lines */
function sums(text) {
  const out = new Map();
  for (const m of text.matchAll(/ ms: ([A-Za-z-]+(?: \([^)]*\))?)[^,]*, ([\d.]+) \/ [\d.]+ ms/g)) {
    const kind = m[1].replace(/ \(.*$/, '');
    const s = out.get(kind) ?? { n: 0, ms: 0 };
    s.n++;
    s.ms += Number(m[2]);
    out.set(kind, s);
  }
  return out;
}

installCleanup();
ensureTracefs();
const dir = mkdtempSync(join(tmpdir(), 'osprey-gc-'));
const logFile = join(dir, 'gc.log');
try {
  const nginx = await startNginxStatic(dir);
  const port = await freePort();
  const out = openSync(logFile, 'w');
  const child = spawn(process.execPath, ['--trace-gc', ...NODE_FLAGS, join(ROOT, 'dist/src/cli/main.js'), 'up', '--data', join(dir, 'data'), '--listen', `127.0.0.1:${port}`, '--no-ui'], {
    stdio: ['ignore', out, 'pipe'],
    env: { ...process.env, MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2' },
  });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  try {
    for (let i = 0; !/listening on/.test(err); i++) {
      if (i > 600 || child.exitCode !== null) throw new Error(`osprey up did not start: ${err.slice(-500)}`);
      await sleep(100);
    }
    const api = async (p) => (await fetch(`http://127.0.0.1:${port}${p}`)).json();
    const url = `http://127.0.0.1:${nginx.port}/`;
    await runWrk({ url, seconds: 2, rate: RATE, connections: 20, threads: 1, dir }); // warm-up
    await sleep(1000);
    const before = sums(readFileSync(logFile, 'utf8'));
    const s0 = (await api('/api/osprey/status')).counters.agent_spans;
    const w = await runWrk({ url, seconds: SECONDS, rate: RATE, connections: 20, threads: 1, dir });
    const s1 = (await api('/api/osprey/status')).counters.agent_spans;
    const after = sums(readFileSync(logFile, 'utf8'));
    const reqs = w.requests;
    const spans = s1 - s0;
    log(`${reqs} requests in ${SECONDS} s, ${(spans / reqs).toFixed(2)} spans/req; node flags: ${NODE_FLAGS.join(' ') || '(none)'}; load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
    let total = 0;
    for (const [kind, a] of after) {
      const b = before.get(kind) ?? { n: 0, ms: 0 };
      const n = a.n - b.n;
      const ms = a.ms - b.ms;
      total += ms;
      console.log(`${kind.padEnd(20)} ${String(n).padStart(6)} pauses  ${ms.toFixed(0).padStart(6)} ms  ${((ms * 1000) / reqs).toFixed(2).padStart(6)} µs/req  ${((ms * 1000) / Math.max(1, spans)).toFixed(2).padStart(6)} µs/span`);
    }
    console.log(`${'all'.padEnd(20)}                ${total.toFixed(0).padStart(6)} ms  ${((total * 1000) / reqs).toFixed(2).padStart(6)} µs/req  ${((total * 1000) / Math.max(1, spans)).toFixed(2).padStart(6)} µs/span`);
  } finally {
    child.kill('SIGINT');
    await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r)));
    await nginx.stop();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
