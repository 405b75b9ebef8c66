#!/usr/bin/env node
// Osprey benchmark: ratios measured in one run on this machine, against two baselines
// (no probe; a minimal bpftrace probe on the same tracepoints). Modes alternate round by
// round; numbers are medians. Targets are printed next to the numbers, never asserted.
//
//   node bench/run.mjs [--quick] [--rounds N] [--paced SEC] [--sat SEC] [--rate REQ_PER_S]
//                      [--only load,pipeline,query] [--query-sizes 1000000,10000000]
//                      [--wait-idle SEC] [--cpu-prof DIR] [--osprey-args 'FLAGS'] [--osprey-nice N] [--out FILE] | --report FILE.json
//
// Progress goes to stderr, the result table to stdout and bench/out/latest.txt, everything to
// bench/out/latest.json.
// Needs root (bpftrace, osprey), wrk, nginx, bpftrace. See docs/benchmarks.md.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, hostname, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { calibrateProbe, noneMode, ospreyMode, probeMode, ROOT, runWrk, startNginxStatic, startNodeServer } from './lib/load.mjs';
import { CLK_TCK, groupCpuSec, installCleanup, log, nodeCpu, procCpuSec, procCpuSplit, procMem, run, sleep, stopAll, threadCpuSec } from './lib/proc.mjs';
import { runPipeline } from './pipeline.mjs';

// ---- options ----------------------------------------------------------------------------

