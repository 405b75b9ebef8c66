// Load-test building blocks: the servers under load (nginx static file, Node http),
// wrk runs and their parsed output, and the three tracing modes (none, the minimal
// bpftrace reference probe, osprey up).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childrenCpuSec, cpuOver, freePort, log, procCpuSec, procMem, run, sleep, spawnChild, startProcess } from './proc.mjs';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const NGINX = '/usr/sbin/nginx';
/** ~800 bytes: a small static asset / JSON answer */
const BODY = `${'{"ok":true,"items":['.padEnd(780, 'x')}]}\n`;

// ---- servers under load -------------------------------------------------------------------

/**
 * nginx serving one small static file; private prefix dir, no access log, one process
 * (master_process off: a master would overwrite its environment with the process title,
 * and OTEL_SERVICE_NAME is what keeps its spans apart from any other nginx on the machine).
 */
export async function startNginxStatic(dir, service = 'bench-nginx') {
  const port = await freePort();
  const prefix = join(dir, `nginx-${port}`);
  mkdirSync(join(prefix, 'www'), { recursive: true });
  mkdirSync(join(prefix, 'tmp'), { recursive: true });
  writeFileSync(join(prefix, 'www', 'index.html'), BODY);
  writeFileSync(
    join(prefix, 'nginx.conf'),
    `daemon off;
master_process off;
worker_processes 1;
pid ${prefix}/nginx.pid;
lock_file ${prefix}/nginx.lock;
error_log ${prefix}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${prefix}/tmp/client_body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  default_type text/html;
  sendfile on;
  tcp_nodelay on;
  keepalive_timeout 65s;
  server_tokens off;
  server {
    listen 127.0.0.1:${port};
    root ${prefix}/www;
    location / { }
  }
}
`,
  );
  const child = await startProcess({
    name: 'nginx',
    cmd: NGINX,
    args: ['-p', `${prefix}/`, '-c', `${prefix}/nginx.conf`, '-e', 'stderr'],
    env: { OTEL_SERVICE_NAME: service },
    port,
    stopSignal: 'SIGQUIT',
    stopGraceMs: 3000,
  });
  return { name: 'nginx', service, port, url: `http://127.0.0.1:${port}/index.html`, child, stop: () => child.stop() };
}

/** a Node http server answering every request with the same small body */
export async function startNodeServer(service = 'bench-node') {
  const port = await freePort();
  const src = `const b=Buffer.from(${JSON.stringify(BODY)});require('http').createServer((q,s)=>{s.writeHead(200,{'content-type':'application/json','content-length':b.length});s.end(b)}).listen(${port},'127.0.0.1')`;
  const child = await startProcess({ name: 'node server', cmd: process.execPath, args: ['-e', src], env: { OTEL_SERVICE_NAME: service }, port, stopGraceMs: 3000 });
  return { name: 'node', service, port, url: `http://127.0.0.1:${port}/api/items/42`, child, stop: () => child.stop() };
}

// ---- wrk ---------------------------------------------------------------------------------

/**
 * One wrk run. rate: total requests/s to pace to (Lua delay() per request; undefined =
 * unpaced). close: "Connection: close" (a new connection per request).
 */
