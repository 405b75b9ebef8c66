// Start real processes for the demo and the end-to-end tests, robustly:
// - each child runs in its own process group (session), so stop() also reaches its children
//   (nginx workers) and a SIGKILL fallback leaves no orphans;
// - start waits until the child (or one of its group) holds a LISTEN socket on the port and the
//   port accepts a TCP connection, failing fast with the child's last output if it exits;
// - every child is tracked and SIGKILLed (whole group) when this process exits, also on
//   SIGINT/SIGTERM/SIGHUP when nobody else handles those signals.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { createInterface } from 'node:readline';

export interface StartProcessOptions {
  /** Short name, used in log lines and errors. */
  name: string;
  cmd: string;
  args?: string[];
  /** Merged over this process's environment; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  /** Port the process will listen on; omit for processes that do not listen (then ready = spawned). */
  port?: number;
  /** Host to probe (default 127.0.0.1). */
  host?: string;
  /** After the port accepts connections, GET this path until it answers with a status < 500. */
  readyPath?: string;
  cwd?: string;
  /** Readiness timeout (default 10 000 ms). */
  timeoutMs?: number;
  /** Receives every stdout/stderr line of the child as "<name>: <line>". */
  log?: (line: string) => void;
}

export interface StartedProcess {
  pid: number;
  name: string;
  /** The port waited for, 0 when none was given. */
  port: number;
  /** SIGTERM to the process group, SIGKILL after 2 s; resolves once the child and its group are gone. */
  stop(): Promise<void>;
  /** The last lines the child wrote (stdout and stderr). */
  output(): string[];
  /** True once the child itself has exited. */
  readonly exited: boolean;
  /** Resolves with the exit code (or signal name) when the child exits. */
  readonly exit: Promise<number | string>;
}

const STOP_GRACE_MS = 2000;
const DEFAULT_TIMEOUT_MS = 10_000;
const KEEP_LINES = 40;

// Variables that must not leak from the host into the services: a parent's OTEL_SERVICE_NAME
// would name every child after the parent; NODE_TEST_CONTEXT would make a node child talk the
// test runner's protocol.
const SCRUBBED_ENV = ['OTEL_SERVICE_NAME', 'OTEL_RESOURCE_ATTRIBUTES', 'NODE_TEST_CONTEXT'];

interface Tracked {
  pid: number;
  child: ChildProcess;
}
const tracked = new Set<Tracked>();
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

function killAllSync(): void {
  for (const t of tracked) killGroup(t.pid, 'SIGKILL');
  tracked.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      // Someone else handles this signal (e.g. `osprey up` flushing): leave the decision to exit to
      // them; the 'exit' hook still kills our children.
      if (process.listenerCount(sig) > 1) return;
      killAllSync();
      process.removeListener(sig, handler);
      process.kill(process.pid, sig); // default action, with the conventional exit status
    };
    process.on(sig, handler);
  }
}

/** State letter of /proc/<pid>/stat, undefined when the process does not exist. */
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

