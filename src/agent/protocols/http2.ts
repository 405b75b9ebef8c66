// HTTP/2 (RFC 9113) and gRPC over it: frames one connection's two byte streams, decodes header
// blocks with HPACK (./hpack.ts) and turns each stream into one exchange.
//
// Input model. For an HTTP/2 connection the kernel ships every call's frames with the DATA
// payloads cut out (bpf/lib/h2.h): a chunk's `data` is the compact form, `bytes` the call's real
// length. So each direction here is a stream of frames where a DATA frame is its 9-byte header
// alone (its length is counted, never read) and every other frame is whole. Frames and header
// blocks may span chunks: the direction buffers what it has not framed yet (bounded).
//
// What a stream gives:
//   HEADERS (+ CONTINUATION) with :method/:path/:authority → the request; the sender is the client;
//   HEADERS with :status (1xx skipped) → the response; a later HEADERS block → trailers
//     (gRPC: grpc-status, grpc-message; a "trailers-only" response carries them in its headers);
//   DATA → body bytes; END_STREAM on each side ends that side; RST_STREAM ends the stream
//     (incomplete 'reset', unless it is CANCEL or NO_ERROR after the response began: a
//     stream stopped on purpose, such as a watch its client is done with); GOAWAY ends the
//     streams above its last stream id (incomplete 'goaway'); end() (the close) ends the rest
//     (incomplete 'eof').
// An exchange is reported when both sides ended (or the stream was reset), in the order
// streams end — HTTP/2 multiplexes: there is no request order to keep.
//
// Where it cannot know:
// - HPACK state unknown (connection joined mid-stream, a header block lost): a block that
//   refers to what we do not hold is not decoded (counter `headerBlocksUnknown`); a stream
//   whose request block is unknown gives no exchange, one whose response block is unknown gives
//   an exchange without status. Never a guessed header.
// - Open streams are bounded (maxStreams per connection, maxStreamAgeNs): the oldest go first
//   and are counted (`streamsEvicted`, `streamsExpired`), with no exchange: a watch that outlives
//   the bound is not reported with a made-up end.
// - Malformed input (a bad frame header, a frame beyond the size limits, CONTINUATION out of
//   place, a preface missing where it must be) sets `error` (counter `malformed`); the parser
//   then ignores the connection.
//
// Timing follows the HTTP/1 parser: a message this process writes starts at the entry of the
// call that carries its first frame; one it reads at the exit of that call; both end at the exit
// of the call that carries END_STREAM. tid is the thread of the request's HEADERS call.
//
// Privacy: credentials are never kept (./hpack.ts drops their values even from the table); only
// an allow-list of headers reaches the exchange; ../spans.ts redacts what it takes.

import type { Chunk, Direction, Exchange, HttpRequest, HttpResponse, ProtocolParser } from './protocol.js';
import { HpackBlocks, type HeaderList } from './hpack.js';

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const FRAME_HEADER = 9;
const T_DATA = 0;
const T_HEADERS = 1;
const T_PRIORITY = 2;
const T_RST_STREAM = 3;
const T_SETTINGS = 4;
const T_PUSH_PROMISE = 5;
const T_PING = 6;
const T_GOAWAY = 7;
const T_WINDOW_UPDATE = 8;
const T_CONTINUATION = 9;
const F_END_STREAM = 0x1;
const F_END_HEADERS = 0x4;
const F_PADDED = 0x8;
const F_PRIORITY = 0x20;
const SETTINGS_HEADER_TABLE_SIZE = 1;
/** RST_STREAM error codes (RFC 9113 §7) */
const RST_NO_ERROR = 0;
const RST_CANCEL = 8;
/** the largest frame payload HTTP/2 allows (SETTINGS_MAX_FRAME_SIZE's ceiling) */
const MAX_FRAME = (1 << 24) - 1;

/** request headers kept (lowercase); never credentials */
const KEPT = new Set(['traceparent', 'tracestate', 'user-agent', 'content-type', 'x-forwarded-for', 'x-request-id']);

export interface Http2Counters {
  exchanges: number;
  incomplete: number;
  /** header blocks not decoded because the HPACK state was unknown (mid-stream join, lost block) */
  headerBlocksUnknown: number;
  /** connections joined mid-stream (HPACK state unknown from the start) */
  midStream: number;
  /** streams dropped because a connection had too many open */
  streamsEvicted: number;
  /** streams dropped because they stayed open longer than the bound */
  streamsExpired: number;
  rstStreams: number;
  goaways: number;
  /** parsers stopped on malformed input */
  malformed: number;
  /** connections switched from HTTP/1 by Upgrade: h2c */
  upgrades: number;
}

