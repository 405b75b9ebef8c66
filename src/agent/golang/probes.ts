// The Go crypto/tls uprobes (bpf/lib/gotls.h) of Go executables, as a probe family of the
// uprobe watcher (src/agent/tls: it finds the processes, attaches once per file for every
// process running it, detaches when none does). Each file gets a slot of the kernel's
// go_tls_bins array with its DWARF offsets; the slot index + 1 is the cookie of every uprobe
// of the file, so one set of BPF programs serves binaries of any Go version. A file that
// cannot be probed (stripped, too old...) gets its reason in `osprey status`.
import { GO_TLS_BINS, GO_TLS_LAYOUT, GO_TLS_MAP, GO_TLS_SIZE } from '../../kernel/index.js';
import type { MappedFile, NoProbes, ProbeFamily, ProbeSpec } from '../tls/index.js';
import { analyzeGoBinary, isSupported, type GoBinaryInfo, type UnsupportedReason } from './analyze.js';

export const GO_PROGRAMS = { write: 'osp_go_tls_write', read: 'osp_go_tls_read', readReturn: 'osp_go_tls_read_ret' } as const;

/** the uprobes of one analysed Go binary, given its slot */
export function goTlsProbeSpecs(info: GoBinaryInfo, slot: number): ProbeSpec[] {
  const cookie = slot + 1;
  return [
    { program: GO_PROGRAMS.write, offset: info.write.body, retprobe: false, cookie, label: `${info.write.symbol} (after stack check)` },
    { program: GO_PROGRAMS.read, offset: info.read.body, retprobe: false, cookie, label: `${info.read.symbol} (after stack check)` },
    ...info.read.rets.map((offset, i) => ({ program: GO_PROGRAMS.readReturn, offset, retprobe: false, cookie, label: `${info.read.symbol} RET #${i + 1}` })),
  ];
}

/** what the family needs of the capture: writing a go_tls_bins slot */
export interface GoTlsKernel {
  mapUpdate(map: string, key: Buffer, value: Buffer): void;
}

/** how an unsupported binary shows in the watcher: not Go / no TLS is every other file, counted only */
const LEVEL: Record<UnsupportedReason, NoProbes['level']> = {
  'not-elf': 'none',
  'not-go': 'none',
  'no-crypto-tls': 'none',
  stripped: 'stripped',
  'no-dwarf': 'stripped',
  unreadable: 'error',
  'bad-elf': 'error',
  'not-x86-64': 'error',
  'go-too-old': 'error',
  'go-version-unknown': 'error',
  layout: 'error',
  disassembly: 'error',
};

export interface GoTlsFamily extends ProbeFamily {
  readonly counters: { slotsInUse: number; slotsFull: number };
}

/**
 * The Go crypto/tls family of the uprobe watcher (src/agent/tls): a process's executable is
 * analysed (cached per file), given a go_tls_bins slot with its offsets, and probed; the
 * slot is freed when the watcher takes the probes off.
 */
export function goTlsFamily(kernel: GoTlsKernel, maxFiles = GO_TLS_BINS): GoTlsFamily {
  const free = Array.from({ length: Math.min(maxFiles, GO_TLS_BINS) }, (_, i) => i).reverse();
  const counters = { slotsInUse: 0, slotsFull: 0 };
  return {
    name: 'go-crypto-tls',
    counters,
    // Go links crypto/tls into the executable (a Go shared library is not looked at)
    candidate: (file: MappedFile) => file.exe,
    plan(file: MappedFile): ProbeSpec[] | NoProbes {
      const info = analyzeGoBinary(file.openPath);
      // the message names the file as this process opened it (/proc/<pid>/root/...): say it as the process sees it
      if (!isSupported(info)) return { reason: info.message.replace(/\/proc\/\d+\/root(?=\/)/g, ''), level: LEVEL[info.unsupported] };
      const slot = free.pop();
      if (slot === undefined) {
        counters.slotsFull++;
        return { reason: `${GO_TLS_BINS} Go executables have probes already (the bound of go_tls_bins)`, level: 'error', full: true };
      }
      // the slot is written before any probe that reads it is attached
      kernel.mapUpdate(GO_TLS_MAP, u32(slot), encodeGoTls(info));
      counters.slotsInUse++;
      return goTlsProbeSpecs(info, slot);
    },
    released(plan: readonly ProbeSpec[]): void {
      const cookie = plan[0]?.cookie;
      if (!cookie) return;
      free.push(cookie - 1);
      counters.slotsInUse--;
    },
  };
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

/** the map value for a binary; the itab is checked only where its address is fixed (not PIE) */
export function encodeGoTls(info: GoBinaryInfo): Buffer {
  const b = Buffer.alloc(GO_TLS_SIZE);
  const o = info.offsets;
  const L = GO_TLS_LAYOUT;
  b.writeBigUInt64LE(BigInt(!info.pie && info.itabTcpConn ? info.itabTcpConn : 0), L.itab_tcp_conn[0]);
  b.writeUInt32LE(o.tlsConnConn, L.tls_conn_conn[0]);
  b.writeUInt32LE(o.ifaceTab, L.iface_tab[0]);
  b.writeUInt32LE(o.ifaceData, L.iface_data[0]);
  b.writeUInt32LE(o.tcpConnConn, L.tcp_conn_conn[0]);
  b.writeUInt32LE(o.connFd, L.conn_fd[0]);
  b.writeUInt32LE(o.netFDPfd, L.netfd_pfd[0]);
  b.writeUInt32LE(o.pollFDSysfd, L.pfd_sysfd[0]);
  b.writeUInt32LE(o.gGoid, L.g_goid[0]);
  return b;
}
