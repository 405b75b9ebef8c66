// Shared fixtures for end-to-end tests: a running capture that keeps decoded events, and
// (from src/proc) real server processes, free ports and polling with deadlines.
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { sleep, spawnChild, type Child } from '../src/proc/index.js';
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
  /** runtime context (KernelEvent.rtx) */
  rtx: number;
  /** the kernel's linking note (KernelEvent.link, LinkNote bits) */
  link: number;
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
              rtx: e.rtx,
              link: e.link,
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

// Starting and stopping processes, ports and waiting live in src/proc (the demo and the
// benchmarks use them too); the tests keep importing them from here.
export { freePort, portOpen, run, sleep, startServer, waitFor, type RunResult, type StartedProcess as Proc } from '../src/proc/index.js';

/** bin/osprey, as a user runs it */
export const OSPREY = fileURLToPath(new URL('../../bin/osprey', import.meta.url));

export interface OspreyUp {
  child: Child;
  pid: number;
  /** http://host:port it listens on */
  url: string;
  /** what it wrote to stderr (its progress lines) */
  err(): string;
  /** SIGINT (flush and exit), SIGKILL after 10 s; resolves with the exit code */
  stop(): Promise<number | null>;
}

/** a span as /api/osprey/spans returns it (the fields the tests read) */
export interface SpanJson {
  startTimeUnixNano?: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: string;
  status: string;
  resource: Record<string, unknown>;
  attributes: Record<string, unknown>;
}

/**
 * Reads a running `osprey up` over its HTTP API (`up()` gives it once started): `get` a path
 * (asserting 200), `spans` matching a TraceQL query, `poll` until f gives a value (the error
 * carries osprey's and `moreLog()`'s last output), `metric` reads one series from /metrics text.
 */
export function ospreyApi(up: () => OspreyUp, moreLog: () => string = () => '') {
  const get = async (path: string): Promise<string> => {
    const r = await fetch(`${up().url}${path}`);
    const text = await r.text();
    assert.equal(r.status, 200, `${path}: ${text}`);
    return text;
  };
  const spans = async (q: string): Promise<SpanJson[]> =>
    (JSON.parse(await get(`/api/osprey/spans?since=10m&limit=1000&q=${encodeURIComponent(q)}`)) as { spans: SpanJson[] }).spans;
  const poll = async <T>(what: string, f: () => Promise<T | undefined>, ms = 30_000): Promise<T> => {
    const end = Date.now() + ms;
    for (;;) {
      const v = await f();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${up().err().slice(-2000)}\n${moreLog().slice(-2000)}`);
      await sleep(250);
    }
  };
  const metric = (text: string, series: string): number => {
    const m = new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\d+)$`, 'm').exec(text);
    return m ? Number(m[1]) : NaN;
  };
  return { get, spans, poll, metric };
}

/** starts `osprey up ARGS` and waits until it listens (the probes are attached by then) */
export async function ospreyUp(args: string[], env?: Record<string, string | undefined>): Promise<OspreyUp> {
  const child = await spawnChild(OSPREY, ['up', ...args], { stopSignal: 'SIGINT', stopGraceMs: 10_000, ...(env ? { env } : {}) });
  const stop = async () => {
    await child.stop();
    return (await child.exit).code;
  };
  try {
    // a guard, not a timing target: the verifier takes a few seconds on a quiet machine and
    // several times that when parallel suites load the two cores
    const m = await child.waitForOutput('stderr', /listening on (http:\/\/\S+)/, 120_000);
    return { child, pid: child.pid, url: m[1]!, err: () => child.stderr(), stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
