// HTTP/1.0 and HTTP/1.1: frames the requests and responses of one TCP connection and
// pairs them (FIFO, so pipelining works) into exchanges.
//
// Input model. Every read/write the kernel saw is a Chunk: `bytes` is the full length of
// the call, `data` only its captured prefix (often 256 bytes). Framing therefore counts
// with `bytes` and reads with `data`: a Content-Length body of 1 MiB is consumed by byte
// counts without ever being seen; a header block or a chunk-size line has to be *read*
// and can only be read where it lies inside a captured prefix.
//
// Each direction (requests, responses) runs its own state machine:
//
//   START ──▶ HEAD ──▶ BODY (Content-Length, R bytes remaining)
//                 ├──▶ CHUNKED (size line / data / CRLF / trailer section)
//                 ├──▶ UNTIL_EOF (response without length: ends at end())
//                 ├──▶ TAIL (end of the message not computable, inferred, see below)
//                 └──▶ done (no body: HEAD, 1xx, 204, 304, requests without length)
//
// Where the captured prefix runs out:
// - Body bytes are counted, never needed: BODY consumes min(R, bytes) of each call. If a
//   call goes past the end of the message, the next message starts at offset R of that
//   call; when R lies inside `data` parsing continues there, otherwise its start line is
//   unseen and the parser stops with error 'desync' (counter `desync`). The message that
//   just ended is exact and still reported; nothing after it is.
// - Header block larger than the prefix (`\r\n\r\n` not in the visible bytes of a call
//   that was not captured whole): the start line and the complete header lines that are
//   visible are used, the block is assumed to end inside this call (counter
//   `headersTruncated`), and the message goes to TAIL. The headers-only-write case (the
//   body, if any, comes in later calls) and the headers-plus-body-in-one-write case are
//   then both handled without guessing a length the parser cannot verify.
// - Chunked bodies are tracked exactly while every chunk-size line is visible (the data
//   of a chunk and its CRLF are counted, not read). When a size line starts beyond the
//   prefix the body goes to TAIL (counter `chunkedBlind`).
// - TAIL: the message absorbs whole calls of its direction until its end can be inferred
//   (counter `inferredEnds`); its end is then the end of the last call it absorbed:
//     1. the other direction starts a message: a final (non-1xx) response head ends its
//        request (the server answered, so it had read the request), a new request head ends
//        the response before it (a client that does not pipeline waits for the response);
//     2. chunked only: a call captured whole that ends with the last chunk and an empty
//        trailer section (`\n0\r\n\r\n`) ends the body at that call;
//     3. end() (the close), or idle(now) once the direction was quiet for `idleNs`.
//   After an inferred end the next call of that direction must start a message (probe);
//   anything else means the inference was wrong: 'desync'. A short call captured whole
//   that could still be the beginning of a start line ("HTTP/1.", "POS") is held back until
//   later calls decide (a known method wins ties: "P"+"OST /" is POST).
//   bodySize of such a message is the declared Content-Length when one was visible,
//   otherwise the bytes seen after the header call (chunked: wire bytes, framing included).
//
// Pipelining vs. inference. Every rule above assumes the peer does not pipeline: with
// pipelining, whole messages can hide in the unseen bytes a TAIL message absorbs, and FIFO
// pairing would shift. So the parser stops ('desync') instead of inferring when pipelining
// shows: a same-direction start line while a message is in TAIL (without pipelining the
// other direction always ends it first; only a 1xx in TAIL that absorbed nothing more may
// end that way), a new request while more than the TAIL response's request is waiting, an
// inferred response end while later requests wait, a request right after an inferred
// request end before its response starts, or any head longer than the capture once a
// request was seen before the previous exchange completed. Pipelined traffic whose heads
// fit in the capture is framed exactly. Limitation: pipelined requests hidden entirely in
// the unseen part of an earlier request's over-long head are undetectable; the responses
// after them can then be paired with the wrong requests.
//
// Pairing. The first request line seen decides the role: a request read ('in') means we
// are the server, a request written ('out') the client. Requests queue in order; each final
// response takes the oldest request without one; 1xx interim responses (100 Continue, 103)
// are skipped; 101 and a 2xx answer to CONNECT end HTTP on the connection (error
// 'upgrade' / 'tunnel' after the exchange is reported). An exchange is reported once both
// its request and its response are complete, in request order.
//
// Timing (ns, the Chunk clock):
// - a message written by this process ('out') starts at the tsStart of its first write
//   (when the first byte was handed to the kernel); a message read ('in') starts at the
//   tsEnd of its first read (the read returns when the data arrived; its tsStart is only
//   when the process began waiting). So request.tsStart is the first write's tsStart for a
//   client and the first read's tsEnd for a server.
// - every message ends at the tsEnd of its last chunk (response.tsEnd = tsEnd of the
//   response's last chunk); tid is the thread of the first chunk.
//
// Malformed input (not HTTP, bad start line, bad chunk size, header block > 64 KiB, ...)
// sets `error` to a short reason: exchanges completed in that same push are dropped, later
// input is ignored, nothing throws. end() reports requests still in flight with
// `incomplete: 'eof'` (with the response head when one had started).
//
// Privacy: only an allow-list of headers is ever copied out; authorization, cookie,
// set-cookie and proxy-authorization are not on it.
// The target and the kept values (Host, User-Agent) are raw request text: ../spans.ts
// redacts them with ../redact.ts before they become attributes.

import type { Chunk, Direction, Exchange, HttpRequest, HttpResponse, ProtocolParser } from './protocol.js';

/** Loss and inference counters; pass one object to many parsers to aggregate. */
export interface Http1Counters {
  /** exchanges returned (including incomplete ones) */
  exchanges: number;
  /** exchanges returned with `incomplete` set */
  incomplete: number;
  /** header blocks that ran past the captured prefix of their call (end inferred) */
  headersTruncated: number;
  /** chunked bodies whose chunk framing ran past a captured prefix (end inferred) */
  chunkedBlind: number;
  /** messages whose end was inferred (other direction, chunk terminator, idle, close, a 1xx ended by the next start line) */
  inferredEnds: number;
  /** 1xx interim responses skipped */
  interim: number;
  /** parsers stopped because framing could not go on safely: a message started beyond the
   *  captured prefix, an inferred end was contradicted, or pipelining made inference unsafe */
  desync: number;
  /** parsers stopped on malformed input (any other error except upgrade/tunnel) */
  malformed: number;
  /** midStream parsers: bytes skipped before the first request line */
  skippedBytes: number;
}

