#!/usr/bin/env node
// Load time of the kernel side: how long one Capture.open takes (open the object, set its
// rodata, load = create the maps and run the verifier on every program, attach the
// tracepoints, start the reader), and what the verifier did per program.
//   1. Capture.open + close, --runs times (default 5) in this process: each open's wall time,
//      then min / median / max. `osprey up` pays one open at start, tests that attach
//      repeatedly pay it each time.
//   2. bench/lib/verifier-stats.c (built here with gcc + libbpf against the object's skeleton):
//      one load with the verifier's statistics log, per program the instructions it processed
//      (= verified_insns), its states and its own time; the --top (default 8) worst programs and
//      the sum.
//   node bench/load-time.mjs [--runs 5] [--top 8] [--summarize on|off] [--json FILE]
// Needs root and a build (make build). Prints; asserts nothing. Other load on the machine
// (other builds, tests) stretches the times: the processed-instruction counts do not vary.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './lib/load.mjs';
import { loadDist, option } from './lib/script.mjs';

const RUNS = Number(option('runs', 5));
const TOP = Number(option('top', 8));
const SUMMARIZE = String(option('summarize', 'on'));
const JSON_OUT = option('json', undefined);
if (SUMMARIZE !== 'on' && SUMMARIZE !== 'off') throw new Error(`--summarize must be on or off, got ${SUMMARIZE}`);

const { Capture } = await loadDist('kernel/index.js');

const fmt = (ms) => `${ms.toFixed(0).padStart(6)} ms`;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

process.stdout.write(`load average before: ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
process.stdout.write(`Capture.open + close, ${RUNS} runs (summarize ${SUMMARIZE}):\n`);
const opens = [];
for (let i = 0; i < RUNS; i++) {
  const t0 = performance.now();
  const cap = Capture.open({ summarize: SUMMARIZE, onBatch: () => {} });
  const t1 = performance.now();
  await cap.close();
  const t2 = performance.now();
  opens.push(t1 - t0);
  process.stdout.write(`  run ${i + 1}: open ${fmt(t1 - t0)}   close ${fmt(t2 - t1)}\n`);
}
process.stdout.write(`  open: min ${fmt(Math.min(...opens))}  median ${fmt(median(opens))}  max ${fmt(Math.max(...opens))}\n`);

// the verifier's statistics per program, from a load of the same object (nothing attached)
const out = join(ROOT, 'node_modules/.cache/osprey-bench');
mkdirSync(out, { recursive: true });
const tool = join(out, 'verifier-stats');
const src = join(ROOT, 'bench/lib/verifier-stats.c');
const skel = join(ROOT, 'bpf/.output/capture.skel.h');
if (!existsSync(tool) || statSync(tool).mtimeMs < Math.max(statSync(src).mtimeMs, statSync(skel).mtimeMs)) {
  execFileSync('gcc', ['-O1', '-Wall', `-I${join(ROOT, 'bpf/.output')}`, `-I${join(ROOT, 'bpf')}`, src, '-o', tool, '-lbpf', '-lelf', '-lz'], { stdio: 'inherit' });
}
const stats = JSON.parse(execFileSync(tool, [SUMMARIZE === 'on' ? '1' : '0'], { encoding: 'utf8' }));
const progs = [...stats.programs].sort((a, b) => b.processed - a.processed);
const total = progs.reduce((n, p) => n + p.processed, 0);
process.stdout.write(`\nverifier, one load (${stats.load_ms.toFixed(0)} ms): ${progs.length} programs, ${total} instructions processed in all\n`);
process.stdout.write(`  ${'program'.padEnd(24)} ${'processed'.padStart(10)} ${'states'.padStart(8)} ${'peak'.padStart(6)} ${'verifier ms'.padStart(12)}\n`);
for (const p of progs.slice(0, TOP)) {
  process.stdout.write(
    `  ${p.name.padEnd(24)} ${String(p.processed).padStart(10)} ${String(p.total_states).padStart(8)} ${String(p.peak_states).padStart(6)} ${(p.verify_us / 1000).toFixed(1).padStart(12)}\n`,
  );
}
if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify({ opens, summarize: SUMMARIZE, loadavg: loadavg(), verifier: stats }, null, 2));
