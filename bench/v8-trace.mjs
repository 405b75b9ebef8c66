#!/usr/bin/env node
// What V8's optimising compiler does in the live agent: runs `osprey up` (default file store)
// under --trace-opt --trace-deopt (more with --node 'FLAGS', e.g. '--trace-generalization
// --no-sparkplug': on Node 20 the first needs the second), drives wrk paced against nginx
// (keep-alive) and counts, per 10 s of load, the functions TurboFan compiled, the compiles it
// threw away (aborted) and the deoptimisations, with the compile times V8 reports (wall time of
// the compile job, so a busy machine inflates them); then the functions behind the aborts and
// deopts after the first 10 s. In a steady state all of these should be near 0.
//   node bench/v8-trace.mjs [--rate 4000] [--seconds 45] [--node 'FLAGS'] [--out FILE]
// --out FILE: keeps V8's output, each line prefixed with the seconds since the agent started.
// Needs root. Prints a table; asserts nothing.
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTracefs, runWrk, startNginxStatic } from './lib/load.mjs';
import { freePort, installCleanup, log, sleep } from './lib/proc.mjs';
import { option } from './lib/script.mjs';

const RATE = Number(option('rate', 4000));
const SECONDS = Number(option('seconds', 45));
const NODE_FLAGS = String(option('node', '')).split(/\s+/).filter(Boolean);
const OUT = option('out', undefined);
const ROOT = new URL('..', import.meta.url).pathname;

installCleanup();
ensureTracefs();
const dir = mkdtempSync(join(tmpdir(), 'osprey-v8-'));
const logFile = OUT ?? join(dir, 'v8.log');
try {
  const nginx = await startNginxStatic(dir);
  const port = await freePort();
  const out = createWriteStream(logFile);
  const t0 = Date.now();
  const stamp = () => ((Date.now() - t0) / 1000).toFixed(2);
  const child = spawn(process.execPath, ['--trace-opt', '--trace-deopt', ...NODE_FLAGS, join(ROOT, 'dist/src/cli/main.js'), 'up', '--data', join(dir, 'data'), '--listen', `127.0.0.1:${port}`, '--no-ui'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // bin/osprey's settings
    env: { ...process.env, MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2', DUCKDB_JE_MALLOC_CONF: process.env.DUCKDB_JE_MALLOC_CONF ?? 'dirty_decay_ms:500,muzzy_decay_ms:0' },
  });
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (d) => {
    const lines = (partial + d).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) out.write(`${stamp()} ${l}\n`);
  });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  let loadAt = 0;
  try {
    for (let i = 0; !/listening on/.test(err); i++) {
      if (i > 600 || child.exitCode !== null) throw new Error(`osprey up did not start: ${err.slice(-500)}`);
      await sleep(100);
    }
    loadAt = (Date.now() - t0) / 1000;
    const w = await runWrk({ url: `http://127.0.0.1:${nginx.port}/`, seconds: SECONDS, rate: RATE, connections: 20, threads: 1, dir });
    log(`${w.requests} requests in ${SECONDS} s; node flags: ${NODE_FLAGS.join(' ') || '(none)'}; load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  } finally {
    child.kill('SIGINT');
    await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r)));
    await new Promise((r) => out.end(r));
    await nginx.stop();
  }
  const windows = new Map();
  const late = new Map();
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    const sp = line.indexOf(' ');
    const t = Number(line.slice(0, sp)) - loadAt;
    if (!(t >= 0 && t < SECONDS)) continue;
    const k = Math.floor(t / 10) * 10;
    const win = windows.get(k) ?? { compiles: 0, aborted: 0, deopts: 0, ms: 0 };
    windows.set(k, win);
    const took = /took ([\d.]+), ([\d.]+), ([\d.]+) ms/.exec(line);
    if (line.includes('[compiling method')) win.compiles++;
    else if (line.includes('[aborted optimizing')) win.aborted++;
    else if (line.includes('[bailout (kind: deopt')) win.deopts++;
    if (took && (line.includes('[completed compiling') || line.includes('[aborted optimizing'))) win.ms += Number(took[1]) + Number(took[2]) + Number(took[3]);
    if (t >= 10 && (line.includes('[aborted optimizing') || line.includes('[bailout (kind: deopt'))) {
      const fn = /<JSFunction ([^ >]*)/.exec(line)?.[1] ?? '?';
      const why = /because: (.*?) - took/.exec(line)?.[1] ?? /reason: ([^)]*)\)/.exec(line)?.[1] ?? '?';
      const key = `${fn}: ${why}`;
      late.set(key, (late.get(key) ?? 0) + 1);
    }
  }
  console.log('seconds of load   compiles  aborted  deopts  compile ms (wall)');
  for (const [k, w] of [...windows].sort((a, b) => a[0] - b[0])) {
    console.log(`${`${k}-${k + 10}`.padEnd(16)} ${String(w.compiles).padStart(9)} ${String(w.aborted).padStart(8)} ${String(w.deopts).padStart(7)}  ${w.ms.toFixed(0).padStart(17)}`);
  }
  console.log('aborts and deopts after 10 s of load:');
  for (const [k, n] of [...late].sort((a, b) => b[1] - a[1])) console.log(`${String(n).padStart(5)}  ${k}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