export async function runWrk({ url, seconds, threads = 2, connections = 50, rate, close = false, dir, service = 'bench-wrk' }) {
  const args = [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, '--latency', '--timeout', '5s'];
  if (rate) {
    // delay() runs before each request on its connection: per-connection period = connections / rate;
    // uniform jitter (mean unchanged) so connections do not march in lockstep
    const ms = (connections / rate) * 1000;
    const script = join(dir, `pace-${rate}-${connections}.lua`);
    if (!existsSync(script)) writeFileSync(script, `local d = ${ms.toFixed(4)}\nfunction delay() return d * (0.5 + math.random()) end\n`);
    args.push('-s', script);
  }
  if (close) args.push('-H', 'Connection: close');
  args.push(url);
  // through sh, so that wrk's own CPU time can be read afterwards (the shell's cutime/cstime)
  const res = await run('sh', ['-c', 'wrk "$@"; rc=$?; echo "wrk-stat: $(cat /proc/$$/stat)" >&2; exit $rc', 'wrk', ...args], {
    env: { OTEL_SERVICE_NAME: service },
    timeoutMs: (seconds + 15) * 1000,
  });
  if (res.code === 127) throw new Error('wrk not found (make build installs it)');
  if (res.code !== 0) throw new Error(`wrk exited ${res.code ?? res.signal}: ${res.stderr.trim().slice(-500)}`);
  const r = parseWrk(res.stdout);
  const stat = /^wrk-stat: (.*)$/m.exec(res.stderr);
  r.wrkCpuSec = stat ? childrenCpuSec(stat[1]) : NaN;
  if (!Number.isFinite(r.requests)) log(`warning: could not parse wrk output: ${res.stdout.trim().slice(-400)} ${res.stderr.trim().slice(-200)}`);
  return r;
}

/**
 * One paced wrk run (1 thread) through cpuOver: { requests, nodeSec, agentSec } (agentSec NaN
 * without an agent pid); socket errors and non-2xx answers are logged as warnings.
 */
export function wrkCpu({ url, dir, seconds, connections, rate }, agentPid) {
  return cpuOver(async () => {
    const r = await runWrk({ url, seconds, threads: 1, connections, rate, dir });
    if (r.socketErrors || r.non2xx) log(`warning: ${url}: ${r.socketErrors} socket errors, ${r.non2xx} non-2xx`);
    return r.requests;
  }, agentPid);
}

const UNIT_MS = { us: 1e-3, ms: 1, s: 1e3, m: 60e3 };
export function parseWrk(out) {
  const num = (re) => {
    const m = re.exec(out);
    return m ? Number(m[1]) : NaN;
  };
  const lat = (p) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    return m ? Number(m[1]) * UNIT_MS[m[2]] : NaN;
  };
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const inM = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(out);
  return {
    requests: inM ? Number(inM[1]) : NaN,
    durationSec: inM ? (Number(inM[2]) * UNIT_MS[inM[3]]) / 1000 : NaN,
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50ms: lat(50),
    p99ms: lat(99),
    socketErrors: se ? se.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/) || 0,
  };
}

// ---- tracing modes -----------------------------------------------------------------------

/** the tracepoints osprey attaches, read from bpf/capture.bpf.c (fallback: the known set) */
export function ospreyTracepoints() {
  const fallback = [
    ...['accept', 'accept4', 'connect', 'read', 'recvfrom', 'write', 'sendto', 'readv', 'writev', 'recvmsg', 'sendmsg', 'sendfile64'].flatMap((s) => [
      `syscalls:sys_enter_${s}`,
      `syscalls:sys_exit_${s}`,
    ]),
    'syscalls:sys_enter_close',
    'sock:inet_sock_set_state',
  ];
  try {
    const src = readFileSync(join(ROOT, 'bpf/capture.bpf.c'), 'utf8');
    const set = new Set();
    for (const m of src.matchAll(/SEC\("tracepoint\/([a-z_0-9]+)\/([a-z_0-9]+)"\)/g)) set.add(`${m[1]}:${m[2]}`);
    for (const m of src.matchAll(/^EXIT_PROG\((\w+)\)/gm)) set.add(`syscalls:sys_exit_${m[1]}`);
    return set.size >= 10 ? [...set].sort() : fallback;
  } catch {
    return fallback;
  }
}

export function ensureTracefs() {
  if (existsSync('/sys/kernel/tracing/events')) return;
  try {
    mkdirSync('/sys/kernel/tracing', { recursive: true });
  } catch {
    /* exists */
  }
  const r = spawnSyncSafe('mount', ['-t', 'tracefs', 'nodev', '/sys/kernel/tracing']);
  if (!existsSync('/sys/kernel/tracing/events')) throw new Error(`tracefs is not mounted at /sys/kernel/tracing and mounting failed: ${r}`);
}

function spawnSyncSafe(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    return e.message;
  }
}

