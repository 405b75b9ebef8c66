#!/usr/bin/env node
// Node runtime context (src/agent/nodectx): how many of a Node middle's outgoing calls are
// linked to the request they serve, per hand-off shape, and what the extra uprobes cost.
//   wrk -> Node middle (bench/fixtures/node-middle.mjs MODE) -> Python backend (demo/backend.py)
// with a unique path per request (the middle calls /api/item/<x> for /front/<x>: the request
// line never matches, so only the runtime rule can link). For each mode and connection count:
// the share of the middle's client spans whose parent is its server span of the same <x>
// (linked), of another <x> (wrong), or none; with `osprey.link` per source.
// Then the cost: the middle under unpaced wrk (keepalive mode, 32 connections) traced with and
// without the Node probes (AgentOptions.nodeContext, `osprey up --node-context off`): the
// middle's CPU per request (its JS thread runs the uprobes) and the throughput, median of --runs.
//   node bench/nodectx.mjs [--seconds 4] [--runs 3] [--modes keepalive,fresh,...]
// Needs root and a build (dist/). Asserts nothing.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './lib/load.mjs';
import { freePort, installCleanup, log, procCpuSec, run, sleep, startProcess } from './lib/proc.mjs';
import { loadDist, option } from './lib/script.mjs';

const SECONDS = Number(option('seconds', 4));
const RUNS = Number(option('runs', 3));
const MODES = String(option('modes', 'keepalive,fresh,await,await-io,timer,queue')).split(',');
const { Agent } = await loadDist('agent/agent.js');
installCleanup();

const dir = mkdtempSync(join(tmpdir(), 'osprey-nodectx-'));
const backendPort = await freePort();
const backend = await startProcess({ name: 'backend', cmd: 'python3', args: [join(ROOT, 'demo/backend.py'), String(backendPort)], env: { OTEL_SERVICE_NAME: 'backend' }, port: backendPort });
const suffix = (s) => String(s.attributes['url.path']).replace(/^\/(front|api\/item)\//, '');

async function middle(mode) {
  const port = await freePort();
  const p = await startProcess({ name: `middle-${mode}`, cmd: process.execPath, args: [join(ROOT, 'bench/fixtures/node-middle.mjs'), mode, String(port), `http://127.0.0.1:${backendPort}`], env: { OTEL_SERVICE_NAME: 'middle' }, port });
  return { p, port };
}

async function wrk(port, conns, tag, seconds = SECONDS) {
  const script = join(dir, `${tag}.lua`);
  writeFileSync(script, `local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format("GET", "/front/${tag}-" .. n)\nend\n`);
  const w = await run('wrk', [`-t1`, `-c${conns}`, `-d${seconds}s`, '-s', script, `http://127.0.0.1:${port}`], { timeoutMs: (seconds + 30) * 1000 });
  return Number(/(\d+) requests in/.exec(w.stdout)?.[1]);
}

async function shares(nodeContext) {
  const spans = [];
  const agent = new Agent({ sink: (s) => spans.push(...s), holdMs: 300, nodeContext });
  agent.start();
  await sleep(2500); // the first /proc scan attaches the probes
  const rows = [];
  for (const mode of MODES) {
    const m = await middle(mode);
    for (const conns of [1, 32]) {
      const tag = `${mode}c${conns}x${Math.random().toString(36).slice(2, 6)}`;
      const from = spans.length;
      const requests = await wrk(m.port, conns, tag);
      await sleep(1500);
      const mine = spans.slice(from).filter((s) => s.resource['process.pid'] === m.p.pid && suffix(s).startsWith(`${tag}-`));
      const byId = new Map(mine.map((s) => [s.spanId, s]));
      const clients = mine.filter((s) => s.kind === 'client');
      let linked = 0;
      let wrong = 0;
      const how = {};
      for (const c of clients) {
        const p = c.parentSpanId ? byId.get(c.parentSpanId) : undefined;
        if (p && suffix(p) === suffix(c)) linked++;
        else if (p) {
          wrong++;
          log(`  wrong: ${suffix(c)} under ${suffix(p)} by ${c.attributes['osprey.link']}`);
        }
        const k = String(c.attributes['osprey.link']);
        how[k] = (how[k] ?? 0) + 1;
      }
      const pct = (n) => `${((n / Math.max(1, clients.length)) * 100).toFixed(1)}%`;
      rows.push({ mode, conns, requests, clients: clients.length, linked: pct(linked), wrong, how: JSON.stringify(how) });
      log(`${mode} c=${conns}: ${requests} requests, ${clients.length} middle client spans: linked ${pct(linked)}, wrong parents ${wrong}, by ${JSON.stringify(how)}`);
    }
    await m.p.stop();
  }
  await agent.shutdown();
  return rows;
}

async function cost(nodeContext) {
  const agent = new Agent({ sink: () => {}, holdMs: 300, nodeContext });
  agent.start();
  await sleep(2500);
  const m = await middle('keepalive');
  await wrk(m.port, 32, 'warm', 1);
  const cpu0 = procCpuSec(m.p.pid);
  const requests = await wrk(m.port, 32, `cost${Math.random().toString(36).slice(2, 6)}`);
  const cpu = procCpuSec(m.p.pid) - cpu0;
  await m.p.stop();
  await agent.shutdown();
  return { rps: requests / SECONDS, usPerReq: (cpu / requests) * 1e6 };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
try {
  log('shares with the Node probes:');
  console.table(await shares(true));
  const on = [];
  const off = [];
  for (let r = 0; r < RUNS; r++) {
    off.push(await cost(false));
    on.push(await cost(true));
  }
  const row = (xs) => ({ rps: median(xs.map((x) => x.rps)).toFixed(0), middle_cpu_us_per_request: median(xs.map((x) => x.usPerReq)).toFixed(1) });
  const a = row(off);
  const b = row(on);
  console.table({ 'capture without Node probes': a, 'capture with Node probes': b });
  log(`ratio with/without: middle CPU per request ${(Number(b.middle_cpu_us_per_request) / Number(a.middle_cpu_us_per_request)).toFixed(3)}, throughput ${(Number(b.rps) / Number(a.rps)).toFixed(3)}`);
} finally {
  await backend.stop();
}
process.exit(0);
