// What Osprey needs to know about one Go executable to read crypto/tls plaintext with uprobes,
// found in the file itself, never assumed from a Go version:
// - the Go version and its calling convention: the register ABI (Go ≥ 1.17 on x86-64: the
//   receiver in RAX, then RBX, RCX…; the running g in R14) is the only one supported;
// - crypto/tls.(*Conn).Write and .Read as file offsets (uprobes are attached at offsets into
//   the file), the first instruction after their stack-growth check, and EVERY return
//   instruction inside them. uretprobes are unsafe on Go: they replace the return address on
//   the goroutine stack, and the runtime copies stacks elsewhere when they grow (and walks them
//   for GC and tracebacks), so the returns are probed where the RET instructions are. Finding
//   them needs exact instruction decoding, done by capstone (native/src/golang.cc): a 0xC3 byte
//   inside another instruction is not a RET;
// - from DWARF (libdw): the offsets on the path from a *tls.Conn to its socket's fd
//   (tls.Conn.conn is a net.Conn interface {itab, data}; data is a *net.TCPConn whose embedded
//   net.conn holds fd *net.netFD → pfd internal/poll.FD → Sysfd int) and runtime.g.goid.
// A binary without symbols or DWARF (`-ldflags=-s -w`) is reported as unsupported and counted:
// Go's pclntab still names its functions, so the probe points could be found, but the field
// offsets from *tls.Conn to the fd would have to be guessed from the version, and Osprey does
// not guess. (The runtime's own type descriptors survive stripping and hold the offsets of
// tls.Conn's fields; reading them is a possible later step.)
import { closeSync, fstatSync, openSync } from 'node:fs';
import { nativeAddon } from '../../kernel/native.js';
import { goRelease, goVersionFromBuildInfo } from './buildinfo.js';
import { EM_X86_64, ElfFormatError, fileOffset, findSymbols, readAt, readElf, section, sectionBytes, type ElfFile } from './elf.js';

export const GO_TLS_WRITE = 'crypto/tls.(*Conn).Write';
export const GO_TLS_READ = 'crypto/tls.(*Conn).Read';
/** the itab a *tls.Conn's conn field holds when it wraps a TCP socket (name as the linker spells it) */
const ITAB_TCP = ['go:itab.*net.TCPConn,net.Conn', 'go.itab.*net.TCPConn,net.Conn'];
/** register ABI on amd64 since Go 1.17 */
const MIN_MINOR = 17;
/** a function larger than this is not the crypto/tls function we know */
const MAX_FUNCTION = 1 << 16;

export interface GoFunction {
  symbol: string;
  /** virtual address and size from the symbol table */
  address: number;
  size: number;
  /** file offset of the first instruction (the uprobe offset of the entry) */
  entry: number;
  /**
   * file offset of the first instruction after the stack-growth check, where the arguments
   * are still in their registers: a probe here fires once per call, while the entry runs a
   * second time when the stack had to grow (morestack jumps back to it)
   */
  body: number;
  /** file offsets of every RET instruction in the function, ascending */
  rets: number[];
}

/** byte offsets, each from the start of its struct */
export interface GoTlsOffsets {
  /** crypto/tls.Conn.conn: a net.Conn interface value */
  tlsConnConn: number;
  /** runtime.iface.tab: the itab word of an interface value (its dynamic type) */
  ifaceTab: number;
  /** runtime.iface.data: the data word of an interface value (the dynamic value's pointer) */
  ifaceData: number;
  /** net.TCPConn.conn: the embedded net.conn */
  tcpConnConn: number;
  /** net.conn.fd: *net.netFD */
  connFd: number;
  /** net.netFD.pfd: internal/poll.FD */
  netFDPfd: number;
  /** internal/poll.FD.Sysfd: int (8 bytes on amd64) */
  pollFDSysfd: number;
  /** runtime.g.goid (8 bytes) */
  gGoid: number;
}

export interface FileKey {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
}

export interface GoBinaryInfo {
  path: string;
  key: FileKey;
  goVersion: string;
  abi: 'register';
  arch: 'x86-64';
  /** true for -buildmode=pie (ET_DYN): addresses below are link-time, add the load bias */
  pie: boolean;
  write: GoFunction;
  read: GoFunction;
  offsets: GoTlsOffsets;
  /** link-time address of the *net.TCPConn,net.Conn itab, when the binary has one */
  itabTcpConn?: number;
}

