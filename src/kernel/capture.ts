// Capture: the loaded kernel side. open -> set rodata -> load -> filters ->
// attach -> poll, with one cleanup path; each failure names its stage.
import { KERNEL_COUNTERS, MAX_CAPTURE, SummarizeMode, type KernelCounter } from './abi.js';
import { KernelError } from './errors.js';
import { nativeAddon, type NativeAddon, type NativeError, type NativeHandle } from './native.js';
import { preflight, type PreflightReport } from './preflight.js';

export interface CaptureOptions {
  /** bytes of each payload to capture (default 256, at most 4096) */
  captureSize?: number;
  /** ring buffer size in bytes, a power of two >= 4096 (default 8 MiB) */
  ringBytes?: number;
  /** wake the reader once this many bytes wait (default 256 KiB); it also drains every pollMs */
  wakeupBytes?: number;
  pollMs?: number;
  /** the reader hands JS at most this many bytes at once (default 1 MiB) */
  batchBytes?: number;
  /** trace only these processes (tgids) */
  pids?: number[];
  /** trace only these cgroups (ids as in bpf_get_current_cgroup_id) */
  cgroupIds?: bigint[];
  /**
   * HTTP/1 in the kernel: 'off' sends every call (default), 'on' one record per simple
   * exchange (bpf/lib/http1x.h), 'shadow' both, flagged, for the equivalence test
   */
  summarize?: keyof typeof SummarizeMode;
  /** leave out this process (default: the agent's own pid) */
  excludePid?: number;
  /**
   * called on the JS thread with one buffer of many records. The buffer is only valid
   * during the call (its memory is reused for a later batch): copy what you keep.
   */
  onBatch: (batch: Buffer) => void;
}

/** batch buffers the reader fills in turn, and the room beyond batchBytes each keeps for the last record */
const SLOTS = 4;
const SLOT_ROOM = 32 * 1024;

/** tracepoints without which there is nothing to capture (`osprey doctor` checks them too) */
export const REQUIRED_SYSCALLS = ['read', 'write', 'accept4', 'connect', 'close'];
const REQUIRED = REQUIRED_SYSCALLS;

export interface ProgramState {
  name: string;
  tracepoint: string;
  attached: boolean;
  error?: string;
}

/** where a uprobe goes: a file and a function in it (by symbol, or by file offset) */
export interface UprobeTarget {
  /** a program of the loaded object with a `uprobe`/`uretprobe` section (bpf/lib/openssl.h, ...) */
  program: string;
  /** the file as this process can open it (for another mount namespace: /proc/<pid>/root/...) */
  path: string;
  /** file offset of the function (what ELF symbol tables give, see elfSymbols) */
  offset?: number;
  /** or its symbol name, resolved by libbpf */
  symbol?: string;
  /** a uretprobe: runs when the function returns */
  retprobe?: boolean;
  /** only this process (default -1: every process mapping the file) */
  pid?: number;
  /** what bpf_get_attach_cookie() returns in the program (default 0) */
  cookie?: number;
}

export type CaptureCounters = Record<KernelCounter, number> & {
  handoff_dropped_bytes: number;
  batches: number;
};

export class Capture {
  readonly programs: ProgramState[];
  readonly preflight: PreflightReport;
  /** CLOCK_MONOTONIC at start; event timestamps are ns since this */
  readonly monoBase: bigint;
  /** CLOCK_REALTIME - CLOCK_MONOTONIC: add to (monoBase + ts) for unix ns */
  readonly clockOffset: bigint;
  readonly options: Readonly<Required<Omit<CaptureOptions, 'pids' | 'cgroupIds' | 'onBatch'>>>;
  #native: NativeAddon;
  #h: NativeHandle | undefined;
  #closed = false;

  private constructor(
    native: NativeAddon,
    h: NativeHandle,
    programs: ProgramState[],
    pf: PreflightReport,
    options: Capture['options'],
  ) {
    this.#native = native;
    this.#h = h;
    this.programs = programs;
    this.preflight = pf;
    this.options = options;
    this.monoBase = native.monotonicNow();
    this.clockOffset = native.clockOffset();
  }

