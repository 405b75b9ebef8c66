// What Osprey needs to know about one Go executable to tell which goroutine made a call
// (bpf/lib/goctx.h, bpf/lib/goprobes.h), found in the file itself, never assumed from a version:
// - where a thread keeps its current g: at FS base - 8 in a program whose only thread-local is
//   the runtime's g slot (no PT_TLS segment: Go's own TLS setup; or a PT_TLS of 8 bytes: cgo /
//   external linking, the executable's block sits right below the thread pointer). A program
//   with C thread-locals of its own has the g slot at an offset no symbol gives: unsupported;
// - runtime.newproc1 (entry after its stack check, every RET) and its register arguments
//   (fn, callergp, callerpc in RAX, RBX, RCX from Go 1.17 to 1.26; the new g returned in RAX);
// - runtime.goexit1 (entry after its stack check), which every goroutine runs as it ends: the
//   linker trusts a started goroutine's ancestry only once it has seen it end (linker.ts); a
//   file without it still gets the other probes, and no ancestry link is then ever made;
// - net/http.(*persistConn).roundTrip when the program has net/http's client, with the path
//   from a *persistConn to its socket fd (persistConn.conn is a net.Conn holding a
//   *net.TCPConn, or a *tls.Conn over one) from DWARF, and the itabs that tell them apart;
// - the address ranges of (*Transport).dialConn and (*connReader).startBackgroundRead, whose
//   `go` statements start a connection's loop goroutines and a server's background reader.
// A position-independent executable (-buildmode=pie) would need each process's load bias for
// the itab and code addresses: unsupported for now, and said so.
import { closeSync, fstatSync, openSync } from 'node:fs';
import { goRelease } from './buildinfo.js';
import { goFunction, goVersion, namedInPclntab, Unsupported, type FileKey, type GoFunction } from './analyze.js';
import { EM_X86_64, ElfFormatError, findSymbols, readElf, type ElfFile } from './elf.js';
import { nativeAddon } from '../../kernel/native.js';

export const GO_NEWPROC1 = 'runtime.newproc1';
export const GO_EXIT1 = 'runtime.goexit1';
export const GO_ROUND_TRIP = 'net/http.(*persistConn).roundTrip';
const DIAL_CONN = 'net/http.(*Transport).dialConn';
const BG_READ = 'net/http.(*connReader).startBackgroundRead';
const ITAB_TCP = ['go:itab.*net.TCPConn,net.Conn', 'go.itab.*net.TCPConn,net.Conn'];
const ITAB_TLS = ['go:itab.*crypto/tls.Conn,net.Conn', 'go.itab.*crypto/tls.Conn,net.Conn'];
const MIN_MINOR = 17;

export type GoRuntimeUnsupportedReason = 'unreadable' | 'not-elf' | 'not-go' | 'not-x86-64' | 'go-too-old' | 'go-version-unknown' | 'stripped' | 'no-dwarf' | 'pie' | 'tls-layout' | 'layout' | 'disassembly' | 'bad-elf';

export interface GoRuntimeUnsupported {
  unsupported: GoRuntimeUnsupportedReason;
  message: string;
  path: string;
  goVersion?: string;
}

export interface GoRuntimeOffsets {
  gGoid: number;
  ifaceTab: number;
  ifaceData: number;
  tcpConnConn: number;
  connFd: number;
  netFDPfd: number;
  pollFDSysfd: number;
  /** net/http.persistConn.conn (with a net/http client) */
  pconnConn?: number;
  /** crypto/tls.Conn.conn (with crypto/tls) */
  tlsConnConn?: number;
}

export interface GoRuntimeInfo {
  path: string;
  key: FileKey;
  goVersion: string;
  /** offset of the current g pointer from a thread's FS base */
  gTls: number;
  newproc1: GoFunction;
  /** where goroutines end (absent: no exits are seen, so no ancestry is trusted) */
  goexit1?: GoFunction;
  /** the client hand-off probe point, when the program has net/http's client and its layout */
  roundTrip?: GoFunction;
  offsets: GoRuntimeOffsets;
  itabTcpConn?: number;
  itabTlsConn?: number;
  /** [start, end) link-time addresses */
  dialConn?: [number, number];
  startBackgroundRead?: [number, number];
}