export type UnsupportedReason =
  | 'unreadable'
  | 'not-elf'
  | 'not-x86-64'
  | 'not-go'
  | 'go-too-old'
  | 'go-version-unknown'
  | 'no-crypto-tls'
  | 'stripped'
  | 'no-dwarf'
  | 'layout'
  | 'disassembly'
  | 'bad-elf';

export interface GoUnsupported {
  unsupported: UnsupportedReason;
  /** a sentence a person can read: what is missing and why it matters */
  message: string;
  path: string;
  goVersion?: string;
}

export type GoAnalysis = GoBinaryInfo | GoUnsupported;

export function isSupported(a: GoAnalysis): a is GoBinaryInfo {
  return !('unsupported' in a);
}

export class Unsupported extends Error {
  constructor(
    /** an UnsupportedReason, or a reason of another analysis built on this one (runtime-analyze.ts) */
    readonly reason: UnsupportedReason | 'pie' | 'tls-layout',
    message: string,
    readonly goVersion?: string,
  ) {
    super(message);
  }
}

// ---- counters and cache ------------------------------------------------------------------

const CACHE_MAX = 512;
const cache = new Map<string, GoAnalysis>();
const counters = {
  analyses: 0,
  cacheHits: 0,
  cacheEvictions: 0,
  supported: 0,
  unsupported: {} as Partial<Record<UnsupportedReason, number>>,
};

/** how many binaries were analysed, and why the unsupported ones were (each file counted once per analysis) */
export function goAnalysisCounters(): { analyses: number; cacheHits: number; cacheEvictions: number; supported: number; unsupported: Partial<Record<UnsupportedReason, number>> } {
  return { ...counters, unsupported: { ...counters.unsupported } };
}

function keyOf(k: FileKey): string {
  return `${k.dev}:${k.ino}:${k.size}:${k.mtimeMs}`;
}

/**
 * Analyse the Go executable at `path` (a file, or /proc/<pid>/exe). The answer is cached per
 * (dev, inode, size, mtime): the same file under another path or in another process costs
 * nothing, a rebuilt file is analysed again. Never throws for a bad file: the reason comes back.
 */
export function analyzeGoBinary(path: string): GoAnalysis {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    return count({ unsupported: 'unreadable', message: `cannot open ${path}: ${(err as Error).message}`, path });
  }
  try {
    const st = fstatSync(fd);
    const key: FileKey = { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
    const k = keyOf(key);
    const hit = cache.get(k);
    if (hit) {
      counters.cacheHits++;
      // most recently used last: eviction takes the oldest
      cache.delete(k);
      cache.set(k, hit);
      return hit;
    }
    let result: GoAnalysis;
    try {
      result = { path, key, ...analyzeOpen(fd, path) };
    } catch (err) {
      if (err instanceof Unsupported) {
        result = { unsupported: err.reason as UnsupportedReason, message: err.message, path, ...(err.goVersion ? { goVersion: err.goVersion } : {}) };
      } else if (err instanceof ElfFormatError) {
        result = { unsupported: 'bad-elf', message: `${path}: malformed ELF: ${err.message}`, path };
      } else {
        result = { unsupported: 'unreadable', message: `${path}: ${(err as Error).message}`, path };
      }
    }
    if (cache.size >= CACHE_MAX) {
      cache.delete(cache.keys().next().value!);
      counters.cacheEvictions++;
    }
    cache.set(k, result);
    return count(result);
  } finally {
    closeSync(fd);
  }
}

function count(a: GoAnalysis): GoAnalysis {
  counters.analyses++;
  if (isSupported(a)) counters.supported++;
  else counters.unsupported[a.unsupported] = (counters.unsupported[a.unsupported] ?? 0) + 1;
  return a;
}

// ---- the analysis ------------------------------------------------------------------------

