// The agent: kernel events -> connections -> protocol parsers -> linked spans.
// One instance per process; spans go to a sink (the store, an exporter).
import { Capture, decodeBatch, type CaptureOptions, type DecodeStats, type KernelEvent } from '../kernel/index.js';
import { Flag, LinkNote, Role } from '../kernel/index.js';
import { Linker, type LinkRecord } from './linker.js';
import { ProcessTable, type ResourceEnricher } from './process/resource.js';
import { Http1Parser, newHttp1Counters, type Http1Counters } from './protocols/http1.js';
import { Http2Parser, looksLikeHttp2, newHttp2Counters, type Http2Counters } from './protocols/http2.js';
import type { Chunk, Exchange, HttpRequest } from './protocols/protocol.js';
import { Span, type Attributes } from '../model/index.js';
import { opensslFamily, UprobeWatcher, type UprobeWatcherOptions } from './tls/index.js';
import { goRuntimeFamily, goTlsFamily, type GoRuntimeFamily } from './golang/index.js';
import { nodeCtxFamily } from './nodectx/index.js';
import { HeadMemo } from './head-memo.js';
import { fillHttpResponse, fillHttpSpan, fillIncomplete, fillRequestBody, type Endpoint } from './spans.js';

/**
 * Whether the kernel summarises HTTP/1 exchanges (bpf/lib/http1x.h) unless the caller says:
 * on, unless OSPREY_SUMMARIZE=off (so the whole suite and the benchmarks can run either way;
 * the spans are the same, test/summary-oracle.test.ts holds the two paths equal).
 */
function summarizeDefault(): 'off' | 'on' {
  return process.env.OSPREY_SUMMARIZE === 'off' ? 'off' : 'on';
}

/** closed connection ids remembered (a late event comes within a batch or two of its close) */
const CLOSED_REMEMBERED = 16384;

/**
 * Connections and closed ids are found by the low bits of their id first (ids count up, so the
 * live ones rarely share them): one array read per event instead of a hash lookup in a table
 * of tens of thousands. The map and set behind stay the truth when two ids share a slot.
 */
const ID_SLOTS = 65536;
const ID_MASK = ID_SLOTS - 1;

export interface AgentOptions {
  /** receives finished spans in batches */
  sink: (spans: Span[]) => void;
  capture?: Omit<CaptureOptions, 'onBatch'>;
  /**
   * hold finished spans this long for late parents (default 200 ms: a parent reported late
   * comes in the same ring-buffer batch or the next, 50 ms later; holding longer only keeps
   * more objects alive through garbage collections)
   */
  holdMs?: number;
  /** most connections tracked at once (default 65536) */
  maxConnections?: number;
  /** a connection without events this long is forgotten (default 10 min) */
  idleConnectionMs?: number;
  /** kernel batches waiting for the JS thread, at most (default 64 MiB) */
  maxQueuedMiB?: number;
  /** adds identity to processes' resources (Kubernetes metadata, src/resource) */
  enricher?: ResourceEnricher;
  /** attributes naming the remote end of a span (the pod or Service at that IP), if known */
  peerAttributes?: (ip: string) => Attributes | undefined;
  /**
   * TLS plaintext through uprobes (src/agent/tls): on by default, false turns it off;
   * `families` are probe families beside OpenSSL's and Go crypto/tls's (src/agent/golang)
   */
  uprobes?: false | Partial<UprobeWatcherOptions>;
  /**
   * Go runtime context (src/agent/golang/runtime-probes.ts): the goroutine of each call, from
   * uprobes on the Go runtime and net/http, for the linker's runtime rule. On by default;
   * false turns it off (its own uprobe watcher then does not run)
   */
  runtimeContext?: boolean;
  /**
   * How long a file no process maps keeps its uprobes, ms, for every uprobe watcher (TLS and
   * the runtime context); `uprobes.lingerMs` wins for the TLS one. Default: the watcher's (5 min).
   */
  uprobeLingerMs?: number;
  /**
   * Node's runtime context through uprobes on node (src/agent/nodectx): which incoming request
   * an event loop's call works for (the linker's runtime rule). On by default (needs uprobes)
   */
  nodeContext?: boolean;
}

