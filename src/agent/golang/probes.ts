// Attaches the Go crypto/tls uprobes (bpf/lib/gotls.h) to Go executables, once per file
// (dev + inode: every process running it is covered, pid -1). Each file gets a slot of the
// kernel's go_tls_bins array with its DWARF offsets; the slot index + 1 is the cookie of
// every uprobe of the file, so one BPF program serves binaries of any Go version.
// A file that cannot be probed (stripped, too old, not Go...) is remembered with its reason
// and counted; it is not analysed again while it is unchanged.
import { GO_TLS_BINS, GO_TLS_LAYOUT, GO_TLS_MAP, GO_TLS_SIZE, type Capture } from '../../kernel/index.js';
import { analyzeGoBinary, isSupported, type GoAnalysis, type GoBinaryInfo } from './analyze.js';

export const GO_PROGRAMS = { write: 'osp_go_tls_write', read: 'osp_go_tls_read', readReturn: 'osp_go_tls_read_ret' } as const;

/** one uprobe of a Go file (the shape of src/agent/tls's ProbeSpec, plus the cookie) */
export interface GoProbeSpec {
  program: string;
  /** file offset of the probed instruction */
  offset: number;
  retprobe: false;
  cookie: number;
  label: string;
}

/** the uprobes of one analysed Go binary, given its slot */
export function goTlsProbeSpecs(info: GoBinaryInfo, slot: number): GoProbeSpec[] {
  const cookie = slot + 1;
  return [
    { program: GO_PROGRAMS.write, offset: info.write.body, retprobe: false, cookie, label: `${info.write.symbol} (after stack check)` },
    { program: GO_PROGRAMS.read, offset: info.read.body, retprobe: false, cookie, label: `${info.read.symbol} (after stack check)` },
    ...info.read.rets.map((offset, i) => ({ program: GO_PROGRAMS.readReturn, offset, retprobe: false as const, cookie, label: `${info.read.symbol} RET #${i + 1}` })),
  ];
}

export interface GoAttached {
  path: string;
  goVersion: string;
  slot: number;
  links: number[];
}

export type GoAttachResult = { attached: GoAttached } | { skipped: GoAnalysis & { unsupported: string } } | { error: string };

export class GoTlsProbes {
  readonly #capture: Capture;
  /** file key (dev:ino:size:mtime) -> attached probes */
  readonly #files = new Map<string, GoAttached>();
  readonly #freeSlots: number[];
  /** attach calls refused for an unsupported file are `refused` (the analysis counts files once: goAnalysisCounters) */
  readonly counters = { attachedFiles: 0, detachedFiles: 0, refused: 0, attachErrors: 0, slotsFull: 0 };

  constructor(capture: Capture, maxFiles = GO_TLS_BINS) {
    this.#capture = capture;
    this.#freeSlots = Array.from({ length: Math.min(maxFiles, GO_TLS_BINS) }, (_, i) => i).reverse();
  }

  /**
   * Probes the Go executable at `path` (as this process can open it: /proc/<pid>/exe or
   * /proc/<pid>/root/...) unless that file is probed already. Never throws.
   */
  attach(path: string): GoAttachResult {
    const info = analyzeGoBinary(path);
    if (!isSupported(info)) {
      this.counters.refused++;
      return { skipped: info };
    }
    const key = fileKey(info);
    const known = this.#files.get(key);
    if (known) return { attached: known };
    const slot = this.#freeSlots.pop();
    if (slot === undefined) {
      this.counters.slotsFull++;
      return { error: `${path}: ${GO_TLS_BINS} Go executables are probed already (the limit); not probing another` };
    }
    const links: number[] = [];
    try {
      this.#capture.mapUpdate(GO_TLS_MAP, u32(slot), encodeGoTls(info));
      for (const s of goTlsProbeSpecs(info, slot)) {
        links.push(this.#capture.attachUprobe({ program: s.program, path, offset: s.offset, cookie: s.cookie }));
      }
    } catch (err) {
      for (const l of links) this.#capture.detachUprobe(l);
      this.#freeSlots.push(slot);
      this.counters.attachErrors++;
      return { error: `${path} (${info.goVersion}): ${(err as Error).message}` };
    }
    const a: GoAttached = { path, goVersion: info.goVersion, slot, links };
    this.#files.set(key, a);
    this.counters.attachedFiles++;
    return { attached: a };
  }

  /** removes the probes of a file attached from `path`; false when it had none */
  detach(path: string): boolean {
    for (const [key, a] of this.#files) {
      if (a.path !== path) continue;
      for (const l of a.links) this.#capture.detachUprobe(l);
      this.#files.delete(key);
      this.#freeSlots.push(a.slot);
      this.counters.detachedFiles++;
      return true;
    }
    return false;
  }

  get attached(): GoAttached[] {
    return [...this.#files.values()];
  }

  /** detaches everything (idempotent) */
  close(): void {
    for (const a of [...this.#files.values()]) this.detach(a.path);
  }
}

function fileKey(info: GoBinaryInfo): string {
  return `${info.key.dev}:${info.key.ino}:${info.key.size}:${info.key.mtimeMs}`;
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
