// The Go runtime-context probes (bpf/lib/goprobes.h) as a probe family of the uprobe watcher
// (src/agent/tls): each Go executable gets a go_ctx_bins slot with its offsets and addresses
// and uprobes on runtime.newproc1 (+ its RETs), runtime.goexit1 and
// net/http.(*persistConn).roundTrip; each
// process running it gets a go_procs entry, which turns on the goroutine read at its calls
// (bpf/lib/goctx.h); the entry goes when the process is gone. Also answers the linker's
// question "which goroutine started this one, when, and has it ended" from the kernel's
// go_parents map.
import {
  GO_CTX_BINS,
  GO_CTX_COUNTERS,
  GO_CTX_COUNTERS_MAP,
  GO_CTX_LAYOUT,
  GO_CTX_MAP,
  GO_CTX_SIZE,
  GO_GKEY_SIZE,
  GO_PARENTS_MAP,
  GO_PARENT_SIZE,
  GO_PROCS_MAP,
  GO_PROC_LAYOUT,
  GO_PROC_SIZE,
  RT_PROCS_MAP,
  RtBit,
  type GoCtxCounter,
} from '../../kernel/index.js';
import type { MappedFile, NoProbes, ProbeFamily, ProbeSpec } from '../tls/index.js';
import { analyzeGoRuntime, isGoRuntimeSupported, type GoRuntimeInfo, type GoRuntimeUnsupportedReason } from './runtime-analyze.js';

export const GO_CTX_PROGRAMS = { newproc: 'osp_go_newproc', newprocReturn: 'osp_go_newproc_ret', exit: 'osp_go_exit', roundTrip: 'osp_go_round_trip' } as const;

/** what the family needs of the capture */
export interface GoRuntimeKernel {
  mapUpdate(map: string, key: Buffer, value: Buffer): void;
  mapLookup(map: string, key: Buffer, value: Buffer): boolean;
  mapDelete(map: string, key: Buffer): boolean;
  /**
   * CLOCK_MONOTONIC ns of the capture's epoch (Capture.monoBase): the kernel's go_parents times
   * are raw bpf_ktime_get_ns, events' times are relative to this; parentOf answers in the
   * events' clock (0 when absent, as in tests that drive the family alone)
   */
  readonly monoBase?: bigint;
}

const LEVEL: Record<GoRuntimeUnsupportedReason, NoProbes['level']> = {
  'not-elf': 'none',
  'not-go': 'none',
  stripped: 'stripped',
  'no-dwarf': 'stripped',
  unreadable: 'error',
  'bad-elf': 'error',
  'not-x86-64': 'error',
  'go-too-old': 'error',
  'go-version-unknown': 'error',
  pie: 'error',
  'tls-layout': 'error',
  layout: 'error',
  disassembly: 'error',
};

export interface GoRuntimeCounters {
  /** executables with runtime-context probes now, and their probes */
  files_now: number;
  probes_now: number;
  /** Go processes whose goroutine is read at their calls now */
  processes_now: number;
  /** executables left out because every go_ctx_bins slot was taken */
  slots_full: number;
  /** executables with the client hand-off probe (net/http's client found and laid out) */
  handoff_files_now: number;
  /** parent look-ups for the linker, and how many found a parent */
  parent_lookups: number;
  parent_found: number;
  /** errors writing or reading the kernel maps */
  map_errors: number;
}

export interface GoRuntimeFamily extends ProbeFamily {
  readonly counters: GoRuntimeCounters;
  /**
   * the goroutine that started `goid` in process `pid`, when, and when `goid` ended (0: not
   * seen ending), if recorded; times in the events' clock (ns since the capture's epoch)
   */
  parentOf(pid: number, goid: number): { parent: number; createdNs: number; exitNs: number } | undefined;
  /** the kernel side's counters (bpf/abi/goctx.h enum osp_go_counter) */
  kernelCounters(): Record<GoCtxCounter, number>;
}

export function goRuntimeProbeSpecs(info: GoRuntimeInfo, slot: number): ProbeSpec[] {
  const cookie = slot + 1;
  const f = info.newproc1;
  return [
    { program: GO_CTX_PROGRAMS.newproc, offset: f.body, retprobe: false, cookie, label: `${f.symbol} (after stack check)` },
    ...f.rets.map((offset, i) => ({ program: GO_CTX_PROGRAMS.newprocReturn, offset, retprobe: false, cookie, label: `${f.symbol} RET #${i + 1}` })),
    ...(info.goexit1 ? [{ program: GO_CTX_PROGRAMS.exit, offset: info.goexit1.body, retprobe: false, cookie, label: `${info.goexit1.symbol} (after stack check)` }] : []),
    ...(info.roundTrip ? [{ program: GO_CTX_PROGRAMS.roundTrip, offset: info.roundTrip.body, retprobe: false, cookie, label: `${info.roundTrip.symbol} (after stack check)` }] : []),
  ];
}

