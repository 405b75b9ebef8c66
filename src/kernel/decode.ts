// Decoding of ring-buffer batches: one Buffer holds many records, each an
// osp_event header plus its payload prefix, 8-byte aligned (native/src/capture.cc).
import { AF_INET, EVENT_HEADER_SIZE, EVENT_LAYOUT as L, EXCHANGE_LAYOUT as X, EXCHANGE_SIZE, OP_NAMES, type OpName } from './abi.js';

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
  /** network namespace (inode number) of the socket: loopback 4-tuples repeat across namespaces */
  netns: number;
  /** 1: a TLS connection, whose payloads are its plaintext (from uprobes) */
  tls: number;
  /** LinkNote bits: what linking must know of a request started by this call */
  link: number;
  /** raw 16-byte address fields (views into the batch); format with formatAddr() */
  readonly laddr: Buffer;
  readonly raddr: Buffer;
  /** formatIp of laddr / raddr: the strings of IPv4 addresses are made once and kept (V4_STRINGS) */
  readonly localIp: string;
  readonly remoteIp: string;
  /**
   * The socket's connection as a key: its local then its remote end (connKey), or the other way
   * round (peerKey: the key the other end's socket has, when both ends are on this node). A
   * short opaque string of 16-bit units, v4-mapped IPv6 addresses as IPv4 (so a dual-stack
   * server's socket pairs with its IPv4 client's); the network namespace is part of it when the
   * local address is loopback (every namespace has its own 127.0.0.1 and ports). Equal keys are
   * the same ends: the linker pairs client and server requests by them.
   */
  readonly connKey: string;
  readonly peerKey: string;
  readonly comm: string;
  /**
   * runtime context of the call (bpf/lib/rtctx.h), 0 when unknown: which unit of work of a
   * multiplexing runtime made it (Go: goroutine; Node: async context). Compare only within a pid.
   */
  rtx: number;
  /**
   * records the ring buffer had refused (all CPUs) when this one was written: a larger value
   * than any seen before means records were lost before this one (src/agent: loss barrier)
   */
  lost: number;
  /**
   * captured payload prefix (a view into the batch: copy it to keep it past the callback).
   * Made on each read: read it once.
   */
  readonly data: Buffer;
  /**
   * the batch `data` is a view of, and the payload's bounds in it (data is
   * batch[dataStart, dataEnd)): for a reader that needs no view of its own
   */
  readonly batch: Buffer;
  /** a DataView over the whole batch (word reads: see src/agent/head-memo.ts) */
  readonly view: DataView;
  readonly dataStart: number;
  readonly dataEnd: number;
  /**
   * op 'exchange' only: the rest of a kernel-summarised HTTP/1 exchange (the header's ts is
   * the request's start, tsEnd the response's end, bytes the request's size, tid the
   * request's thread; `data` is the request head's first bytes). Reused like the event.
   */
  readonly exchange: ExchangeFields;
}

/** struct osp_exchange, times relative to the capture's epoch like ts */
export interface ExchangeFields {
  reqEnd: number;
  respTs: number;
  respBytes: number;
  reqCallTs: number;
  reqCallTsEnd: number;
  respTid: number;
  /** runtime context of the response's first bytes (see KernelEvent.rtx) */
  respRtx: number;
  reqHeadLen: number;
  respHeadLen: number;
  status: number;
  respMinor: number;
  xflags: number;
}

export interface DecodeStats {
  records: number;
  malformed: number;
  unknownOp: number;
}

function readComm(buf: Buffer, off: number): string {
  let end = off;
  const stop = off + L.comm[1];
  while (end < stop && buf[end] !== 0) end++;
  return buf.toString('latin1', off, end);
}

/**
 * One decoded event. The decoder reuses a single instance for a whole batch
 * (no allocation per event beyond the payload view): read what you need inside
 * the callback, copy what you keep. Addresses are views made on demand.
 */