interface Conn {
  id: number;
  pid: number;
  key: string;
  /** key seen from the other end */
  peerKey: string;
  local: Endpoint;
  remote: Endpoint;
  /** made at the first call the kernel did not summarise (most connections never need one);
   *  HTTP/2 when the first bytes say so (the preface, a server's SETTINGS) */
  parser: Http1Parser | Http2Parser | undefined;
  /** HTTP/2: the records of streams whose request started, by request (streams interleave) */
  h2open: Map<HttpRequest, LinkRecord> | undefined;
  /** the connection predates the capture (the parser then starts mid-stream) */
  preexisting: boolean;
  /** a TLS connection: its payloads are plaintext from uprobes (spans get https) */
  tls: boolean;
  /**
   * Records of requests started and not finished; until it finishes a record's `data` is
   * the parser's request object. Usually one at a time: a slot, and a list only for
   * pipelined requests (no array churn per request).
   */
  open1: LinkRecord | undefined;
  openMore: LinkRecord[] | undefined;
  /**
   * a request the kernel summarises (its HEAD hint came, its exchange record not yet): its
   * record holds the span, filled from the head already (the exchange record adds the
   * response); the head call's exit, size and head length are the request, should no
   * record follow
   */
  kept: LinkRecord | undefined;
  keptTsEnd: number;
  keptBytes: number;
  keptHeadLen: number;
  /** the last summarised request head and what it gave (made at the first) */
  head: HeadMemo | undefined;
  last: number;
  /** read from /proc when the connection was first seen, while the process surely lived */
  resource: Attributes;
}

export interface AgentCounters {
  events: number;
  connections: number;
  connections_evicted: number;
  connections_parse_stopped: number;
  spans: number;
  sink_errors: number;
  decode_malformed_batches: number;
  /** batches dropped because the JS thread fell behind by more than maxQueuedMiB */
  batches_dropped: number;
  batch_bytes_dropped: number;
  /**
   * events of a connection that had already closed: a call exiting on one CPU while the
   * socket's close is reported on another; dropped, or they would open a phantom connection
   * whose request never ends (and could pair with a later connection on the same ports)
   */
  events_after_close: number;
  /** exchanges the kernel summarised (one record each) */
  kernel_exchanges: number;
  /** kernel exchange records or hints whose request head did not parse */
  kernel_records_unparsed: number;
}

export class Agent {
  readonly counters: AgentCounters = {
    events: 0,
    connections: 0,
    connections_evicted: 0,
    connections_parse_stopped: 0,
    spans: 0,
    sink_errors: 0,
    decode_malformed_batches: 0,
    batches_dropped: 0,
    batch_bytes_dropped: 0,
    kernel_exchanges: 0,
    kernel_records_unparsed: 0,
    events_after_close: 0,
  };
  readonly http1: Http1Counters = newHttp1Counters();
  readonly http2: Http2Counters = newHttp2Counters();
  readonly linker: Linker;
  readonly processes: ProcessTable;
  readonly decode: DecodeStats = { records: 0, malformed: 0, unknownOp: 0 };
  capture: Capture | undefined;
  /** the files with TLS uprobes (undefined when off) */
  uprobes: UprobeWatcher | undefined;
  /** the Go executables with runtime-context probes (undefined when off), and the family */
  goRuntimeUprobes: UprobeWatcher | undefined;
  goRuntime: GoRuntimeFamily | undefined;
  readonly #opts: AgentOptions;
  readonly #conns = new Map<number, Conn>();
  /** #conns by the low bits of the id (ID_SLOTS): a slot holds the last connection opened there */
  readonly #connSlots = new Array<Conn | undefined>(ID_SLOTS).fill(undefined);
  /**
   * ids of the connections closed last (connection ids are never reused while the agent runs),
   * by the low bits of the id, -1 for none; a remembered id pushed out of its slot by another
   * goes to #closedMore
   */
  readonly #closedSlots = new Array<number>(ID_SLOTS).fill(-1);
  readonly #closedMore = new Set<number>();
  readonly #closedRing: number[] = [];
  #closedAt = 0;
  readonly #maxConns: number;
  readonly #idleNs: number;
  #timer: NodeJS.Timeout | undefined;
  #clock: { monoBase: bigint; clockOffset: bigint } | undefined;
  /** wall-clock ns of the capture clock's zero (monoBase + clockOffset) */
  #epochHi = 0;
  #epochLo = 0;
  #offline = false;
  #offlineNow: number | undefined;
  /** batches waiting for the JS thread; null: batches were dropped here (a loss barrier) */
  #queue: (Buffer | null)[] = [];
  #queuedBytes = 0;
  #draining = false;
  readonly #maxQueuedBytes: number;
  #sweepAt = 0;
  readonly #onEvent = (e: KernelEvent) => this.#event(e);
  /**
   * Event time: the latest kernel timestamp processed. Holds and drains of the linker run on
   * it, not on the wall clock: after the JS thread stalls (a long GC, a slow scan) batches
   * wait in the queue, and a record held 200 ms of wall time could go out before the batch
   * holding its parent is read. The wall clock stands in only when the reader says
   * nothing is in flight (#safeNow).
   */
  #eventNow = 0;
  /** batches onBatch received (processed, queued or dropped) */
  #batchesIn = 0;
  /** the largest count of kernel records lost that an event carried (KernelEvent.lost) */
  #lostSeen = 0;
  /** events were lost in user space (a dropped batch, a malformed one): a barrier before the next event */
  #lossPending = false;
  /** one chunk object for every event: the parser copies what it keeps */
  readonly #chunk: Chunk = { dir: 'in', tsStart: 0, tsEnd: 0, bytes: 0, data: Buffer.alloc(0), tid: 0 };