export function encodeGoCtx(info: GoRuntimeInfo): Buffer {
  const b = Buffer.alloc(GO_CTX_SIZE);
  const L = GO_CTX_LAYOUT;
  const o = info.offsets;
  const u64 = (field: keyof typeof L, v: number | undefined) => b.writeBigUInt64LE(BigInt(v ?? 0), L[field][0]);
  const u32 = (field: keyof typeof L, v: number | undefined) => b.writeUInt32LE(v ?? 0, L[field][0]);
  u64('itab_tcp_conn', info.itabTcpConn);
  u64('itab_tls_conn', info.itabTlsConn);
  u64('dial_conn_lo', info.dialConn?.[0]);
  u64('dial_conn_hi', info.dialConn?.[1]);
  u64('bg_read_lo', info.startBackgroundRead?.[0]);
  u64('bg_read_hi', info.startBackgroundRead?.[1]);
  u32('g_goid', o.gGoid);
  u32('pconn_conn', o.pconnConn);
  u32('iface_tab', o.ifaceTab);
  u32('iface_data', o.ifaceData);
  u32('tls_conn_conn', o.tlsConnConn);
  u32('tcp_conn_conn', o.tcpConnConn);
  u32('conn_fd', o.connFd);
  u32('netfd_pfd', o.netFDPfd);
  u32('pfd_sysfd', o.pollFDSysfd);
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

/**
 * The Go runtime-context family: a Go executable is analysed (cached per file), given a slot,
 * probed; each process running it is registered in go_procs while the watcher sees it.
 */
export function goRuntimeFamily(kernel: GoRuntimeKernel, maxFiles = GO_CTX_BINS): GoRuntimeFamily {
  const free = Array.from({ length: Math.min(maxFiles, GO_CTX_BINS) }, (_, i) => i).reverse();
  const bySlot = new Map<number, GoRuntimeInfo>();
  const counters: GoRuntimeCounters = { files_now: 0, probes_now: 0, processes_now: 0, slots_full: 0, handoff_files_now: 0, parent_lookups: 0, parent_found: 0, map_errors: 0 };
  const key = Buffer.alloc(GO_GKEY_SIZE);
  const value = Buffer.alloc(GO_PARENT_SIZE);
  return {
    name: 'go-runtime-context',
    counters,
    candidate: (file: MappedFile) => file.exe,
    plan(file: MappedFile): ProbeSpec[] | NoProbes {
      const info = analyzeGoRuntime(file.openPath);
      if (!isGoRuntimeSupported(info)) return { reason: info.message.replace(/\/proc\/\d+\/root(?=\/)/g, ''), level: LEVEL[info.unsupported] };
      const slot = free.pop();
      if (slot === undefined) {
        counters.slots_full++;
        return { reason: `${GO_CTX_BINS} Go executables have runtime-context probes already (the bound of go_ctx_bins)`, level: 'error', full: true };
      }
      // the slot is written before any probe that reads it is attached
      kernel.mapUpdate(GO_CTX_MAP, u32(slot), encodeGoCtx(info));
      bySlot.set(slot, info);
      const specs = goRuntimeProbeSpecs(info, slot);
      counters.files_now++;
      counters.probes_now += specs.length;
      if (info.roundTrip) counters.handoff_files_now++;
      return specs;
    },
    released(plan: readonly ProbeSpec[]): void {
      const cookie = plan[0]?.cookie;
      if (!cookie) return;
      const info = bySlot.get(cookie - 1);
      bySlot.delete(cookie - 1);
      free.push(cookie - 1);
      counters.files_now--;
      counters.probes_now -= plan.length;
      if (info?.roundTrip) counters.handoff_files_now--;
    },
    processMapped(pid: number, plan: readonly ProbeSpec[]): void {
      const info = bySlot.get((plan[0]?.cookie ?? 0) - 1);
      if (!info) return;
      const v = Buffer.alloc(GO_PROC_SIZE);
      v.writeInt32LE(info.gTls, GO_PROC_LAYOUT.g_tls[0]);
      v.writeUInt32LE(info.offsets.gGoid, GO_PROC_LAYOUT.g_goid[0]);
      try {
        // rt_procs first: the kernel asks goctx.h only for processes listed there, and finds
        // nothing until go_procs has the entry too (bpf/lib/rtctx.h)
        kernel.mapUpdate(RT_PROCS_MAP, u32(pid), u32(RtBit.go));
        kernel.mapUpdate(GO_PROCS_MAP, u32(pid), v);
        counters.processes_now++;
      } catch {
        counters.map_errors++;
      }
    },
    processGone(pid: number): void {
      try {
        if (kernel.mapDelete(GO_PROCS_MAP, u32(pid))) counters.processes_now--;
        kernel.mapDelete(RT_PROCS_MAP, u32(pid));
      } catch {
        counters.map_errors++;
      }
    },
    parentOf(pid: number, goid: number) {
      counters.parent_lookups++;
      key.writeUInt32LE(pid, 0);
      key.writeUInt32LE(0, 4);
      key.writeBigUInt64LE(BigInt(goid), 8);
      let found: boolean;
      try {
        found = kernel.mapLookup(GO_PARENTS_MAP, key, value);
      } catch {
        counters.map_errors++;
        return undefined;
      }
      if (!found) return undefined;
      counters.parent_found++;
      // the events' clock: without this a goroutine's start time would be compared with
      // requests' times on two different zeros (and every request would seem to begin first)
      const base = kernel.monoBase ?? 0n;
      const exit = value.readBigUInt64LE(16);
      return { parent: Number(value.readBigUInt64LE(0)), createdNs: Number(value.readBigUInt64LE(8) - base), exitNs: exit ? Number(exit - base) : 0 };
    },
    kernelCounters() {
      const out = {} as Record<GoCtxCounter, number>;
      const v = Buffer.alloc(8);
      GO_CTX_COUNTERS.forEach((name, i) => {
        let n = 0;
        try {
          if (kernel.mapLookup(GO_CTX_COUNTERS_MAP, u32(i), v)) n = Number(v.readBigUInt64LE(0));
        } catch {
          counters.map_errors++;
        }
        out[name] = n;
      });
      return out;
    },
  };
}