export function newHttp1Counters(): Http1Counters {
  return {
    exchanges: 0,
    incomplete: 0,
    headersTruncated: 0,
    chunkedBlind: 0,
    inferredEnds: 0,
    interim: 0,
    desync: 0,
    malformed: 0,
    skippedBytes: 0,
  };
}

export interface Http1Options {
  /** counters to increment (shared across parsers); a private object by default */
  counters?: Http1Counters;
  /**
   * The connection was already open when tracing started: skip chunks until one starts
   * with a request line (instead of failing with 'not http'), at most maxSkipBytes.
   */
  midStream?: boolean;
  /** default 4 MiB */
  maxSkipBytes?: number;
  /** largest header block accepted, default 64 KiB */
  maxHeaderBytes?: number;
  /** most requests awaiting a response (pipelining depth), default 64 */
  maxPending?: number;
  /** idle(now) ends a TAIL message after this many ns without bytes, default 1 s */
  idleNs?: number;
  /**
   * Called once per request as soon as its head is parsed (the request is in flight: tsEnd,
   * size and bodySize are still 0). The same object is later the `request` of its Exchange,
   * so it can key in-flight state. Called from inside push(); it must not throw.
   */
  onRequest?: (req: HttpRequest) => void;
  /**
   * Called once per exchange when the head of its final response is parsed (interim 1xx
   * responses don't count): for a server, the request's work is done from then on. Called
   * from inside push(); it must not throw.
   */
  onResponse?: (req: HttpRequest, res: HttpResponse) => void;
}

/** Headers copied into HttpRequest.headers (lowercase). Never credentials. Responses keep none. */
export const KEPT_HEADERS: ReadonlySet<string> = new Set([
  'host',
  'traceparent',
  'tracestate',
  'user-agent',
  'content-type',
  'content-length',
  'transfer-encoding',
  'connection',
  // which protocol a 101 switches to (h2c: the agent goes on with HTTP/2)
  'upgrade',
  'x-forwarded-for',
  'x-request-id',
]);

/** Reasons that end HTTP on the connection without the input being wrong. */
const BENIGN = new Set(['upgrade', 'tunnel', 'desync']);

const CR = 13;
const LF = 10;
const SP = 32;
const HT = 9;
const COLON = 58;
/** responses carry no headers (see parseHead); shared and frozen */
const NO_HEADERS: Record<string, string> = Object.freeze({});
const HDR_END = Buffer.from('\r\n\r\n', 'latin1');

/** index of the first CR LF in buf[from, end), or -1 (a plain loop: no native call for a short scan) */
export function indexOfCrlf(buf: Buffer, from: number, end: number): number {
  for (let i = from + 1; i < end; i++) if (buf[i] === LF && buf[i - 1] === CR) return i - 1;
  return -1;
}

/**
 * buf[start, end) as a latin1 string: Buffer's own slicer, without toString's encoding lookup
 * (as costly as the slicing for a short string); toString where a runtime lacks it
 */
export const latin1String: (buf: Buffer, start: number, end: number) => string =
  typeof (Buffer.prototype as unknown as { latin1Slice?: unknown }).latin1Slice === 'function'
    ? (buf, start, end) => (buf as unknown as { latin1Slice(s: number, e: number): string }).latin1Slice(start, end)
    : (buf, start, end) => buf.toString('latin1', start, end);

export const MAX_TARGET = 2048;
export const MAX_HEADER_VALUE = 1024;
const MAX_CHUNK_LINE = 4096;

// stream states
const START = 0;
const HEAD = 1;
const BODY = 2;
const CHUNKED = 3;
const UNTIL_EOF = 4;
const TAIL = 5;
// chunked sub-states
const C_SIZE = 0;
const C_DATA = 1;
const C_CRLF = 2;
const C_TRAILER = 3;

// kept header names by length, to match a raw name case-insensitively without building a
// lower-case copy; the match yields the constant (interned) name
const BY_LEN: (readonly string[] | undefined)[] = [];
for (const n of KEPT_HEADERS) BY_LEN[n.length] = [...(BY_LEN[n.length] ?? []), n];

/** the kept header name buf[pos, pos+len) spells (any case), or undefined */
export function keptName(buf: Buffer, pos: number, len: number): string | undefined {
  const cands = BY_LEN[len];
  if (cands === undefined) return undefined;
  for (const cand of cands) {
    let i = 0;
    for (; i < len; i++) {
      const c = buf[pos + i]!;
      const l = cand.charCodeAt(i);
      // letters compare case-insensitively; '-' needs c === l (c | 0x20 would also let CR through)
      if (c !== l && (l < 97 || (c | 0x20) !== l)) break;
    }
    if (i === len) return cand;
  }
  return undefined;
}

const KNOWN_METHODS = new Set([
  'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'CONNECT', 'TRACE',
  'PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK', 'REPORT', 'SEARCH', 'PURGE',
]);

export function isMethodChar(b: number | undefined): boolean {
  // real-world methods are upper-case tokens; rejecting the rest catches noise early
  return b !== undefined && ((b >= 65 && b <= 90) || b === 45 || b === 95);
}

/** A plausible beginning of a request line: METHOD (upper-case token, <= 20) [SP ...]. */
function requestPrefixOk(d: Buffer, off: number): boolean {
  let i = off;
  const n = d.length;
  while (i < n && i - off <= 20 && isMethodChar(d[i])) i++;
  if (i === off || i - off > 20) return false;
  if (i === n) return true;
  if (d[i] !== SP) return false;
  const t = d[i + 1];
  return t === undefined || (t > SP && t !== 127);
}

const HTTP1_PREFIX = Buffer.from('HTTP/1.', 'latin1');

/** A plausible beginning of a status line: a prefix of "HTTP/1.x ddd". */
function statusPrefixOk(d: Buffer, off: number): boolean {
  const n = Math.min(d.length - off, 12);
  for (let k = 0; k < n; k++) {
    const b = d[off + k];
    if (b === undefined) return false;
    if (k < 7) {
      if (b !== HTTP1_PREFIX[k]) return false;
    } else if (k === 7) {
      if (b !== 48 && b !== 49) return false;
    } else if (k === 8) {
      if (b !== SP) return false;
    } else if (b < 48 || b > 57) return false;
  }
  return true;
}

