#!/usr/bin/env node
// What the Go runtime context costs (bpf/lib/goctx.h: the goroutine read at every call of a Go
// process; bpf/lib/goprobes.h: uprobes on runtime.newproc1, runtime.goexit1 and net/http's
// (*persistConn).roundTrip): wrk paced against a Go net/http service
// (test/fixtures/forwarder.go) that calls nginx for every request, without the agent, under
// `osprey up --runtime-context off` and under `osprey up` (on). Prints per request the agent's
// CPU and the node's added CPU (busy jiffies of the whole machine minus the run without the
// agent: the uprobes run in the Go process, the goroutine read in its syscalls), and the
// ratios on/off. Median of --runs runs per cell.
//   node bench/go-runtime-context.mjs [--rate 2000] [--seconds 5] [--runs 3] [--connections 32]
// Needs root and Go. Asserts nothing.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTracefs, ospreyMode, ROOT, startNginxStatic, wrkCpu } from './lib/load.mjs';
import { cpuCell, freePort, installCleanup, log, startProcess } from './lib/proc.mjs';
import { loadDist, option } from './lib/script.mjs';

const RATE = Number(option('rate', 2000));
const SECONDS = Number(option('seconds', 5));
const RUNS = Number(option('runs', 3));
const CONNS = Number(option('connections', 32));

const { buildGo, goToolchains } = await loadDist('test/go-build.js');

/** one wrk run: requests, node busy seconds, agent seconds (NaN without one) */
const measure = (url, dir, agentPid) => wrkCpu({ url, dir, seconds: SECONDS, connections: CONNS, rate: RATE }, agentPid);

installCleanup();
ensureTracefs();
const dir = mkdtempSync(join(tmpdir(), 'osprey-goctx-bench-'));
try {
  const go = goToolchains()[0];
  if (!go) throw new Error('no Go toolchain found');
  const nginx = await startNginxStatic(dir, 'bench-backend');
  // the forwarder calls <backend>/api/item/<x> for /front/<x>
  const www = join(dir, `nginx-${nginx.port}`, 'www', 'api', 'item');
  mkdirSync(www, { recursive: true });
  writeFileSync(join(www, 'x.json'), '{"ok":true}\n');
  const port = await freePort();
  const middle = await startProcess({ name: 'middle', cmd: buildGo(join(ROOT, 'test/fixtures/forwarder.go'), go), args: [String(port), `http://127.0.0.1:${nginx.port}`], env: { OTEL_SERVICE_NAME: 'bench-go' }, port });
  const url = `http://127.0.0.1:${port}/front/x.json`;
  const cells = {};
  const run = async (mode, agentPid) => {
    const xs = [];
    for (let i = 0; i < RUNS; i++) xs.push(await measure(url, dir, agentPid));
    cells[mode] = cpuCell(xs);
    log(`${mode}: ${JSON.stringify(cells[mode])}`);
  };
  await run('none');
  let linker = {};
  let goCounters = {};
  for (const [mode, extraArgs] of [
    ['off', ['--runtime-context', 'off']],
    ['on', []],
  ]) {
    const session = await ospreyMode({ dir, extraArgs }).start();
    // the watcher's first scan ran at start: the Go service is registered already
    await run(mode, session.pid);
    const s = await session.api('/api/osprey/status');
    if (mode === 'on') {
      linker = s.counters;
      goCounters = s.goRuntime?.counters ?? {};
    }
    await session.stop();
  }
  await middle.stop();
  await nginx.stop();
  const added = (m) => cells[m].nodeUsPerReq - cells.none.nodeUsPerReq;
  const f = (x) => x.toFixed(1);
  console.log(`\nGo runtime context on vs off: ${go.version} net/http service calling nginx per request, wrk paced at ${RATE}/s, ${CONNS} connections, median of ${RUNS} x ${SECONDS}s`);
  console.log('mode  node CPU/req  added node CPU/req  agent CPU/req');
  for (const m of ['none', 'off', 'on']) {
    console.log(`${m.padEnd(4)}  ${f(cells[m].nodeUsPerReq).padStart(9)} us  ${m === 'none' ? '' : `${f(added(m)).padStart(15)} us  ${f(cells[m].agentUsPerReq).padStart(10)} us`}`);
  }
  console.log(`ratio on/off: agent CPU per request ${(cells.on.agentUsPerReq / cells.off.agentUsPerReq).toFixed(2)}, added node CPU per request ${(added('on') / added('off')).toFixed(2)}, agent + added node CPU per request ${((cells.on.agentUsPerReq + added('on')) / (cells.off.agentUsPerReq + added('off'))).toFixed(2)}`);
  console.log(`linker: ${Object.entries(linker).filter(([k, v]) => (k.startsWith('linker_') || /drop|lost/.test(k)) && v).map(([k, v]) => `${k.replace(/^linker_/, "")} ${v}`).join(', ')}; kernel: ${JSON.stringify(Object.fromEntries(Object.entries(goCounters).filter(([k]) => k.startsWith('kernel_'))))}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