  static open(opts: CaptureOptions): Capture {
    const pf = preflight();
    const native = nativeAddon();
    const options = {
      captureSize: opts.captureSize ?? 256,
      ringBytes: opts.ringBytes ?? 8 << 20,
      wakeupBytes: opts.wakeupBytes ?? 256 << 10,
      pollMs: opts.pollMs ?? 50,
      batchBytes: opts.batchBytes ?? 1 << 20,
      excludePid: opts.excludePid ?? process.pid,
      summarize: opts.summarize ?? 'off',
    };
    if (!Number.isInteger(options.captureSize) || options.captureSize < 0 || options.captureSize > MAX_CAPTURE) {
      throw new RangeError(`captureSize must be an integer in 0..${MAX_CAPTURE}, got ${options.captureSize}`);
    }
    const rb = options.ringBytes;
    if (!Number.isInteger(rb) || rb < 4096 || (rb & (rb - 1)) !== 0) {
      throw new RangeError(`ringBytes must be a power of two >= 4096, got ${rb}`);
    }
    const h = stage('open', () => native.open());
    try {
      native.setRodata(h, {
        selfTgid: options.excludePid,
        captureSize: options.captureSize,
        wakeupBytes: Math.min(options.wakeupBytes, rb / 2),
        filterPids: opts.pids?.length ? 1 : 0,
        filterCgroups: opts.cgroupIds?.length ? 1 : 0,
        summarize: SummarizeMode[options.summarize],
      });
      native.setMapSize(h, 'events', rb);
      stage('load', () => native.load(h));
      for (const pid of opts.pids ?? []) {
        const k = Buffer.alloc(4);
        k.writeUInt32LE(pid);
        native.mapUpdate(h, 'pid_filter', k, Buffer.from([1]));
      }
      for (const id of opts.cgroupIds ?? []) {
        const k = Buffer.alloc(8);
        k.writeBigUInt64LE(id);
        native.mapUpdate(h, 'cgroup_filter', k, Buffer.from([1]));
      }
      const programs = attachAll(native, h);
      const cap = new Capture(native, h, programs, pf, options);
      // a few reusable batch buffers: a fresh (external) buffer per batch made V8 run a
      // full GC about every second under load
      const slots = Array.from({ length: SLOTS }, () => Buffer.allocUnsafeSlow(options.batchBytes + SLOT_ROOM));
      const onBatch = opts.onBatch;
      native.start(
        h,
        (slotOrBatch, length) => {
          if (typeof slotOrBatch !== 'number') return onBatch(slotOrBatch);
          try {
            onBatch(slots[slotOrBatch]!.subarray(0, length));
          } finally {
            // after close the reader is gone and the handle with it
            if (cap.#h) native.release(h, slotOrBatch);
          }
        },
        options.pollMs,
        options.batchBytes,
        slots,
      );
      return cap;
    } catch (err) {
      native.close(h);
      throw err;
    }
  }

  /** names of the uprobe programs the object carries (attached on demand, never at open) */
  get uprobePrograms(): string[] {
    if (!this.#h) return [];
    return this.#native
      .programs(this.#h)
      .filter((p) => /^uprobe|^uretprobe/.test(p.section))
      .map((p) => p.name);
  }

  /**
   * Attaches one uprobe; returns its link id for detachUprobe. Throws a KernelError naming
   * the program and file (missing symbol, file gone, no uprobe support).
   */
  attachUprobe(t: UprobeTarget): number {
    if (!this.#h) throw new Error('capture is closed');
    const target = t.symbol ?? t.offset;
    if (target === undefined) throw new RangeError('a uprobe needs an offset or a symbol');
    try {
      return this.#native.attachUprobe(this.#h, t.program, t.path, target, t.retprobe ?? false, t.pid ?? -1, t.cookie ?? 0);
    } catch (err) {
      const e = err as NativeError;
      throw new KernelError(
        'uprobe-failed',
        `attaching ${t.program} to ${t.path}${t.symbol ? `:${t.symbol}` : `+0x${(t.offset ?? 0).toString(16)}`} failed: ${e.message}`,
        'check that the file exists and is an ELF file, and that uprobes work (`osprey doctor`)',
        { cause: err },
      );
    }
  }

  /** detaches a uprobe; false when it was not attached (idempotent) */
  detachUprobe(link: number): boolean {
    if (!this.#h) return false;
    return this.#native.detachUprobe(this.#h, link);
  }

  /**
   * Detaches uprobes off the JS thread (each bpf_link__destroy waits for an RCU grace period:
   * a file's links took 1-3 s here one by one). Resolves with how long that took, ms, once
   * every link is gone; until then the probes may still fire. Unknown ids are skipped.
   */
  detachUprobes(links: readonly number[]): Promise<number> {
    // closed: the capture's close detached them
    if (!this.#h || links.length === 0) return Promise.resolve(0);
    return new Promise((resolve) => {
      this.#native.detachUprobesAsync(this.#h!, [...links], resolve);
    });
  }

  /**
   * How far the reader has drained: `batches` handed to onBatch so far, and `idleAt`, the
   * capture-clock ns of its last round that found the ring buffer empty (-Infinity before
   * the first). Once onBatch has received that many batches, every record committed
   * before `idleAt` has been delivered.
   */
  drained(): { batches: number; idleAt: number } {
    if (!this.#h) return { batches: 0, idleAt: -Infinity };
    const [batches, idle] = this.#native.drained(this.#h);
    return { batches, idleAt: idle === 0 ? -Infinity : idle - Number(this.monoBase) };
  }

  counters(): CaptureCounters {
    if (!this.#h) throw new Error('capture is closed');
    const c = this.#native.counters(this.#h);
    const out = { handoff_dropped_bytes: c.handoffDroppedBytes, batches: c.batches } as CaptureCounters;
    KERNEL_COUNTERS.forEach((name, i) => (out[name] = c.kernel[i] ?? 0));
    return out;
  }

  /** writes one entry of a kernel map (key and value in the map's C layout) */
  mapUpdate(map: string, key: Buffer, value: Buffer): void {
    if (!this.#h) throw new Error('capture is closed');
    this.#native.mapUpdate(this.#h, map, key, value);
  }

  /** reads one entry of a kernel map into `value`; false when the key is absent */
  mapLookup(map: string, key: Buffer, value: Buffer): boolean {
    if (!this.#h) throw new Error('capture is closed');
    return this.#native.mapLookup(this.#h, map, key, value);
  }

  /** deletes one entry of a kernel map; false when it was absent */
  mapDelete(map: string, key: Buffer): boolean {
    if (!this.#h) throw new Error('capture is closed');
    return this.#native.mapDelete(this.#h, map, key);
  }

  /**
   * A process exited: the kernel's linking state of it goes (bpf/lib/http1x.h, hx_procs, which
   * nothing in the kernel ever empties). Never throws: a closed capture has nothing to forget.
   */
  forgetProcess(pid: number): void {
    if (!this.#h) return;
    const key = Buffer.alloc(4);
    key.writeUInt32LE(pid);
    this.#native.mapDelete(this.#h, 'hx_procs', key);
  }

  /** entries in a kernel map (conns, socks, not_tcp): for leak checks and status (the calls in
   * flight are in task storage, which has no keys to count) */
  mapEntries(map: 'conns' | 'socks' | 'not_tcp' | 'tls_sessions' | 'tls_calls' | 'tls_threads' | 'go_reads' | 'hx_procs'): number {
    if (!this.#h) throw new Error('capture is closed');
    return this.#native.mapCount(this.#h, map);
  }

  /** unix-epoch ns of an event timestamp */
  unixNano(ts: number): bigint {
    return this.monoBase + this.clockOffset + BigInt(Math.round(ts));
  }

  /**
   * Detaches, drains what the kernel already captured into onBatch, frees
   * everything. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed || !this.#h) return;
    this.#closed = true;
    const h = this.#h;
    this.#native.stop(h);
    // batches queued by the reader's final drain are delivered on the next turns
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    this.#native.close(h);
    this.#h = undefined;
  }
}

function stage<T>(name: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    const e = err as NativeError;
    const log = e.libbpfLog ? `\n${e.libbpfLog.trim().split('\n').slice(-20).join('\n')}` : '';
    throw new KernelError(
      'load-failed',
      `loading the eBPF programs failed at ${name}: ${e.message}${log}`,
      e.errno === 1 || e.errno === 13
        ? 'run as root or with CAP_BPF+CAP_PERFMON+CAP_SYS_RESOURCE'
        : 'check `dmesg` and the libbpf log above; osprey needs kernel 5.15+ with BTF',
      { cause: err },
    );
  }
}

function attachAll(native: NativeAddon, h: NativeHandle): ProgramState[] {
  const out: ProgramState[] = [];
  for (const p of native.programs(h)) {
    // uprobes are attached per file, on demand (Capture.attachUprobe)
    if (!p.section.startsWith('tracepoint/')) continue;
    const tracepoint = p.section.replace(/^tracepoint\//, '');
    try {
      native.attach(h, p.name);
      out.push({ name: p.name, tracepoint, attached: true });
    } catch (err) {
      out.push({ name: p.name, tracepoint, attached: false, error: (err as Error).message });
    }
  }
  const missing = out.filter(
    (p) => !p.attached && REQUIRED.some((r) => p.tracepoint.endsWith(`sys_enter_${r}`) || p.tracepoint.endsWith(`sys_exit_${r}`)),
  );
  if (missing.length) {
    throw new KernelError(
      'tracepoint-missing',
      `required tracepoints could not be attached: ${missing.map((p) => `${p.tracepoint} (${p.error})`).join(', ')}`,
      'osprey needs syscall tracepoints (CONFIG_FTRACE_SYSCALLS=y) and tracefs mounted at /sys/kernel/tracing',
    );
  }
  return out;
}