export function newHttp2Counters(): Http2Counters {
  return {
    exchanges: 0,
    incomplete: 0,
    headerBlocksUnknown: 0,
    midStream: 0,
    streamsEvicted: 0,
    streamsExpired: 0,
    rstStreams: 0,
    goaways: 0,
    malformed: 0,
    upgrades: 0,
  };
}

/** gRPC's view of an exchange (content-type application/grpc*) */
export interface GrpcInfo {
  service: string;
  method: string;
  /** grpc-status from the trailers (or a trailers-only response); undefined when not seen */
  status: number | undefined;
  message: string | undefined;
}

export interface Http2Options {
  counters?: Http2Counters;
  /** the connection predates capture: HPACK state unknown, no preface expected */
  midStream?: boolean;
  /** the kernel's idea of the role (accept/connect), for a mid-stream connection */
  role?: 'server' | 'client';
  /** switched from HTTP/1 by Upgrade: h2c: stream 1 is this request, already complete */
  upgradeRequest?: HttpRequest;
  /** most streams open at once per connection (default 1000) */
  maxStreams?: number;
  /** a stream open longer than this is dropped (default 10 min) */
  maxStreamAgeNs?: number;
  /** a stream's request headers were decoded (linking needs the request when it starts) */
  onRequest?: (req: HttpRequest, streamId: number) => void;
  /** a server began its response: the request's work is done */
  onResponse?: (req: HttpRequest, res: HttpResponse) => void;
}

interface Stream {
  id: number;
  /** undefined until its request block decoded; null when that block was unknown */
  req: HttpRequest | null | undefined;
  reqEnded: boolean;
  res: HttpResponse | undefined;
  /** the response block could not be decoded */
  resUnknown: boolean;
  resEnded: boolean;
  grpcStatus: number | undefined;
  grpcMessage: string | undefined;
  opened: number;
  /** header block under way (HEADERS without END_HEADERS, then CONTINUATION) */
  block: Buffer[] | undefined;
  blockEndStream: boolean;
  blockTs: number;
  blockTid: number;
  /** body bytes each way before the message objects exist */
  reqBody: number;
  resBody: number;
}

/** one direction's frames */
interface Side {
  dir: Direction;
  pending: Buffer | undefined;
  /** the client preface is still to come on this side */
  wantPreface: boolean;
  hpack: HpackBlocks;
  /** the stream whose header block is under way on this side (CONTINUATION must follow it) */
  continuing: Stream | undefined;
}

/** what can start an HTTP/2 connection's byte stream, as the agent sees its first chunk */
export function looksLikeHttp2(chunk: Chunk, preexisting: boolean): boolean {
  const d = chunk.data;
  if (d.length >= PREFACE.length && d.subarray(0, PREFACE.length).equals(PREFACE)) return true;
  // a server's first write: its SETTINGS frame on stream 0 (the kernel let it pass for that)
  if (chunk.dir === 'out' && d.length >= FRAME_HEADER && d[3] === T_SETTINGS && d[4] === 0 && d.readUInt32BE(5) === 0 && d.readUIntBE(0, 3) % 6 === 0) return !preexisting;
  return false;
}

export class Http2Parser implements ProtocolParser {
  readonly protocol = 'http2';
  #error: string | undefined;
  readonly #c: Http2Counters;
  readonly #opts: Http2Options;
  readonly #in: Side;
  readonly #out: Side;
  #role: 'server' | 'client' | undefined;
  readonly #streams = new Map<number, Stream>();
  readonly #maxStreams: number;
  readonly #maxAge: number;
  #done: Exchange[] = [];
  #chunk: Chunk | undefined;

