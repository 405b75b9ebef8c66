// Process bookkeeping for the benchmarks: every child is tracked and killed on exit,
// error or Ctrl-C; /proc readers for node-wide and per-process CPU and memory.
import { spawn, execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const t0 = Date.now();
/** progress line on stderr, prefixed with the elapsed time */
export function log(msg) {
  const s = Math.round((Date.now() - t0) / 1000);
  const mm = String(Math.floor(s / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  process.stderr.write(`[bench ${mm}:${ss}] ${msg}\n`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- children ---------------------------------------------------------------------------

/** live children: pid -> { child, stopSignal } */
const live = new Map();

/**
 * Spawns a tracked child in its own process group (so nginx workers and the like die with
 * it). `stopSignal` is what a graceful stop sends first (SIGINT for osprey and bpftrace).
 * Keeps the last 64 KiB of stdout and stderr in child.outText / child.errText.
 */
export function spawnTracked(cmd, args, { stopSignal = 'SIGTERM', env, cwd } = {}) {
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env, cwd });
  child.outText = '';
  child.errText = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => (child.outText = (child.outText + d).slice(-65536)));
  child.stderr.on('data', (d) => (child.errText = (child.errText + d).slice(-65536)));
  child.exited = new Promise((resolve) => {
    // 'close' comes after the output is fully read ('exit' may come before the last chunk);
    // if a leftover grandchild keeps the pipes open, give up waiting after 2 s
    child.on('exit', (code, signal) => {
      live.delete(child.pid);
      const t = setTimeout(() => resolve({ code, signal }), 2000);
      child.on('close', () => {
        clearTimeout(t);
        resolve({ code, signal });
      });
    });
    child.on('error', (err) => {
      live.delete(child.pid);
      child.spawnError = err;
      resolve({ code: -1, signal: null, error: err });
    });
  });
  if (child.pid) live.set(child.pid, { child, stopSignal });
  return child;
}

function signalGroup(pid, sig) {
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      /* gone */
    }
  }
}

/** graceful stop: stopSignal to the leader, then SIGKILL to the group after timeoutMs */
export async function stopChild(child, { signal, timeoutMs = 10_000 } = {}) {
  if (!child || child.exitCode !== null || child.signalCode !== null || !live.has(child.pid)) return child?.exited;
  const sig = signal ?? live.get(child.pid)?.stopSignal ?? 'SIGTERM';
  try {
    process.kill(child.pid, sig);
  } catch {
    /* gone */
  }
  const t = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), timeoutMs);
  const res = await child.exited;
  clearTimeout(t);
  // leftovers of the group (nginx workers) go too
  signalGroup(child.pid, 'SIGKILL');
  return res;
}

/** stops every live child gracefully (in parallel), SIGKILL after timeoutMs */
export async function stopAll(timeoutMs = 8000) {
  await Promise.all([...live.values()].map(({ child }) => stopChild(child, { timeoutMs })));
}

let installed = false;
/** On Ctrl-C/SIGTERM: stop children gracefully, exit 130. On any exit: SIGKILL what is left. */
export function installCleanup() {
  if (installed) return;
  installed = true;
  let stopping = false;
  const onSignal = (sig) => {
    if (stopping) {
      for (const pid of live.keys()) signalGroup(pid, 'SIGKILL');
      process.exit(130);
    }
    stopping = true;
    log(`${sig}: stopping ${live.size} child process(es)`);
    stopAll(5000).finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => {
    for (const pid of live.keys()) signalGroup(pid, 'SIGKILL');
  });
}

/** resolves with the first line of the child's stream matching re; rejects on exit or timeout */
export function waitForLine(child, stream, re, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const src = stream === 'stdout' ? child.stdout : child.stderr;
    let buf = '';
    const done = (err, v) => {
      clearTimeout(timer);
      src.off('data', onData);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(v);
    };
    const onData = (d) => {
      buf += d;
      const m = re.exec(buf);
      if (m) done(undefined, m);
    };
    const onExit = (code, sig) =>
      done(new Error(`${what} exited (${code ?? sig}) before ready: ${(child.errText || child.outText).trim().slice(-800)}`));
    const timer = setTimeout(
      () => done(new Error(`${what} not ready after ${timeoutMs} ms: ${(child.errText || child.outText).trim().slice(-800)}`)),
      timeoutMs,
    );
    src.on('data', onData);
    child.on('exit', onExit);
    if (child.spawnError) onExit(-1, child.spawnError.message);
  });
}

/** runs a command to completion (tracked, killed after timeoutMs); resolves { code, out, err } */
export async function runTracked(cmd, args, timeoutMs, opts = {}) {
  const child = spawnTracked(cmd, args, opts);
  const timer = setTimeout(() => stopChild(child, { signal: 'SIGTERM', timeoutMs: 2000 }), timeoutMs);
  const res = await child.exited;
  clearTimeout(timer);
  if (res.error) throw res.error;
  return { code: res.code, signal: res.signal, out: child.outText, err: child.errText };
}

/** a TCP port free on 127.0.0.1 right now */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
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
