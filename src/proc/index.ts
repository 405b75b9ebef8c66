// Starting and stopping real processes, free ports and waiting: the one copy the demo, the
// end-to-end tests and the benchmarks share.
// - Every child runs in its own process group (session), so stop() also reaches its children
//   (nginx workers, the program behind `sh -c`) and a SIGKILL fallback leaves no orphans.
// - startProcess() waits until the child (or one of its group) holds a LISTEN socket on the
//   port and the port accepts a TCP connection, failing fast with the child's last output.
// - Every child is tracked and SIGKILLed (whole group) when this process exits, also on
//   SIGINT/SIGTERM/SIGHUP when nobody else handles those signals.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { basename } from 'node:path';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Polls fn (every `intervalMs`) until it returns a truthy value, which it resolves with;
 * throws once `timeoutMs` has passed, naming `what`.
 */
export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 5000,
  intervalMs = 20,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

// ---- ports ------------------------------------------------------------------------------

const handedOut = new Set<string>();

/** A TCP port on `host` that is free right now (never the same one twice in this process). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.once('error', reject);
      srv.listen(0, host, () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (port > 0 && !handedOut.has(`${host} ${port}`)) {
      handedOut.add(`${host} ${port}`);
      return port;
    }
  }
  throw new Error(`freePort: no free port found on ${host}`);
}

/** Does host:port accept a TCP connection (within timeoutMs)? */
export function portOpen(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

function httpStatus(host: string, port: number, path: string, timeoutMs = 2000): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path, agent: false, timeout: timeoutMs, headers: { Connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

// ---- /proc ------------------------------------------------------------------------------

/** State, parent and process group of a process from /proc/<pid>/stat; undefined when it does not exist. */
function procState(pid: number): { state: string; ppid: number; pgrp: number } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm may contain spaces and parentheses: fields start after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0] ?? '?', ppid: Number(rest[1]), pgrp: Number(rest[2]) };
}

const living = (state: string): boolean => state !== 'Z' && state !== 'X';

/** True when pid exists and is not a zombie (a zombie has exited; it only waits to be reaped). */
export function isAlive(pid: number): boolean {
  const st = procState(pid);
  if (st) return living(st.state);
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function livePids(match: (st: { ppid: number; pgrp: number }) => boolean): number[] {
  let pids: number[];
  try {
    pids = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .map(Number);
  } catch {
    return [];
  }
  return pids.filter((p) => {
    const st = procState(p);
    return st !== undefined && living(st.state) && match(st);
  });
}

/** Live (non-zombie) processes whose parent is `pid`. */
export function childPids(pid: number): number[] {
  return livePids((st) => st.ppid === pid);
}

/** Live (non-zombie) members of process group `pgid`. */
export function groupPids(pgid: number): number[] {
  return livePids((st) => st.pgrp === pgid);
}

/** Inodes of LISTEN sockets on `port` (any address, v4 or v6); undefined if /proc/net is unreadable. */
function listenInodes(port: number): Set<string> | undefined {
  const inodes = new Set<string>();
  let readable = false;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
      readable = true;
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      const local = f[1];
      if (!local || f[3] !== '0A') continue; // 0A = TCP_LISTEN
      if (parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port && f[9]) inodes.add(f[9]);
    }
  }
  return readable ? inodes : undefined;
}

function ownsSocket(pid: number, inodes: Set<string>): boolean {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m?.[1] && inodes.has(m[1])) return true;
    } catch {
      // fd closed meanwhile
    }
  }
  return false;
}

/**
 * Does process group `pgid` hold the LISTEN socket of `port`? Guards against a port race where
 * another process took the port and our probe would talk to it. True when /proc cannot tell,
 * undefined when someone else listens.
 */
function groupListensOn(pgid: number, port: number): boolean | undefined {
  const inodes = listenInodes(port);
  if (inodes === undefined) return true;
  if (inodes.size === 0) return false;
  if (ownsSocket(pgid, inodes)) return true;
  if (groupPids(pgid).some((p) => ownsSocket(p, inodes))) return true;
  return undefined;
}