export type GoRuntimeAnalysis = GoRuntimeInfo | GoRuntimeUnsupported;

export const isGoRuntimeSupported = (a: GoRuntimeAnalysis): a is GoRuntimeInfo => !('unsupported' in a);

const CACHE_MAX = 512;
const cache = new Map<string, GoRuntimeAnalysis>();

/** Analyse the executable at `path`; cached per (dev, inode, size, mtime); never throws for a bad file. */
export function analyzeGoRuntime(path: string): GoRuntimeAnalysis {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    return { unsupported: 'unreadable', message: `cannot open ${path}: ${(err as Error).message}`, path };
  }
  try {
    const st = fstatSync(fd);
    const key: FileKey = { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
    const k = `${key.dev}:${key.ino}:${key.size}:${key.mtimeMs}`;
    const hit = cache.get(k);
    if (hit) return hit;
    let result: GoRuntimeAnalysis;
    try {
      result = { path, key, ...analyzeOpen(fd, path) };
    } catch (err) {
      if (err instanceof Unsupported) result = { unsupported: err.reason as GoRuntimeUnsupportedReason, message: err.message, path, ...(err.goVersion ? { goVersion: err.goVersion } : {}) };
      else if (err instanceof ElfFormatError) result = { unsupported: 'bad-elf', message: `${path}: malformed ELF: ${err.message}`, path };
      else result = { unsupported: 'unreadable', message: `${path}: ${(err as Error).message}`, path };
    }
    if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!);
    cache.set(k, result);
    return result;
  } finally {
    closeSync(fd);
  }
}

/** the g slot's offset from the thread pointer, or undefined when the file does not pin it */
export function gTlsOffset(elf: ElfFile): number | undefined {
  if (!elf.tls) return -8;
  const align = Math.max(elf.tls.align, 1);
  if (elf.tls.memsz !== 8 || align > 8) return undefined;
  return -8;
}

