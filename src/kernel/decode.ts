// Decoding of ring-buffer batches: one Buffer holds many records, each an
// osp_event header plus its payload prefix, 8-byte aligned (native/src/capture.cc).
import { AF_INET, EVENT_HEADER_SIZE, EVENT_LAYOUT as L, OP_NAMES, type OpName } from './abi.js';

export interface KernelEvent {
  op: OpName;
  flags: number;
  pid: number;
  tid: number;
  fd: number;
  /** CLOCK_MONOTONIC ns at syscall entry / exit, relative to the capture's epoch (see Capture.monoBase) */
  ts: number;
  tsEnd: number;
  connId: number;
  /** full length of the call */
  bytes: number;
  family: number;
  role: number;
  lport: number;
  rport: number;
  /** raw 16-byte address fields (views into the batch); format with formatAddr() */
  laddr: Buffer;
  raddr: Buffer;
  comm: string;
  /** captured payload prefix (a view into the batch: copy it to keep it past the callback) */
  data: Buffer;
}

export interface DecodeStats {
  records: number;
  malformed: number;
  unknownOp: number;
}

const commCache = new Map<string, string>();

function readComm(buf: Buffer, off: number): string {
  let end = off;
  const stop = off + L.comm[1];
  while (end < stop && buf[end] !== 0) end++;
  // comm strings repeat endlessly: intern them so decoding does not allocate per event
  const key = buf.toString('latin1', off, end);
  let v = commCache.get(key);
  if (v === undefined) {
    v = key;
    if (commCache.size < 4096) commCache.set(key, v);
  }
  return v;
}

/**
 * Calls `emit` for every event in a batch. `monoBase` is subtracted from the
 * kernel's ns timestamps so they fit a double exactly for ~104 days.
 */
export function decodeBatch(
  buf: Buffer,
  monoBase: bigint,
  emit: (e: KernelEvent) => void,
  stats: DecodeStats,
): void {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off + EVENT_HEADER_SIZE <= buf.length) {
    const size = dv.getUint16(off + L.size[0], true);
    const cap = dv.getUint32(off + L.cap[0], true);
    if (size < EVENT_HEADER_SIZE || size !== EVENT_HEADER_SIZE + cap || off + size > buf.length) {
      stats.malformed++;
      return;
    }
    const opCode = buf[off + L.op[0]]!;
    const op = OP_NAMES[opCode];
    stats.records++;
    if (op === undefined) {
      stats.unknownOp++;
    } else {
      // ts values are < 2^63; the difference to the capture's base fits 2^53 for months
      const ts = Number(dv.getBigUint64(off + L.ts[0], true) - monoBase) || 0;
      const tsEnd = Number(dv.getBigUint64(off + L.ts_end[0], true) - monoBase) || 0;
      emit({
        op,
        flags: buf[off + L.flags[0]]!,
        pid: dv.getUint32(off + L.pid[0], true),
        tid: dv.getUint32(off + L.tid[0], true),
        fd: dv.getInt32(off + L.fd[0], true),
        ts,
        tsEnd,
        connId: Number(dv.getBigUint64(off + L.conn_id[0], true)),
        bytes: Number(dv.getBigInt64(off + L.bytes[0], true)),
        family: buf[off + L.family[0]]!,
        role: buf[off + L.role[0]]!,
        lport: dv.getUint16(off + L.lport[0], true),
        rport: dv.getUint16(off + L.rport[0], true),
        laddr: buf.subarray(off + L.laddr[0], off + L.laddr[0] + 16),
        raddr: buf.subarray(off + L.raddr[0], off + L.raddr[0] + 16),
        comm: readComm(buf, off + L.comm[0]),
        data: buf.subarray(off + EVENT_HEADER_SIZE, off + EVENT_HEADER_SIZE + cap),
      });
    }
    off += (size + 7) & ~7;
  }
}

const V4_MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

/** "ip:port"; IPv6 in brackets, v4-mapped IPv6 as plain IPv4 */
export function formatAddr(family: number, addr: Buffer, port: number): string {
  const ip = formatIp(family, addr);
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

export function formatIp(family: number, addr: Buffer): string {
  if (family === AF_INET) return `${addr[0]}.${addr[1]}.${addr[2]}.${addr[3]}`;
  if (addr.compare(V4_MAPPED_PREFIX, 0, 12, 0, 12) === 0) return `${addr[12]}.${addr[13]}.${addr[14]}.${addr[15]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((addr[i]! << 8) | addr[i + 1]!).toString(16));
  // collapse the longest run of zero groups (RFC 5952)
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return groups.join(':');
  const head = groups.slice(0, bestStart).join(':');
  const tail = groups.slice(bestStart + bestLen).join(':');
  return `${head}::${tail}`;
}