// ---- children -----------------------------------------------------------------------------

export interface SpawnOptions {
  /** Short name, used in log lines and errors (default: the command's base name). */
  name?: string;
  /**
   * Merged over this process's environment; `undefined` removes a variable. OTEL_SERVICE_NAME,
   * OTEL_RESOURCE_ATTRIBUTES and NODE_TEST_CONTEXT are not inherited (set them here to pass them).
   */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** What stop() sends first (default SIGTERM; SIGINT makes osprey and bpftrace flush). */
  stopSignal?: NodeJS.Signals;
  /** How long stop() waits after stopSignal before SIGKILL (default 2000 ms). */
  stopGraceMs?: number;
  /** Receives every stdout/stderr line of the child as "<name>: <line>". */
  log?: (line: string) => void;
  /** Written to the child's stdin, which is then closed (default: stdin is /dev/null). */
  input?: string;
  /** How much of stdout and of stderr is kept (default 64 KiB each, the latest). */
  keepBytes?: number;
  /** Let this process exit while the child runs (the exit hook kills it); default false. */
  unref?: boolean;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Child {
  readonly pid: number;
  readonly name: string;
  readonly child: ChildProcess;
  /** True once the child itself has exited. */
  readonly exited: boolean;
  /** Resolves when the child has exited and its output has been read. */
  readonly exit: Promise<ExitStatus>;
  /** The latest output (see keepBytes). */
  stdout(): string;
  stderr(): string;
  /** The child's last lines, both streams interleaved, for error messages. */
  lastLines(n?: number): string[];
  /**
   * stopSignal (or `signal`) to the process group, SIGKILL after the grace period; resolves
   * once the child and every member of its group are gone (its status: `exit`). Repeated
   * calls send their signal again, never reject.
   */
  stop(opts?: { signal?: NodeJS.Signals; graceMs?: number }): Promise<void>;
  /** Resolves with the match once the stream's output (from the start) matches re; rejects on exit or timeout. */
  waitForOutput(stream: 'stdout' | 'stderr', re: RegExp, timeoutMs: number): Promise<RegExpExecArray>;
}

// Variables that must not leak from this process into children: a parent's OTEL_SERVICE_NAME
// would name every child after the parent; NODE_TEST_CONTEXT would make a node child talk the
// test runner's protocol.
const SCRUBBED_ENV = ['OTEL_SERVICE_NAME', 'OTEL_RESOURCE_ATTRIBUTES', 'NODE_TEST_CONTEXT'];
const DEFAULT_GRACE_MS = 2000;
const KEEP_LINES = 40;

const tracked = new Set<Child>();
let hooksInstalled = false;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** SIGKILL to every tracked child's group, at once (for exit paths that cannot wait). */
export function killAll(): void {
  for (const c of tracked) killGroup(c.pid, 'SIGKILL');
  tracked.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      // Someone else handles this signal (e.g. `osprey up` flushing, a benchmark stopping its
      // children gracefully): leave the decision to exit to them; the 'exit' hook still kills.
      if (process.listenerCount(sig) > 1) return;
      killAll();
      process.removeListener(sig, handler);
      process.kill(process.pid, sig); // default action, with the conventional exit status
    };
    process.on(sig, handler);
  }
}

