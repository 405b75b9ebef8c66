// The parts of an ELF64 little-endian executable the Go analysis needs: the header's machine,
// the loadable segments (a virtual address becomes the file offset a uprobe is attached at),
// the section table and named symbols from .symtab. Everything is read with positioned reads
// of the open file, bounded, so a huge or hostile file cannot make us read it all.
import { readSync } from 'node:fs';

export const EM_X86_64 = 62;
const PT_LOAD = 1;
const PT_TLS = 7;
const SHT_SYMTAB = 2;
const SHT_NOBITS = 8;
/** a section table or symbol table larger than this is not a program we analyse */
const MAX_TABLE = 64 << 20;

export interface ElfSegment {
  offset: number;
  vaddr: number;
  filesz: number;
  memsz: number;
  flags: number;
}

export interface ElfSection {
  name: string;
  type: number;
  flags: number;
  addr: number;
  offset: number;
  /** bytes in the file (0 for SHT_NOBITS) */
  size: number;
  link: number;
  entsize: number;
}

export interface ElfSymbol {
  value: number;
  size: number;
  shndx: number;
}

export interface ElfFile {
  fd: number;
  machine: number;
  /** ET_EXEC (2) or ET_DYN (3: PIE or shared object) */
  type: number;
  segments: ElfSegment[];
  sections: ElfSection[];
  /** the PT_TLS segment (the executable's thread-local block), when there is one */
  tls?: { memsz: number; align: number };
}

export class ElfFormatError extends Error {
  override readonly name = 'ElfFormatError';
}

export function readAt(fd: number, pos: number, len: number): Buffer {
  const buf = Buffer.alloc(len);
  let off = 0;
  while (off < len) {
    const n = readSync(fd, buf, off, len - off, pos + off);
    if (n <= 0) break;
    off += n;
  }
  if (off !== len) throw new ElfFormatError(`short read: ${off} of ${len} bytes at offset ${pos}`);
  return buf;
}

/** 64-bit fields as numbers: file offsets and addresses of real programs are far below 2^53 */
function u64(b: Buffer, o: number): number {
  const v = b.readBigUInt64LE(o);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ElfFormatError(`64-bit field at ${o} too large: ${v}`);
  return Number(v);
}

/** undefined when the file is not ELF at all; throws ElfFormatError when it is ELF we cannot read */
export function readElf(fd: number): ElfFile | undefined {
  const head = Buffer.alloc(64);
  if (readSync(fd, head, 0, 64, 0) < 64 || head.readUInt32BE(0) !== 0x7f454c46) return undefined;
  if (head[4] !== 2 || head[5] !== 1) throw new ElfFormatError('not a 64-bit little-endian ELF file');
  const type = head.readUInt16LE(0x10);
  const machine = head.readUInt16LE(0x12);
  const phoff = u64(head, 0x20);
  const shoff = u64(head, 0x28);
  const phentsize = head.readUInt16LE(0x36);
  const phnum = head.readUInt16LE(0x38);
  const shentsize = head.readUInt16LE(0x3a);
  const shnum = head.readUInt16LE(0x3c);
  const shstrndx = head.readUInt16LE(0x3e);

  const segments: ElfSegment[] = [];
  let tls: ElfFile['tls'];
  if (phoff && phnum) {
    if (phentsize < 56) throw new ElfFormatError(`program header entries of ${phentsize} bytes`);
    const ph = readAt(fd, phoff, phnum * phentsize);
    for (let i = 0; i < phnum; i++) {
      const o = i * phentsize;
      const ptype = ph.readUInt32LE(o);
      if (ptype === PT_TLS) tls = { memsz: u64(ph, o + 40), align: u64(ph, o + 48) };
      if (ptype !== PT_LOAD) continue;
      segments.push({ flags: ph.readUInt32LE(o + 4), offset: u64(ph, o + 8), vaddr: u64(ph, o + 16), filesz: u64(ph, o + 32), memsz: u64(ph, o + 40) });
    }
  }

  const sections: ElfSection[] = [];
  if (shoff && shnum) {
    if (shentsize < 64 || shnum * shentsize > MAX_TABLE) throw new ElfFormatError(`section table of ${shnum} x ${shentsize} bytes`);
    if (shstrndx >= shnum) throw new ElfFormatError(`section name table index ${shstrndx} out of ${shnum}`);
    const sh = readAt(fd, shoff, shnum * shentsize);
    const raw = [];
    for (let i = 0; i < shnum; i++) {
      const o = i * shentsize;
      const stype = sh.readUInt32LE(o + 4);
      raw.push({
        nameOff: sh.readUInt32LE(o),
        type: stype,
        flags: u64(sh, o + 8),
        addr: u64(sh, o + 16),
        offset: u64(sh, o + 24),
        size: stype === SHT_NOBITS ? 0 : u64(sh, o + 32),
        link: sh.readUInt32LE(o + 40),
        entsize: u64(sh, o + 56),
      });
    }
    const strs = raw[shstrndx]!;
    const names = readAt(fd, strs.offset, Math.min(strs.size, MAX_TABLE));
    for (const s of raw) {
      const end = names.indexOf(0, s.nameOff);
      sections.push({ ...s, name: names.toString('latin1', s.nameOff, end < 0 ? names.length : end) });
    }
  }
  return { fd, machine, type, segments, sections, ...(tls ? { tls } : {}) };
}

