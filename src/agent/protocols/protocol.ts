// One interface for every application protocol parser (HTTP/1 now; HTTP/2,
// PostgreSQL, Redis... later). A parser owns one TCP connection's byte stream as
// the kernel reported it: for each read/write, the full length of the call and a
// captured prefix that may be shorter. It frames messages, pairs requests with
// responses and reports finished exchanges; the span builder turns those into spans.

/** 'in' = bytes this process read from the socket, 'out' = bytes it wrote. */
export type Direction = 'in' | 'out';

export interface Chunk {
  dir: Direction;
  /** CLOCK_MONOTONIC ns at syscall entry / exit (ns since the agent's epoch, see kernel/). */
  tsStart: number;
  tsEnd: number;
  /** full length of the call (bytes moved) */
  bytes: number;
  /** the first captured bytes of the call; data.length <= bytes */
  data: Buffer;
  tid: number;
  /** runtime context of the call (KernelEvent.rtx), 0 or absent when unknown */
  rtx?: number;
  /** the kernel's note for linking a request this call starts (KernelEvent.link, LinkNote bits) */
  link?: number;
}

export interface Message {
  /** first/last chunk of the message: entry/exit timestamps */
  tsStart: number;
  tsEnd: number;
  /** total bytes of the message as framed (headers + body) */
  size: number;
  /** the thread that read or wrote the message's first bytes */
  tid: number;
  /** the runtime context of its first bytes (Chunk.rtx), when known */
  rtx?: number;
  /** the kernel's note for linking it (Chunk.link) */
  link?: number;
}

export interface HttpRequest extends Message {
  method: string;
  /** request-target as sent (path and query), at most 2 KiB */
  target: string;
  version: string; // "1.0" | "1.1"
  /** selected headers, names lowercase; never authorization, cookie, set-cookie, proxy-authorization */
  headers: Record<string, string>;
  bodySize: number;
}

export interface HttpResponse extends Message {
  status: number;
  version: string;
  /** empty: a response's headers only frame its body (content-length, transfer-encoding), none is kept */
  headers: Record<string, string>;
  bodySize: number;
}

export interface Exchange {
  protocol: 'http1' | 'http2';
  /** server: we read the request and wrote the response; client: the reverse */
  role: 'server' | 'client';
  request: HttpRequest;
  /** absent when the connection ended before a response (status unset, error) */
  response?: HttpResponse;
  /** why the exchange ended early (no response, or one cut short): 'eof' | 'reset' | ... */
  incomplete?: string;
  /** HTTP/2: the stream's id (the same at both ends of the connection) */
  streamId?: number;
  /** HTTP/2: the response's header block could not be decoded (HPACK state unknown): no status */
  responseUnknown?: boolean;
  /** gRPC (HTTP/2 with content-type application/grpc*): service, method, status from the trailers */
  grpc?: { service: string; method: string; status: number | undefined; message: string | undefined };
}

export interface ProtocolParser {
  readonly protocol: string;
  /** feed one read/write of the connection; returns exchanges it completed */
  push(chunk: Chunk): Exchange[];
  /** the connection closed at ts: completes EOF-delimited bodies, flushes in-flight requests */
  end(ts: number): Exchange[];
  /** set once the stream is not this protocol or is malformed; the parser then ignores input */
  readonly error: string | undefined;
  /**
   * Optional: call periodically with the current time (same clock as Chunk.ts*). A parser
   * whose message end could only be inferred (framing beyond the captured prefix) may
   * complete such messages once the connection has been quiet for a while, so their spans
   * are not held until the next request or the close. Returns exchanges it completed.
   */
  idle?(now: number): Exchange[];
}