  constructor(opts: AgentOptions) {
    this.#opts = opts;
    this.processes = new ProcessTable(undefined, opts.enricher);
    this.linker = new Linker({ holdNs: (opts.holdMs ?? 200) * 1e6, threadModel: (pid) => this.processes.model(pid), rtxParent: (pid, rtx) => this.goRuntime?.parentOf(pid, rtx) });
    this.#maxConns = opts.maxConnections ?? 65536;
    this.#idleNs = (opts.idleConnectionMs ?? 600_000) * 1e6;
    this.#maxQueuedBytes = (opts.maxQueuedMiB ?? 64) << 20;
  }

  /** loads and attaches the probes; capture is live when this returns */
  start(): Capture {
    const cap = Capture.open({ summarize: summarizeDefault(), ...this.#opts.capture, onBatch: (b) => this.#enqueue(b) });
    this.capture = cap;
    const up = this.#opts.uprobes;
    const linger = this.#opts.uprobeLingerMs !== undefined ? { lingerMs: this.#opts.uprobeLingerMs } : {};
    if (up !== false) {
      const node = this.#opts.nodeContext === false ? [] : [nodeCtxFamily(cap)];
      this.uprobes = new UprobeWatcher(cap, { ...linger, ...up, families: [opensslFamily, goTlsFamily(cap), ...node, ...(up?.families ?? [])] });
      this.uprobes.start();
    }
    if (this.#opts.runtimeContext !== false) {
      this.goRuntime = goRuntimeFamily(cap);
      this.goRuntimeUprobes = new UprobeWatcher(cap, { families: [this.goRuntime], ...linger, ...(up ? { scanMs: up.scanMs, ...(up.lingerMs !== undefined ? { lingerMs: up.lingerMs } : {}) } : {}) });
      this.goRuntimeUprobes.start();
    }
    this.#setClock({ monoBase: cap.monoBase, clockOffset: cap.clockOffset });
    this.#timer = setInterval(() => this.tick(), 100);
    return cap;
  }

  /**
   * Runs the pipeline without the kernel: batches come from feedBatch() (a
   * recorded stream), time from `now` passed to tick(). For replay benchmarks.
   */
  startOffline(clock: { monoBase: bigint; clockOffset: bigint }): void {
    this.#setClock(clock);
    this.#offline = true;
    this.#offlineNow = 0; // until the first tick(): never the machine's clock
  }

  #setClock(clock: { monoBase: bigint; clockOffset: bigint }): void {
    this.#clock = clock;
    const epoch = clock.monoBase + clock.clockOffset;
    this.#epochHi = Number(epoch >> 32n);
    this.#epochLo = Number(epoch & 0xffffffffn);
  }

  /** monotonic ns on the capture's clock */
  now(): number {
    return this.#offlineNow ?? (this.#clock ? Number(process.hrtime.bigint() - this.#clock.monoBase) : 0);
  }

  get connections(): number {
    return this.#conns.size;
  }

  /** stops capture, drains what the kernel had, emits every finished span */
  async shutdown(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.uprobes?.stop();
    this.goRuntimeUprobes?.stop();
    await this.capture?.close();
    // what the kernel already delivered is processed, not lost
    while (this.#queue.length) this.#drainQueue();
    this.#emit(this.linker.flush());
  }

  /**
   * Live batches are decoded one per event-loop turn, so the HTTP API and timers stay
   * responsive under a flood: the first of a turn at once (the capture reuses its buffer
   * after the call), later ones copied into a bounded queue; past the bound, batches are
   * dropped and counted (like the kernel's ring buffer does).
   */
  #enqueue(buf: Buffer): void {
    this.#batchesIn++;
    if (!this.#draining) {
      this.#draining = true;
      setImmediate(this.#drainQueue);
      this.#liveBatch(buf);
      return;
    }
    if (this.#queuedBytes + buf.length > this.#maxQueuedBytes) {
      this.counters.batches_dropped++;
      this.counters.batch_bytes_dropped += buf.length;
      // the linker learns of the hole where the batch would have been read
      if (this.#queue[this.#queue.length - 1] !== null) this.#queue.push(null);
      return;
    }
    this.#queue.push(Buffer.from(buf));
    this.#queuedBytes += buf.length;
  }

  readonly #drainQueue = (): void => {
    let buf = this.#queue.shift();
    if (buf === null) {
      this.#lossPending = true;
      buf = this.#queue.shift();
    }
    if (buf) {
      this.#queuedBytes -= buf.length;
      this.#liveBatch(buf);
    }
    if (this.#queue.length) setImmediate(this.#drainQueue);
    else this.#draining = false;
  };

  /**
   * A live batch, then whatever it finished and is settled goes out at once rather than
   * at the next 100 ms tick: spans that leave young are cheap for the garbage collector,
   * spans that wait survive a collection or two and are copied each time.
   */
  #liveBatch(buf: Buffer): void {
    this.feedBatch(buf);
    this.#emit(this.linker.drain(this.#linkNow()));
  }

  /** one ring-buffer batch (many events) */
  feedBatch(buf: Buffer): void {
    if (!this.#clock) throw new Error('agent not started');
    const before = this.decode.malformed;
    decodeBatch(buf, this.#clock.monoBase, this.#onEvent, this.decode);
    if (this.decode.malformed !== before) {
      this.counters.decode_malformed_batches++;
      // the rest of the batch is lost
      this.#lossPending = true;
    }
  }

  #event(e: KernelEvent): void {
    this.counters.events++;
    if (e.tsEnd > this.#eventNow) this.#eventNow = e.tsEnd;
    // records were lost before this one: in the kernel (the count it carries grew; records
    // of other CPUs may still carry a smaller one, hence the largest) or here
    if (e.lost > this.#lostSeen || this.#lossPending) {
      if (e.lost > this.#lostSeen) this.#lostSeen = e.lost;
      this.#lossPending = false;
      this.linker.lossBarrier(this.#eventNow);
    }
    const slot = this.#connSlots[e.connId & ID_MASK];
    let c = slot !== undefined && slot.id === e.connId ? slot : this.#conns.get(e.connId);
    if (e.op === 'close') {
      if (c) this.#close(c, e.tsEnd);
      return;
    }
    if (!c) {
      if (e.flags & Flag.ignored) return;
      if (this.#wasClosed(e.connId)) {
        this.counters.events_after_close++;
        return;
      }
      c = this.#open(e);
    }
    c.last = e.tsEnd;
    if (e.tls) c.tls = true;
    if (e.flags & Flag.ignored) {
      this.#close(c, e.tsEnd);
      return;
    }
    if (e.op !== 'send' && e.op !== 'recv') {
      if (e.op === 'exchange' || e.op === 'head' || e.op === 'responded') this.#summarised(c, e);
      return;
    }
    const chunk = this.#chunk;
    chunk.dir = e.op === 'recv' ? 'in' : 'out';
    chunk.tsStart = e.ts;
    chunk.tsEnd = e.tsEnd;
    chunk.bytes = e.bytes;
    chunk.data = e.data;
    chunk.tid = e.tid;
    chunk.rtx = e.rtx;
    chunk.link = e.link;
    const parser = (c.parser ??= this.#parser(c, chunk));
    const done = parser.push(chunk);
    if (parser.error === 'upgrade' && this.#upgrade(c, done, chunk)) return;
    if (parser.error !== undefined) {
      this.counters.connections_parse_stopped++;
      this.#finishAll(c, done);
      this.#drop(c);
      return;
    }
    if (done.length) this.#finishAll(c, done);
  }

  #open(e: KernelEvent): Conn {
    if (this.#conns.size >= this.#maxConns) {
      const oldest = this.#conns.values().next().value;
      if (oldest) {
        this.#drop(oldest);
        this.counters.connections_evicted++;
      }
    }
    const local = { ip: e.localIp, port: e.lport };
    const remote = { ip: e.remoteIp, port: e.rport };
    const c: Conn = {
      id: e.connId,
      pid: e.pid,
      // a loopback connection never leaves its network namespace, and every namespace (pod) has
      // its own 127.0.0.1 and port space: the same 4-tuple can be two connections at once, so
      // the namespace is part of their keys (the tuple rule must not pair them)
      key: e.connKey,
      peerKey: e.peerKey,
      local,
      remote,
      parser: undefined,
      h2open: undefined,
      preexisting: (e.flags & Flag.preexisting) !== 0,
      tls: e.tls !== 0,
      open1: undefined,
      openMore: undefined,
      kept: undefined,
      keptTsEnd: 0,
      keptBytes: 0,
      keptHeadLen: 0,
      head: undefined,
      last: e.tsEnd,
      // the comm (a string read from the event) only for a process not seen yet
      resource: (this.processes.known(e.pid) ?? this.processes.get(e.pid, e.comm)).resource,
    };
    this.#conns.set(e.connId, c);
    this.#connSlots[e.connId & ID_MASK] = c;
    this.counters.connections++;
    return c;
  }

  #parser(c: Conn, first: Chunk): Http1Parser | Http2Parser {
    if (looksLikeHttp2(first, c.preexisting)) return this.#h2parser(c);
    return new Http1Parser({
      counters: this.http1,
      midStream: c.preexisting,
      onRequest: (req) => this.#requestStarted(c, req),
      onResponse: (req, res) => this.#responseStarted(c, req, res.tid, res.tsStart),
    });
  }

  #h2parser(c: Conn, upgradeRequest?: HttpRequest, role?: 'server' | 'client'): Http2Parser {
    return new Http2Parser({
      counters: this.http2,
      ...(upgradeRequest ? { upgradeRequest, role } : {}),
      onRequest: (req, id) => {
        const role = (c.parser as Http2Parser).connectionRole ?? 'server';
        (c.h2open ??= new Map()).set(req, this.#link(c, role, req, id));
      },
      onResponse: (req, res) => {
        const rec = c.h2open?.get(req);
        if (rec) this.linker.responded(rec, res.tid, res.tsStart);
      },
    });
  }

  /**
   * An HTTP/1 connection answered 101 to `Upgrade: h2c`: HTTP/2 from here. The upgraded request
   * is stream 1 of the new parser (its response comes as HTTP/2 frames), with its link record;
   * the rest of a call that carried the 101 head is the first HTTP/2 bytes. False when it was
   * not an h2c upgrade (WebSocket...): the caller stops parsing as before.
   */
  #upgrade(c: Conn, done: Exchange[], chunk: Chunk): boolean {
    const up = done[done.length - 1];
    if (!up || up.response?.status !== 101 || !/^\s*h2c\s*$/i.test(up.request.headers.upgrade ?? '')) return false;
    if (done.length > 1) this.#finishAll(c, done.slice(0, -1));
    const rec = this.#takeOpen(c, up.request);
    const parser = this.#h2parser(c, up.request, up.role);
    c.parser = parser;
    if (rec) (c.h2open ??= new Map()).set(up.request, rec);
    // a client may read the 101 head and the server's first frames at once
    const head = chunk.data.indexOf('\r\n\r\n');
    if (chunk.dir === 'in' && head >= 0 && head + 4 < chunk.data.length) {
      const rest = { ...chunk, data: chunk.data.subarray(head + 4) };
      const more = parser.push(rest);
      if (more.length) this.#finishAll(c, more);
    }
    return true;
  }

  #requestStarted(c: Conn, req: HttpRequest): void {
    const role = c.parser?.connectionRole ?? 'server';
    // the kernel stopped summarising this exchange and re-sent its calls: its record stays
    const kept = c.kept;
    let rec: LinkRecord;
    if (kept !== undefined && kept.kind === role && kept.start === req.tsStart) {
      rec = kept;
      c.kept = undefined;
    } else rec = this.#link(c, role, req);
    rec.data = req;
    if (c.open1 === undefined) c.open1 = rec;
    else (c.openMore ??= []).push(rec);
  }

  /** a server request is being answered: its thread is free of it for the thread rule */
  #responseStarted(c: Conn, req: HttpRequest, tid: number, ts: number): void {
    const rec = c.open1?.data === req ? c.open1 : c.openMore?.find((r) => r.data === req);
    if (rec) this.linker.responded(rec, tid, ts);
  }

  /**
   * What the kernel summarised (bpf/lib/http1x.h): a request's head (linking needs it when it
   * happens; its span is made from it at once), a server response's start - both only where
   * linking needs them ("Linking hints") - and the whole exchange once it has ended, which
   * completes that span or is the whole request when no head came: the same span the
   * parser's Exchange would have given (test/summary-oracle.test.ts).
   */
  #summarised(c: Conn, e: KernelEvent): void {
    if (e.op === 'head') {
      // until its exchange record comes, the record holds the span (made from the head now,
      // or copied from the connection's last one when the head repeats it) and the head call
      const headLen = e.dataEnd - e.dataStart;
      const span = this.#headSpan(c, e, headLen);
      if (!span) return;
      if (c.kept) this.linker.abandon(c.kept);
      const rec = this.#startSummarised(c, e, (e.link & LinkNote.unsure) !== 0);
      rec.data = span;
      c.kept = rec;
      c.keptTsEnd = e.tsEnd;
      c.keptBytes = e.bytes;
      c.keptHeadLen = headLen;
      return;
    }
    if (e.op === 'responded') {
      if (c.kept) this.linker.responded(c.kept, e.tid, e.ts);
      return;
    }
    const kept = c.kept;
    if (kept !== undefined && kept.start === e.ts) {
      // the usual case where a start was told: the record of the request whose head came as a hint
      c.kept = undefined;
      this.#completeSummarised(c, kept, e);
      return;
    }
    // no start was told for it (linking did not need it then: bpf/lib/http1x.h, "Linking
    // hints"): the record is the whole exchange, linked now with its end known
    const span = this.#headSpan(c, e, Math.min(e.exchange.reqHeadLen, e.dataEnd - e.dataStart));
    if (!span) return;
    const rec = this.#startSummarised(c, e, false, e.tsEnd);
    rec.data = span;
    this.#completeSummarised(c, rec, e);
  }

  /** the span of a summarised request, from its head's bytes (c.head keeps what they gave); undefined (counted) when they do not parse */
  #headSpan(c: Conn, e: KernelEvent, headLen: number): Span | undefined {
    const span = new Span();
    const memo = (c.head ??= new HeadMemo());
    if (memo.fill(span, e.batch, e.view, e.dataStart, headLen, e.role === Role.server, c.local, c.remote, c.tls)) return span;
    this.counters.kernel_records_unparsed++;
    return undefined;
  }

  /** the linker record of the summarised request whose head #headSpan just read (end: reported whole) */
  #startSummarised(c: Conn, e: KernelEvent, unsure: boolean, end?: number): LinkRecord {
    const memo = c.head!;
    const server = e.role === Role.server;
    const line = memo.line;
    return this.linker.start(server ? 'server' : 'client', c.pid, e.tid, c.key, line, e.ts, server ? memo.traceparent : undefined, c.peerKey, true, line, e.rtx, unsure, end);
  }