export function section(elf: ElfFile, name: string): ElfSection | undefined {
  return elf.sections.find((s) => s.name === name);
}

/** the bytes of a section (in the file), at most `max` of them */
export function sectionBytes(elf: ElfFile, s: ElfSection, max = MAX_TABLE): Buffer {
  if (s.size > max) throw new ElfFormatError(`section ${s.name} is ${s.size} bytes (limit ${max})`);
  return readAt(elf.fd, s.offset, s.size);
}

/**
 * The file offset of a virtual address, through the loadable segment that maps it from the
 * file: what a uprobe is attached at (the kernel takes offsets into the file, not addresses).
 */
export function fileOffset(elf: ElfFile, vaddr: number): number | undefined {
  for (const seg of elf.segments) {
    if (vaddr >= seg.vaddr && vaddr < seg.vaddr + seg.filesz) return vaddr - seg.vaddr + seg.offset;
  }
  return undefined;
}

/** the symbols of .symtab named in `wanted` (the first of each name), or undefined without .symtab */
export function findSymbols(elf: ElfFile, wanted: Iterable<string>): Map<string, ElfSymbol> | undefined {
  const symtab = elf.sections.find((s) => s.type === SHT_SYMTAB);
  if (!symtab) return undefined;
  const strtab = elf.sections[symtab.link];
  if (!strtab) throw new ElfFormatError(`.symtab links to missing section ${symtab.link}`);
  const syms = sectionBytes(elf, symtab);
  const strs = sectionBytes(elf, strtab);
  // compare names as bytes: no string is made for the tens of thousands of other symbols
  const want = new Map<string, Buffer>();
  for (const w of wanted) want.set(w, Buffer.from(w + '\0', 'latin1'));
  const found = new Map<string, ElfSymbol>();
  const entsize = symtab.entsize || 24;
  for (let o = 0; o + 24 <= syms.length && found.size < want.size; o += entsize) {
    const nameOff = syms.readUInt32LE(o);
    for (const [name, bytes] of want) {
      if (found.has(name) || strs[nameOff] !== bytes[0]) continue;
      if (strs.compare(bytes, 0, bytes.length, nameOff, nameOff + bytes.length) === 0) {
        found.set(name, { value: u64(syms, o + 8), size: u64(syms, o + 16), shndx: syms.readUInt16LE(o + 6) });
        break;
      }
    }
  }
  return found;
}