class BatchEvent implements KernelEvent {
  op: OpName = 'connect';
  flags = 0;
  pid = 0;
  tid = 0;
  fd = 0;
  ts = 0;
  tsEnd = 0;
  connId = 0;
  bytes = 0;
  family = 0;
  role = 0;
  lport = 0;
  rport = 0;
  netns = 0;
  tls = 0;
  link = 0;
  rtx = 0;
  lost = 0;
  /** payload bounds in buf: a view is made only when `data` is read (a record whose
   *  request head was already seen as a hint needs none) */
  dataStart = 0;
  dataEnd = 0;
  get data(): Buffer {
    return this.dataEnd > this.dataStart ? this.batch.subarray(this.dataStart, this.dataEnd) : EMPTY;
  }
  readonly exchange: ExchangeFields = {
    reqEnd: 0,
    respTs: 0,
    respBytes: 0,
    reqCallTs: 0,
    reqCallTsEnd: 0,
    respTid: 0,
    respRtx: 0,
    reqHeadLen: 0,
    respHeadLen: 0,
    status: 0,
    respMinor: 0,
    xflags: 0,
  };
  batch: Buffer = EMPTY;
  view: DataView = EMPTY_VIEW;
  off = 0;
  get laddr(): Buffer {
    return this.batch.subarray(this.off + L.laddr[0], this.off + L.laddr[0] + 16);
  }
  get raddr(): Buffer {
    return this.batch.subarray(this.off + L.raddr[0], this.off + L.raddr[0] + 16);
  }
  get localIp(): string {
    return ipAt(this.family, this.batch, this.view, this.off + L.laddr[0]);
  }
  get remoteIp(): string {
    return ipAt(this.family, this.batch, this.view, this.off + L.raddr[0]);
  }
  get connKey(): string {
    return tupleKey(this.family, this.view, this.off + L.laddr[0], this.lport, this.off + L.raddr[0], this.rport, this.netns, true);
  }
  get peerKey(): string {
    return tupleKey(this.family, this.view, this.off + L.raddr[0], this.rport, this.off + L.laddr[0], this.lport, this.netns, false);
  }
  /** read on demand: most consumers need it once per connection, not per event */
  get comm(): string {
    return readComm(this.batch, this.off + L.comm[0]);
  }
}

const EMPTY = Buffer.alloc(0);
const EMPTY_VIEW = new DataView(new ArrayBuffer(0));

/**
 * Calls `emit` for every event in a batch. `monoBase` is subtracted from the
 * kernel's ns timestamps so they fit a double exactly for ~104 days. The event
 * object is reused between calls (see BatchEvent).
 */
export function decodeBatch(
  buf: Buffer,
  monoBase: bigint,
  emit: (e: KernelEvent) => void,
  stats: DecodeStats,
): void {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  // timestamps: split into high and low 32 bits to stay in doubles (no BigInt per event)
  const baseHi = Number(monoBase >> 32n);
  const baseLo = Number(monoBase & 0xffffffffn);
  const e = new BatchEvent();
  e.batch = buf;
  e.view = dv;
  let off = 0;
  while (off + EVENT_HEADER_SIZE <= buf.length) {
    const size = dv.getUint16(off + L.size[0], true);
    const cap = dv.getUint32(off + L.cap[0], true);
    if (size < EVENT_HEADER_SIZE || size !== EVENT_HEADER_SIZE + cap || off + size > buf.length) {
      stats.malformed++;
      return;
    }
    const op = OP_NAMES[buf[off + L.op[0]]!];
    stats.records++;
    if (op === undefined) {
      stats.unknownOp++;
    } else {
      e.op = op;
      e.off = off;
      e.flags = buf[off + L.flags[0]]!;
      e.pid = dv.getUint32(off + L.pid[0], true);
      e.tid = dv.getUint32(off + L.tid[0], true);
      e.fd = dv.getInt32(off + L.fd[0], true);
      e.ts = rel(dv, off + L.ts[0], baseHi, baseLo);
      e.tsEnd = rel(dv, off + L.ts_end[0], baseHi, baseLo);
      e.connId = dv.getUint32(off + L.conn_id[0], true) + dv.getUint32(off + L.conn_id[0] + 4, true) * 4294967296;
      e.bytes = dv.getUint32(off + L.bytes[0], true) + dv.getInt32(off + L.bytes[0] + 4, true) * 4294967296;
      e.family = buf[off + L.family[0]]!;
      e.role = buf[off + L.role[0]]!;
      e.lport = dv.getUint16(off + L.lport[0], true);
      e.rport = dv.getUint16(off + L.rport[0], true);
      e.netns = dv.getUint32(off + L.netns[0], true);
      e.tls = buf[off + L.tls[0]]!;
      e.link = buf[off + L.link[0]]!;
      // u64, exact below 2^53 (a goroutine id or an integer async id never gets near that)
      e.rtx = dv.getUint32(off + L.rtx[0], true) + dv.getUint32(off + L.rtx[0] + 4, true) * 4294967296;
      e.lost = dv.getUint32(off + L.lost[0], true) + dv.getUint32(off + L.lost[0] + 4, true) * 4294967296;
      e.dataStart = off + EVENT_HEADER_SIZE;
      e.dataEnd = off + EVENT_HEADER_SIZE + cap;
      if (op === 'exchange') {
        if (cap < EXCHANGE_SIZE) {
          stats.malformed++;
          off += (size + 7) & ~7;
          continue;
        }
        const x = off + EVENT_HEADER_SIZE;
        const ex = e.exchange;
        ex.reqEnd = rel(dv, x + X.req_end[0], baseHi, baseLo);
        ex.respTs = rel(dv, x + X.resp_ts[0], baseHi, baseLo);
        ex.respBytes = dv.getUint32(x + X.resp_bytes[0], true) + dv.getUint32(x + X.resp_bytes[0] + 4, true) * 4294967296;
        ex.reqCallTs = rel(dv, x + X.req_call_ts[0], baseHi, baseLo);
        ex.reqCallTsEnd = rel(dv, x + X.req_call_ts_end[0], baseHi, baseLo);
        ex.respTid = dv.getUint32(x + X.resp_tid[0], true);
        ex.respRtx = dv.getUint32(x + X.resp_rtx[0], true) + dv.getUint32(x + X.resp_rtx[0] + 4, true) * 4294967296;
        ex.reqHeadLen = dv.getUint32(x + X.req_head_len[0], true);
        ex.respHeadLen = dv.getUint32(x + X.resp_head_len[0], true);
        ex.status = dv.getUint16(x + X.status[0], true);
        ex.respMinor = buf[x + X.resp_minor[0]]!;
        ex.xflags = buf[x + X.xflags[0]]!;
        e.dataStart = x + EXCHANGE_SIZE;
      }
      emit(e);
    }
    off += (size + 7) & ~7;
  }
}