/** Strict: does this call start with a request line? Used to infer message ends and to resync. */
function looksLikeRequest(d: Buffer): boolean {
  const n = d.length;
  let i = 0;
  while (i < n && i <= 20 && isMethodChar(d[i])) i++;
  if (i === 0 || i > 20 || d[i] !== SP) return false;
  const m = i;
  const t = d[i + 1];
  if (t === undefined) return false;
  // origin-form "/", asterisk-form "*", absolute-form "http://", authority-form "host:port"
  const tOk = t === 47 || t === 42 || (t >= 48 && t <= 57) || (t >= 65 && t <= 90) || (t >= 97 && t <= 122);
  if (!tOk) return false;
  const lf = d.indexOf(LF, m + 1);
  if (lf < 0) return KNOWN_METHODS.has(d.toString('latin1', 0, m));
  // "... HTTP/1.x\r\n"
  if (lf < m + 11 || d[lf - 1] !== CR) return false;
  const v = lf - 10;
  if (d[v] !== SP) return false;
  for (let k = 0; k < 7; k++) if (d[v + 1 + k] !== HTTP1_PREFIX[k]) return false;
  const minor = d[lf - 2];
  return minor === 48 || minor === 49;
}

/** Strict: does this call start with a status line "HTTP/1.x ddd"? */
function looksLikeResponse(d: Buffer): boolean {
  if (d.length < 12 || !statusPrefixOk(d, 0)) return false;
  const after = d[12];
  return after === undefined || after === SP || after === CR;
}

function looksLikeStart(d: Buffer, isReq: boolean): boolean {
  return isReq ? looksLikeRequest(d) : looksLikeResponse(d);
}

function skipCrlf(d: Buffer): Buffer {
  let i = 0;
  while (i < d.length && (d[i] === CR || d[i] === LF)) i++;
  return i === 0 ? d : d.subarray(i);
}

/** Could these bytes still become a start line, with too few of them to tell? */
function startAmbiguous(d: Buffer, isReq: boolean): boolean {
  if (d.length === 0) return false;
  if (!isReq) return d.length < 12 && statusPrefixOk(d, 0);
  return d.length <= 8192 && d.indexOf(LF) < 0 && requestPrefixOk(d, 0);
}

function knownMethod(d: Buffer): boolean {
  const sp = d.indexOf(SP);
  return sp > 0 && sp <= 20 && KNOWN_METHODS.has(d.toString('latin1', 0, sp));
}

function copyChunk(c: Chunk, data: Buffer): Chunk {
  return { dir: c.dir, tsStart: c.tsStart, tsEnd: c.tsEnd, bytes: c.bytes, data: Buffer.from(data), tid: c.tid, rtx: c.rtx ?? 0, link: c.link ?? 0 };
}