  /** an exchange record completes its request's span (the response, the times) and record */
  #completeSummarised(c: Conn, rec: LinkRecord, e: KernelEvent): void {
    this.counters.kernel_exchanges++;
    const x = e.exchange;
    const span = rec.data as Span;
    fillRequestBody(span, e.bytes - x.reqHeadLen);
    fillHttpResponse(span, x.status, x.respBytes - x.respHeadLen);
    if (rec.kind === 'server') this.linker.responded(rec, x.respTid, x.respTs);
    rec.data = this.#timed(c, span, e.ts, e.tsEnd);
    this.linker.finish(rec, e.tsEnd, this.#linkNow(), true);
  }

  /**
   * A linker record for a request (the request line is the tuple link's check; for HTTP/2 with
   * the stream id, the same at both ends: concurrent streams of one path pair exactly, and the
   * thread rule is off, see Linker.start)
   */
  #link(c: Conn, role: 'server' | 'client', req: HttpRequest, streamId?: number, rtx = 0): LinkRecord {
    const traceparent = role === 'server' ? req.headers.traceparent : undefined;
    const line = `${req.method} ${req.target}`;
    if (streamId !== undefined) return this.linker.start(role, c.pid, req.tid, c.key, `${line} #${streamId}`, req.tsStart, traceparent, c.peerKey, false, line);
    const unsure = ((req.link ?? 0) & LinkNote.unsure) !== 0;
    return this.linker.start(role, c.pid, req.tid, c.key, line, req.tsStart, traceparent, c.peerKey, true, line, rtx || (req.rtx ?? 0), unsure);
  }

  #finishAll(c: Conn, done: Exchange[]): void {
    const now = this.#linkNow();
    for (const ex of done) {
      const rec = this.#takeOpen(c, ex.request) ?? this.#link(c, ex.role, ex.request, ex.streamId);
      const end = ex.response?.tsEnd ?? ex.request.tsEnd;
      // the span is built now and held instead of the exchange: the parser's objects die
      // young, and only the span lives through the hold (GC cost grows with what survives)
      rec.data = this.#span(c, ex, end);
      this.linker.finish(rec, end, now, ex.response !== undefined && ex.incomplete === undefined);
    }
  }

  /** the open record of a request, removed from the connection's open list */
  #takeOpen(c: Conn, req: HttpRequest): LinkRecord | undefined {
    const h2 = c.h2open?.get(req);
    if (h2 !== undefined) {
      c.h2open!.delete(req);
      return h2;
    }
    const first = c.open1;
    if (first === undefined) return undefined;
    const more = c.openMore;
    if (first.data === req) {
      c.open1 = more?.shift();
      if (more?.length === 0) c.openMore = undefined;
      return first;
    }
    const i = more?.findIndex((r) => r.data === req) ?? -1;
    if (i < 0) return undefined;
    const [rec] = more!.splice(i, 1);
    if (more!.length === 0) c.openMore = undefined;
    return rec;
  }

  #close(c: Conn, ts: number): void {
    const done = c.parser?.end(ts);
    if (done?.length) this.#finishAll(c, done);
    // a summarised request the connection closed under (the peer reset it, say): reported
    // without a response, as the parser reports a request it saw no answer to
    const kept = c.kept;
    if (kept !== undefined) {
      c.kept = undefined;
      const span = kept.data as Span;
      fillRequestBody(span, c.keptBytes - c.keptHeadLen);
      fillIncomplete(span, 'eof');
      kept.data = this.#timed(c, span, kept.start, c.keptTsEnd);
      this.linker.finish(kept, c.keptTsEnd, this.#linkNow());
    }
    this.#drop(c);
    // remembered for a while: a call reported after the close must not reopen it
    const ring = this.#closedRing;
    if (ring.length < CLOSED_REMEMBERED) ring.push(c.id);
    else {
      const old = ring[this.#closedAt]!;
      const i = old & ID_MASK;
      if (this.#closedSlots[i] === old) this.#closedSlots[i] = -1;
      else this.#closedMore.delete(old);
      ring[this.#closedAt] = c.id;
      this.#closedAt = (this.#closedAt + 1) % CLOSED_REMEMBERED;
    }
    const i = c.id & ID_MASK;
    const there = this.#closedSlots[i]!;
    if (there !== -1) this.#closedMore.add(there);
    this.#closedSlots[i] = c.id;
  }

  /** whether a connection of this id closed lately */
  #wasClosed(id: number): boolean {
    return this.#closedSlots[id & ID_MASK] === id || (this.#closedMore.size > 0 && this.#closedMore.has(id));
  }

  /** forget a connection; requests it never finished are dropped with it */
  #drop(c: Conn): void {
    this.#conns.delete(c.id);
    const slot = c.id & ID_MASK;
    if (this.#connSlots[slot] === c) this.#connSlots[slot] = undefined;
    if (c.open1) this.linker.abandon(c.open1);
    if (c.kept) this.linker.abandon(c.kept);
    c.kept = undefined;
    for (const rec of c.openMore ?? []) this.linker.abandon(rec);
    for (const rec of c.h2open?.values() ?? []) this.linker.abandon(rec);
    c.h2open = undefined;
    c.open1 = undefined;
    c.openMore = undefined;
  }

  /** the clock of linking decisions: event time live, the caller's time offline */
  #linkNow(): number {
    return this.#offlineNow ?? this.#eventNow;
  }

  /**
   * Up to when everything the kernel captured has been processed: event time, or later,
   * the reader's last empty round when every batch it handed over has been read (nothing
   * in flight, nothing queued). With no traffic, held spans thus still go out; after a
   * stall, nothing goes out ahead of the batches still waiting.
   */
  #safeNow(): number {
    const at = this.#linkNow();
    if (this.#offline || !this.capture) return at;
    const d = this.capture.drained();
    if (d.batches !== this.#batchesIn || this.#queue.length > 0) return at;
    return Math.max(at, d.idleAt);
  }

  /** emits spans whose hold passed, sweeps idle state; every 100 ms when live */
  tick(offlineNow?: number): void {
    if (this.#offline && offlineNow !== undefined) this.#offlineNow = offlineNow;
    const now = this.now();
    const safe = this.#safeNow();
    this.#emit(this.linker.drain(safe));
    if (now >= this.#sweepAt) {
      this.#sweepAt = now + 5e9;
      this.processes.sweep((pid) => {
        this.linker.forgetProcess(pid);
        this.capture?.forgetProcess(pid);
      });
      for (const c of this.#conns.values()) {
        if (now - c.last > this.#idleNs) {
          this.#drop(c);
          this.counters.connections_evicted++;
        } else {
          const idle = c.parser?.idle(safe);
          if (idle?.length) this.#finishAll(c, idle);
        }
      }
    }
  }

  /** the span of a finished exchange, without its trace ids (fixed at emission) */
  #span(c: Conn, ex: Exchange, end: number): Span {
    const span = new Span();
    fillHttpSpan(span, ex, c.local, c.remote, c.tls);
    return this.#timed(c, span, ex.request.tsStart, end);
  }

  /** sets the span's times (capture clock ns), resource and what is known of its peer */
  #timed(c: Conn, span: Span, start: number, end: number): Span {
    span.setStartFrom(this.#epochHi, this.#epochLo, Math.round(start));
    span.durationNano = Math.max(0, Math.round(end - start));
    span.resource = c.resource;
    const peer = this.#opts.peerAttributes?.(c.remote.ip);
    if (peer !== undefined) for (const k in peer) span.setAttr(k, peer[k]!);
    return span;
  }

  #emit(recs: LinkRecord[]): void {
    if (!recs.length) return;
    const spans: Span[] = [];
    for (const r of recs) {
      const span = r.data as Span | undefined;
      if (!span) continue;
      span.setTrace(r.trace!);
      span.s0 = r.s0;
      span.s1 = r.s1;
      span.p0 = r.p0;
      span.p1 = r.p1;
      span.link = r.link;
      // the linker moved the end to nest a tuple pair timed out of order (Linker.finish)
      if (r.endShift !== 0) span.durationNano = Math.max(0, span.durationNano + Math.round(r.endShift));
      spans.push(span);
    }
    this.counters.spans += spans.length;
    try {
      this.#opts.sink(spans);
    } catch {
      this.counters.sink_errors++;
    }
  }
}