function childEnv(extra: Record<string, string | undefined> | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !SCRUBBED_ENV.includes(k)) env[k] = v;
  for (const [k, v] of Object.entries(extra ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Starts a tracked child in its own process group; rejects when it cannot be started (no such command). */
export async function spawnChild(cmd: string, args: string[] = [], opts: SpawnOptions = {}): Promise<Child> {
  installHooks();
  const name = opts.name ?? basename(cmd);
  const keep = opts.keepBytes ?? 64 * 1024;
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: childEnv(opts.env),
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    detached: true, // own session and process group: stop() signals the whole group
  });

  const text = { stdout: '', stderr: '' };
  const lines: string[] = [];
  const partial = { stdout: '', stderr: '' };
  const watchers = new Set<() => void>();
  for (const stream of ['stdout', 'stderr'] as const) {
    const s = child[stream];
    if (!s) continue;
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      text[stream] += d;
      if (text[stream].length > keep) text[stream] = text[stream].slice(-keep);
      const parts = (partial[stream] + d).split('\n');
      partial[stream] = (parts.pop() ?? '').slice(-4096);
      for (const line of parts) {
        lines.push(line);
        if (lines.length > KEEP_LINES) lines.shift();
        opts.log?.(`${name}: ${line}`);
      }
      for (const w of watchers) w();
    });
  }
  if (opts.input !== undefined) {
    // a program that exits without reading stdin makes this EPIPE: not an error here
    child.stdin?.on('error', () => {});
    child.stdin?.end(opts.input);
  }

  const spawnError = await new Promise<Error | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined));
    child.once('error', (err) => resolve(err));
  });
  if (spawnError || child.pid === undefined) throw new Error(`${name}: cannot start ${cmd}: ${spawnError?.message ?? 'no pid'}`);
  const pid = child.pid;

  let exited = false;
  let finished = false; // exited, and its output read
  const exit = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = true;
      // 'close' comes once the output is fully read; a grandchild holding the pipes must not
      // keep us waiting for it
      const t = setTimeout(() => resolve({ code, signal }), 2000);
      child.once('close', () => {
        clearTimeout(t);
        resolve({ code, signal });
      });
    });
  }).then((st) => {
    finished = true;
    for (const w of watchers) w();
    return st;
  });

  if (opts.unref) {
    child.unref();
    for (const s of [child.stdout, child.stderr]) (s as unknown as { unref?: () => void }).unref?.();
  }

  const gone = async (ms: number): Promise<boolean> => {
    const deadline = Date.now() + ms;
    for (;;) {
      if (exited && groupPids(pid).length === 0) return true;
      if (Date.now() >= deadline) return false;
      await (exited ? sleep(25) : Promise.race([sleep(25), exit]));
    }
  };

  const c: Child = {
    pid,
    name,
    child,
    get exited() {
      return exited;
    },
    exit,
    stdout: () => text.stdout,
    stderr: () => text.stderr,
    lastLines: (n = 15) => [...lines.slice(-n), ...[partial.stdout, partial.stderr].filter((l) => l !== '')],
    async stop({ signal = opts.stopSignal ?? 'SIGTERM', graceMs = opts.stopGraceMs ?? DEFAULT_GRACE_MS } = {}) {
      if (!(exited && groupPids(pid).length === 0)) {
        killGroup(pid, signal);
        if (!(await gone(graceMs))) {
          killGroup(pid, 'SIGKILL');
          await gone(DEFAULT_GRACE_MS);
        }
      }
      tracked.delete(c);
    },
    waitForOutput(stream, re, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = re.exec(text[stream]);
          if (m) finish(undefined, m);
          else if (finished) finish(new Error(`${name} exited before its ${stream} matched ${re}${tail()}`));
        };
        const timer = setTimeout(() => finish(new Error(`${name}: ${stream} did not match ${re} within ${timeoutMs} ms${tail()}`)), timeoutMs);
        const finish = (err: Error | undefined, m?: RegExpExecArray): void => {
          clearTimeout(timer);
          watchers.delete(check);
          if (err) reject(err);
          else resolve(m!);
        };
        watchers.add(check);
        check();
      });
    },
  };
  const tail = (): string => lastOutput(c);
  tracked.add(c);
  void exit.then(() => {
    if (groupPids(pid).length === 0) tracked.delete(c);
  });
  return c;
}

/** The child's last lines, for an error message. */
function lastOutput(c: Child): string {
  const last = c.lastLines();
  return last.length ? `\n  last output:\n    ${last.join('\n    ')}` : '\n  (no output)';
}

/** Stops the given children (default: every tracked one) concurrently; never rejects. */
export async function stopAll(children?: Iterable<{ stop(): Promise<unknown> } | undefined>): Promise<void> {
  await Promise.allSettled([...(children ?? tracked)].map((c) => (c ? c.stop() : Promise.resolve())));
}

// ---- run to completion -----------------------------------------------------------------------