  constructor(opts: Http2Options = {}) {
    this.#opts = opts;
    this.#c = opts.counters ?? newHttp2Counters();
    this.#maxStreams = opts.maxStreams ?? 1000;
    this.#maxAge = opts.maxStreamAgeNs ?? 600e9;
    const partial = opts.midStream === true;
    if (partial) this.#c.midStream++;
    this.#in = { dir: 'in', pending: undefined, wantPreface: false, hpack: new HpackBlocks(partial), continuing: undefined };
    this.#out = { dir: 'out', pending: undefined, wantPreface: false, hpack: new HpackBlocks(partial), continuing: undefined };
    if (opts.upgradeRequest) {
      this.#c.upgrades++;
      this.#role = opts.role;
      const req = opts.upgradeRequest;
      const s = this.#newStream(1, req.tsStart);
      s.req = req;
      s.reqEnded = true;
      // the client sends the preface after the 101
      (this.#role === 'server' ? this.#in : this.#out).wantPreface = true;
    } else if (partial) this.#role = opts.role;
  }

  get error(): string | undefined {
    return this.#error;
  }

  get connectionRole(): 'server' | 'client' | undefined {
    return this.#role;
  }

  push(chunk: Chunk): Exchange[] {
    if (this.#error !== undefined) return [];
    this.#chunk = chunk;
    const side = chunk.dir === 'in' ? this.#in : this.#out;
    let data = chunk.data;
    if (this.#role === undefined && !this.#opts.midStream) {
      // prior knowledge: whoever sends the preface is the client; a server may write its SETTINGS first
      if (data.length >= PREFACE.length && data.subarray(0, PREFACE.length).equals(PREFACE)) {
        this.#role = chunk.dir === 'out' ? 'client' : 'server';
        data = data.subarray(PREFACE.length);
      } else if (chunk.dir === 'out') {
        this.#role = 'server';
        this.#in.wantPreface = true;
      } else return this.#fail('no preface');
    } else if (side.wantPreface) {
      if (data.length < PREFACE.length || !data.subarray(0, PREFACE.length).equals(PREFACE)) return this.#fail('no preface');
      side.wantPreface = false;
      data = data.subarray(PREFACE.length);
    }
    side.pending = side.pending ? Buffer.concat([side.pending, data]) : data;
    this.#frames(side);
    if (side.pending && side.pending.length > 2 * MAX_FRAME) this.#fail('frame too large');
    const out = this.#done;
    if (out.length) this.#done = [];
    return this.#error !== undefined ? [] : out;
  }

  end(ts: number): Exchange[] {
    if (this.#error !== undefined) return [];
    for (const s of this.#streams.values()) this.#finish(s, ts, 'eof');
    const out = this.#done;
    this.#done = [];
    return out;
  }

  idle(now: number): Exchange[] {
    if (this.#error !== undefined) return [];
    for (const s of this.#streams.values()) {
      if (now - s.opened <= this.#maxAge) break; // insertion order: the oldest first
      this.#streams.delete(s.id);
      this.#c.streamsExpired++;
    }
    return [];
  }

  #fail(reason: string): Exchange[] {
    this.#error = reason;
    this.#c.malformed++;
    this.#done = [];
    return [];
  }

  /** frames everything whole in side.pending; keeps the rest */
  #frames(side: Side): void {
    const buf = side.pending!;
    let off = 0;
    while (this.#error === undefined && buf.length - off >= FRAME_HEADER) {
      const len = buf.readUIntBE(off, 3);
      const type = buf[off + 3]!;
      const flags = buf[off + 4]!;
      const id = buf.readUInt32BE(off + 5) & 0x7fffffff;
      if (type === T_DATA) {
        // compact form: the payload was cut out by the kernel
        off += FRAME_HEADER;
        this.#data(side, id, flags, len);
        continue;
      }
      if (buf.length - off - FRAME_HEADER < len) break;
      const payload = buf.subarray(off + FRAME_HEADER, off + FRAME_HEADER + len);
      off += FRAME_HEADER + len;
      this.#frame(side, type, flags, id, payload);
    }
    side.pending = off >= buf.length ? undefined : Buffer.from(buf.subarray(off));
  }

  #frame(side: Side, type: number, flags: number, id: number, p: Buffer): void {
    if (side.continuing && type !== T_CONTINUATION) {
      this.#fail('CONTINUATION expected');
      return;
    }
    switch (type) {
      case T_HEADERS: {
        if (id === 0) {
          this.#fail('HEADERS on stream 0');
          return;
        }
        let start = 0;
        let end = p.length;
        if (flags & F_PADDED) {
          const pad = p[0] ?? 0;
          start = 1;
          end -= pad;
        }
        if (flags & F_PRIORITY) start += 5;
        if (start > end) {
          this.#fail('bad HEADERS padding');
          return;
        }
        const s = this.#streams.get(id) ?? this.#newStream(id, this.#ts(side));
        s.block = [p.subarray(start, end)];
        s.blockEndStream = (flags & F_END_STREAM) !== 0;
        s.blockTs = this.#ts(side);
        s.blockTid = this.#chunk!.tid;
        if (flags & F_END_HEADERS) this.#block(side, s);
        else side.continuing = s;
        return;
      }
      case T_CONTINUATION: {
        const s = side.continuing;
        if (!s || s.id !== id || !s.block) {
          this.#fail('CONTINUATION out of place');
          return;
        }
        s.block.push(p);
        if (flags & F_END_HEADERS) {
          side.continuing = undefined;
          this.#block(side, s);
        }
        return;
      }
      case T_RST_STREAM: {
        this.#c.rstStreams++;
        const s = this.#streams.get(id);
        if (!s) return;
        const ts = this.#chunk!.tsEnd;
        // CANCEL or NO_ERROR once the response began is a stream stopped on purpose: a client
        // done with a watch or a download (client-go stopping an informer), or a server that
        // answered before reading the whole request (RFC 9113 §8.1). The exchange ends here
        // with its status; any other code, or no response yet, is a failed exchange.
        const code = p.length >= 4 ? p.readUInt32BE(0) : -1;
        if (s.res && (code === RST_NO_ERROR || code === RST_CANCEL)) {
          s.res.tsEnd = Math.max(s.res.tsEnd, ts);
          this.#finish(s, ts, undefined);
        } else this.#finish(s, ts, 'reset');
        return;
      }
      case T_SETTINGS: {
        if (flags & 0x1) return; // ACK
        // the sender tells how big the table of blocks sent TO it may be
        for (let o = 0; o + 6 <= p.length; o += 6) {
          if (p.readUInt16BE(o) === SETTINGS_HEADER_TABLE_SIZE) (side === this.#in ? this.#out : this.#in).hpack.setAllowed(p.readUInt32BE(o + 2));
        }
        return;
      }
      case T_GOAWAY: {
        this.#c.goaways++;
        if (p.length < 8) return;
        const last = p.readUInt32BE(0) & 0x7fffffff;
        // streams above the last one the sender processed were not handled
        for (const s of this.#streams.values()) if (s.id > last && !s.res) this.#finish(s, this.#chunk!.tsEnd, 'goaway');
        return;
      }
      case T_PUSH_PROMISE:
        // a pushed response's request block: decoded only to keep the table right
        if (flags & F_END_HEADERS) side.hpack.decode(p.subarray(4 + ((flags & F_PADDED) ? 1 : 0)));
        else side.hpack.reset();
        return;
      case T_PRIORITY:
      case T_PING:
      case T_WINDOW_UPDATE:
      default:
        return; // unknown types are ignored (RFC 9113 5.5)
    }
  }

  #data(side: Side, id: number, flags: number, len: number): void {
    const s = this.#streams.get(id);
    if (!s) return;
    const fromClient = this.#fromClient(side);
    if (fromClient) {
      s.reqBody += len;
      if (s.req) s.req.tsEnd = this.#chunk!.tsEnd;
      if (flags & F_END_STREAM) s.reqEnded = true;
    } else {
      s.resBody += len;
      if (s.res) s.res.tsEnd = this.#chunk!.tsEnd;
      if (flags & F_END_STREAM) s.resEnded = true;
    }
    if (flags & F_END_STREAM) this.#maybeDone(s);
  }

  /** whether frames on this side are the client's */
  #fromClient(side: Side): boolean {
    return this.#role === 'server' ? side.dir === 'in' : side.dir === 'out';
  }

  #ts(side: Side): number {
    return side.dir === 'out' ? this.#chunk!.tsStart : this.#chunk!.tsEnd;
  }

  #newStream(id: number, ts: number): Stream {
    if (this.#streams.size >= this.#maxStreams) {
      const oldest = this.#streams.values().next().value;
      if (oldest) {
        this.#streams.delete(oldest.id);
        this.#c.streamsEvicted++;
      }
    }
    const s: Stream = {
      id,
      req: undefined,
      reqEnded: false,
      res: undefined,
      resUnknown: false,
      resEnded: false,
      grpcStatus: undefined,
      grpcMessage: undefined,
      opened: ts,
      block: undefined,
      blockEndStream: false,
      blockTs: ts,
      blockTid: 0,
      reqBody: 0,
      resBody: 0,
    };
    this.#streams.set(id, s);
    return s;
  }

  /** a whole header block of stream s arrived on this side */
  #block(side: Side, s: Stream): void {
    const parts = s.block!;
    s.block = undefined;
    const block = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    const headers = side.hpack.decode(block);
    const chunk = this.#chunk!;
    if (this.#role === undefined && headers) {
      // mid-stream without a known role: a request block tells who the client is
      if (headers.some(([n]) => n === ':method')) this.#role = side.dir === 'out' ? 'client' : 'server';
      else if (headers.some(([n]) => n === ':status')) this.#role = side.dir === 'out' ? 'server' : 'client';
    }
    if (this.#role === undefined) {
      // nothing can be said of this stream
      if (!headers) this.#c.headerBlocksUnknown++;
      this.#streams.delete(s.id);
      return;
    }
    const fromClient = this.#fromClient(side);
    if (!fromClient && s.req === undefined) {
      // an answer on a stream whose request was never seen (evicted, expired, or sent before a
      // mid-stream join): decoded above for the table's sake; nothing to report, and no entry
      // kept that would count against maxStreams and evict a live stream
      if (!headers) this.#c.headerBlocksUnknown++;
      this.#streams.delete(s.id);
      return;
    }
    if (fromClient) {
      if (s.req === undefined) {
        if (!headers) {
          this.#c.headerBlocksUnknown++;
          s.req = null;
        } else s.req = this.#request(headers, s, block.length);
        if (s.req) this.#opts.onRequest?.(s.req, s.id);
      }
      // a later client block is the request's trailers: only END_STREAM matters
      if (s.blockEndStream) {
        s.reqEnded = true;
        if (s.req) s.req.tsEnd = chunk.tsEnd;
      }
    } else if (!s.res && !s.resUnknown) {
      if (!headers) {
        this.#c.headerBlocksUnknown++;
        s.resUnknown = true;
      } else {
        const status = Number(headers.find(([n]) => n === ':status')?.[1]);
        if (status >= 100 && status < 200) return; // interim
        s.res = { tsStart: s.blockTs, tsEnd: chunk.tsEnd, size: block.length + FRAME_HEADER, tid: s.blockTid, status: Number.isFinite(status) ? status : 0, version: '2', headers: {}, bodySize: 0 };
        this.#grpcTrailers(s, headers);
        if (s.req && this.#role === 'server') this.#opts.onResponse?.(s.req, s.res);
      }
      if (s.blockEndStream) s.resEnded = true;
    } else {
      // trailers
      if (headers) this.#grpcTrailers(s, headers);
      else this.#c.headerBlocksUnknown++;
      if (s.res) s.res.tsEnd = chunk.tsEnd;
      if (s.blockEndStream) s.resEnded = true;
    }
    this.#maybeDone(s);
  }

  #request(headers: HeaderList, s: Stream, blockLen: number): HttpRequest | null {
    let method = '';
    let path = '';
    const kept: Record<string, string> = {};
    for (const [n, v] of headers) {
      if (n === ':method') method = v;
      else if (n === ':path') path = v;
      else if (n === ':authority') kept.host = v;
      else if (n === ':scheme') kept[':scheme'] = v;
      else if (KEPT.has(n)) kept[n] = v;
    }
    if (!method) return null;
    return {
      tsStart: s.blockTs,
      tsEnd: this.#chunk!.tsEnd,
      size: blockLen + FRAME_HEADER,
      tid: s.blockTid,
      method,
      target: (path || '/').slice(0, 2048),
      version: '2',
      headers: kept,
      bodySize: 0,
    };
  }