/** Bytes end with a last-chunk line and an empty trailer section: "\n0\r\n\r\n" (or are exactly "0\r\n\r\n"). */
function endsWithLastChunk(d: Buffer): boolean {
  const n = d.length;
  if (n < 5) return false;
  if (d[n - 1] !== LF || d[n - 2] !== CR || d[n - 3] !== LF || d[n - 4] !== CR || d[n - 5] !== 48) return false;
  return n === 5 || d[n - 6] === LF;
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** chunk-size [ BWS ; chunk-ext ], CR already stripped; -1 when invalid. */
function parseChunkSize(line: string): number {
  let n = 0;
  let i = 0;
  const len = line.length;
  for (; i < len; i++) {
    const v = hexVal(line.charCodeAt(i));
    if (v < 0) break;
    if (i >= 13) return -1; // > 2^52: not a real chunk
    n = n * 16 + v;
  }
  if (i === 0) return -1;
  for (; i < len; i++) {
    const c = line.charCodeAt(i);
    if (c === SP || c === HT) continue;
    return c === 59 /* ; */ ? n : -1;
  }
  return n;
}

/** Content-Length value: digits, or a list of identical values; -1 when invalid. */
export function parseContentLength(v: string): number {
  let n = -1;
  let cur = -1;
  for (let i = 0; i <= v.length; i++) {
    const c = i < v.length ? v.charCodeAt(i) : 44;
    if (c >= 48 && c <= 57) {
      cur = cur < 0 ? c - 48 : cur * 10 + (c - 48);
      if (cur > Number.MAX_SAFE_INTEGER) return -1;
    } else if (c === 44 /* , */) {
      if (cur < 0 || (n >= 0 && n !== cur)) return -1;
      n = cur;
      cur = -1;
    } else if (c !== SP && c !== HT) {
      return -1;
    } else if (cur >= 0 && i + 1 < v.length && v.charCodeAt(i + 1) >= 48 && v.charCodeAt(i + 1) <= 57) {
      return -1; // "12 34"
    }
  }
  return n;
}

/**
 * parseContentLength of the latin1 text buf[a, b), read from the bytes (the summarised path
 * reads no string). The same loop as parseContentLength, written twice on purpose: an accessor
 * shared by both would cost a call per byte on the hot path. http1-head.test checks they agree.
 */
export function parseContentLengthBytes(buf: Buffer, a: number, b: number): number {
  let n = -1;
  let cur = -1;
  for (let i = a; i <= b; i++) {
    const c = i < b ? buf[i]! : 44;
    if (c >= 48 && c <= 57) {
      cur = cur < 0 ? c - 48 : cur * 10 + (c - 48);
      if (cur > Number.MAX_SAFE_INTEGER) return -1;
    } else if (c === 44 /* , */) {
      if (cur < 0 || (n >= 0 && n !== cur)) return -1;
      n = cur;
      cur = -1;
    } else if (c !== SP && c !== HT) {
      return -1;
    } else if (cur >= 0 && i + 1 < b && buf[i + 1]! >= 48 && buf[i + 1]! <= 57) {
      return -1; // "12 34"
    }
  }
  return n;
}

/** last transfer-coding of a Transfer-Encoding value is chunked */
function lastCodingChunked(v: string): boolean {
  const comma = v.lastIndexOf(',');
  const last = (comma < 0 ? v : v.slice(comma + 1)).trim().toLowerCase();
  return last === 'chunked';
}

interface Pending {
  req: HttpRequest;
  res: HttpResponse | undefined;
  reqDone: boolean;
  resDone: boolean;
  incomplete: string | undefined;
}

let HEAD_PARSER: Http1Parser | undefined;
let HEAD_STREAM: Stream | undefined;

/** One direction's framing state. */
class Stream {
  st = START;
  // current message
  t0 = 0;
  tid = 0;
  rtx = 0;
  link = 0;
  lastEnd = 0;
  size = 0;
  body = 0;
  done = false;
  hdr: Buffer | undefined = undefined; // header bytes so far when the block spans calls
  remaining = 0;
  cs = C_SIZE;
  crlf = 0;
  line = '';
  trailer = 0;
  chunkedTail = false;
  headTrunc = false;
  /** calls absorbed in TAIL after the one that put the message there */
  tailCalls = 0;
  /** TAIL after a cut head: the body size to report (-1: count the bytes absorbed) */
  declared = -1;
  interim = false;
  switchTo: string | undefined = undefined;
  p: Pending | undefined = undefined;
  /** the last message's end was inferred: the next call must start a message */
  probe = false;
  /** calls captured whole, held back until it is clear whether they start a message */
  maybe: Chunk[] | undefined = undefined;
  // parsed head
  method = '';
  target = '';
  version = '';
  status = 0;
  headers: Record<string, string> = {};
  cl = -1;
  te = false;
  chunked = false;

  constructor(readonly isReq: boolean, readonly dirOut: boolean) {}

  begin(c: Chunk): void {
    this.st = HEAD;
    // a write starts when the first byte is handed over; a read when it returns
    this.t0 = this.dirOut ? c.tsStart : c.tsEnd;
    this.tid = c.tid;
    this.rtx = c.rtx ?? 0;
    this.link = c.link ?? 0;
    this.size = 0;
    this.body = 0;
  }

  reset(): void {
    this.st = START;
    this.done = false;
    this.hdr = undefined;
    this.remaining = 0;
    this.cs = C_SIZE;
    this.crlf = 0;
    this.line = '';
    this.trailer = 0;
    this.chunkedTail = false;
    this.headTrunc = false;
    this.tailCalls = 0;
    this.declared = -1;
    this.interim = false;
    this.switchTo = undefined;
    this.p = undefined;
    this.size = 0;
    this.body = 0;
    this.probe = false;
    this.maybe = undefined;
  }
}

export class Http1Parser implements ProtocolParser {
  readonly protocol = 'http1';
  readonly counters: Http1Counters;
  private err: string | undefined = undefined;
  private closed = false;
  private role: 'server' | 'client' | undefined = undefined;
  private reqDir: Direction = 'in';
  private req = new Stream(true, false);
  private res = new Stream(false, true);
  private readonly queue: Pending[] = [];
  /** index in queue of the oldest request without a response head */
  private resIdx = 0;
  private out: Exchange[] | undefined = undefined;
  private readonly midStream: boolean;
  private readonly maxSkip: number;
  private readonly maxHeader: number;
  private readonly maxPending: number;
  private readonly idleNs: number;
  private readonly onRequest: ((req: HttpRequest) => void) | undefined;
  private readonly onResponse: ((req: HttpRequest, res: HttpResponse) => void) | undefined;

  /**
   * The request head of an exchange the kernel summarised (bpf/lib/http1x.h): buf holds the
   * head's first bytes, headLen its length up to and including CRLFCRLF. The same parse as a
   * live request's head, so both paths give the same method, target, version and headers.
   */
  static requestHead(buf: Buffer, headLen: number): Pick<HttpRequest, 'method' | 'target' | 'version' | 'headers'> | undefined {
    if (headLen < 4 || headLen > buf.length) return undefined;
    // one stream for every call: parseHead sets every field it reads back (headers, framing,
    // start line), and what is returned is copied out of it
    const s = (HEAD_STREAM ??= new Stream(true, false));
    // parseHead reads nothing of the parser itself: any instance will do
    if ((HEAD_PARSER ??= new Http1Parser()).parseHead(s, buf, 0, headLen - 2, false) !== undefined) return undefined;
    return { method: s.method, target: s.target, version: s.version, headers: s.headers };
  }

  constructor(opts: Http1Options = {}) {
    this.counters = opts.counters ?? newHttp1Counters();
    this.midStream = opts.midStream ?? false;
    this.maxSkip = opts.maxSkipBytes ?? 4 << 20;
    this.maxHeader = opts.maxHeaderBytes ?? 64 << 10;
    this.maxPending = opts.maxPending ?? 64;
    this.idleNs = opts.idleNs ?? 1e9;
    this.onRequest = opts.onRequest;
    this.onResponse = opts.onResponse;
  }

  get error(): string | undefined {
    return this.err;
  }

  /** 'server' | 'client' once the first request line was seen */
  get connectionRole(): 'server' | 'client' | undefined {
    return this.role;
  }

  push(c: Chunk): Exchange[] {
    if (this.err !== undefined || this.closed) return [];
    const B = c.bytes;
    if (!(B > 0)) return [];
    const data = c.data.length > B ? c.data.subarray(0, B) : c.data;
    if (this.role === undefined && !this.detect(c.dir, data, B)) return this.take();
    const isReq = c.dir === this.reqDir;
    const s = isReq ? this.req : this.res;
    // a message whose end is unknown (TAIL) or was inferred (probe): is this call a new start?
    if ((s.st === TAIL || (s.probe && s.st === START)) && !this.resolve(s, c, data, B, isReq)) return this.take();
    if (this.err === undefined) this.feed(s, c, data, B);
    return this.take();
  }

  /**
   * s is in TAIL (its end unknown) or probing (its last end was inferred, so its next call
   * must start a message). Decide whether call c starts the next message (held calls are
   * then replayed first; see startOver for a TAIL message), continues the TAIL message, or
   * cannot tell yet: a short call captured whole that could be the beginning of
   * a start line ("HTTP/1.", "POS") is held back until later calls of the direction decide.
   * A short prefix in a call that was not captured whole is taken as a start: if wrong, the
   * head fails to parse (an error, never a misaligned pair). Probing and not a start: the
   * inference was wrong, stop ('desync'). Returns whether c must now be fed.
   */
  private resolve(s: Stream, c: Chunk, data: Buffer, B: number, isReq: boolean): boolean {
    const captured = data.length === B;
    const held = s.maybe;
    if (held !== undefined) {
      const comb = Buffer.concat([...held.map((x) => x.data), data]);
      const combStart = looksLikeStart(skipCrlf(comb), isReq);
      const aloneStart = looksLikeStart(skipCrlf(data), isReq);
      if (combStart && (!aloneStart || (isReq && knownMethod(skipCrlf(comb)) && !knownMethod(skipCrlf(data))))) {
        s.maybe = undefined;
        this.startOver(s, held);
        return this.err === undefined;
      }
      if (!aloneStart && startAmbiguous(skipCrlf(comb), isReq)) {
        if (captured) {
          held.push(copyChunk(c, data));
          return false;
        }
        s.maybe = undefined;
        this.startOver(s, held);
        return this.err === undefined;
      }
      // the held calls did not start a message
      s.maybe = undefined;
      if (s.st !== TAIL) {
        this.fail('desync');
        return false;
      }
      for (const x of held) {
        this.feed(s, x, x.data, x.bytes);
        if (this.err !== undefined) return false;
      }
      // a chunk terminator in them ended the message: c must now start the next one
      if (s.st !== TAIL) return s.probe ? this.resolve(s, c, data, B, isReq) : true;
    }
    const d = skipCrlf(data);
    if (d.length === 0 && captured) return true; // empty lines: absorbed (TAIL) or skipped (START)
    if (looksLikeStart(d, isReq)) {
      this.startOver(s, undefined);
      return this.err === undefined;
    }
    if (startAmbiguous(d, isReq)) {
      if (captured) {
        s.maybe = [copyChunk(c, data)];
        return false;
      }
      this.startOver(s, undefined);
      return this.err === undefined;
    }
    if (s.st === TAIL) return true;
    this.fail('desync');
    return false;
  }

  /**
   * A new message starts in a direction whose message (if any) is in TAIL. Ending a TAIL
   * message this way only happens when the peer pipelines: without pipelining the other
   * direction always ends it first. With pipelining, the bytes a TAIL message
   * absorbed may hide whole messages, so pairing could shift: stop ('desync') instead. Only
   * a 1xx interim response in TAIL may end so (it pairs with nothing). Then feed held calls.
   */
  private startOver(s: Stream, held: Chunk[] | undefined): void {
    if (s.st === TAIL) {
      // a 1xx in TAIL that absorbed later calls may have hidden the final response
      if (!s.interim || s.tailCalls > 0) {
        this.fail('desync');
        return;
      }
      this.finish(s, s.lastEnd, true);
    }
    s.probe = false;
    if (held === undefined) return;
    for (const x of held) {
      this.feed(s, x, x.data, x.bytes);
      if (this.err !== undefined) return;
    }
  }

  end(_ts: number): Exchange[] {
    if (this.closed || this.err !== undefined) {
      this.closed = true;
      return [];
    }
    this.closed = true;
    this.eof(this.req);
    this.eof(this.res);
    if (this.err === undefined) {
      for (const p of this.queue) {
        const ex: Exchange = { protocol: 'http1', role: this.role ?? 'server', request: p.req };
        if (p.res !== undefined) ex.response = p.res;
        ex.incomplete = p.incomplete ?? 'eof';
        this.emitOne(ex);
      }
    }
    this.queue.length = 0;
    this.resIdx = 0;
    return this.take();
  }

  idle(now: number): Exchange[] {
    if (this.err !== undefined || this.closed) return [];
    this.idleEnd(this.req, now);
    if (this.err === undefined) this.idleEnd(this.res, now);
    return this.take();
  }

  // --- internals -------------------------------------------------------------------

  /** A TAIL message quiet for idleNs ends; calls held back by then were its last bytes. */
  private idleEnd(s: Stream, now: number): void {
    if (s.st !== TAIL) return;
    const held = s.maybe;
    const last = held !== undefined ? (held[held.length - 1]?.tsEnd ?? s.lastEnd) : s.lastEnd;
    if (now - last < this.idleNs) return;
    if (held !== undefined) {
      s.maybe = undefined;
      for (const x of held) {
        this.feed(s, x, x.data, x.bytes);
        if (this.err !== undefined) return;
      }
      if (s.st !== TAIL) return;
    }
    if (this.inferOk(s)) this.finish(s, s.lastEnd, true);
  }

  /**
   * May the TAIL message of s end by inference now (chunk terminator, idle, close)? Not a response
   * while later requests wait for theirs: with pipelining its absorbed bytes may hold their
   * responses. A request may, but if the next request arrives before its response starts
   * (pipelining), its absorbed bytes may have held requests: that is checked then.
   */
  private inferOk(s: Stream): boolean {
    const p = s.p;
    if (s.isReq) {
      this.reqInferred = p;
      return true;
    }
    if (s.interim || p === undefined || this.queue[this.queue.length - 1] === p) return true;
    this.fail('desync');
    return false;
  }
  /** a request was seen before the previous exchange completed */
  private pipelined = false;
  /** the last request whose end was inferred, until its response starts */
  private reqInferred: Pending | undefined = undefined;

  private take(): Exchange[] {
    const o = this.out;
    this.out = undefined;
    if (o === undefined) return [];
    if (this.err !== undefined && !BENIGN.has(this.err)) return [];
    return o;
  }

  private fail(reason: string): void {
    if (this.err !== undefined) return;
    this.err = reason;
    if (reason === 'desync') this.counters.desync++;
    else if (!BENIGN.has(reason)) this.counters.malformed++;
    this.queue.length = 0;
    this.resIdx = 0;
    this.req.reset();
    this.res.reset();
  }

  /** Before the role is known: the first request line decides it. */
  private detect(dir: Direction, data: Buffer, B: number): boolean {
    let off = 0;
    while (off < data.length && (data[off] === CR || data[off] === LF)) off++;
    if (off >= B) return false; // empty lines only
    const ok =
      off < data.length &&
      (this.midStream ? looksLikeRequest(off === 0 ? data : data.subarray(off)) : requestPrefixOk(data, off));
    if (!ok) {
      if (this.midStream) {
        this.counters.skippedBytes += B;
        this.skipped += B;
        if (this.skipped > this.maxSkip) this.fail('no request line');
      } else {
        this.fail(off >= data.length ? 'desync' : 'not http');
      }
      return false;
    }
    this.reqDir = dir;
    this.role = dir === 'in' ? 'server' : 'client';
    this.req = new Stream(true, dir === 'out');
    this.res = new Stream(false, dir !== 'out');
    return true;
  }
  private skipped = 0;

  private feed(s: Stream, c: Chunk, data: Buffer, B: number): void {
    const V = data.length;
    let off = 0;
    while (off < B) {
      if (s.st === START) {
        // empty lines between messages are tolerated (RFC 9112 §2.2)
        while (off < V && (data[off] === CR || data[off] === LF)) off++;
        if (off >= B) break;
        if (off >= V) {
          this.fail('desync'); // the next message starts beyond the captured prefix
          return;
        }
        s.begin(c);
      }
      let n: number;
      switch (s.st) {
        case HEAD:
          n = this.head(s, data, off, V, B);
          break;
        case BODY: {
          const take = Math.min(s.remaining, B - off);
          s.remaining -= take;
          s.body += take;
          n = off + take;
          if (s.remaining === 0) s.done = true;
          break;
        }
        case CHUNKED:
          n = this.chunked(s, data, off, V, B);
          break;
        case UNTIL_EOF:
          s.body += B - off;
          n = B;
          break;
        default: // TAIL
          n = B;
          s.body += B - off;
          s.tailCalls++;
          // inferred end (chunk terminator): a call captured whole ending with the last chunk
          if (s.chunkedTail && V === B && endsWithLastChunk(data)) {
            s.done = true;
            this.counters.inferredEnds++;
          }
          break;
      }
      if (this.err !== undefined) return;
      s.size += n - off;
      off = n;
      s.lastEnd = c.tsEnd;
      if (s.done) {
        if (s.st === TAIL && !this.inferOk(s)) return;
        this.finish(s, c.tsEnd, false);
        if (this.err !== undefined) return;
      }
    }
  }

  /** HEAD state: find the end of the header block; returns the new offset. */
  private head(s: Stream, data: Buffer, off: number, V: number, B: number): number {
    let buf: Buffer;
    let base: number;
    let from: number;
    let prev = 0;
    if (s.hdr === undefined) {
      buf = data;
      base = off;
      from = off;
    } else {
      prev = s.hdr.length;
      buf = off < V ? Buffer.concat([s.hdr, data.subarray(off)]) : s.hdr;
      base = 0;
      from = Math.max(0, prev - 3);
    }
    const i = buf.indexOf(HDR_END, from);
    if (i >= 0) {
      const end = i + 4;
      if (end - base > this.maxHeader) {
        this.fail('headers too large');
        return B;
      }
      s.hdr = undefined;
      const e = this.parseHead(s, buf, base, i + 2, false);
      if (e !== undefined) {
        this.fail(e);
        return B;
      }
      this.afterHead(s, false);
      return off + (end - base - prev);
    }
    if (V < B) {
      // The block runs past the captured prefix: assume it ends inside this call. That
      // inference assumes the peer does not pipeline (see TAIL): once it has, stop instead.
      this.counters.headersTruncated++;
      if (this.pipelined) {
        this.fail('desync');
        return B;
      }
      s.hdr = undefined;
      const e = this.parseHead(s, buf, base, buf.length, true);
      if (e !== undefined) {
        this.fail(e);
        return B;
      }
      this.afterHead(s, true);
      return B;
    }
    // captured whole, the block continues in the next call of this direction
    if (buf.length - base > this.maxHeader) {
      this.fail('headers too large');
      return B;
    }
    if (!(s.isReq ? requestPrefixOk(buf, base) : statusPrefixOk(buf, base))) {
      this.fail(s.isReq ? 'bad request line' : 'bad status line');
      return B;
    }
    s.hdr = buf === data ? Buffer.from(data.subarray(off)) : buf;
    return B;
  }

  /**
   * Parse the start line and the header lines of buf[start, end). When `truncated`, the
   * block was cut by the capture: only lines ending in CRLF are used (the start line may
   * itself be cut: then the target is its visible prefix and the version assumed 1.1).
   */
  private parseHead(s: Stream, buf: Buffer, start: number, end: number, truncated: boolean): string | undefined {
    // Works on the bytes: only the start line and the values of kept headers become
    // strings (a head is ~100-500 bytes and this runs for every message).
    const eol = indexOfCrlf(buf, start, end);
    if (eol < 0 && !truncated) return s.isReq ? 'bad request line' : 'bad status line';
    // a start line cut by the capture may end in its CR
    const lineEnd = eol >= 0 ? eol : end > start && buf[end - 1] === CR ? end - 1 : end;
    s.headers = s.isReq ? {} : NO_HEADERS;
    s.cl = -1;
    s.te = false;
    s.chunked = false;
    if (s.isReq) {
      const line = latin1String(buf, start, lineEnd);
      const sp1 = line.indexOf(' ');
      if (sp1 <= 0 || sp1 > 20) return 'bad request line';
      for (let k = 0; k < sp1; k++) if (!isMethodChar(line.charCodeAt(k))) return 'bad request line';
      let target: string;
      if (eol >= 0) {
        const sp2 = line.lastIndexOf(' ');
        if (sp2 <= sp1 + 1) return 'bad request line';
        const v = line.slice(sp2 + 1);
        if (v === 'HTTP/1.1') s.version = '1.1';
        else if (v === 'HTTP/1.0') s.version = '1.0';
        else return v.startsWith('HTTP/2') ? 'http2' : 'bad request line';
        target = line.slice(sp1 + 1, sp2);
      } else {
        // the line's CRLF is beyond the prefix: "GET /long/pa" or "GET /p HTTP/1." or "GET /p HTTP/1.1"
        const sp2 = line.lastIndexOf(' ');
        const v = sp2 > sp1 ? line.slice(sp2 + 1) : '';
        if (sp2 > sp1 + 1 && v.length > 0 && (v === 'HTTP/1.0' || 'HTTP/1.1'.startsWith(v))) {
          target = line.slice(sp1 + 1, sp2);
          s.version = v === 'HTTP/1.0' ? '1.0' : '1.1';
        } else {
          target = line.slice(sp1 + 1);
          s.version = '1.1'; // unknown: assumed
        }
        if (target.length === 0) return 'bad request line';
      }
      // a complete line is vouched for by its version; a cut one is checked byte by byte
      if (eol < 0) {
        for (let k = 0; k < target.length; k++) {
          const c = target.charCodeAt(k);
          if (c <= SP || c === 127) return 'bad request line';
        }
      }
      s.method = line.slice(0, sp1);
      s.target = target.length > MAX_TARGET ? target.slice(0, MAX_TARGET) : target;
    } else {
      // "HTTP/1.x NNN[ reason]", read from the bytes
      if (lineEnd - start < 12) return 'bad status line';
      for (let k = 0; k < 7; k++) if (buf[start + k] !== HTTP1_PREFIX[k]) return 'bad status line';
      const minor = buf[start + 7];
      if ((minor !== 48 && minor !== 49) || buf[start + 8] !== SP) return 'bad status line';
      let status = 0;
      for (let k = start + 9; k < start + 12; k++) {
        const d = buf[k]! - 48;
        if (d < 0 || d > 9) return 'bad status line';
        status = status * 10 + d;
      }
      if (status < 100) return 'bad status line';
      if (lineEnd - start > 12 && buf[start + 12] !== SP) return 'bad status line';
      s.status = status;
      s.version = minor === 48 ? '1.0' : '1.1';
    }
    if (eol < 0) return undefined;
    let pos = eol + 2;
    while (pos < end) {
      const e = indexOfCrlf(buf, pos, end);
      if (e < 0) break; // a line cut by the capture
      if (e === pos) break;
      let colon = pos;
      while (colon < e && buf[colon] !== COLON) colon++;
      if (colon === e) {
        const c0 = buf[pos];
        if (c0 === SP || c0 === HT) {
          pos = e + 2; // obsolete line folding: ignored
          continue;
        }
        return 'bad header';
      }
      const nlen = colon - pos;
      if (nlen === 0) return 'bad header';
      const name = keptName(buf, pos, nlen);
      // a response's headers only frame its body: nothing else of them is kept
      if (name !== undefined && (s.isReq || name === 'content-length' || name === 'transfer-encoding')) {
        let a = colon + 1;
        let b = e;
        while (a < b && (buf[a] === SP || buf[a] === HT)) a++;
        while (b > a && (buf[b - 1] === SP || buf[b - 1] === HT)) b--;
        // a response's Content-Length is read from the bytes: no string for it
        if (!s.isReq && name === 'content-length') {
          const n = parseContentLengthBytes(buf, a, b);
          if (n < 0 || (s.cl >= 0 && s.cl !== n)) return 'bad content-length';
          s.cl = n;
          pos = e + 2;
          continue;
        }
        const value = latin1String(buf, a, b);
        if (name === 'content-length') {
          const n = parseContentLength(value);
          if (n < 0 || (s.cl >= 0 && s.cl !== n)) return 'bad content-length';
          s.cl = n;
        } else if (name === 'transfer-encoding') {
          s.te = true;
          s.chunked = lastCodingChunked(value);
        }
        if (s.isReq) {
          const old = s.headers[name];
          const v = old === undefined ? value : `${old}, ${value}`;
          s.headers[name] = v.length > MAX_HEADER_VALUE ? v.slice(0, MAX_HEADER_VALUE) : v;
        }
      }
      pos = e + 2;
    }
    return undefined;
  }

  /** Decide the body framing once the head is parsed. */
  private afterHead(s: Stream, truncated: boolean): void {
    if (s.isReq) {
      if (this.queue.length >= this.maxPending) {
        this.fail('too many pending');
        return;
      }
      const inf = this.reqInferred;
      if (inf !== undefined && inf.res === undefined && this.queue.includes(inf)) {
        // pipelining right after a request whose end was inferred: its bytes may have held requests
        this.fail('desync');
        return;
      }
      this.reqInferred = undefined;
      const req: HttpRequest = {
        method: s.method,
        target: s.target,
        version: s.version,
        headers: s.headers,
        tsStart: s.t0,
        tsEnd: 0,
        size: 0,
        tid: s.tid,
        rtx: s.rtx,
        link: s.link,
        bodySize: 0,
      };
      const p: Pending = { req, res: undefined, reqDone: false, resDone: false, incomplete: undefined };
      if (truncated) this.toTail(s, false);
      else if (s.te) {
        // a request's length is only known when chunked is the final coding (RFC 9112 §6.3)
        if (!s.chunked) return this.fail('bad transfer-encoding');
        s.st = CHUNKED;
        s.cs = C_SIZE;
      } else if (s.cl > 0) {
        s.st = BODY;
        s.remaining = s.cl;
      } else {
        s.done = true;
      }
      this.queue.push(p);
      s.p = p;
      // inferred end (other direction): a new request ends a TAIL response. Safe only without
      // pipelining: the client waited for that response (it is for the request just before
      // this one) and it was a final one (after a 1xx in TAIL the final response is hidden).
      const r = this.res;
      if (r.st === TAIL && r.maybe === undefined) {
        if (r.interim || r.p === undefined || this.queue[this.queue.length - 2] !== r.p) return this.fail('desync');
        this.finish(r, r.lastEnd, true);
      }
      // a request before the previous exchange completed: the peer pipelines
      if (this.queue.length > 1) this.pipelined = true;
      if (this.onRequest !== undefined) this.onRequest(req);
      return;
    }
    const p = this.queue[this.resIdx];
    if (p === undefined) return this.fail('unpaired response');
    const status = s.status;
    if (status < 200 && status !== 101) {
      // 100 Continue, 102, 103: interim, no body, the exchange goes on
      this.counters.interim++;
      s.interim = true;
      if (truncated) this.toTail(s, true);
      else s.done = true;
      return;
    }
    this.resIdx++;
    s.p = p;
    // inferred end (other direction): a final response ends its request if that is in TAIL
    const q = this.req;
    if (q.st === TAIL && q.p === p && q.maybe === undefined) this.finish(q, q.lastEnd, true);
    p.res = {
      status,
      version: s.version,
      headers: s.headers,
      tsStart: s.t0,
      tsEnd: 0,
      size: 0,
      tid: s.tid,
      bodySize: 0,
    };
    if (this.onResponse !== undefined) this.onResponse(p.req, p.res);
    const method = p.req.method;
    if (status === 101) {
      s.switchTo = 'upgrade';
      s.done = true;
    } else if (method === 'CONNECT' && status < 300) {
      s.switchTo = 'tunnel';
      s.done = true;
    } else if (method === 'HEAD' || status === 204 || status === 304) {
      if (truncated) this.toTail(s, true);
      else s.done = true;
    } else if (truncated) {
      this.toTail(s, false);
    } else if (s.te) {
      if (s.chunked) {
        s.st = CHUNKED;
        s.cs = C_SIZE;
      } else {
        s.st = UNTIL_EOF;
      }
    } else if (s.cl >= 0) {
      if (s.cl === 0) s.done = true;
      else {
        s.st = BODY;
        s.remaining = s.cl;
      }
    } else {
      s.st = UNTIL_EOF;
    }
  }

  /** The head was cut by the capture: the rest of the message is absorbed until its end is inferred. */
  private toTail(s: Stream, noBody: boolean): void {
    s.st = TAIL;
    s.headTrunc = true;
    s.chunkedTail = !noBody && s.chunked;
    if (s.chunkedTail) this.counters.chunkedBlind++;
    s.declared = noBody ? 0 : !s.te && s.cl >= 0 ? s.cl : -1;
    s.body = 0;
  }

  /** CHUNKED state; returns the new offset. */
  private chunked(s: Stream, data: Buffer, off: number, V: number, B: number): number {
    while (off < B) {
      switch (s.cs) {
        case C_DATA: {
          const take = Math.min(s.remaining, B - off);
          s.remaining -= take;
          s.body += take;
          off += take;
          if (s.remaining === 0) {
            s.cs = C_CRLF;
            s.crlf = 2;
          }
          break;
        }
        case C_CRLF: {
          if (off < V) {
            const b = data[off];
            if (s.crlf === 2 && b === CR) s.crlf = 1;
            else if (b === LF) s.crlf = 0; // after CR, or a bare LF
            else {
              this.fail('bad chunk');
              return B;
            }
            off++;
          } else {
            // not captured: the two bytes after chunk data can only be CRLF
            const take = Math.min(s.crlf, B - off);
            s.crlf -= take;
            off += take;
          }
          if (s.crlf === 0) s.cs = C_SIZE;
          break;
        }
        default: {
          // C_SIZE or C_TRAILER: a line must be read
          if (off >= V) return this.blind(s, off, B);
          const lf = data.indexOf(LF, off);
          if (lf < 0) {
            if (V < B) return this.blind(s, off, B);
            s.line += data.toString('latin1', off, V);
            if (s.line.length > MAX_CHUNK_LINE) this.fail('chunk line too long');
            return B;
          }
          let line = data.toString('latin1', off, lf);
          if (s.line.length > 0) {
            line = s.line + line;
            s.line = '';
          }
          off = lf + 1;
          if (line.length > 0 && line.charCodeAt(line.length - 1) === CR) line = line.slice(0, -1);
          if (s.cs === C_SIZE) {
            const n = parseChunkSize(line);
            if (n < 0) {
              this.fail('bad chunk size');
              return B;
            }
            if (n === 0) s.cs = C_TRAILER;
            else {
              s.cs = C_DATA;
              s.remaining = n;
            }
          } else {
            if (line.length === 0) {
              s.done = true;
              return off;
            }
            s.trailer += line.length + 2;
            if (s.trailer > this.maxHeader) {
              this.fail('headers too large');
              return B;
            }
          }
        }
      }
    }
    return off;
  }

  /** chunk framing ran past the captured prefix: the body's end becomes inferred */
  private blind(s: Stream, off: number, B: number): number {
    this.counters.chunkedBlind++;
    s.st = TAIL;
    s.chunkedTail = true;
    s.line = '';
    s.body += B - off;
    return B;
  }

  /** The message of stream s is complete (or ends now). */
  private finish(s: Stream, tsEnd: number, inferred: boolean): void {
    if (inferred) this.counters.inferredEnds++;
    const p = s.p;
    const bodySize = s.headTrunc && s.declared >= 0 ? s.declared : s.body;
    const switchTo = s.switchTo;
    const wasTail = s.st === TAIL;
    const held = s.maybe;
    if (p !== undefined) {
      if (s.isReq) {
        p.req.tsEnd = tsEnd;
        p.req.size = s.size;
        p.req.bodySize = bodySize;
        p.reqDone = true;
      } else if (p.res !== undefined) {
        p.res.tsEnd = tsEnd;
        p.res.size = s.size;
        p.res.bodySize = bodySize;
        p.resDone = true;
      }
    }
    s.reset();
    // an inferred end must be confirmed by a start line in the next call of this direction
    s.probe = wasTail;
    s.maybe = held;
    this.emit();
    if (switchTo !== undefined) this.fail(switchTo);
  }

  /** Report exchanges, oldest first, once request and response are both complete. */
  private emit(): void {
    const q = this.queue;
    for (;;) {
      const p = q[0];
      if (p === undefined || !p.reqDone || !p.resDone) return;
      q.shift();
      this.resIdx--;
      const ex: Exchange = { protocol: 'http1', role: this.role ?? 'server', request: p.req };
      if (p.res !== undefined) ex.response = p.res;
      if (p.incomplete !== undefined) ex.incomplete = p.incomplete;
      this.emitOne(ex);
    }
  }

  private emitOne(ex: Exchange): void {
    this.counters.exchanges++;
    if (ex.incomplete !== undefined) this.counters.incomplete++;
    if (this.out === undefined) this.out = [ex];
    else this.out.push(ex);
  }

  /** The connection closed: complete what the close completes, mark what it cuts. */
  private eof(s: Stream): void {
    switch (s.st) {
      case TAIL: {
        const held = s.maybe;
        s.maybe = undefined;
        if (held !== undefined) for (const x of held) if (this.err === undefined) this.feed(s, x, x.data, x.bytes);
        if (s.st === TAIL && this.err === undefined && this.inferOk(s)) this.finish(s, s.lastEnd, true);
        break;
      }
      case UNTIL_EOF:
        this.finish(s, s.lastEnd, false);
        break;
      case BODY:
      case CHUNKED: {
        // cut short: report what was seen, flagged
        const p = s.p;
        if (p !== undefined) p.incomplete = 'eof';
        this.finish(s, s.lastEnd, false);
        break;
      }
      case HEAD:
        s.reset(); // a head that never completed: nothing to report for it
        break;
      default:
        break;
    }
  }
}
