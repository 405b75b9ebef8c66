// Shared fixtures for end-to-end tests: a running capture that keeps decoded
// events, real server processes, free ports and polling with deadlines.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { Capture, decodeBatch, formatAddr, type CaptureOptions, type DecodeStats, type KernelEvent } from '../src/kernel/index.js';

export interface SeenEvent {
  op: KernelEvent['op'];
  flags: number;
  pid: number;
  tid: number;
  fd: number;
  connId: number;
  bytes: number;
  role: number;
  local: string;
  remote: string;
  comm: string;
  data: string;
  ts: number;
}

export class Recorder {
  readonly events: SeenEvent[] = [];
  readonly stats: DecodeStats = { records: 0, malformed: 0, unknownOp: 0 };
  cap!: Capture;

  static open(opts: Omit<CaptureOptions, 'onBatch'> = {}): Recorder {
    const r = new Recorder();
    r.cap = Capture.open({
      ...opts,
      pollMs: opts.pollMs ?? 20,
      onBatch: (buf) =>
        decodeBatch(
          buf,
          r.cap.monoBase,
          (e) =>
            r.events.push({
              op: e.op,
              flags: e.flags,
              pid: e.pid,
              tid: e.tid,
              fd: e.fd,
              connId: e.connId,
              bytes: e.bytes,
              role: e.role,
              local: formatAddr(e.family, e.laddr, e.lport),
              remote: formatAddr(e.family, e.raddr, e.rport),
              comm: e.comm,
              data: e.data.toString('latin1'),
              ts: e.ts,
            }),
          r.stats,
        ),
    });
    return r;
  }

  of(pid: number): SeenEvent[] {
    return this.events.filter((e) => e.pid === pid);
  }

  async close(): Promise<void> {
    await this.cap.close();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** polls until fn returns a truthy value or the deadline passes (then throws with what) */
export async function waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

export async function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect({ port, host });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export interface Proc {
  child: ChildProcess;
  pid: number;
  stderr: () => string;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** starts a real process and waits until it accepts TCP on port */
export async function startServer(cmd: string, args: string[], port: number, host = '127.0.0.1', env?: NodeJS.ProcessEnv): Promise<Proc> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  live.add(child);
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const done = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 2000);
    await done;
    clearTimeout(t);
    live.delete(child);
  };
  const deadline = Date.now() + 10000;
  while (!(await portOpen(port, host))) {
    if (child.exitCode !== null) throw new Error(`${cmd} exited early (${child.exitCode}): ${err}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${cmd} did not listen on ${host}:${port}: ${err}`);
    }
    await sleep(30);
  }
  return { child, pid: child.pid!, stderr: () => err, stop };
}

export interface RunResult {
  code: number | null;
  pid: number;
  stdout: string;
  stderr: string;
}

/** runs a real client process to completion */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(t);
      live.delete(child);
      resolve({ code, pid: child.pid!, stdout, stderr });
    });
    // a program that exits without reading stdin makes this EPIPE: not an error here
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}