/** True when pid exists and is not a zombie (a zombie has exited; it only waits to be reaped). */
export function isAlive(pid: number): boolean {
  const st = procState(pid);
  if (st) return st.state !== 'Z' && st.state !== 'X';
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function allPids(): number[] {
  try {
    return readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .map(Number);
  } catch {
    return [];
  }
}

/** Live (non-zombie) processes whose parent is `pid`. */
export function childPids(pid: number): number[] {
  return allPids().filter((p) => {
    const st = procState(p);
    return st !== undefined && st.ppid === pid && st.state !== 'Z' && st.state !== 'X';
  });
}

/** Live (non-zombie) members of process group `pgid`. */
export function groupPids(pgid: number): number[] {
  return allPids().filter((p) => {
    const st = procState(p);
    return st !== undefined && st.pgrp === pgid && st.state !== 'Z' && st.state !== 'X';
  });
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
 * another process took the port and our probe would talk to it. True when /proc cannot tell.
 */
function groupListensOn(pgid: number, port: number): boolean | undefined {
  const inodes = listenInodes(port);
  if (inodes === undefined) return true;
  if (inodes.size === 0) return false;
  if (ownsSocket(pgid, inodes)) return true;
  if (groupPids(pgid).some((p) => ownsSocket(p, inodes))) return true;
  return undefined; // someone listens, but not us
}

function canConnect(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
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

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Start a process and wait until it is ready (see StartProcessOptions). Rejects with its last output on failure. */
export async function startProcess(opts: StartProcessOptions): Promise<StartedProcess> {
  installHooks();
  const host = opts.host ?? '127.0.0.1';
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !SCRUBBED_ENV.includes(k)) env[k] = v;
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }

  const child = spawn(opts.cmd, opts.args ?? [], {
    cwd: opts.cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // own session and process group: stop() signals the whole group
  });

  const lines: string[] = [];
  const onLine = (line: string): void => {
    lines.push(line);
    if (lines.length > KEEP_LINES) lines.shift();
    opts.log?.(`${opts.name}: ${line}`);
  };
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', onLine);
  }

  const spawned = await new Promise<Error | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined));
    child.once('error', (err) => resolve(err));
  });
  if (spawned || child.pid === undefined) {
    throw new Error(`${opts.name}: cannot start ${opts.cmd}: ${spawned?.message ?? 'no pid'}`);
  }
  const pid = child.pid;
  const entry: Tracked = { pid, child };
  tracked.add(entry);

  let exited = false;
  const exit = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = true;
      resolve(code ?? signal ?? 'unknown');
    });
  });

  // Don't let the children (or their pipes) keep this process alive: the 'exit' hook kills them.
  child.unref();
  for (const s of [child.stdout, child.stderr]) (s as unknown as { unref?: () => void } | null)?.unref?.();

  const lastOutput = (): string => {
    const tail = lines.slice(-15);
    return tail.length ? `\n  last output:\n    ${tail.join('\n    ')}` : '\n  (no output)';
  };

  let stopping: Promise<void> | undefined;
  const waitGone = async (ms: number): Promise<boolean> => {
    const deadline = Date.now() + ms;
    for (;;) {
      if (exited && groupPids(pid).length === 0) return true;
      if (Date.now() >= deadline) return false;
      await (exited ? sleep(25) : Promise.race([sleep(25), exit]));
    }
  };
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      killGroup(pid, 'SIGTERM');
      if (!(await waitGone(STOP_GRACE_MS))) {
        killGroup(pid, 'SIGKILL');
        await waitGone(STOP_GRACE_MS);
      }
      tracked.delete(entry);
    })();
    return stopping;
  };

  const started: StartedProcess = {
    pid,
    name: opts.name,
    port: opts.port ?? 0,
    stop,
    output: () => [...lines],
    get exited() {
      return exited;
    },
    exit,
  };

  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const fail = async (why: string): Promise<never> => {
    await stop();
    await Promise.race([closed, sleep(300)]); // let the last output lines arrive
    throw new Error(`${opts.name} (${[opts.cmd, ...(opts.args ?? [])].join(' ')}): ${why}${lastOutput()}`);
  };

  if (opts.port === undefined) {
    // Nothing to probe: make sure it does not die right away (bad arguments, missing file).
    await Promise.race([sleep(150), exit]);
    if (exited) return fail(`exited with ${await exit} right after start`);
    return started;
  }

  const port = opts.port;
  const deadline = Date.now() + timeoutMs;
  let foreign = false;
  for (;;) {
    if (exited) return fail(`exited with ${await exit} before listening on ${host}:${port}`);
    const owns = groupListensOn(pid, port);
    foreign = owns === undefined;
    if (owns === true && (await canConnect(host, port))) break;
    if (Date.now() >= deadline) {
      return fail(
        foreign
          ? `port ${port} is held by another process, not by pid ${pid}`
          : `not accepting connections on ${host}:${port} after ${timeoutMs} ms`,
      );
    }
    await Promise.race([sleep(50), exit]);
  }

  if (opts.readyPath !== undefined) {
    let status = 0;
    for (;;) {
      if (exited) return fail(`exited with ${await exit} before ${opts.readyPath} answered`);
      status = await httpStatus(host, port, opts.readyPath);
      if (status > 0 && status < 500) break;
      if (Date.now() >= deadline) return fail(`GET ${opts.readyPath} still answers ${status || 'nothing'} after ${timeoutMs} ms`);
      await Promise.race([sleep(50), exit]);
    }
  }
  return started;
}

const handedOut = new Set<number>();

/** A TCP port on 127.0.0.1 that is free right now (never the same one twice in this process). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (port > 0 && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: no free port found');
}

/** Stop several processes concurrently; never rejects. */
export async function stopAll(procs: Iterable<StartedProcess | undefined>): Promise<void> {
  await Promise.allSettled([...procs].map((p) => (p ? p.stop() : Promise.resolve())));
}