function analyzeOpen(fd: number, path: string): Omit<GoRuntimeInfo, 'path' | 'key'> {
  const elf = readElf(fd);
  if (!elf) throw new Unsupported('not-elf', `${path} is not an ELF executable`);
  const version = goVersion(elf);
  if (version === undefined) throw new Unsupported('not-go', `${path} is not a Go program (no .go.buildinfo section)`);
  const release = version ? goRelease(version) : undefined;
  if (!release) throw new Unsupported('go-version-unknown', `${path} is a Go program whose version cannot be read from its build info`);
  if (elf.machine !== EM_X86_64) throw new Unsupported('not-x86-64', `${path} (${version}): goroutine context supports x86-64 only`, version);
  if (release[0] === 1 && release[1] < MIN_MINOR) throw new Unsupported('go-too-old', `${path} was built with ${version}: goroutine context needs the register ABI of Go ≥ 1.${MIN_MINOR}`, version);
  const syms = findSymbols(elf, [GO_NEWPROC1, GO_EXIT1, GO_ROUND_TRIP, DIAL_CONN, BG_READ, ...ITAB_TCP, ...ITAB_TLS]);
  if (!syms || !syms.get(GO_NEWPROC1)) {
    const named = namedInPclntab(elf, GO_NEWPROC1);
    throw new Unsupported('stripped', `${path} (${version}) is stripped (no symbol table${named ? '; its pclntab names ' + GO_NEWPROC1 : ''}): goroutine context needs the symbols and DWARF, and Osprey does not guess offsets`, version);
  }
  if (elf.type === 3) throw new Unsupported('pie', `${path} (${version}) is position-independent (-buildmode=pie): goroutine context does not support it yet (its addresses need each process's load bias)`, version);
  const gTls = gTlsOffset(elf);
  if (gTls === undefined) throw new Unsupported('tls-layout', `${path} (${version}) has C thread-locals (PT_TLS of ${elf.tls!.memsz} bytes): the runtime's g slot is not at a known offset from the thread pointer`, version);

  const structs = nativeAddon().dwarfStructs(path, ['runtime.g', 'runtime.iface', 'net.TCPConn', 'net.conn', 'net.netFD', 'internal/poll.FD', 'net/http.persistConn', 'crypto/tls.Conn']);
  if (!structs) throw new Unsupported('no-dwarf', `${path} (${version}) has no DWARF (built with -ldflags=-w?): the offset of runtime.g.goid is not in the file, and Osprey does not guess it`, version);
  const member = (struct: string, name: string, type: RegExp, required: boolean): number | undefined => {
    const s = structs[struct];
    const m = s?.members.find((x) => x.name === name);
    if (!s || !m || !type.test(m.type) || m.offset < 0 || m.offset >= s.size) {
      if (required) throw new Unsupported('layout', `${path} (${version}): no DWARF member ${struct}.${name} of type ${type.source}`, version);
      return undefined;
    }
    return m.offset;
  };
  const gGoid = member('runtime.g', 'goid', /^u?int64$/, true)!;
  const newproc1 = syms.get(GO_NEWPROC1)!;
  const info: Omit<GoRuntimeInfo, 'path' | 'key'> = {
    goVersion: version,
    gTls,
    newproc1: goFunction(elf, GO_NEWPROC1, newproc1.value, newproc1.size, version),
    offsets: { gGoid, ifaceTab: 0, ifaceData: 8, tcpConnConn: 0, connFd: 0, netFDPfd: 0, pollFDSysfd: 0 },
  };
  const range = (name: string): [number, number] | undefined => {
    const s = syms.get(name);
    return s && s.size > 0 ? [s.value, s.value + s.size] : undefined;
  };
  const exit1 = syms.get(GO_EXIT1);
  if (exit1) info.goexit1 = goFunction(elf, GO_EXIT1, exit1.value, exit1.size, version);
  const dial = range(DIAL_CONN);
  const bg = range(BG_READ);
  if (dial) info.dialConn = dial;
  if (bg) info.startBackgroundRead = bg;

  // the client hand-off: only with the whole path from a *persistConn to its fd, and with
  // dialConn's range (without it the connection's loop goroutines would get the dialling
  // request as parent)
  const rt = syms.get(GO_ROUND_TRIP);
  const itabTcp = ITAB_TCP.map((n) => syms.get(n)).find((s) => s !== undefined);
  if (rt && itabTcp && dial) {
    const o = {
      pconnConn: member('net/http.persistConn', 'conn', /^net\.Conn$/, true)!,
      ifaceTab: member('runtime.iface', 'tab', /^\*(runtime|internal\/abi)\.itab$/i, true)!,
      ifaceData: member('runtime.iface', 'data', /^unsafe\.Pointer$/, true)!,
      tcpConnConn: member('net.TCPConn', 'conn', /^net\.conn$/, true)!,
      connFd: member('net.conn', 'fd', /^\*net\.netFD$/, true)!,
      netFDPfd: member('net.netFD', 'pfd', /^internal\/poll\.FD$/, true)!,
      pollFDSysfd: member('internal/poll.FD', 'Sysfd', /^int$/, true)!,
    };
    const tlsConn = member('crypto/tls.Conn', 'conn', /^net\.Conn$/, false);
    const itabTls = ITAB_TLS.map((n) => syms.get(n)).find((s) => s !== undefined);
    info.offsets = { ...info.offsets, ...o, ...(tlsConn !== undefined ? { tlsConnConn: tlsConn } : {}) };
    info.roundTrip = goFunction(elf, GO_ROUND_TRIP, rt.value, rt.size, version);
    info.itabTcpConn = itabTcp.value;
    if (itabTls && tlsConn !== undefined) info.itabTlsConn = itabTls.value;
  }
  return info;
}
