#!/usr/bin/env node
// In-app cost of the kernel side: what osprey's eBPF programs cost inside the traced
// applications' syscalls, per program and per request. Turns on kernel.bpf_stats_enabled
// (the old value is put back at exit), runs `osprey up`, drives paced wrk against nginx
// (keep-alive and Connection: close) and a Node http server (keep-alive), and reads
// run_cnt / run_time_ns of every program of osprey's own pid (bpftool's `pids` field, or the
// process's bpf fds in /proc/<pid>/fdinfo where bpftool was built without it) before
// and after each measured window.
//   node bench/bpf-cost.mjs [--rate 4000] [--seconds 6] [--rounds 1] [--only nginx-ka,node-ka,nginx-close]
// Per program: runs per request, ns per run, BPF µs per request; then the sum. A tail-called
// program's time (osp_exit_call) is counted in its caller's, and its own row shows none.
// Needs root. Prints; asserts nothing. Other processes' traffic during the window is traced
// too (and paid for here): `runs/req` above the usual shows it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTracefs, ospreyMode, runWrk, startNginxStatic, startNodeServer } from './lib/load.mjs';
import { installCleanup, log, sleep } from './lib/proc.mjs';
import { option } from './lib/script.mjs';

const RATE = Number(option('rate', 4000));
const SECONDS = Number(option('seconds', 6));
const ROUNDS = Number(option('rounds', 1));
const ONLY = String(option('only', 'nginx-ka,node-ka,nginx-close')).split(',');
const STATS = '/proc/sys/kernel/bpf_stats_enabled';

/**
 * ids of the programs that `pid` holds: bpftool's `pids` field where its build has it, else
 * the prog_id of the process's bpf-prog and bpf_link fds (/proc/<pid>/fdinfo)
 */
function heldProgs(pid) {
  const ids = new Set();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const l = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (!/bpf[-_](prog|link)/.test(l)) continue;
      const m = /^prog_id:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (m) ids.add(Number(m[1]));
    } catch {
      // the fd closed meanwhile
    }
  }
  return ids;
}

/** name -> { cnt, ns } of every program that `pid` holds */
function progStats(pid) {
  const all = JSON.parse(execFileSync('bpftool', ['prog', 'show', '-j'], { encoding: 'utf8', maxBuffer: 64 << 20 }));
  const held = all.some((p) => p.pids) ? undefined : heldProgs(pid);
  const out = new Map();
  for (const p of all) {
    if (held ? !held.has(p.id) : !(p.pids ?? []).some((x) => x.pid === pid)) continue;
    const name = p.name ?? `id${p.id}`;
    const o = out.get(name) ?? { cnt: 0, ns: 0 };
    o.cnt += p.run_cnt ?? 0;
    o.ns += p.run_time_ns ?? 0;
    out.set(name, o);
  }
  return out;
}

function table(title, reqs, before, after) {
  const rows = [];
  for (const [name, b] of after) {
    const a = before.get(name) ?? { cnt: 0, ns: 0 };
    const cnt = b.cnt - a.cnt;
    const ns = b.ns - a.ns;
    if (cnt > 0) rows.push({ name, cnt, ns });
  }
  rows.sort((x, y) => y.ns - x.ns);
  const lines = [`${title}: ${reqs} requests, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`];
  lines.push(`program                      runs/req    ns/run   BPF µs/req`);
  let tot = 0;
  for (const r of rows) {
    tot += r.ns;
    lines.push(`${r.name.padEnd(26)} ${(r.cnt / reqs).toFixed(2).padStart(10)} ${(r.ns / r.cnt).toFixed(0).padStart(9)} ${(r.ns / 1000 / reqs).toFixed(2).padStart(12)}`);
  }
  lines.push(`${'all'.padEnd(26)} ${''.padStart(10)} ${''.padStart(9)} ${(tot / 1000 / reqs).toFixed(2).padStart(12)}`);
  return lines.join('\n');
}

installCleanup();
ensureTracefs();
const oldStats = readFileSync(STATS, 'utf8').trim();
const restore = () => {
  try {
    writeFileSync(STATS, oldStats);
  } catch {
    /* nothing to do */
  }
};
process.on('exit', restore);
writeFileSync(STATS, '1');
const dir = mkdtempSync(join(tmpdir(), 'osprey-bpfcost-'));
try {
  const nginx = await startNginxStatic(dir);
  const node = ONLY.includes('node-ka') ? await startNodeServer() : undefined;
  const osprey = await ospreyMode({ dir, memory: true }).start();
  try {
    const scenarios = [
      { name: 'nginx-ka', url: `http://127.0.0.1:${nginx.port}/`, close: false },
      { name: 'node-ka', url: node?.url, close: false },
      { name: 'nginx-close', url: `http://127.0.0.1:${nginx.port}/`, close: true },
    ].filter((s) => ONLY.includes(s.name));
    for (const s of scenarios) await runWrk({ url: s.url, seconds: 1, rate: RATE, connections: 20, threads: 1, dir, close: s.close }); // warm-up
    await sleep(500);
    for (let round = 0; round < ROUNDS; round++) {
      for (const s of scenarios) {
        const k0 = await osprey.sample();
        const before = progStats(osprey.pid);
        const w = await runWrk({ url: s.url, seconds: SECONDS, rate: RATE, connections: 20, threads: 1, dir, close: s.close });
        const after = progStats(osprey.pid);
        const k1 = await osprey.sample();
        if (w.socketErrors || w.non2xx) log(`warning: ${s.name}: ${w.socketErrors} socket errors, ${w.non2xx} non-2xx`);
        console.log(table(`${s.name}${ROUNDS > 1 ? ` round ${round + 1}` : ''}`, w.requests, before, after));
        // the summaries must not change with the programs' cost: kernel records per request
        // (2: the server's and the client's exchange), hand-backs and refused keeps
        const d = (c) => (k1[c] ?? 0) - (k0[c] ?? 0);
        console.log(`kernel: exchanges/req ${(d('exchanges') / w.requests).toFixed(2)}, events/req ${(d('events') / w.requests).toFixed(2)}, summary_fallbacks ${d('summary_fallbacks')}, summary_pending_full ${d('summary_pending_full')}, ringbuf_dropped ${d('ringbuf_dropped')}`);
        console.log('');
      }
    }
  } finally {
    await osprey.stop();
    await node?.stop();
    await nginx.stop();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
  restore();
}
