// A span's request side from a request head the kernel summarised (a HEAD hint). Request heads
// repeat byte for byte, on one connection and across connections: a proxy's upstream calling
// one endpoint, a poller, a health check, a load generator, a client that opens a connection
// per request. What a head gives is a function of its bytes alone (method, target, Host...),
// and what a span takes from it a function of those and of the connection's ends. So:
// - a head any connection sent before is found by a hash of its bytes in a table shared by
//   all connections (heads with a traceparent are not: each request has its own), and is not
//   parsed again: its strings (name, path, route, redacted query...) are made once
//   (spans.ts RequestParts), only the connection's part of a span is filled per connection;
// - a connection remembers its last head, and once that head repeats, the request fields it
//   gave a span (a template): a keep-alive connection repeating its head costs one comparison
//   of the bytes and a copy of the fields, no parse, no hash and no strings.
// Any other head is read in one pass (protocols/http1-head.ts), or by the full parser when it
// is not plain.
import { Http1Parser } from './protocols/http1.js';
import { fieldsFromHeaders, newRequestHeadFields, readRequestHead, sameBytes, type RequestHeadFields } from './protocols/http1-head.js';
import { copyRequestFields, fillRequest, fillRequestParts, requestParts, type Endpoint, type RequestParts } from './spans.js';
import { Span } from '../model/index.js';

/** heads longer than this are not remembered (the kernel sends at most its capture size) */
const MAX_REMEMBERED = 4096;
/** slots of the shared table (a power of two): the distinct heads a node's processes send at once */
const SHARED_SLOTS = 512;

/** one reused answer of the head reader: read, then copied out at once */
const fields = newRequestHeadFields();

/** A request head read once: immutable, shared by every connection that sends these bytes. */
class ParsedHead {
  constructor(
    /** a copy of the head's bytes, [0, len) */
    readonly view: DataView,
    readonly len: number,
    readonly hash: number,
    /** what a span takes from the head, whatever the connection */
    readonly parts: RequestParts,
    /** the linker's request line ("GET /x") */
    readonly line: string,
  ) {}
}

const shared: (ParsedHead | undefined)[] = new Array<ParsedHead | undefined>(SHARED_SLOTS).fill(undefined);

/** a hash of view[start, start + len): four bytes at a time, each step mixed into every bit */
function hashBytes(view: DataView, start: number, len: number): number {
  let h = 0x811c9dc5 ^ len;
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    h = Math.imul(h ^ view.getInt32(start + i, true), 0x9e3779b1);
    h ^= h >>> 15;
  }
  for (; i < len; i++) {
    h = Math.imul(h ^ view.getUint8(start + i), 0x9e3779b1);
    h ^= h >>> 15;
  }
  return h >>> 0;
}

/** the shared head with these bytes, read and remembered if none is (undefined: it does not parse) */
function parsedHead(buf: Buffer, view: DataView, start: number, len: number): ParsedHead | RequestHeadFields | undefined {
  const remember = len <= MAX_REMEMBERED;
  const hash = remember ? hashBytes(view, start, len) : 0;
  const slot = hash & (SHARED_SLOTS - 1);
  if (remember) {
    const p = shared[slot];
    if (p !== undefined && p.hash === hash && p.len === len && sameBytes(view, start, p.view, len)) {
      return p;
    }
  }
  if (!readRequestHead(buf, start, len, buf.length, fields)) {
    const head = Http1Parser.requestHead(buf.subarray(start, start + len), len);
    if (!head) return undefined;
    fieldsFromHeaders(head, fields);
  }
  // a traceparent is new in every request: such a head is never seen again
  if (!remember || fields.traceparent !== undefined) return fields;
  const bytes = Buffer.allocUnsafe(len);
  buf.copy(bytes, 0, start, start + len);
  const parts = requestParts(fields.method, fields.target, fields.version, fields.host, fields.forwardedFor, fields.userAgent);
  const p = new ParsedHead(new DataView(bytes.buffer, bytes.byteOffset, len), len, hash, parts, `${fields.method} ${fields.target}`);
  shared[slot] = p;
  return p;
}

/** A connection's last summarised request head and what it gave. */
export class HeadMemo {
  /** the connection's last head, when it is remembered */
  #last: ParsedHead | undefined = undefined;
  #server = false;
  #tls = false;
  /** the request fields #last gave a span on this connection (a span of its own, never emitted), once it repeated */
  #template: Span | undefined = undefined;
  /** the linker's request line ("GET /x") */
  line = '';
  /** the traceparent header, if any (server requests only link by it) */
  traceparent: string | undefined = undefined;

  /**
   * Fills `span`'s request side from the head at buf[start, start + len) (`view`: a DataView
   * of all of buf) seen on a connection with these ends, and sets `line` and `traceparent` to
   * the head's. False when the head does not parse (then nothing changed).
   */
  fill(span: Span, buf: Buffer, view: DataView, start: number, len: number, server: boolean, local: Endpoint, remote: Endpoint, tls: boolean): boolean {
    const last = this.#last;
    if (last !== undefined && len === last.len && server === this.#server && tls === this.#tls && sameBytes(view, start, last.view, len)) {
      // the connection's head again
      let t = this.#template;
      if (t === undefined) {
        fillRequestParts(span, server ? 'server' : 'client', last.parts, local, remote, tls);
        t = this.#template = new Span();
        copyRequestFields(span, t);
      } else {
        copyRequestFields(t, span);
      }
      this.line = last.line;
      this.traceparent = undefined;
      return true;
    }
    const p = parsedHead(buf, view, start, len);
    if (p === undefined) return false;
    this.#template = undefined;
    if (p instanceof ParsedHead) {
      fillRequestParts(span, server ? 'server' : 'client', p.parts, local, remote, tls);
      this.#last = p;
      this.#server = server;
      this.#tls = tls;
      this.line = p.line;
      this.traceparent = undefined;
    } else {
      fillRequest(span, server ? 'server' : 'client', p.method, p.target, p.version, p.host, p.forwardedFor, p.userAgent, local, remote, tls);
      this.#last = undefined;
      this.line = `${p.method} ${p.target}`;
      this.traceparent = p.traceparent;
    }
    return true;
  }
}