  #grpcTrailers(s: Stream, headers: HeaderList): void {
    for (const [n, v] of headers) {
      if (n === 'grpc-status') {
        const code = Number(v);
        if (Number.isInteger(code)) s.grpcStatus = code;
      } else if (n === 'grpc-message') s.grpcMessage = v.slice(0, 256);
    }
  }

  #maybeDone(s: Stream): void {
    if (s.reqEnded && s.resEnded) this.#finish(s, this.#chunk!.tsEnd, undefined);
  }

  /** the stream is over: its exchange, when its request is known */
  #finish(s: Stream, ts: number, incomplete: string | undefined): void {
    this.#streams.delete(s.id);
    const req = s.req;
    if (!req) return;
    req.bodySize = s.reqBody;
    req.size += s.reqBody;
    const res = s.res;
    if (res) {
      res.bodySize = s.resBody;
      res.size += s.resBody;
    }
    if (!s.reqEnded) req.tsEnd = Math.max(req.tsEnd, ts);
    const ex: Exchange = { protocol: 'http2', role: this.#role!, request: req, streamId: s.id };
    if (res) ex.response = res;
    if (incomplete) {
      ex.incomplete = incomplete;
      if (res) res.tsEnd = Math.max(res.tsEnd, ts);
    }
    if (s.resUnknown) ex.responseUnknown = true;
    const ct = req.headers['content-type'];
    if (ct !== undefined && ct.startsWith('application/grpc')) {
      const m = /^\/([^/]+)\/([^/?]+)$/.exec(req.target);
      if (m) ex.grpc = { service: m[1]!, method: m[2]!, status: s.grpcStatus, message: s.grpcMessage };
    }
    this.#c.exchanges++;
    if (ex.incomplete) this.#c.incomplete++;
    this.#done.push(ex);
  }
}