/** mode 1: nothing attached */
export const noneMode = {
  name: 'none',
  async start() {
    return { pid: undefined, async sample() { return {}; }, async stop() { return {}; } };
  },
};

/**
 * mode 2: bpftrace counting enter+exit of the same tracepoints (nothing else). It prints its
 * count every 100 ms, so sample() can tell how many tracepoint hits a run caused.
 */
export function probeMode(dir) {
  return {
    name: 'probe',
    async start() {
      ensureTracefs();
      const tps = ospreyTracepoints();
      const script = join(dir, 'reference-probe.bt');
      writeFileSync(
        script,
        `${tps.map((t) => `tracepoint:${t}`).join(',\n')}\n{ @events = count(); }\ninterval:ms:100 { print(@events); }\nEND { print(@events); clear(@events); }\n`,
      );
      let prints = 0; // counts printed so far (its kept stdout is trimmed, so not counted there)
      const child = await spawnChild('bpftrace', [script], { stopSignal: 'SIGINT', stopGraceMs: 10_000, log: (line) => void (line.includes('@events:') && prints++) });
      await child.waitForOutput('stdout', /Attaching \d+ probes/, 60_000);
      await sleep(1000);
      /** the latest count the probe printed (at most 100 ms old) */
      const hits = () => {
        // the last complete line (a line may still be arriving)
        const out = child.stdout();
        const text = out.slice(0, out.lastIndexOf('\n') + 1);
        const i = text.lastIndexOf('@events:');
        const m = i < 0 ? null : /^@events:\s*(\d+)\n/.exec(text.slice(i));
        return m ? Number(m[1]) : undefined;
      };
      return {
        pid: child.pid,
        tracepoints: tps.length,
        async sample() {
          // a count that covers everything before this call: the second one printed after it
          // (the first may have been taken just before). Waiting a fixed 150 ms was not enough
          // on a loaded machine, where bpftrace's prints lag (CI: 1,070,995 of 1,200,000 hits)
          const from = prints;
          for (const end = Date.now() + 10_000; prints < from + 2 && Date.now() < end; ) await sleep(20);
          const h = hits();
          return h === undefined ? {} : { probe_hits: h };
        },
        async stop() {
          await child.stop();
          return { events: hits() };
        },
      };
    },
  };
}

/**
 * What one tracepoint hit of the reference probe costs on this machine: CPU of `dd` copying
 * `count` single bytes (a read and a write each, so four hits per byte) with and without the
 * probe attached, the least of `runs` each (noise only ever adds CPU). Per-request floors multiply it by the hits per request the
 * probe counted; that is steadier than the probe's node-wide "added" CPU, which is a few µs
 * per request and within the noise of /proc/stat.
 */
export async function calibrateProbe(dir, { count = 1_000_000, runs = 5 } = {}) {
  const dd = async () => {
    const res = await run('sh', ['-c', `dd if=/dev/zero of=/dev/null bs=1 count=${count} 2>/dev/null; echo "dd-stat: $(cat /proc/$$/stat)"`], { timeoutMs: 300_000 });
    const m = /^dd-stat: (.*)$/m.exec(res.stdout);
    if (res.code !== 0 || !m) throw new Error(`dd failed: ${res.stderr.trim().slice(-300)}`);
    return childrenCpuSec(m[1]);
  };
  const off = [];
  for (let i = 0; i < runs; i++) off.push(await dd());
  const ctl = await probeMode(dir).start();
  const on = [];
  const hits = [];
  try {
    for (let i = 0; i < runs; i++) {
      const h0 = (await ctl.sample()).probe_hits;
      on.push(await dd());
      let h1 = (await ctl.sample()).probe_hits;
      // the count only grows: one that does not cover dd's hits yet may be a print that lagged
      for (let k = 0; k < 20 && h1 !== undefined && h0 !== undefined && h1 - h0 < 4 * count; k++) h1 = (await ctl.sample()).probe_hits;
      hits.push(h1 !== undefined && h0 !== undefined ? h1 - h0 : NaN);
    }
  } finally {
    await ctl.stop();
  }
  const offSec = Math.min(...off);
  const onSec = Math.min(...on);
  // dd alone causes 4 hits per byte (enter and exit of a read and a write); more is other
  // processes' syscalls during the run, which would understate the cost of a hit
  const hitsPerRun = Math.min(...hits.filter(Number.isFinite));
  if (!(hitsPerRun >= 4 * count)) throw new Error(`probe calibration: the probe counted ${hitsPerRun} hits for ${4 * count} dd syscall tracepoints`);
  return { count, offSec, onSec, hitsPerRun, ddHits: 4 * count, nsPerHit: ((onSec - offSec) * 1e9) / (4 * count) };
}