export interface RunOptions extends Pick<SpawnOptions, 'env' | 'cwd' | 'input'> {
  /** stopped (SIGTERM, SIGKILL 2 s later) after this long (default 30 s) */
  timeoutMs?: number;
}

export interface RunResult extends ExitStatus {
  pid: number;
  stdout: string;
  stderr: string;
  /** the child was stopped because it ran longer than timeoutMs */
  timedOut: boolean;
}

/** Runs a real program to completion; all its output is kept. Rejects only when it cannot start. */
export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const c = await spawnChild(cmd, args, { env: opts.env, cwd: opts.cwd, input: opts.input ?? '', keepBytes: Infinity });
  let timedOut = false;
  const t = setTimeout(() => {
    timedOut = true;
    void c.stop();
  }, opts.timeoutMs ?? 30_000);
  const st = await c.exit;
  clearTimeout(t);
  await c.stop(); // whatever it left in its group
  return { ...st, pid: c.pid, stdout: c.stdout(), stderr: c.stderr(), timedOut };
}

// ---- servers ----------------------------------------------------------------------------------

export interface StartProcessOptions extends SpawnOptions {
  name: string;
  cmd: string;
  args?: string[];
  /** Port the process will listen on; omit for processes that do not listen (then ready = spawned and still alive). */
  port?: number;
  /** Host to probe (default 127.0.0.1). */
  host?: string;
  /** After the port accepts connections, GET this path until it answers with a status < 500. */
  readyPath?: string;
  /** Readiness timeout (default 10 000 ms). */
  timeoutMs?: number;
  /** Default true here: a server must not keep this process alive (the exit hook kills it). */
  unref?: boolean;
}

export interface StartedProcess extends Child {
  /** The port waited for, 0 when none was given. */
  readonly port: number;
}

/** Starts a process and waits until it is ready (see StartProcessOptions); on failure stops it and rejects with its last output. */
export async function startProcess(opts: StartProcessOptions): Promise<StartedProcess> {
  const { cmd, args = [], port, host = '127.0.0.1', readyPath, timeoutMs = 10_000 } = opts;
  const c = await spawnChild(cmd, args, { ...opts, unref: opts.unref ?? true });
  const started: StartedProcess = Object.assign(c, { port: port ?? 0 });

  const fail = async (why: string): Promise<never> => {
    await c.stop();
    throw new Error(`${c.name} (${[cmd, ...args].join(' ')}): ${why}${lastOutput(c)}`);
  };
  const exitCode = async (): Promise<string> => {
    const st = await c.exit;
    return String(st.code ?? st.signal);
  };

  if (port === undefined) {
    // Nothing to probe: make sure it does not die right away (bad arguments, missing file).
    await Promise.race([sleep(150), c.exit]);
    if (c.exited) return fail(`exited with ${await exitCode()} right after start`);
    return started;
  }

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (c.exited) return fail(`exited with ${await exitCode()} before listening on ${host}:${port}`);
    const owns = groupListensOn(c.pid, port);
    if (owns === true && (await portOpen(port, host))) break;
    if (Date.now() >= deadline) {
      return fail(owns === undefined ? `port ${port} is held by another process, not by pid ${c.pid}` : `not accepting connections on ${host}:${port} after ${timeoutMs} ms`);
    }
    await Promise.race([sleep(50), c.exit]);
  }

  if (readyPath !== undefined) {
    for (;;) {
      if (c.exited) return fail(`exited with ${await exitCode()} before ${readyPath} answered`);
      const status = await httpStatus(host, port, readyPath);
      if (status > 0 && status < 500) break;
      if (Date.now() >= deadline) return fail(`GET ${readyPath} still answers ${status || 'nothing'} after ${timeoutMs} ms`);
      await Promise.race([sleep(50), c.exit]);
    }
  }
  return started;
}

/** startProcess for a server on `port`, in the tests' short form. */
export function startServer(cmd: string, args: string[], port: number, host = '127.0.0.1', env?: Record<string, string | undefined>): Promise<StartedProcess> {
  return startProcess({ name: basename(cmd), cmd, args, port, host, env });
}
