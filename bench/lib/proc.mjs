// Process bookkeeping for the benchmarks: starting and stopping children, ports and waiting
// come from the build (src/proc, shared with the demo and the tests); here are only what the
// benchmarks add: progress lines, Ctrl-C handling, /proc readers for node-wide and
// per-process CPU and memory.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { loadDist } from './script.mjs';

const t0 = Date.now();
/** progress line on stderr, prefixed with the elapsed time */
export function log(msg) {
  const s = Math.round((Date.now() - t0) / 1000);
  const mm = String(Math.floor(s / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  process.stderr.write(`[bench ${mm}:${ss}] ${msg}\n`);
}

// ---- children (src/proc/index.ts) --------------------------------------------------------

export const { freePort, killAll, run, sleep, spawnChild, startProcess, stopAll } = await loadDist('proc/index.js');

let installed = false;
/** On Ctrl-C/SIGTERM: stop children gracefully, exit 130 (a second signal: SIGKILL them at once). */
export function installCleanup() {
  if (installed) return;
  installed = true;
  let stopping = false;
  const onSignal = (sig) => {
    if (stopping) {
      killAll();
      process.exit(130);
    }
    stopping = true;
    log(`${sig}: stopping child processes`);
    stopAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

// ---- /proc ------------------------------------------------------------------------------

export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** node-wide jiffies from /proc/stat: busy (all but idle and iowait) and total */
export function nodeCpu() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice; guest* are inside user/nice
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  const busy = user + nice + system + irq + softirq + (steal || 0);
  return { busy, total: busy + idle + iowait };
}

/** utime+stime of a process (all its threads) in seconds, or NaN when it is gone */
export function procCpuSec(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // fields after the comm: state(0) ppid(1) ... utime(11) stime(12)
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/**
 * Runs one load (`load()` resolves to the number of requests it made) and returns
 * { requests, nodeSec, agentSec }: the busy CPU of the whole node and the agent's own CPU
 * (NaN without an agent pid) over it.
 */
export async function cpuOver(load, agentPid) {
  const n0 = nodeCpu();
  const a0 = agentPid ? procCpuSec(agentPid) : NaN;
  const requests = await load();
  const n1 = nodeCpu();
  const a1 = agentPid ? procCpuSec(agentPid) : NaN;
  return { requests, nodeSec: (n1.busy - n0.busy) / CLK_TCK, agentSec: a1 - a0 };
}

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** a bench cell from runs of cpuOver: node and agent CPU per request in µs, and requests, medians */
export function cpuCell(runs) {
  return {
    nodeUsPerReq: median(runs.map((x) => (x.nodeSec / x.requests) * 1e6)),
    agentUsPerReq: median(runs.map((x) => (x.agentSec / x.requests) * 1e6)),
    requests: median(runs.map((x) => x.requests)),
  };
}

/** utime+stime of one thread of a process, seconds (tid = pid: the main thread, for Node the JS thread) */
export function threadCpuSec(pid, tid = pid) {
  return procCpuSec(`${pid}/task/${tid}`);
}

/** utime and stime of a process separately, seconds ({NaN, NaN} when it is gone) */
export function procCpuSplit(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { user: Number(f[11]) / CLK_TCK, sys: Number(f[12]) / CLK_TCK };
  } catch {
    return { user: NaN, sys: NaN };
  }
}

/** utime+stime summed over every process of a process group (a server and its workers), seconds */
export function groupCpuSec(pgid) {
  let sum = 0;
  for (const d of readdirSync('/proc')) {
    if (d.charCodeAt(0) < 48 || d.charCodeAt(0) > 57) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      if (Number(f[2]) === pgid) sum += Number(f[11]) + Number(f[12]);
    } catch {
      /* exited meanwhile */
    }
  }
  return sum / CLK_TCK;
}

/** cutime+cstime (CPU of waited-for children) from a saved /proc/<pid>/stat line, seconds */
export function childrenCpuSec(statLine) {
  const f = statLine.slice(statLine.lastIndexOf(')') + 2).trim().split(' ');
  return (Number(f[13]) + Number(f[14])) / CLK_TCK;
}

/** VmHWM / VmRSS of a process in MB */
export function procMem(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? NaN);
    return { hwmMb: kb('VmHWM') / 1024, rssMb: kb('VmRSS') / 1024 };
  } catch {
    return { hwmMb: NaN, rssMb: NaN };
  }
}