/**
 * mode 3: `osprey up --no-ui` on a private port (optionally under --cpu-prof), as a user runs
 * it: the store in a file (a fresh data directory under `dir` per session), or in memory with
 * `memory` (then every span stays in the process, and RSS grows with them), or none with
 * `exportTo` (export-only, --no-store). `extraArgs` go to `osprey up` as they are; `niceness`
 * runs the whole agent under `nice -n`.
 */
export function ospreyMode({ profDir, dir, memory = false, exportTo, extraArgs = [], niceness = 0 } = {}) {
  let sessions = 0;
  return {
    name: 'osprey',
    async start() {
      const port = await freePort();
      const main = join(ROOT, 'dist/src/cli/main.js');
      // exportTo: export-only (the DaemonSet's mode), spans sent as OTLP to that URL
      const store = exportTo ? ['--no-store', '--export', exportTo] : memory || !dir ? ['--memory'] : ['--data', join(dir, `osprey-data-${++sessions}`)];
      const upArgs = ['up', ...store, '--listen', `127.0.0.1:${port}`, '--no-ui', ...extraArgs];
      const launch = () =>
        profDir
          ? // profiler starts once the probes are loaded (see lib/prof-wrap.mjs)
            spawnChild(
              process.execPath,
              [join(ROOT, 'bench/lib/prof-wrap.mjs'), join(profDir, `osprey-${Date.now()}.cpuprofile`), 'listening on', main, ...upArgs],
              { name: 'osprey up', stopSignal: 'SIGINT', stopGraceMs: 30_000 },
            )
          : niceness
            ? // the whole agent at a lower priority (nice execs it: same pid)
              spawnChild('nice', ['-n', String(niceness), join(ROOT, 'bin/osprey'), ...upArgs], { name: 'osprey up', stopSignal: 'SIGINT', stopGraceMs: 30_000 })
            : spawnChild(join(ROOT, 'bin/osprey'), upArgs, { name: 'osprey up', stopSignal: 'SIGINT', stopGraceMs: 30_000 });
      let child = await launch();
      try {
        await child.waitForOutput('stderr', /listening on/, 60_000);
      } catch (err) {
        // a concurrent BPF load elsewhere can make ours fail transiently (EAGAIN): once more
        log(`osprey up failed to start, retrying once: ${String(err.message).split('\n')[0]}`);
        await child.stop({ graceMs: 5000 });
        await sleep(2000);
        child = await launch();
        await child.waitForOutput('stderr', /listening on/, 60_000);
      }
      const startMem = procMem(child.pid);
      const base = `http://127.0.0.1:${port}`;
      const api = async (path) => {
        const r = await fetch(base + path, { signal: AbortSignal.timeout(30_000) });
        if (!r.ok) throw new Error(`GET ${path}: ${r.status} ${await r.text()}`);
        return r.json();
      };
      return {
        pid: child.pid,
        base,
        api,
        startRssMb: startMem.rssMb,
        /** counters now (status API) */
        async sample() {
          const s = await api('/api/osprey/status');
          return s.counters ?? {};
        },
        async stop() {
          const mem = procMem(child.pid);
          const cpu = procCpuSec(child.pid);
          await child.stop();
          const res = await child.exit;
          if (res.code !== 0) log(`warning: osprey exited ${res.code ?? res.signal}: ${child.stderr().trim().slice(-300)}`);
          return { hwmMb: mem.hwmMb, cpuSec: cpu };
        },
      };
    },
  };
}
