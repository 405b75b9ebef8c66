// The Go version a binary was built with, from its build info (the `.go.buildinfo` section
// every Go ≥ 1.13 executable carries, stripped or not). Layout (cmd/go's debug/buildinfo
// reader documents the same): a 32-byte header that starts with "\xff Go buildinf:", then the
// pointer size (byte 14) and flags (byte 15). With flag bit 2 (Go ≥ 1.18) the version follows
// the header inline as a uvarint length and its bytes; before that, bytes 16.. hold pointers to
// Go string headers {data pointer, length} elsewhere in the file.
const MAGIC = Buffer.from('\xff Go buildinf:', 'latin1');
const FLAG_BIG_ENDIAN = 1;
const FLAG_INLINE = 2;

/** reads `len` bytes at a virtual address of the same file, or undefined when unmapped */
export type ReadVaddr = (vaddr: number, len: number) => Buffer | undefined;

function uvarint(b: Buffer, pos: number): [value: number, next: number] | undefined {
  let v = 0;
  let shift = 0;
  for (let i = pos; i < b.length && shift < 35; i++, shift += 7) {
    v += (b[i]! & 0x7f) * 2 ** shift;
    if (b[i]! < 0x80) return [v, i + 1];
  }
  return undefined;
}

/** "go1.26.8" (or "devel go1.27-…"), or undefined when the section holds no readable version */
export function goVersionFromBuildInfo(section: Buffer, readVaddr: ReadVaddr): string | undefined {
  if (section.length < 32 || !section.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const ptrSize = section[14]!;
  const flags = section[15]!;
  if (flags & FLAG_INLINE) {
    const len = uvarint(section, 32);
    if (!len || len[0] === 0 || len[1] + len[0] > section.length) return undefined;
    return section.toString('utf8', len[1], len[1] + len[0]);
  }
  if ((ptrSize !== 4 && ptrSize !== 8) || flags & FLAG_BIG_ENDIAN) return undefined;
  const ptr = (b: Buffer, o: number): number => (ptrSize === 8 ? Number(b.readBigUInt64LE(o)) : b.readUInt32LE(o));
  const header = readVaddr(ptr(section, 16), 2 * ptrSize);
  if (!header) return undefined;
  const len = ptr(header, ptrSize);
  if (len === 0 || len > 256) return undefined;
  return readVaddr(ptr(header, 0), len)?.toString('utf8');
}

/** [major, minor] of "go1.19.8", "go1.21rc2" or "devel go1.27-abcdef …"; undefined for anything else */
export function goRelease(version: string): [number, number] | undefined {
  const m = /go(\d+)\.(\d+)/.exec(version);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}
