// A span's request side from a request head the kernel summarised (a HEAD hint), with each
// connection's last head remembered. A keep-alive connection mostly repeats its request byte
// for byte (a proxy's upstream calling one endpoint, a poller, a health check, a load
// generator), and the span's request fields and the linker's request line are a function of
// the head's bytes and the connection alone: a repeated head costs one comparison of its
// bytes, no parse and no strings. Any other head is read in one pass
// (protocols/http1-head.ts), or by the full parser when it is not plain.
import { Http1Parser } from './protocols/http1.js';
import { fieldsFromHeaders, newRequestHeadFields, readRequestHead, sameBytes } from './protocols/http1-head.js';
import { copyRequestFields, fillRequest, type Endpoint } from './spans.js';
import { Span } from '../model/index.js';

/** heads longer than this are not remembered (the kernel sends at most its capture size) */
const MAX_REMEMBERED = 4096;

/** one reused answer of the head reader: read, then copied out at once */
const fields = newRequestHeadFields();

/** A connection's last summarised request head and what it gave. */
export class HeadMemo {
  /** the head's bytes (a copy: batches are reused), bytes [0, len), and a view of them */
  #bytes: Buffer | undefined = undefined;
  #view: DataView | undefined = undefined;
  #len = -1;
  #server = false;
  #tls = false;
  /** the request fields the head gave a span (a span of its own, never emitted) */
  readonly #template = new Span();
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
    const prev = this.#bytes;
    const prevView = this.#view;
    if (len === this.#len && prevView !== undefined && server === this.#server && tls === this.#tls && sameBytes(view, start, prevView, len)) {
      copyRequestFields(this.#template, span);
      return true;
    }
    if (!readRequestHead(buf, start, len, buf.length, fields)) {
      const head = Http1Parser.requestHead(buf.subarray(start, start + len), len);
      if (!head) return false;
      fieldsFromHeaders(head, fields);
    }
    fillRequest(span, server ? 'server' : 'client', fields.method, fields.target, fields.version, fields.host, fields.forwardedFor, fields.userAgent, local, remote, tls);
    this.line = `${fields.method} ${fields.target}`;
    this.traceparent = fields.traceparent;
    if (len > MAX_REMEMBERED) {
      this.#len = -1;
      return true;
    }
    let bytes = prev;
    if (bytes === undefined || bytes.length < len) {
      bytes = this.#bytes = Buffer.allocUnsafe(Math.max(len, 128));
      this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    }
    buf.copy(bytes, 0, start, start + len);
    this.#len = len;
    this.#server = server;
    this.#tls = tls;
    copyRequestFields(span, this.#template);
    return true;
  }
}