const args = process.argv.slice(2);
const has = (n) => args.includes(`--${n}`);
const opt = (n, d) => {
  const i = args.indexOf(`--${n}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : d;
};
if (has('help') || has('h')) {
  process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 12).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
  process.exit(0);
}
const QUICK = has('quick');
const cfg = {
  variant: QUICK ? 'quick' : 'full',
  rounds: Number(opt('rounds', QUICK ? 1 : 5)),
  warmSec: Number(opt('warm', QUICK ? 1 : 2)),
  pacedSec: Number(opt('paced', QUICK ? 4 : 10)),
  satSec: Number(opt('sat', QUICK ? 3 : 6)),
  rate: Number(opt('rate', 4500)),
  threads: 2,
  connections: 50,
  pipelineSec: QUICK ? 3 : 5,
  pipelineCpuSec: QUICK ? 1.5 : 6,
  querySizes: String(opt('query-sizes', QUICK ? '200000' : '1000000,10000000')).split(',').map(Number),
  queryRuns: QUICK ? 10 : 30,
  only: new Set(String(opt('only', 'load,pipeline,query')).split(',')),
  // subsets for a quick loop while optimising (the summary needs all three modes for ratios)
  modes: new Set(String(opt('modes', 'none,probe,osprey')).split(',')),
  scenarios: opt('scenarios', undefined)?.split(','),
  // osprey's store: a file in the run's temp dir, as `osprey up` runs by default; or in memory
  memoryStore: has('memory-store'),
  // before each mode session, wait up to this long for an idle machine (no other tracer, <10% busy)
  waitIdleSec: Number(opt('wait-idle', 0)),
  cpuProfDir: opt('cpu-prof', undefined),
  // extra `osprey up` flags, for an A/B of one setting (e.g. --osprey-args '--background-nice 0')
  ospreyArgs: String(opt('osprey-args', '')).split(' ').filter(Boolean),
  // the whole agent under `nice -n N` (its background threads then at N + --background-nice)
  ospreyNice: Number(opt('osprey-nice', 0)),
  out: opt('out', join(ROOT, 'bench/out/latest.json')),
};
for (const k of ['rounds', 'warmSec', 'pacedSec', 'satSec', 'rate']) {
  if (!(cfg[k] > 0)) throw new Error(`--${k} must be a positive number`);
}

const TARGETS = {
  completeness: 0.999,
  agentCoresPer10k: 0.15,
  addedCpuVsProbe: 3,
  p99DeltaPct: 10,
  rssMb: 150,
  satVsProbe: 0.9,
  pipelineSpansPerCore: 100_000,
  searchP99Ms: 300,
  traceP99Ms: 50,
};

const ALL_SCENARIOS = [
  { id: 'nginx-ka', label: 'nginx keep-alive', target: 'nginx', close: false, paced: true },
  { id: 'nginx-close', label: 'nginx Connection: close', target: 'nginx', close: true, paced: true },
  { id: 'node-ka', label: 'node keep-alive', target: 'node', close: false, paced: true },
  // a single Node thread tops out near 4k new connections/s here: pace it at half the rate so the
  // run measures tracing cost, not queueing in an overloaded server
  { id: 'node-close', label: 'node Connection: close', target: 'node', close: true, paced: true, rateFactor: 0.5 },
  { id: 'nginx-sat', label: 'nginx keep-alive, unpaced', target: 'nginx', close: false, paced: false },
  { id: 'node-sat', label: 'node keep-alive, unpaced', target: 'node', close: false, paced: false },
];
const SCENARIOS = cfg.scenarios ? ALL_SCENARIOS.filter((s) => cfg.scenarios.includes(s.id)) : ALL_SCENARIOS;

// ---- helpers ----------------------------------------------------------------------------

const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const max = (xs) => xs.filter(Number.isFinite).reduce((a, b) => Math.max(a, b), -Infinity);
const nowNs = () => BigInt(Date.now()) * 1_000_000n;
const fx = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');
const fint = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');
const fpct = (x, d = 2) => (Number.isFinite(x) ? `${(x * 100).toFixed(d)}%` : '–');
const fsign = (x, d = 1) => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${x.toFixed(d)}` : '–');

function machine() {
  let os = '';
  try {
    os = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '';
  } catch {
    /* none */
  }
  return {
    host: hostname(),
    os,
    kernel: release(),
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
  };
}

/** busy fraction of the machine over the next `ms` (we are idle meanwhile) */
async function busyNow(ms = 1000) {
  const a = nodeCpu();
  await sleep(ms);
  const b = nodeCpu();
  return (b.busy - a.busy) / Math.max(1, b.total - a.total);
}

/** other tracers attached now (they would skew every mode) and the load average */
function noise() {
  let bpfTracepoints;
  try {
    const progs = JSON.parse(execFileSync('bpftool', ['prog', 'show', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
    bpfTracepoints = progs.filter((p) => p.type === 'tracepoint' || p.type === 'raw_tracepoint').length;
  } catch {
    bpfTracepoints = undefined;
  }
  return { loadavg: loadavg().map((x) => Math.round(x * 100) / 100), bpfTracepoints };
}

function checkTools() {
  const missing = [];
  for (const [tool, probe] of [
    ['wrk', ['wrk', ['--version']]],
    ['bpftrace', ['bpftrace', ['--version']]],
    ['nginx', ['/usr/sbin/nginx', ['-v']]],
  ]) {
    try {
      execFileSync(probe[0], probe[1], { stdio: 'ignore' });
    } catch (e) {
      // wrk --version exits 1 but runs
      if (e.code === 'ENOENT') missing.push(tool);
    }
  }
  if (missing.length) throw new Error(`missing tools: ${missing.join(', ')} (run make build, which installs them)`);
  if (!existsSync(join(ROOT, 'dist/src/cli/main.js'))) throw new Error('osprey is not built: run make build');
  if (process.getuid?.() !== 0) log('warning: not root: bpftrace and osprey need root (or CAP_BPF+CAP_PERFMON)');
}

// ---- load rounds ------------------------------------------------------------------------

async function startTarget(sc, tag, dir) {
  return sc.target === 'nginx' ? startNginxStatic(dir, `bench-nginx-${tag}`) : startNodeServer(`bench-node-${tag}`);
}

/** one mode session: start the mode, run every scenario, collect, stop */
async function session(mode, round, dir) {
  // is anything else running? (sampled before our own tracer attaches)
  let noiseStart = { ...noise(), busy: await busyNow() };
  const waitUntil = Date.now() + cfg.waitIdleSec * 1000;
  while ((noiseStart.busy > 0.1 || noiseStart.bpfTracepoints) && Date.now() < waitUntil) {
    log(`waiting for a quiet machine: ${Math.round(noiseStart.busy * 100)}% busy, ${noiseStart.bpfTracepoints ?? 0} other BPF tracepoint programs`);
    await sleep(4000);
    noiseStart = { ...noise(), busy: await busyNow() };
  }
  if (noiseStart.busy > 0.1 || noiseStart.bpfTracepoints) {
    log(`warning: machine not quiet before this session: ${Math.round(noiseStart.busy * 100)}% busy, ${noiseStart.bpfTracepoints ?? 0} other BPF tracepoint programs attached`);
  }
  log(`round ${round + 1}/${cfg.rounds}: mode ${mode.name}: starting`);
  const ctl = await mode.start();
  const results = [];
  // under osprey, servers stay up until their spans are counted: osprey resolves a span's
  // service when it emits the span, and a process that is gone by then gets a fallback name
  const keep = [];
  const stopKept = async () => {
    for (const s of keep.splice(0)) await s.stop();
  };
  try {
    for (const sc of SCENARIOS) {
      // paced runs are counted before the saturation runs start (those leave a backlog behind)
      if (mode.name === 'osprey' && !sc.paced && results.length && results.every((r) => r.paced)) {
        await completeness(ctl, results, 20);
        await stopKept();
      }
      const server = await startTarget(sc, `r${round}-${sc.id}`, dir);
      let kept = false;
      try {
        const wrkOpts = {
          url: server.url,
          threads: cfg.threads,
          connections: cfg.connections,
          rate: sc.paced ? Math.round(cfg.rate * (sc.rateFactor ?? 1)) : undefined,
          close: sc.close,
          dir,
          service: `bench-wrk-r${round}-${sc.id}`,
        };
        const secs = sc.paced ? cfg.pacedSec : cfg.satSec;
        log(`round ${round + 1}/${cfg.rounds}: mode ${mode.name}: ${sc.label}: warm-up ${cfg.warmSec} s, then ${secs} s${sc.paced ? ` at ~${wrkOpts.rate} req/s` : ''}`);
        await runWrk({ ...wrkOpts, seconds: cfg.warmSec });
        await sleep(300);
        const c0 = await ctl.sample();
        const g0 = groupCpuSec(server.child.pid);
        const a0 = ctl.pid ? procCpuSec(ctl.pid) : NaN;
        const m0 = ctl.pid ? threadCpuSec(ctl.pid) : NaN;
        const split0 = ctl.pid ? procCpuSplit(ctl.pid) : undefined;
        const s0 = nodeCpu();
        const t0 = performance.now();
        const startNs = nowNs();
        const w = await runWrk({ ...wrkOpts, seconds: secs });
        const endNs = nowNs();
        const wall = (performance.now() - t0) / 1000;
        const s1 = nodeCpu();
        const a1 = ctl.pid ? procCpuSec(ctl.pid) : NaN;
        const m1 = ctl.pid ? threadCpuSec(ctl.pid) : NaN;
        const split1 = ctl.pid ? procCpuSplit(ctl.pid) : undefined;
        const g1 = groupCpuSec(server.child.pid);
        const c1 = await ctl.sample();
        const busySec = (s1.busy - s0.busy) / CLK_TCK;
        const agentCpuSec = a1 - a0;
        const serverCpuSec = g1 - g0;
        // CPU of the processes in the test only (wrk + server + tracer): immune to other load on the machine
        const procsCpuSec = w.wrkCpuSec + serverCpuSec + (ctl.pid ? agentCpuSec : 0);
        const counters = {};
        for (const k of Object.keys(c1)) if (typeof c1[k] === 'number' && c1[k] !== c0[k]) counters[k] = c1[k] - (c0[k] ?? 0);
        results.push({
          scenario: sc.id,
          paced: sc.paced,
          mode: mode.name,
          round,
          service: server.service,
          clientService: wrkOpts.service,
          window: { startNs: String(startNs), endNs: String(endNs) },
          wallSec: wall,
          ...w,
          nodeBusySec: busySec,
          nodeCores: busySec / wall,
          cpuPerReqUs: (busySec * 1e6) / w.requests,
          serverCpuSec,
          procsCpuSec,
          procsPerReqUs: (procsCpuSec * 1e6) / w.requests,
          agentCpuSec,
          // the JS thread (decode, parse, link, store appends); the rest is GC helpers, DuckDB, the ring-buffer reader
          agentMainCpuSec: m1 - m0,
          agentUserSec: split1 ? split1.user - split0.user : undefined,
          agentSysSec: split1 ? split1.sys - split0.sys : undefined,
          agentCoresPer10k: mode.name === 'osprey' ? agentCpuSec / wall / (w.rps / 10_000) : undefined,
          ringbufDropped: mode.name === 'osprey' ? (counters.ringbuf_dropped ?? 0) : undefined,
          storeDropped: mode.name === 'osprey' ? (counters.store_spansDropped ?? 0) : undefined,
          agentRssMb: ctl.pid ? procMem(ctl.pid).rssMb : undefined,
          counters: mode.name === 'osprey' ? counters : undefined,
          probeHits: mode.name === 'probe' && c1.probe_hits !== undefined && c0.probe_hits !== undefined ? c1.probe_hits - c0.probe_hits : undefined,
        });
        log(
          `  ${w.requests} requests, ${fx(w.rps, 0)} req/s, p99 ${fx(w.p99ms, 2)} ms, node ${fx((busySec * 1e6) / w.requests, 1)} µs/req, procs ${fx((procsCpuSec * 1e6) / w.requests, 1)} µs/req` +
            (mode.name === 'osprey' ? `, agent ${fx(agentCpuSec / wall, 3)} cores, ringbuf drops ${counters.ringbuf_dropped ?? 0}, store drops ${counters.store_spansDropped ?? 0}` : '') +
            (w.socketErrors || w.non2xx ? `, wrk errors ${w.socketErrors}, non-2xx ${w.non2xx}` : ''),
        );
        if (mode.name === 'osprey') {
          keep.push(server);
          kept = true;
        }
      } finally {
        if (!kept) await server.stop();
      }
    }
    if (mode.name === 'osprey') await completeness(ctl, results.filter((r) => !r.paced), QUICK ? 15 : 60);
  } finally {
    await stopKept();
    const stopped = await ctl.stop();
    for (const r of results) {
      if (stopped.hwmMb !== undefined) r.agentHwmMb = stopped.hwmMb;
      if (ctl.startRssMb !== undefined) r.agentStartRssMb = ctl.startRssMb;
      if (stopped.events !== undefined) r.probeEventsSession = stopped.events;
    }
  }
  return { results, noise: noiseStart };
}

/** spans stored ÷ requests completed, per scenario, counted exactly over each run's window */
async function completeness(ctl, results, capSec) {
  await sleep(3000); // spans are queryable ~2 s after the request
  // then wait for the agent to settle: nothing buffered in the store, (almost) no new events
  // (after saturation a backlog may still drain); at most capSec
  const t0 = Date.now();
  let last;
  for (;;) {
    const c = await ctl.sample();
    // (our own status requests are traced too: a few events and spans per poll)
    const settled = last && (c.store_buffered ?? 0) < 100 && Math.abs((c.agent_events ?? 0) - (last.agent_events ?? 0)) < 100;
    last = c;
    if (settled || Date.now() - t0 > capSec * 1000) break;
    await sleep(1000);
  }
  const settleSec = (Date.now() - t0) / 1000 + 3;
  const settled = Date.now() - t0 <= capSec * 1000;
  // the span count, not services(): its rollups count whole minutes, which hold other runs too
  const spans = async (r, service, kind) => {
    const q = encodeURIComponent(`{ resource.service.name = "${service}" && kind = ${kind} }`);
    return (await ctl.api(`/api/osprey/count?q=${q}&start=${r.window.startNs}&end=${r.window.endNs}`)).count;
  };
  const count = async (r) => ({ server: await spans(r, r.service, 'server'), client: await spans(r, r.clientService, 'client') });
  const counts = await Promise.all(results.map(count));
  results.forEach((r, j) => {
    r.serverSpans = counts[j].server;
    r.clientSpans = counts[j].client;
    r.completeness = counts[j].server / r.requests;
    r.clientCompleteness = counts[j].client / r.requests;
    r.settleSec = settleSec;
    r.settled = settled;
  });
  log(`  completeness (after ${fx(settleSec, 0)} s${settled ? '' : ', agent still busy'}): ${results.map((r) => `${r.scenario} ${fpct(r.completeness, 2)}`).join(', ')}`);
}

/** one unmeasured run against each server kind, so that the first measured session is not the coldest */
async function machineWarmup(dir) {
  log(`machine warm-up: ${cfg.warmSec * 2} s against nginx and node, not measured`);
  for (const target of ['nginx', 'node']) {
    const server = target === 'nginx' ? await startNginxStatic(dir, 'bench-warmup-nginx') : await startNodeServer('bench-warmup-node');
    try {
      await runWrk({ url: server.url, seconds: cfg.warmSec * 2, threads: cfg.threads, connections: cfg.connections, rate: cfg.rate, dir });
    } finally {
      await server.stop();
    }
  }
}

async function loadRounds(dir) {
  const modes = [noneMode, probeMode(dir), ospreyMode({ profDir: cfg.cpuProfDir, dir, memory: cfg.memoryStore, extraArgs: cfg.ospreyArgs, niceness: cfg.ospreyNice })].filter((m) => cfg.modes.has(m.name));
  const all = [];
  const sessions = [];
  await machineWarmup(dir);
  let calibration;
  if (cfg.modes.has('probe')) {
    calibration = await calibrateProbe(dir, { count: QUICK ? 300_000 : 1_000_000 });
    log(`probe calibration: ${fx(calibration.nsPerHit, 0)} ns per tracepoint hit (dd: ${fx(calibration.offSec, 2)} s -> ${fx(calibration.onSec, 2)} s CPU for ${fint(calibration.ddHits)} hits; the probe counted ${fint(calibration.hitsPerRun)})`);
  }
  for (let round = 0; round < cfg.rounds; round++) {
    // alternate: each round starts with a different mode
    const order = modes.map((_, i) => modes[(i + round) % modes.length]);
    for (const mode of order) {
      const s = await session(mode, round, dir);
      all.push(...s.results);
      sessions.push({ round, mode: mode.name, noise: s.noise });
    }
  }
  return { runs: all, sessions, calibration };
}

function summarizeLoad(runs, calibration) {
  const by = (sc, mode) => runs.filter((r) => r.scenario === sc && r.mode === mode);
  const rounds = [...new Set(runs.map((r) => r.round))];
  const perRound = (sc, fn) =>
    rounds.map((rd) => {
      const g = (m) => runs.find((r) => r.scenario === sc && r.mode === m && r.round === rd);
      const n = g('none');
      const p = g('probe');
      const o = g('osprey');
      return n && p && o ? fn(n, p, o) : NaN;
    });
  const out = {};
  for (const sc of SCENARIOS) {
    const modes = {};
    for (const m of ['none', 'probe', 'osprey']) {
      const rs = by(sc.id, m);
      modes[m] = {
        rounds: rs.length,
        requests: median(rs.map((r) => r.requests)),
        rps: median(rs.map((r) => r.rps)),
        cpuPerReqUs: median(rs.map((r) => r.cpuPerReqUs)),
        procsPerReqUs: median(rs.map((r) => r.procsPerReqUs)),
        nodeCores: median(rs.map((r) => r.nodeCores)),
        p50ms: median(rs.map((r) => r.p50ms)),
        p99ms: median(rs.map((r) => r.p99ms)),
        errors: rs.reduce((a, r) => a + r.socketErrors + r.non2xx, 0),
      };
      if (m === 'osprey') {
        Object.assign(modes[m], {
          agentCoresPer10k: median(rs.map((r) => r.agentCoresPer10k)),
          agentCores: median(rs.map((r) => r.agentCpuSec / r.wallSec)),
          agentSysShare: median(rs.map((r) => r.agentSysSec / (r.agentUserSec + r.agentSysSec))),
          agentHwmMb: max(rs.map((r) => r.agentHwmMb)),
          agentStartRssMb: median(rs.map((r) => r.agentStartRssMb)),
          ringbufDropped: rs.reduce((a, r) => a + (r.ringbufDropped ?? 0), 0),
          storeDropped: rs.reduce((a, r) => a + (r.storeDropped ?? 0), 0),
          agentRssAfterMb: median(rs.map((r) => r.agentRssMb)),
          completeness: median(rs.map((r) => r.completeness)),
          settleSec: median(rs.map((r) => r.settleSec)),
          unsettled: rs.filter((r) => r.settled === false).length,
          completenessMin: rs.reduce((a, r) => Math.min(a, r.completeness ?? NaN), Infinity),
          clientCompleteness: median(rs.map((r) => r.clientCompleteness)),
        });
      }
    }
    const addedOsprey = median(perRound(sc.id, (n, _p, o) => o.cpuPerReqUs - n.cpuPerReqUs));
    const addedProbe = median(perRound(sc.id, (n, p) => p.cpuPerReqUs - n.cpuPerReqUs));
    const addedProcsOsprey = median(perRound(sc.id, (n, _p, o) => o.procsPerReqUs - n.procsPerReqUs));
    const addedProcsProbe = median(perRound(sc.id, (n, p) => p.procsPerReqUs - n.procsPerReqUs));
    // what tracing adds to wrk + server themselves (in-kernel probe work in their syscalls), tracer process excluded
    const appsUs = (r) => ((r.procsCpuSec - (Number.isFinite(r.agentCpuSec) ? r.agentCpuSec : 0)) * 1e6) / r.requests;
    const addedAppsOsprey = median(perRound(sc.id, (n, _p, o) => appsUs(o) - appsUs(n)));
    const addedAppsProbe = median(perRound(sc.id, (n, p) => appsUs(p) - appsUs(n)));
    // the probe's unavoidable cost per request: its tracepoint hits per request × the calibrated cost of a hit
    const probeHitsPerReq = median(by(sc.id, 'probe').map((r) => (r.probeHits === undefined ? NaN : r.probeHits / r.requests)));
    const probeFloorUs = calibration && calibration.nsPerHit > 0 ? (probeHitsPerReq * calibration.nsPerHit) / 1000 : NaN;
    out[sc.id] = {
      label: sc.label,
      paced: sc.paced,
      modes,
      probeHitsPerReq,
      probeFloorUs,
      // a negative "added" is noise (a slow "none" run); no ratio then
      addedCpuVsFloor: probeFloorUs > 0 && addedOsprey > 0 ? addedOsprey / probeFloorUs : NaN,
      addedCpuUsOsprey: addedOsprey,
      addedCpuUsProbe: addedProbe,
      addedCpuRatio: addedProbe > 0 ? addedOsprey / addedProbe : NaN,
      addedProcsUsOsprey: addedProcsOsprey,
      addedProcsUsProbe: addedProcsProbe,
      addedProcsRatio: addedProcsProbe > 0 ? addedProcsOsprey / addedProcsProbe : NaN,
      addedAppsUsOsprey: addedAppsOsprey,
      addedAppsUsProbe: addedAppsProbe,
      agentUsPerReq: median(by(sc.id, 'osprey').map((r) => (r.agentCpuSec * 1e6) / r.requests)),
      agentMainUsPerReq: median(by(sc.id, 'osprey').map((r) => (r.agentMainCpuSec * 1e6) / r.requests)),
      p99DeltaPctOsprey: (100 * (modes.osprey.p99ms - modes.none.p99ms)) / modes.none.p99ms,
      p99DeltaPctProbe: (100 * (modes.probe.p99ms - modes.none.p99ms)) / modes.none.p99ms,
      satRatioOsprey: median(perRound(sc.id, (n, _p, o) => o.rps / n.rps)),
      satRatioProbe: median(perRound(sc.id, (n, p) => p.rps / n.rps)),
    };
    out[sc.id].satOspreyVsProbe = out[sc.id].satRatioOsprey / out[sc.id].satRatioProbe;
  }
  return out;
}

// ---- query ------------------------------------------------------------------------------

async function queryBench() {
  const script = join(ROOT, 'bench/store-bench.mjs');
  if (!existsSync(script)) {
    log('query: bench/store-bench.mjs is missing: skipped');
    return [];
  }
  const out = [];
  for (const n of cfg.querySizes) {
    log(`query: store-bench with ${n.toLocaleString('en-US')} generated spans (50 services, 500 routes, 1% errors, log-normal durations), ${cfg.queryRuns} runs per query`);
    const timeoutMs = Math.max(300_000, (n / 10_000) * 1000 * 6);
    const r = await run(process.execPath, ['--expose-gc', script, '--spans', String(n), '--runs', String(cfg.queryRuns)], { timeoutMs });
    if (r.code !== 0) {
      log(`query: store-bench exited ${r.code ?? r.signal}: ${r.stderr.trim().slice(-500)}`);
      out.push({ spans: n, error: `exit ${r.code ?? r.signal}`, queries: [] });
      continue;
    }
    const queries = [];
    let inTable = false;
    for (const line of r.stdout.split('\n')) {
      if (/^query\s+p50 ms/.test(line)) {
        inTable = true;
        continue;
      }
      const m = inTable && /^(.*?)\s{2,}([\d.]+)\s+([\d.]+)\s*(\d*)\s*$/.exec(line);
      if (m) queries.push({ label: m[1].trim(), p50ms: Number(m[2]), p99ms: Number(m[3]), rows: m[4] === '' ? undefined : Number(m[4]) });
    }
    const append = /append:.*?→\s*([\d,]+) spans\/s/.exec(r.stdout);
    const rss = /after loading and querying/.test(r.stdout) ? Number(/([\d.]+) MB after loading/.exec(r.stdout)?.[1]) : undefined;
    out.push({ spans: n, appendSpansPerSec: append ? Number(append[1].replace(/,/g, '')) : undefined, rssMb: rss, queries });
    for (const q of queries) log(`  ${q.label}: p50 ${q.p50ms} ms, p99 ${q.p99ms} ms`);
  }
  return out;
}

// ---- report -----------------------------------------------------------------------------

function targets(load, pipeline, query, config = {}) {
  const t = [];
  const mark = (ok) => (ok === undefined ? 'n/a' : ok ? 'MET' : 'MISSED');
  const add = (name, goal, value, ok, where) => t.push({ name, goal, value, status: mark(ok), where });
  if (load) {
    const paced = Object.entries(load).filter(([, s]) => s.paced);
    const sat = Object.entries(load).filter(([, s]) => !s.paced);
    const worst = (list, f, lowIsBad) => {
      let best;
      for (const [id, s] of list) {
        const v = f(s);
        if (!Number.isFinite(v)) continue;
        if (!best || (lowIsBad ? v < best.v : v > best.v)) best = { id, v };
      }
      return best;
    };
    const c = worst(paced, (s) => s.modes.osprey.completeness, true);
    add('paced completeness (server spans ÷ wrk requests)', `>= ${TARGETS.completeness * 100}%`, c && fpct(c.v, 2), c && c.v >= TARGETS.completeness, c?.id);
    const a = worst(paced, (s) => s.modes.osprey.agentCoresPer10k, false);
    add('agent CPU, cores per 10k req/s', `<= ${TARGETS.agentCoresPer10k}`, a && fx(a.v, 3), a && a.v <= TARGETS.agentCoresPer10k, a?.id);
    const f = worst(paced, (s) => s.addedCpuVsFloor, false);
    add(
      'added node CPU per request, osprey ÷ probe floor (calibrated)',
      `<= ${TARGETS.addedCpuVsProbe}x`,
      f ? `${fx(f.v, 1)}x` : 'n/a',
      f ? f.v <= TARGETS.addedCpuVsProbe : undefined,
      f?.id,
    );
    const undefinedRatio = paced.filter(([, s]) => !Number.isFinite(s.addedCpuRatio)).map(([id]) => id);
    const r = worst(paced, (s) => s.addedCpuRatio, false);
    add(
      '  same, ÷ the probe mode\'s measured added CPU (/proc/stat)',
      `<= ${TARGETS.addedCpuVsProbe}x`,
      r ? `${fx(r.v, 2)}x${undefinedRatio.length ? ` (n/a for ${undefinedRatio.join(', ')}: probe cost within noise)` : ''}` : 'n/a',
      r ? r.v <= TARGETS.addedCpuVsProbe : undefined,
      r?.id,
    );
    const rp = worst(paced, (s) => s.addedProcsRatio, false);
    add('  same, CPU of the test processes only (wrk + server + tracer)', `<= ${TARGETS.addedCpuVsProbe}x`, rp ? `${fx(rp.v, 2)}x` : 'n/a', rp ? rp.v <= TARGETS.addedCpuVsProbe : undefined, rp?.id);
    const p = worst(paced, (s) => s.p99DeltaPctOsprey, false);
    add('p99 latency delta vs no probe', `<= +${TARGETS.p99DeltaPct}%`, p && `${fsign(p.v)}%`, p && p.v <= TARGETS.p99DeltaPct, p?.id);
    const m = worst(Object.entries(load), (s) => s.modes.osprey.agentHwmMb, false);
    const startRss = median(Object.values(load).map((s) => s.modes.osprey.agentStartRssMb));
    const afterPaced = max(paced.map(([, s]) => s.modes.osprey.agentRssAfterMb));
    add(
      `agent peak RSS (VmHWM, ${config.memoryStore ? 'in-memory' : 'file-backed'} store)`,
      `<= ${TARGETS.rssMb} MB`,
      m && `${fx(m.v, 0)} MB (${fx(startRss, 0)} MB at start, ${fx(afterPaced, 0)} MB after the paced runs)`,
      m && m.v <= TARGETS.rssMb,
      m?.id,
    );
    const s = worst(sat, (x) => x.satOspreyVsProbe, true);
    add('saturation throughput: osprey ratio ÷ probe ratio', `>= ${TARGETS.satVsProbe}`, s && fx(s.v, 2), s && s.v >= TARGETS.satVsProbe, s?.id);
  }
  if (pipeline) {
    const g = TARGETS.pipelineSpansPerCore;
    add('pipeline spans/s per core (agent alone)', `>= ${fint(g)}`, fint(pipeline.agentOnly.spansPerCpuSec), pipeline.agentOnly.spansPerCpuSec >= g);
    add('pipeline spans/s per core (agent + DuckStore)', `>= ${fint(g)}`, fint(pipeline.withStore.spansPerCpuSec), pipeline.withStore.spansPerCpuSec >= g);
  }
  if (query?.length) {
    const big = [...query].filter((q) => q.queries.length).sort((a, b) => b.spans - a.spans)[0];
    if (big) {
      const note = big.spans < 10_000_000 ? ` (measured at ${fint(big.spans)} spans, not 10M)` : '';
      const searches = big.queries.filter((q) => /^search/.test(q.label));
      const ws = searches.reduce((a, q) => (!a || q.p99ms > a.p99ms ? q : a), undefined);
      add(`search p99, worst search query${note}`, `< ${TARGETS.searchP99Ms} ms`, ws && `${fx(ws.p99ms, 1)} ms`, ws && ws.p99ms < TARGETS.searchP99Ms, ws?.label);
      const tr = big.queries.find((q) => /trace by id/.test(q.label));
      add(`trace by id p99${note}`, `< ${TARGETS.traceP99Ms} ms`, tr && `${fx(tr.p99ms, 1)} ms`, tr && tr.p99ms < TARGETS.traceP99Ms);
    }
  }
  return t;
}

function table(rows, align) {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows
    .map((r, ri) =>
      r
        .map((c, i) => ((align?.[i] ?? (i === 0 ? 'l' : 'r')) === 'l' ? String(c).padEnd(w[i]) : String(c).padStart(w[i])))
        .join('  ')
        .trimEnd() + (ri === 0 ? `\n${w.map((x) => '-'.repeat(x)).join('  ')}` : ''),
    )
    .join('\n');
}

function report(res) {
  const L = [];
  const m = res.machine;
  L.push(`Osprey benchmark (${res.config.variant}) — ${res.date}`);
  L.push(`machine: ${m.cpu}, ${m.cores} cores, ${m.memGb} GB; ${m.os}; kernel ${m.kernel}; node ${m.node}`);
  L.push(`noise at start: load average ${res.noise.loadavg.join(' ')}; other BPF tracepoint programs attached: ${res.noise.bpfTracepoints ?? 'unknown'}`);
  if (res.load?.sessions?.length) {
    const ss = res.load.sessions;
    const noisy = ss.filter((x) => x.noise.busy > 0.1 || x.noise.bpfTracepoints);
    L.push(
      `noise before each session (machine busy over 1 s while idle): median ${fx(100 * median(ss.map((x) => x.noise.busy)), 0)}%, max ${fx(100 * max(ss.map((x) => x.noise.busy)), 0)}%; ` +
        `${noisy.length} of ${ss.length} sessions started on a busy machine or with another tracer attached`,
    );
  }
  const load = res.load?.summary;
  if (load) {
    const c = res.config;
    L.push('');
    L.push(
      `Paced load: wrk -t${c.threads} -c${c.connections}, paced to ~${c.rate} req/s with Lua delay() (node Connection: close at half that), ${c.pacedSec} s runs after ${c.warmSec} s warm-up; medians of ${c.rounds} round(s), modes alternating.`,
    );
    L.push('node µs/req: busy CPU of the whole machine (/proc/stat) per completed request (wrk, server, tracer, kernel, and anything else running);');
    L.push('procs µs/req: CPU of wrk + server + tracer process only (immune to other load). added: minus mode none, paired per round.');
    L.push('spans/req: server spans stored ÷ requests wrk completed (completeness). rb drops / store drops: sums over all rounds.');
    const rows = [['scenario', 'mode', 'req/s', 'node µs/req', 'added', 'procs µs/req', 'added', 'p50 ms', 'p99 ms', 'p99 Δ', 'agent cores/10k rps', 'spans/req', 'rb drops', 'store drops']];
    for (const [, s] of Object.entries(load).filter(([, s]) => s.paced)) {
      for (const mode of ['none', 'probe', 'osprey']) {
        const x = s.modes[mode];
        rows.push([
          mode === 'none' ? s.label : '',
          mode,
          fint(x.rps),
          fx(x.cpuPerReqUs, 1),
          mode === 'none' ? '' : fsign(mode === 'probe' ? s.addedCpuUsProbe : s.addedCpuUsOsprey, 1),
          fx(x.procsPerReqUs, 1),
          mode === 'none' ? '' : fsign(mode === 'probe' ? s.addedProcsUsProbe : s.addedProcsUsOsprey, 1),
          fx(x.p50ms, 3),
          fx(x.p99ms, 2),
          mode === 'none' ? '' : `${fsign(mode === 'probe' ? s.p99DeltaPctProbe : s.p99DeltaPctOsprey, 0)}%`,
          mode === 'osprey' ? fx(x.agentCoresPer10k, 3) : '',
          mode === 'osprey' ? fpct(x.completeness, 2) : '',
          mode === 'osprey' ? fint(x.ringbufDropped) : '',
          mode === 'osprey' ? fint(x.storeDropped) : '',
        ]);
      }
    }
    L.push(table(rows));
    L.push('');
    const r2 = [['scenario', 'probe floor µs/req (hits/req)', 'added CPU osprey ÷ floor', 'osprey ÷ probe (node)', '(procs)', 'agent µs/req', 'of it JS thread', 'added to wrk+server µs/req: osprey', 'probe', 'osprey p99 Δ', 'probe p99 Δ', 'agent RSS start / after / peak', 'agent CPU in kernel', 'client spans/req']];
    for (const [, s] of Object.entries(load).filter(([, s]) => s.paced)) {
      r2.push([
        s.label,
        Number.isFinite(s.probeFloorUs) ? `${fx(s.probeFloorUs, 1)} (${fx(s.probeHitsPerReq, 1)})` : '–',
        Number.isFinite(s.addedCpuVsFloor) ? `${fx(s.addedCpuVsFloor, 1)}x` : '–',
        Number.isFinite(s.addedCpuRatio) ? `${fx(s.addedCpuRatio, 2)}x` : 'n/a (probe ≤ 0)',
        Number.isFinite(s.addedProcsRatio) ? `${fx(s.addedProcsRatio, 2)}x` : 'n/a (probe ≤ 0)',
        fx(s.agentUsPerReq, 1),
        fx(s.agentMainUsPerReq, 1),
        fsign(s.addedAppsUsOsprey, 1),
        fsign(s.addedAppsUsProbe, 1),
        `${fsign(s.p99DeltaPctOsprey, 1)}%`,
        `${fsign(s.p99DeltaPctProbe, 1)}%`,
        `${fx(s.modes.osprey.agentStartRssMb, 0)} / ${fx(s.modes.osprey.agentRssAfterMb, 0)} / ${fx(s.modes.osprey.agentHwmMb, 0)} MB`,
        fpct(s.modes.osprey.agentSysShare, 0),
        fpct(s.modes.osprey.clientCompleteness, 2),
      ]);
    }
    L.push(table(r2));
    L.push('');
    L.push(`Saturation: unpaced wrk -t${c.threads} -c${c.connections} keep-alive, ${c.satSec} s runs; ratios are per round (paired), then the median.`);
    L.push('drain s: seconds after the last run until the agent had stored its backlog (spans/req counted then).');
    const r3 = [['scenario', 'none req/s', 'probe req/s', 'osprey req/s', 'probe/none', 'osprey/none', 'osprey ÷ probe', 'agent cores', 'spans/req', 'drain s', 'rb drops', 'store drops']];
    for (const [, s] of Object.entries(load).filter(([, s]) => !s.paced)) {
      r3.push([
        s.label,
        fint(s.modes.none.rps),
        fint(s.modes.probe.rps),
        fint(s.modes.osprey.rps),
        fx(s.satRatioProbe, 3),
        fx(s.satRatioOsprey, 3),
        fx(s.satOspreyVsProbe, 3),
        fx(s.modes.osprey.agentCores, 2),
        fpct(s.modes.osprey.completeness, 2),
        `${fx(s.modes.osprey.settleSec, 0)}${s.modes.osprey.unsettled ? ` (${s.modes.osprey.unsettled} still busy)` : ''}`,
        fint(s.modes.osprey.ringbufDropped),
        fint(s.modes.osprey.storeDropped),
      ]);
    }
    L.push(table(r3));
  }
  const p = res.pipeline;
  if (p) {
    L.push('');
    L.push(
      `Pipeline (recorded ${p.recorded.seconds} s of real events: ${fint(p.recorded.requests)} requests wrk -> nginx -> node, ${fint(p.recorded.events)} events, ${fint(p.recorded.spans)} spans; replayed without the kernel):`,
    );
    L.push(
      table([
        ['sink', 'events/s per core', 'spans/s per core', 'spans/s wall', 'passes'],
        ['agent alone', fint(p.agentOnly.eventsPerCpuSec), fint(p.agentOnly.spansPerCpuSec), fint(p.agentOnly.spansPerWallSec), p.agentOnly.passes],
        ['agent + DuckStore (in memory)', fint(p.withStore.eventsPerCpuSec), fint(p.withStore.spansPerCpuSec), fint(p.withStore.spansPerWallSec), p.withStore.passes],
      ]),
    );
  }
  if (res.query?.length) {
    L.push('');
    L.push(`Query (bench/store-bench.mjs, in-memory DuckStore, generated spans; p50/p99 over ${res.config.queryRuns} runs, fewer for the heavy ones):`);
    const labels = [...new Set(res.query.flatMap((q) => q.queries.map((x) => x.label)))];
    const head = ['query', ...res.query.flatMap((q) => [`${fint(q.spans)} p50 ms`, `p99 ms`])];
    const rows = [head];
    for (const l of labels) {
      rows.push([l, ...res.query.flatMap((q) => {
        const x = q.queries.find((y) => y.label === l);
        return [fx(x?.p50ms, 1), fx(x?.p99ms, 1)];
      })]);
    }
    L.push(table(rows));
    L.push(`append rate: ${res.query.map((q) => `${fint(q.spans)} spans: ${fint(q.appendSpansPerSec)} spans/s`).join('; ')}`);
  }
  L.push('');
  L.push('Targets (goals, reported not asserted):');
  const tr = [['status', 'target', 'goal', 'measured', 'worst case']];
  for (const t of res.targets) tr.push([t.status, t.name, t.goal, t.value ?? '–', t.where ?? '']);
  L.push(table(tr, ['l', 'l', 'l', 'l', 'l']));
  return L.join('\n');
}

// ---- main -------------------------------------------------------------------------------

if (opt('report', undefined)) {
  // re-render a saved run (e.g. after changing the report), nothing is measured
  const file = opt('report');
  const saved = JSON.parse(readFileSync(file, 'utf8'));
  if (saved.load?.runs) saved.load.summary = summarizeLoad(saved.load.runs, saved.load.calibration);
  saved.targets = targets(saved.load?.summary, saved.pipeline, saved.query, saved.config);
  const text = report(saved);
  writeFileSync(file.replace(/\.json$/, '') + '.txt', `${text}\n`);
  process.stdout.write(`${text}\n`);
  process.exit(0);
}

installCleanup();
checkTools();
const dir = mkdtempSync(join(tmpdir(), 'osprey-bench-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
if (cfg.cpuProfDir) mkdirSync(cfg.cpuProfDir, { recursive: true });

const res = {
  date: new Date().toISOString(),
  machine: machine(),
  config: { ...cfg, only: [...cfg.only], modes: [...cfg.modes], clkTck: CLK_TCK },
  noise: noise(),
  targetsGoal: TARGETS,
};
log(`osprey bench (${cfg.variant}): ${res.machine.cpu}, ${res.machine.cores} cores, kernel ${res.machine.kernel}; load average ${res.noise.loadavg.join(' ')}`);
if (res.noise.bpfTracepoints) log(`warning: ${res.noise.bpfTracepoints} BPF tracepoint program(s) already attached: every mode pays for them`);
if (res.noise.loadavg[0] > 0.5) log('warning: the machine is not idle (load average > 0.5): expect noisy numbers');

let exitCode = 0;
try {
  if (cfg.only.has('load')) {
    const l = await loadRounds(dir);
    res.load = { ...l, summary: summarizeLoad(l.runs, l.calibration) };
  }
  if (cfg.only.has('pipeline')) {
    res.pipeline = await runPipeline({ seconds: cfg.pipelineSec, rate: 3000, cpuTarget: cfg.pipelineCpuSec, dir });
  }
  if (cfg.only.has('query')) res.query = await queryBench();
} catch (err) {
  log(`error: ${err.stack ?? err}`);
  res.error = String(err.message ?? err);
  exitCode = 1;
} finally {
  await stopAll();
}
res.noiseEnd = noise();
res.targets = targets(res.load?.summary, res.pipeline, res.query, res.config);
mkdirSync(join(cfg.out, '..'), { recursive: true });
writeFileSync(cfg.out, JSON.stringify(res, (_k, v) => (typeof v === 'bigint' ? String(v) : v), 2));
const text = report(res);
writeFileSync(cfg.out.replace(/\.json$/, '') + '.txt', `${text}\n`);
process.stdout.write(`${text}\n`);
log(`results: ${cfg.out} (and the table as .txt)`);
process.exitCode = exitCode;