/** a u64 ns timestamp minus the base, as a double (exact below 2^53 ns of difference) */
function rel(dv: DataView, at: number, baseHi: number, baseLo: number): number {
  const hi = dv.getUint32(at + 4, true);
  const lo = dv.getUint32(at, true);
  if (hi === 0 && lo === 0) return 0;
  return (hi - baseHi) * 4294967296 + (lo - baseLo);
}

const V4_MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

/**
 * Dotted strings of IPv4 addresses by address: a node's connections come from and go to few
 * addresses (loopback, its pods, a few services), and a connection per request would otherwise
 * make two address strings each. Emptied when full.
 */
const V4_STRINGS = new Map<number, string>();
const V4_STRINGS_MAX = 4096;

/** the IPv4 address (a u32) of the 16-byte address at view[at] (plain or v4-mapped IPv6), -1 for an IPv6 one */
function v4At(family: number, view: DataView, at: number): number {
  if (family === AF_INET) return view.getUint32(at, false);
  if (view.getUint32(at, true) === 0 && view.getUint32(at + 4, true) === 0 && view.getUint32(at + 8, false) === 0xffff) return view.getUint32(at + 12, false);
  return -1;
}

const u16 = String.fromCharCode;

/**
 * KernelEvent.connKey: end a (address at view[a], port pa) then end b, then the namespace when
 * the socket's local address (a when localIsA, else b) is loopback (127.0.0.0/8 or ::1). IPv4
 * ends take 3 units each, IPv6 ones 9: keys of the two forms differ in length, so they never
 * collide.
 */
function tupleKey(family: number, view: DataView, a: number, pa: number, b: number, pb: number, netns: number, localIsA: boolean): string {
  const a4 = v4At(family, view, a);
  const b4 = v4At(family, view, b);
  const l4 = localIsA ? a4 : b4;
  const l = localIsA ? a : b;
  const loop =
    l4 >= 0 ? l4 >>> 24 === 127 : view.getUint32(l, true) === 0 && view.getUint32(l + 4, true) === 0 && view.getUint32(l + 8, true) === 0 && view.getUint32(l + 12, false) === 1;
  const k = a4 >= 0 && b4 >= 0 ? u16(a4 >>> 16, a4 & 0xffff, pa, b4 >>> 16, b4 & 0xffff, pb) : v6End(view, a, pa) + v6End(view, b, pb);
  return loop ? k + u16(netns >>> 16, netns & 0xffff) : k;
}

function v6End(view: DataView, at: number, port: number): string {
  const w = (i: number): number => view.getUint16(at + i, false);
  return u16(w(0), w(2), w(4), w(6), w(8), w(10), w(12), w(14), port);
}

/** formatIp of the 16-byte address at buf[at], IPv4 strings from V4_STRINGS */
function ipAt(family: number, buf: Buffer, view: DataView, at: number): string {
  const v4 = v4At(family, view, at);
  if (v4 < 0) return formatIp(family, buf.subarray(at, at + 16));
  let s = V4_STRINGS.get(v4);
  if (s === undefined) {
    s = `${v4 >>> 24}.${(v4 >>> 16) & 255}.${(v4 >>> 8) & 255}.${v4 & 255}`;
    if (V4_STRINGS.size >= V4_STRINGS_MAX) V4_STRINGS.clear();
    V4_STRINGS.set(v4, s);
  }
  return s;
}

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