function analyzeOpen(fd: number, path: string): Omit<GoBinaryInfo, 'path' | 'key'> {
  const elf = readElf(fd);
  if (!elf) throw new Unsupported('not-elf', `${path} is not an ELF executable`);
  const version = goVersion(elf);
  if (version === undefined) {
    // Go ≥ 1.13 writes build info; an older Go binary still has its function table
    if (section(elf, '.gopclntab')) throw new Unsupported('go-too-old', `${path} is a Go program older than Go 1.13 (no build info): Go TLS probes need Go ≥ 1.${MIN_MINOR}`);
    throw new Unsupported('not-go', `${path} is not a Go program (no .go.buildinfo section)`);
  }
  const release = version ? goRelease(version) : undefined;
  if (!release) throw new Unsupported('go-version-unknown', `${path} is a Go program whose version cannot be read from its build info`);
  const wanted = [GO_TLS_WRITE, GO_TLS_READ, ...ITAB_TCP];
  const syms = findSymbols(elf, wanted);
  if (!syms) {
    const named = namedInPclntab(elf, GO_TLS_WRITE);
    throw new Unsupported(
      named ? 'stripped' : 'no-crypto-tls',
      named
        ? `${path} (${version}) is stripped (no symbol table, no DWARF: built with -ldflags=-s -w?): its pclntab names ${GO_TLS_WRITE}, but the struct offsets from *tls.Conn to the socket fd are not in the file, and Osprey does not guess them`
        : `${path} (${version}) is stripped and does not use crypto/tls`,
      version,
    );
  }
  const write = syms.get(GO_TLS_WRITE);
  const read = syms.get(GO_TLS_READ);
  if (!write || !read) throw new Unsupported('no-crypto-tls', `${path} (${version}) does not use crypto/tls (no ${GO_TLS_WRITE} / Read)`, version);

  // a Go program without crypto/tls is the common case, whatever its version: only one
  // that does TLS is worth an 'unsupported' line
  if (elf.machine !== EM_X86_64) {
    throw new Unsupported('not-x86-64', `${path} (${version}) is built for ELF machine ${elf.machine}; Go TLS probes support x86-64 only`, version);
  }
  if (release[0] === 1 && release[1] < MIN_MINOR) {
    throw new Unsupported('go-too-old', `${path} was built with ${version}: Go TLS probes need the register ABI of Go ≥ 1.${MIN_MINOR}`, version);
  }

  const offsets = tlsOffsets(path, version);
  const itab = ITAB_TCP.map((n) => syms.get(n)).find((s) => s !== undefined);
  return {
    goVersion: version,
    abi: 'register',
    arch: 'x86-64',
    pie: elf.type === 3,
    write: goFunction(elf, GO_TLS_WRITE, write.value, write.size, version),
    read: goFunction(elf, GO_TLS_READ, read.value, read.size, version),
    offsets,
    ...(itab ? { itabTcpConn: itab.value } : {}),
  };
}

/** the version string, '' for a Go binary whose build info is unreadable, undefined for no Go build info */
export function goVersion(elf: ElfFile): string | undefined {
  const bi = section(elf, '.go.buildinfo');
  if (!bi) return undefined;
  const bytes = sectionBytes(elf, bi, 1 << 20);
  const v = goVersionFromBuildInfo(bytes, (vaddr, len) => {
    const off = fileOffset(elf, vaddr);
    if (off === undefined) return undefined;
    try {
      return readAt(elf.fd, off, len);
    } catch {
      return undefined;
    }
  });
  return v ?? '';
}

/** whether the function name table in .gopclntab holds `name` (stripped binaries keep it) */
export function namedInPclntab(elf: ElfFile, name: string): boolean {
  const s = section(elf, '.gopclntab');
  if (!s) return false;
  return sectionBytes(elf, s).includes(Buffer.from(name + '\0', 'latin1'));
}

export function goFunction(elf: ElfFile, symbol: string, address: number, size: number, version: string): GoFunction {
  const entry = fileOffset(elf, address);
  if (entry === undefined || size === 0 || size > MAX_FUNCTION) {
    throw new Unsupported('bad-elf', `${symbol} at 0x${address.toString(16)} (${size} bytes) is not in a loadable segment of the file`, version);
  }
  const code = readAt(elf.fd, entry, size);
  const listing = nativeAddon().x86Instructions(code, address);
  // Go pads between functions with INT3, never with data: the whole symbol must decode
  if (listing.decoded !== size) {
    throw new Unsupported('disassembly', `${symbol}: capstone stopped at +0x${listing.decoded.toString(16)} of ${size} bytes (undecodable instruction); no probe offsets are guessed`, version);
  }
  const rets: number[] = [];
  listing.mnemonics.forEach((m, i) => {
    if (m === 'ret' || m === 'retq') rets.push(entry + listing.offsets[i]!);
  });
  if (rets.length === 0) throw new Unsupported('disassembly', `${symbol}: no RET instruction in ${size} bytes`, version);
  return { symbol, address, size, entry, body: entry + afterStackCheck(listing, symbol, version), rets };
}

