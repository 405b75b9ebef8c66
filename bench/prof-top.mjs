#!/usr/bin/env node
// Summarises a V8 .cpuprofile (node --cpu-prof): self time per function, top N.
//   node bench/prof-top.mjs FILE.cpuprofile [--top 25] [--by file] [--from SEC] [--to SEC]
// --from/--to: only samples taken that many seconds after the profile started (a window of a
// live profile: the measured run, without start-up or shutdown)
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith('--'));
if (!file) {
  console.error('usage: node bench/prof-top.mjs FILE.cpuprofile [--top N] [--by file]');
  process.exit(2);
}
const topI = args.indexOf('--top');
const TOP = topI >= 0 ? Number(args[topI + 1]) : 25;
const byFile = args.includes('--by') && args[args.indexOf('--by') + 1] === 'file';
const num = (n, d) => (args.includes(`--${n}`) ? Number(args[args.indexOf(`--${n}`) + 1]) : d);
const FROM_US = num('from', 0) * 1e6;
const TO_US = num('to', Infinity) * 1e6;

export function summarize(profile, { byFile = false, fromUs = 0, toUs = Infinity } = {}) {
  const { nodes, samples, timeDeltas } = profile;
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of nodes) for (const c of n.children ?? []) parent.set(c, n);
  const short = (u) => (u || '').replace(/^file:\/\/.*?\/(dist|node_modules|bench)\//, '$1/');
  const self = new Map();
  let total = 0;
  let at = 0;
  for (let i = 0; i < samples.length; i++) {
    const dt = timeDeltas[i] ?? 0;
    at += dt;
    if (at < fromUs || at > toUs) continue;
    const n = byId.get(samples[i]);
    if (!n) continue;
    total += dt;
    let cf = n.callFrame;
    let native = '';
    if (!cf.url && !cf.functionName && parent.get(n.id)) {
      // native code (a C++ binding): charge it to the JS function that called it
      cf = parent.get(n.id).callFrame;
      native = '(native) ← ';
    }
    const url = short(cf.url);
    const key = byFile
      ? `${native}${url || `(${cf.functionName || 'native'})`}`
      : `${native}${cf.functionName || '(anonymous)'}  ${url}${url ? `:${cf.lineNumber + 1}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  }
  return { total, rows: [...self.entries()].sort((a, b) => b[1] - a[1]) };
}

const { total, rows } = summarize(JSON.parse(readFileSync(file, 'utf8')), { byFile, fromUs: FROM_US, toUs: TO_US });
console.log(`${(total / 1e6).toFixed(2)} s sampled; self time, top ${TOP}`);
for (const [k, us] of rows.slice(0, TOP)) console.log(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1e3).toFixed(0).padStart(7)} ms  ${k}`);
