#!/usr/bin/env node
// How long detaching a library's uprobes holds the JS thread (src/agent/tls/uprobe-watcher.ts).
// A python3 process maps libssl (import ssl) while the watcher (lingerMs 0) probes it; it
// exits, and the next scan detaches the file. Two ways, alternated:
//   sync:  the capture without detachUprobes (the watcher then detaches link by link on the JS
//          thread, as before session 10)
//   async: Capture.detachUprobes, on a native worker thread
// Printed per round: how long scan() held the JS thread, the largest gap of a 2 ms timer from
// the scan until the links were gone, and how long the detach took in all.
// Usage (root): node bench/uprobe-detach.mjs [--rounds 4]
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Capture } from '../dist/src/kernel/index.js';
import { opensslFamily, UprobeWatcher } from '../dist/src/agent/tls/index.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '4' } } });
const rounds = Number(values.rounds);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// a private copy of the libssl python loads: a file no other process on the machine maps
const dir = mkdtempSync(join(tmpdir(), 'osprey-detach-'));
const sysLib = execFileSync('python3', ['-c', "import _ssl;print([l.split()[-1] for l in open('/proc/self/maps') if 'libssl.so' in l][0])"]).toString().trim();
copyFileSync(sysLib, join(dir, 'libssl.so.3'));
const env = { ...process.env, LD_LIBRARY_PATH: dir };

const cap = Capture.open({ onBatch: () => {} });
// the sync variant: the same capture, without the off-thread detach
const syncCap = { attachUprobe: (t) => cap.attachUprobe(t), detachUprobe: (l) => cap.detachUprobe(l) };

async function round(mode) {
  const w = new UprobeWatcher(mode === 'sync' ? syncCap : cap, { families: [opensslFamily], lingerMs: 0, scanMs: 3_600_000 });
  const py = spawn('python3', ['-c', 'import ssl, sys; print("ready", flush=True); sys.stdin.readline()'], { stdio: ['pipe', 'pipe', 'inherit'], env });
  await new Promise((r) => py.stdout.once('data', r));
  w.scan();
  const mine = () => w.files().filter((f) => f.path.startsWith(dir));
  const probes = mine().reduce((n, f) => n + f.probes, 0);
  const files = mine().length;
  py.stdin.end('\n');
  await new Promise((r) => py.once('exit', r));
  let last = performance.now();
  let maxGap = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 2);
  const t0 = performance.now();
  w.scan();
  const scanMs = performance.now() - t0;
  maxGap = Math.max(maxGap, scanMs);
  last = performance.now();
  while (w.counters.detaching_now > 0) await sleep(2);
  const allMs = performance.now() - t0;
  clearInterval(timer);
  const detached = w.counters.files_detached;
  w.stop();
  while (w.counters.detaching_now > 0) await sleep(2);
  return { mode, files, probes, detached, scanMs, maxGap, allMs };
}

const load = (await import('node:os')).loadavg()[0].toFixed(2);
console.log(`load average ${load}`);
for (let i = 0; i < rounds; i++) {
  for (const mode of i % 2 ? ['async', 'sync'] : ['sync', 'async']) {
    const r = await round(mode);
    console.log(
      `${r.mode.padEnd(5)} files ${r.files} probes ${r.probes} detached ${r.detached}: scan held the JS thread ${r.scanMs.toFixed(1)} ms, ` +
        `largest timer gap ${r.maxGap.toFixed(1)} ms, links gone after ${r.allMs.toFixed(1)} ms`,
    );
  }
}
cap.close();
rmSync(dir, { recursive: true, force: true });