/**
 * The offset (from the function start) of the instruction after the prologue's stack check.
 * Go's prologue compares SP (or SP minus the frame, in R12) with g.stackguard0 at 16(R14) and
 * jumps to the morestack tail when it is too low: `cmp rsp|r12, qword ptr [r14 + 0x10]` then
 * `jbe`. A function without that shape is reported, not probed at a guessed place.
 */
function afterStackCheck(l: X86Listing, symbol: string, version: string): number {
  for (let i = 0; i + 1 < Math.min(l.mnemonics.length, 6); i++) {
    if (l.mnemonics[i] === 'cmp' && /^(rsp|r12), qword ptr \[r14 \+ 0x10\]$/.test(l.operands[i]!) && /^jbe?$/.test(l.mnemonics[i + 1]!)) {
      return l.offsets[i + 2]!;
    }
  }
  throw new Unsupported('disassembly', `${symbol}: no stack-growth check (cmp …, [r14 + 0x10]; jbe) in its first instructions`, version);
}

interface X86Listing {
  decoded: number;
  offsets: number[];
  sizes: number[];
  mnemonics: string[];
  operands: string[];
}

interface DwarfMember {
  name: string;
  offset: number;
  type: string;
}

/** the structs on the *tls.Conn → fd path, each member with the type it must have */
const PATH: { struct: string; member: string; type: RegExp; key: keyof GoTlsOffsets }[] = [
  { struct: 'crypto/tls.Conn', member: 'conn', type: /^net\.Conn$/, key: 'tlsConnConn' },
  { struct: 'runtime.iface', member: 'tab', type: /^\*(runtime|internal\/abi)\.itab$/i, key: 'ifaceTab' },
  { struct: 'runtime.iface', member: 'data', type: /^unsafe\.Pointer$/, key: 'ifaceData' },
  { struct: 'net.TCPConn', member: 'conn', type: /^net\.conn$/, key: 'tcpConnConn' },
  { struct: 'net.conn', member: 'fd', type: /^\*net\.netFD$/, key: 'connFd' },
  { struct: 'net.netFD', member: 'pfd', type: /^internal\/poll\.FD$/, key: 'netFDPfd' },
  { struct: 'internal/poll.FD', member: 'Sysfd', type: /^int$/, key: 'pollFDSysfd' },
  { struct: 'runtime.g', member: 'goid', type: /^u?int64$/, key: 'gGoid' },
];

function tlsOffsets(path: string, version: string): GoTlsOffsets {
  const structs = nativeAddon().dwarfStructs(path, [...new Set(PATH.map((p) => p.struct))]);
  if (!structs) {
    throw new Unsupported('no-dwarf', `${path} (${version}) has symbols but no DWARF (built with -ldflags=-w?): the struct offsets from *tls.Conn to the socket fd are not in the file, and Osprey does not guess them`, version);
  }
  const out: Partial<GoTlsOffsets> = {};
  for (const p of PATH) {
    const s = structs[p.struct];
    if (!s) throw new Unsupported('layout', `${path} (${version}): no DWARF type ${p.struct}`, version);
    const m = s.members.find((x: DwarfMember) => x.name === p.member);
    if (!m) throw new Unsupported('layout', `${path} (${version}): DWARF type ${p.struct} has no member ${p.member}`, version);
    if (!p.type.test(m.type)) throw new Unsupported('layout', `${path} (${version}): ${p.struct}.${p.member} is a ${m.type}, expected ${p.type.source}`, version);
    if (m.offset < 0 || m.offset >= s.size) throw new Unsupported('layout', `${path} (${version}): ${p.struct}.${p.member} has no constant offset inside the struct`, version);
    out[p.key] = m.offset;
  }
  return out as GoTlsOffsets;
}
