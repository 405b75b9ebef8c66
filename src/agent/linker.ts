// Trace context without touching the services. Every request gets a span id
// when its first bytes are seen; its parent is decided, in order of trust, by
//   1. traceparent: a W3C header in the request it serves;
//   2. tuple: a server request whose connection (remote -> local) is the
//      mirror of an in-flight client request on this host is that request's
//      child (works across processes);
//   3. runtime: a client request made under a runtime context (rtx: the unit of work of a
//      multiplexing runtime, from uprobes, bpf/lib/rtctx.h: a goroutine for Go, the incoming
//      connection whose JavaScript runs for Node) belongs to the one request of its process
//      being worked on under that context or, for Go, under a goroutine that started it after
//      the request began and ended before it was answered (see "The runtime rule" below); a
//      call with a context and no such request gets no parent (the runtime says it is not
//      that thread's other requests');
//   4. thread: a client request sent by a thread that is working on exactly one
//      request belongs to that request (thread-per-request runtimes only); on an event
//      loop, the in-flight request with the identical request line, if exactly one (proxies);
//   5. none: a new trace root.
// Ambiguity (two candidates) gives `none`: a wrong parent is worse than none.
//
// The thread rule is sound only where a request stays on the thread that read it and
// that thread does nothing else meanwhile (see process/runtime.ts):
// - a request is "being worked on" from its first bytes until its response starts: a
//   handler makes its calls before it answers, and a request that streams a long answer
//   (server-sent events, a download) must not adopt every later call of its thread;
// - never for runtimes that multiplex requests over threads (Go, tokio, virtual threads...),
//   detected from the executable, or learned: a request answered by another thread than
//   the one that read it proves that the process moves work between threads;
// - a process taken for thread-per-request whose thread reads a second request (another
//   connection) before answering the first is an event loop from then on;
// - an event loop's lone in-flight request is no proof: work left by an answered request (a
//   fire-and-forget call after the answer, a timer) runs on the loop while the next request
//   is in flight, and looks the same from the kernel (measured: 5 wrong parents in 1,841
//   requests through aiohttp at 1 connection, test/linking-jvm-py.test.ts). A loop's call is
//   linked only by an identical request line (a proxy forwarding what it received);
// - an event-loop thread that makes a call while working on no request runs work of no
//   request (timers, work after a response): that thread loses even the request-line rule.
//
// The tuple rule, audited the same way:
// - connection reuse (keep-alive, client pools shared by threads): a client record leaves the
//   connection's list when it is claimed or emitted, and a server request pairs only with one
//   whose time holds its start, so a later request on the same connection can only pair with a
//   later server request. A finished client stays listed a little (CLIENT_GRACE_NS) for a server
//   request the kernel reports whole, when its exchange has ended;
// - pipelining: requests pair in order (HTTP/1 answers in order), oldest unclaimed first;
// - the same 4-tuple twice at once: only on loopback in two network namespaces (two pods),
//   so loopback keys carry the namespace (agent.ts), test/linking-netns.test.ts.
//
// The runtime rule, audited the same way:
// - only when both sides carry a runtime context (rtx != 0: the kernel read it, see
//   bpf/lib/rtctx.h) and only for HTTP/1 records (an HTTP/2 connection's frames are written by
//   whichever goroutine holds its lock);
// - a server request is the unit of work's from its first bytes until its response starts
//   (as for the thread rule); two such requests of one unit at once (lost events) are
//   ambiguous: no link;
// - ancestry (fan-out): a client call of a goroutine started by the server's goroutine (or
//   a descendant of it, up to MAX_ANCESTRY levels) belongs to that server request only when
//   (a) the request had begun before the goroutine was started: a goroutine started by an
//   earlier request of the same serving goroutine (keep-alive) is not adopted by a later one;
//   (b) the request is still in progress when the call starts (as above); and
//   (c) the goroutine, and every goroutine between it and the request's own, ended before the
//   request was answered (its exchange ended; the kernel records each started goroutine's
//   end, runtime.goexit1 in bpf/lib/goprobes.h). A goroutine that a request started and that
//   lives on works for whoever hands it work: a worker pool started by the first request that
//   needs it, a cache refresher, any long-lived goroutine a handler happened to spawn. While
//   the starting request is in flight its calls for OTHER requests look the same as a fan-out
//   child's (measured: up to 54 wrong parents in a run at c=32 before (c)); (c) is what tells
//   them apart, and it can only be known when the request is answered. So an ancestry link is
//   pending until then: the call is held (not settled, not emitted) and linked when the
//   request's answer begins (or its exchange ends), left without a parent when a goroutine on
//   the way had not ended by then (runtime_ancestry_outlived), or when the request is not answered within awaitMaxNs
//   of the call or never (runtime_ancestry_expired); the records under the call wait with it. A goroutine whose end the kernel did not record
//   (the map entry was evicted, no goexit1 probe) has not ended for this rule. What (c) does
//   not rule out: a goroutine started by a request that takes work from other requests and
//   ends before that request is answered (an idle-timeout worker of a request that outlasts
//   it), README known limits. The kernel records no parent at all for goroutines that work
//   for every request of a pool it knows (net/http's connection loops; bpf/lib/goprobes.h).
//
// Kernel events from different CPUs can arrive slightly out of order (on
// loopback the receiver's read can be reported before the sender's write), so a
// server request without a tuple parent waits for one; a span whose chain ends
// in such a request is held for `holdNs` after it ends before its trace id is
// fixed and it is emitted. A span whose chain is already final (it ends in a
// traceparent or in a client request without a parent) goes out at once.
// Trace ids are resolved by walking up to the root at emission; a record whose
// trace id is fixed never changes parent.
//
// Lost events (the kernel's ring buffer was full, the agent dropped a batch it could not keep
// up with) leave holes in what the rules above look at: a request head that never came leaves
// its thread looking idle or busy with another request, a response that never came leaves a
// request "being worked on" for good, a client request whose end never came stays a tuple
// candidate. The agent raises a loss barrier (lossBarrier) at the point of the event stream
// where the loss happened (every kernel record carries the count of records lost before it,
// see rb_out in bpf/lib/http1x.h; a dropped batch is a barrier where it would have been
// read). Records started before the latest barrier are "stale", and from the barrier on:
// - the thread rule takes no stale request as a parent; a stale request still in the
//   thread's set counts against the others (it may really be in flight), so a thread working
//   on a stale request and a fresh one links a call only by an identical request line to the
//   fresh one. A thread taken for one request at a time drops its stale requests at its next
//   server read (it finished them before reading another);
// - an event-loop thread may also have been working on a request whose head was lost, which
//   nothing shows: for `lossQuarantineNs` after a barrier it links calls only by an identical
//   request line, never as its only request (the unsound rest: a lost request with the very
//   same request line in flight on the same thread, or a handler that calls out more than
//   the quarantine after its head was lost);
// - a server request takes no stale client request that has not ended as its tuple parent
//   (its end may be what was lost), and then waits for no later one either;
// - nothing is learned from behaviour a loss may explain (background calls).
// Each link left out for these reasons counts in `withheld_loss`.
import { newSpanWords, newTraceId, parseTraceparent, type LinkSource, type TraceId } from '../model/index.js';
import type { ThreadModel } from './process/runtime.js';

export interface LinkRecord {
  readonly kind: 'server' | 'client';
  /** span id words (set once, at start) */
  s0: number;
  s1: number;
  readonly pid: number;
  readonly tid: number;
  /** runtime context of its first bytes (KernelEvent.rtx), 0 when unknown */
  readonly rtx: number;
  /** "local>remote" of the connection */
  readonly connKey: string;
  /** the same connection seen from the other end: "remote>local" */
  readonly peerKey: string;
  /** the request line ("GET /x"): identical at both ends of one connection */
  readonly sig: string;
  /**
   * the request line without HTTP/2's stream id: what a proxy forwards. For an HTTP/2 server
   * request it is the only way a call of its thread links to it (see #threadParent)
   */
  readonly line: string;
  /** an HTTP/2 server request: a thread parent only by an identical line, never as the only one */
  readonly lineOnly: boolean;
  readonly start: number;
  /** a client request already taken as parent by a server request (tuple links pair 1:1) */
  claimed: boolean;
  end: number | undefined;
  /** its exchange ended with a whole response (finish's `whole`) */
  whole: boolean;
  /**
   * the end was moved by this much (ns) after the owner timed its span, to nest a tuple pair
   * (see #nestEnds): the owner applies it at emission
   */
  endShift: number;
  /** a client request taken as a tuple parent: its child's end, when that ended first with a whole response */
  childEnd: number | undefined;
  link: LinkSource;
  parent: LinkRecord | undefined;
  /** from traceparent, or fixed at resolution */
  trace: TraceId | undefined;
  /** parent span id words; 0, 0 for none */
  p0: number;
  p1: number;
  /** payload the owner attaches (the span under construction) */
  data: unknown;
  /**
   * a client call whose runtime-rule parent (by goroutine ancestry) is pending: this server
   * request, if the goroutines on the way end before it is answered (see the head of this file)
   */
  awaiting: LinkRecord | undefined;
  /** a server request: when its answer began (kernel ns), once known (responded) */
  answered: number | undefined;
  emitAt: number;
  /**
   * loss barriers raised before this record started (see the head of this file); UNSURE_EPOCH
   * for a server request the kernel could not vouch for (it counts as stale)
   */
  readonly epoch: number;
  /** in the linker's live list (in flight or held), and its neighbours there (start order) */
  live: boolean;
  /** the linker's lists it is in (IN_* bits): leaving a list it is not in costs no lookup */
  listed: number;
  liveNext: LinkRecord | undefined;
  livePrev: LinkRecord | undefined;
}

export interface LinkerCounters {
  requests: number;
  linked_traceparent: number;
  linked_tuple: number;
  linked_thread: number;
  /** client requests linked by the runtime rule, and those of them through a started goroutine */
  linked_runtime: number;
  linked_runtime_ancestry: number;
  /**
   * ancestry links left out: a goroutine on the way from the call to the request's own was still
   * running when the request was answered (it outlives the request: a pool, a long-lived goroutine)
   */
  runtime_ancestry_outlived: number;
  /** ancestry links left out: no answer to the request before the call's hold ran out, or the request was dropped */
  runtime_ancestry_expired: number;
  /** client calls with a runtime context under which no request was being worked on: no parent */
  runtime_no_request: number;
  /** client requests whose runtime context matched several server requests in progress: left unlinked */
  ambiguous_runtime: number;
  linked_late: number;
  /** thread links chosen among several in-flight requests by an identical request line */
  linked_thread_by_request_line: number;
  ambiguous_thread: number;
  roots: number;
  evicted: number;
  /** finished records emitted before their hold because the table was full */
  emitted_early: number;
  /** requests whose connection went away before they finished */
  abandoned: number;
  /** client calls left unlinked because their process multiplexes requests over threads */
  thread_rule_off_multiplexed: number;
  /** client calls left unlinked because their event-loop thread also calls outside requests */
  thread_rule_off_background: number;
  /** client calls of an event loop working on one request, unlinked: the call may be another's left-over work */
  thread_rule_off_event_loop: number;
  /** processes found multiplexing (a request answered by another thread than the one that read it) */
  learned_multiplexed: number;
  /** processes found to interleave requests on one thread */
  learned_event_loop: number;
  /** loss barriers: points of the event stream where events were lost (kernel or agent) */
  loss_barriers: number;
  /** links left out because events were lost around them (see the head of this file) */
  withheld_loss: number;
  /**
   * links left out because the kernel could not say which requests were in flight (a process's
   * first calls, racing with requests whose start it did not tell: LinkNote.unsure)
   */
  withheld_unsure: number;
  /** tuple pairs whose ends two CPUs timed out of order (the server's after the client's): nested (#nestEnds) */
  ends_nested: number;
}

export interface LinkerOptions {
  /** hold a finished span this long for late parents before emitting (ns) */
  holdNs?: number;
  /** at most this many records in flight or held */
  maxRecords?: number;
  /** records in flight longer than this are dropped (ns) */
  maxAgeNs?: number;
  /** how a process maps requests onto threads (default: one request per thread) */
  threadModel?: (pid: number) => ThreadModel;
  /**
   * after a loss barrier, an event-loop thread links calls only by an identical request line
   * for this long (ns, default 10 s): a request whose head was lost may be in flight on it
   */
  lossQuarantineNs?: number;
  /**
   * a call waiting for its ancestry link (the runtime rule) and the records under it are held
   * past their hold until its request is answered, but at most this long after the call started
   * (ns, default 3 s, so that a finished span is still stored within 5 s); then the call is a root
   */
  awaitMaxNs?: number;
  /**
   * the unit of work that started `rtx` in process `pid` and when (kernel ns), for the runtime
   * rule's ancestry (Go: the goroutine that started a goroutine)
   */
  rtxParent?: (pid: number, rtx: number) => RtxParent | undefined;
  /** how long a finished, unclaimed client request stays a tuple candidate (event ns, default CLIENT_GRACE_NS) */
  clientGraceNs?: number;
}

/** what the runtime knows of a unit of work started by another (Go: a goroutine) */
export interface RtxParent {
  /** the unit that started it */
  parent: number;
  /** when it was started (kernel ns) */
  createdNs: number;
  /** when it ended (kernel ns); 0 or absent: not seen ending (running, or unknown) */
  exitNs?: number;
}

/** a call whose ancestry link waits for its request's answer: the units from the call's up to (not including) the request's */
interface PendingAncestry {
  call: LinkRecord;
  chain: number[];
}

/** how far up the runtime rule looks for the goroutine of a server request */
const MAX_ANCESTRY = 4;

const MODEL_RANK: Record<ThreadModel, number> = { 'per-request': 0, 'event-loop': 1, multiplexed: 2 };

/** "remote>local" for "local>remote" */
export const mirror = (key: string): string => {
  const i = key.indexOf('>');
  return `${key.slice(i + 1)}>${key.slice(0, i)}`;
};

/** removes the element at i, in place (splice would allocate the array of removed elements) */
function removeAt(list: LinkRecord[], i: number): void {
  for (let j = i + 1; j < list.length; j++) list[j - 1] = list[j]!;
  list.pop();
}

/** LinkRecord.listed: in #clients, #waiting, #serving, #servingRtx */
const IN_CLIENTS = 1;
const IN_WAITING = 2;
const IN_SERVING = 4;
const IN_SERVING_RTX = 8;
/** LinkRecord.epoch of a server request the kernel could not vouch for: stale for every rule */
const UNSURE_EPOCH = -1;

/**
 * how long a finished client request no server request has claimed stays a tuple candidate
 * (event time, ns): a server whose start the kernel did not tell is reported when its exchange
 * ends, by the CPU of its last write, which may return just after the client's last read
 * returned on another (both wait on the same bytes)
 */
const CLIENT_GRACE_NS = 5e6;

/**
 * Records listed by key (a connection, a thread, a unit of work). A list that empties stays
 * under its key for the key's next record: a keep-alive connection or a serving thread makes
 * no array and no map entry per request (their churn was a tenth of the linker's time). Empty
 * lists are swept when the map has doubled since the last sweep, so its size stays within
 * twice the keys in use (plus a constant). An empty list means what no list means.
 */
class Lists<K> {
  readonly #map = new Map<K, LinkRecord[]>();
  #sweepAt = 1024;

  /** the list under key: undefined or empty when none */
  get(key: K): LinkRecord[] | undefined {
    return this.#map.get(key);
  }

  push(key: K, r: LinkRecord): void {
    const list = this.#map.get(key);
    if (list !== undefined) list.push(r);
    else this.set(key, [r]);
  }

  set(key: K, list: LinkRecord[]): void {
    if (this.#map.size >= this.#sweepAt && !this.#map.has(key)) this.#sweep();
    this.#map.set(key, list);
  }

  delete(key: K): void {
    this.#map.delete(key);
  }

  /** removes r from the list under key */
  remove(key: K, r: LinkRecord): void {
    const list = this.#map.get(key);
    if (list === undefined) return;
    const i = list.indexOf(r);
    if (i >= 0) removeAt(list, i);
  }

  #sweep(): void {
    for (const [k, list] of this.#map) if (list.length === 0) this.#map.delete(k);
    this.#sweepAt = Math.max(1024, 2 * this.#map.size);
  }
}

/** a unit of work of a process (rtx values are below 2^53 in practice: goroutine ids count up from 1) */
const rtxKey = (pid: number, rtx: number): string => `${pid}:${rtx}`;

/** one number per thread: pid_max is at most 2^22 on Linux, so pid * 2^22 + tid is exact */
const threadKey = (pid: number, tid: number): number => pid * 4194304 + tid;

export class Linker {
  readonly counters: LinkerCounters = {
    requests: 0,
    linked_traceparent: 0,
    linked_tuple: 0,
    linked_thread: 0,
    linked_runtime: 0,
    linked_runtime_ancestry: 0,
    runtime_ancestry_outlived: 0,
    runtime_ancestry_expired: 0,
    runtime_no_request: 0,
    ambiguous_runtime: 0,
    linked_late: 0,
    linked_thread_by_request_line: 0,
    ambiguous_thread: 0,
    roots: 0,
    evicted: 0,
    emitted_early: 0,
    abandoned: 0,
    thread_rule_off_multiplexed: 0,
    thread_rule_off_background: 0,
    thread_rule_off_event_loop: 0,
    learned_multiplexed: 0,
    learned_event_loop: 0,
    loss_barriers: 0,
    withheld_loss: 0,
    withheld_unsure: 0,
    ends_nested: 0,
  };
  readonly #holdNs: number;
  readonly #max: number;
  readonly #maxAge: number;
  readonly #quarantineNs: number;
  readonly #awaitMaxNs: number;
  readonly #clientGraceNs: number;
  /** loss barriers so far; a record with a smaller epoch is stale */
  #lossEpoch = 0;
  /** event time of the latest barrier */
  #lossAt = 0;
  /** client requests by their connection key, in flight or recently ended */
  readonly #clients = new Lists<string>();
  /** server requests still looking for a tuple parent, by the client's connection key */
  readonly #waiting = new Lists<string>();
  /** server requests being worked on (read, not yet answered) per thread (threadKey) */
  readonly #serving = new Lists<number>();
  /** HTTP/1 server requests being worked on (read, not yet answered) per unit of work (rtxKey) */
  readonly #servingRtx = new Lists<string>();
  readonly #rtxParent: LinkerOptions['rtxParent'];
  /** calls whose ancestry link waits for the answer of this server request */
  readonly #pendingAncestry = new Map<LinkRecord, PendingAncestry[]>();
  readonly #threadModel: (pid: number) => ThreadModel;
  /** models learned from behaviour, per pid; they only ever move towards multiplexed */
  readonly #learned = new Map<number, ThreadModel>();
  /** event-loop threads seen calling outside any request, per pid */
  readonly #background = new Map<number, Set<number>>();
  /**
   * in-flight and held records, oldest first: a list through the records themselves
   * (LinkRecord.live*), so adding and removing one needs no hash table
   */
  #liveHead: LinkRecord | undefined = undefined;
  #liveTail: LinkRecord | undefined = undefined;
  #liveCount = 0;
  /** #resolve's walk up a chain (reused: one array, not one per record emitted) */
  readonly #chain: LinkRecord[] = [];
  /** finished records in emission order; #held[0, #heldHead) are already emitted */
  #held: LinkRecord[] = [];
  #heldHead = 0;
  /** finished records emitted with the next drain without (more of) a hold: their trace is settled, or the table limit pushed them out */
  #ready: LinkRecord[] = [];
  /** settled client requests no server request claimed, emitted after CLIENT_GRACE_NS (in emitAt order) */
  #grace: LinkRecord[] = [];

  constructor(opts: LinkerOptions = {}) {
    this.#holdNs = opts.holdNs ?? 500e6;
    this.#max = opts.maxRecords ?? 100_000;
    this.#maxAge = opts.maxAgeNs ?? 600e9;
    this.#threadModel = opts.threadModel ?? (() => 'per-request');
    this.#rtxParent = opts.rtxParent;
    this.#quarantineNs = opts.lossQuarantineNs ?? 10e9;
    this.#awaitMaxNs = opts.awaitMaxNs ?? 3e9;
    this.#clientGraceNs = opts.clientGraceNs ?? CLIENT_GRACE_NS;
  }

  /**
   * Events were lost just before the one about to be given (at event time `ts`): what was
   * started until now is stale for linking (see the head of this file).
   */
  lossBarrier(ts: number): void {
    this.#lossEpoch++;
    if (ts > this.#lossAt) this.#lossAt = ts;
    this.counters.loss_barriers++;
  }

  /** the model the thread rule follows for a process: detected, or learned if that says more */
  modelOf(pid: number): ThreadModel {
    const detected = this.#threadModel(pid);
    const learned = this.#learned.get(pid);
    return learned !== undefined && MODEL_RANK[learned] > MODEL_RANK[detected] ? learned : detected;
  }

  #learn(pid: number, model: ThreadModel): void {
    if (MODEL_RANK[this.modelOf(pid)] >= MODEL_RANK[model]) return;
    this.#learned.set(pid, model);
    if (model === 'multiplexed') this.counters.learned_multiplexed++;
    else this.counters.learned_event_loop++;
  }

  /** a process exited: what was learned about it goes (its pid may be reused) */
  forgetProcess(pid: number): void {
    this.#learned.delete(pid);
    this.#background.delete(pid);
  }

  get size(): number {
    return this.#liveCount;
  }

  /** a request's first bytes were seen */
  start(
    kind: 'server' | 'client',
    pid: number,
    tid: number,
    connKey: string,
    sig: string,
    ts: number,
    traceparent: string | undefined,
    peerKey: string = mirror(connKey),
    /**
     * false: the thread rule is off for this request (HTTP/2: one thread reads the frames of
     * many streams of a connection, and gRPC runtimes hand them to other threads to handle:
     * the reading thread says nothing about which request a call belongs to). A server
     * request then still counts for an event loop's calls by an identical request line
     * (`line`), as a proxy forwards it: nginx serving h2 and calling an HTTP/1 backend.
     */
    threads = true,
    /** the request line without the HTTP/2 stream id (default: sig) */
    line: string = sig,
    /** runtime context of its first bytes (0: unknown) */
    rtx = 0,
    /** LinkNote.unsure: the kernel could not say which requests of the process were in flight */
    unsure = false,
    /**
     * a request reported when it had ended (the kernel told no start for it): its end, known
     * before it is linked; finish() follows
     */
    end?: number,
  ): LinkRecord {
    this.counters.requests++;
    if (this.#liveCount >= this.#max) this.#evictOldest();
    const r: LinkRecord = {
      kind,
      s0: 0,
      s1: 0,
      pid,
      tid,
      connKey,
      peerKey,
      sig,
      line,
      lineOnly: !threads,
      claimed: false,
      start: ts,
      end,
      whole: false,
      endShift: 0,
      childEnd: undefined,
      link: 'none',
      parent: undefined,
      trace: undefined,
      p0: 0,
      p1: 0,
      rtx: threads ? rtx : 0,
      data: undefined,
      awaiting: undefined,
      answered: undefined,
      emitAt: 0,
      epoch: unsure && kind === 'server' ? UNSURE_EPOCH : this.#lossEpoch,
      live: true,
      listed: 0,
      liveNext: undefined,
      livePrev: this.#liveTail,
    };
    newSpanWords(r);
    if (this.#liveTail !== undefined) this.#liveTail.liveNext = r;
    else this.#liveHead = r;
    this.#liveTail = r;
    this.#liveCount++;
    if (kind === 'server') this.#startServer(r, traceparent);
    else this.#startClient(r, threads, unsure);
    return r;
  }

  #startServer(r: LinkRecord, traceparent: string | undefined): void {
    const tp = parseTraceparent(traceparent);
    if (tp) {
      r.trace = tp.trace;
      r.p0 = tp.s0;
      r.p1 = tp.s1;
      r.link = 'traceparent';
      this.counters.linked_traceparent++;
    } else {
      const key = r.peerKey;
      const found = this.#clientFor(key, r.sig, r.start);
      if (found) {
        this.#setParent(r, found, 'tuple');
      } else if (found === null) {
        // the candidate is stale: no parent, and none later either (a later client
        // request could take the place the stale one had in pipelining order)
        this.counters.withheld_loss++;
      } else {
        this.#waiting.push(key, r);
        r.listed |= IN_WAITING;
      }
    }
    if (r.rtx) {
      this.#servingRtx.push(rtxKey(r.pid, r.rtx), r);
      r.listed |= IN_SERVING_RTX;
    }
    const tk = threadKey(r.pid, r.tid);
    let list = this.#serving.get(tk);
    // a thread that works on one request at a time finished its stale ones before this read
    if (list && this.#lossEpoch > 0 && list.some((x) => x.epoch !== this.#lossEpoch) && this.modelOf(r.pid) === 'per-request') {
      for (const x of list) if (x.epoch !== this.#lossEpoch) x.listed &= ~IN_SERVING;
      list = list.filter((x) => x.epoch === this.#lossEpoch);
      if (list.length) this.#serving.set(tk, list);
      else {
        this.#serving.delete(tk);
        list = undefined;
      }
    }
    r.listed |= IN_SERVING;
    if (list) {
      // a second connection's request read before the first is answered: an event loop
      // (not from a stale request: its response may be what was lost)
      for (const x of list) {
        if (x.connKey !== r.connKey && x.epoch === this.#lossEpoch) {
          this.#learn(r.pid, 'event-loop');
          break;
        }
      }
      list.push(r);
    } else this.#serving.set(tk, [r]);
  }

  /**
   * A server request's response started (written by thread `tid`): its handler's work is
   * done, and calls of its thread from now on are not its own.
   */
  responded(r: LinkRecord, tid: number, ts?: number): void {
    if (r.kind !== 'server') return;
    // the answer's start: a started goroutine must have ended by then (not merely by the
    // exchange's end, which a long body or a close-delimited answer pushes back)
    if (ts !== undefined && r.answered === undefined) r.answered = ts;
    this.#unserve(r);
    if (tid !== r.tid) this.#learn(r.pid, 'multiplexed');
  }

  /** the thread rule (see the head of this file): the request the call's thread works on */
  #threadParent(r: LinkRecord): void {
    const model = this.modelOf(r.pid);
    if (model === 'multiplexed') {
      this.counters.thread_rule_off_multiplexed++;
      return;
    }
    if (model === 'event-loop' && this.#background.get(r.pid)?.has(r.tid)) {
      this.counters.thread_rule_off_background++;
      return;
    }
    const set = this.#serving.get(threadKey(r.pid, r.tid));
    const epoch = this.#lossEpoch;
    // an event-loop thread may be working on a request whose head was lost (see the head of
    // this file); a call reported late may have started before the barrier
    const quarantined = epoch > 0 && model === 'event-loop' && r.start < this.#lossAt + this.#quarantineNs;
    // an event loop serving many requests: a proxy forwards the request line it received,
    // so exactly one in-flight request with the same line is the parent. HTTP/2 server
    // requests (lineOnly) count only here: their reading thread need not be their handler's,
    // but an identical line on the same thread of a process that is not multiplexed is the
    // proxy case (the thread rule is off for multiplexed processes above)
    let match: LinkRecord | undefined;
    let one: LinkRecord | undefined;
    let n = 0;
    let full = 0;
    let total = 0;
    let stale = 0;
    let unsure = 0;
    for (const s of set ?? []) {
      // a client request reported late (kernel exchange records come when the exchange has
      // ended): only requests its thread had begun before it started can have made it
      if (s.start > r.start) continue;
      one = s;
      total++;
      if (s.epoch !== epoch) stale++;
      if (s.epoch === UNSURE_EPOCH) unsure++;
      if (!s.lineOnly) full++;
      if (s.line === r.line) {
        match = s;
        n++;
      }
    }
    // one request in flight: its call, on a thread that carries one request at a time (a stale
    // one counts against, never for). Not on an event loop: there the call may be work an
    // answered request left behind (head of file)
    const single = model === 'per-request' && total === 1 && full === 1;
    if (single && stale === 0) {
      this.#setParent(r, one!, 'thread');
      return;
    }
    if (n === 1 && match!.epoch === epoch) {
      this.#setParent(r, match!, 'thread');
      this.counters.linked_thread_by_request_line++;
      return;
    }
    // a link the rules would have made without the loss (or with the kernel sure)
    if (single || n === 1) {
      if (unsure) this.counters.withheld_unsure++;
      else this.counters.withheld_loss++;
      return;
    }
    if (n === 0 && full === 0) {
      // working on no request the thread rule trusts (not learned while a lost request
      // head may be why it looks so)
      if (model === 'event-loop' && !quarantined && stale === 0) {
        const bg = this.#background.get(r.pid);
        if (bg) bg.add(r.tid);
        else this.#background.set(r.pid, new Set([r.tid]));
      }
      return;
    }
    if (model === 'event-loop' && n === 0 && full === 1) this.counters.thread_rule_off_event_loop++;
    else this.counters.ambiguous_thread++;
  }

  /**
   * The runtime rule (see the head of this file): 'linked', 'pending' (an ancestry link that
   * waits for the request's answer), 'ambiguous', or 'none' when no server request in progress
   * is the call's unit of work or an ancestor of it.
   */
  #runtimeParent(r: LinkRecord): 'linked' | 'pending' | 'ambiguous' | 'none' {
    let rtx = r.rtx;
    // the units walked so far (the call's own, then each ancestor not serving the request)
    const chain: number[] = [];
    // the latest start a server request may have: the call's own start, then each started
    // goroutine's creation on the way up
    let before = r.start;
    for (let depth = 0; ; depth++) {
      const list = this.#servingRtx.get(rtxKey(r.pid, rtx));
      let match: LinkRecord | undefined;
      let n = 0;
      for (const s of list ?? []) {
        if (s.start > before) continue;
        match = s;
        n++;
      }
      if (n > 1) {
        this.counters.ambiguous_runtime++;
        return 'ambiguous';
      }
      if (match) {
        // a request started before a loss barrier may have ended unseen (its goroutine now
        // serving another request whose head was lost): withheld, and no thread guess either
        if (match.epoch !== this.#lossEpoch) {
          if (match.epoch === UNSURE_EPOCH) this.counters.withheld_unsure++;
          else this.counters.withheld_loss++;
          return 'ambiguous';
        }
        if (depth === 0) {
          this.#setParent(r, match, 'runtime');
          return 'linked';
        }
        // a started goroutine: linked only if it (and those between) end before the answer
        r.awaiting = match;
        const list = this.#pendingAncestry.get(match);
        const p: PendingAncestry = { call: r, chain };
        if (list) list.push(p);
        else this.#pendingAncestry.set(match, [p]);
        return 'pending';
      }
      if (depth >= MAX_ANCESTRY || !this.#rtxParent) return 'none';
      const up = this.#rtxParent(r.pid, rtx);
      if (!up || !up.parent) return 'none';
      chain.push(rtx);
      rtx = up.parent;
      before = Math.min(before, up.createdNs);
    }
  }

  #startClient(r: LinkRecord, threads: boolean, unsure: boolean): void {
    // a call whose runtime context is known never falls back to its thread: the context says
    // which request it works for, or that it works for none in flight
    if (unsure) {
      if (r.rtx || threads) this.counters.withheld_unsure++;
    } else if (r.rtx) {
      if (this.#runtimeParent(r) === 'none') this.counters.runtime_no_request++;
    } else if (threads) this.#threadParent(r);
    this.#clients.push(r.connKey, r);
    r.listed |= IN_CLIENTS;
    // a server request on the other end may have been reported first
    const waiting = this.#waiting.get(r.connKey);
    if (waiting !== undefined && waiting.length) {
      for (const s of waiting) {
        if (r.claimed || s.parent || s.trace || s.start < r.start || s.sig !== r.sig) continue;
        if (r.end !== undefined && s.start > r.end) continue;
        this.#setParent(s, r, 'tuple');
        this.counters.linked_late++;
        // it (and what it led to: its calls, their servers) may have finished while it waited
        // (its record came first): held for a parent it now has
        if (this.#settled(s)) this.#releaseUnder(s);
      }
      // those still without a parent wait on (in place)
      let n = 0;
      for (const s of waiting) {
        if (!s.parent && !s.trace) waiting[n++] = s;
        else s.listed &= ~IN_WAITING;
      }
      while (waiting.length > n) waiting.pop();
    }
  }

  /**
   * The client request on this connection that a server request read at ts
   * answers: in flight at ts, same request line, not yet claimed; the oldest of
   * them, since HTTP/1 answers pipelined requests in order. null: that one is stale and
   * has not ended (its end may have been lost: the link is withheld).
   */
  #clientFor(key: string, sig: string, ts: number): LinkRecord | null | undefined {
    const list = this.#clients.get(key);
    if (!list) return undefined;
    for (const c of list) {
      if (c.claimed || c.sig !== sig || c.start > ts || (c.end !== undefined && c.end < ts)) continue;
      return c.end === undefined && c.epoch !== this.#lossEpoch ? null : c;
    }
    return undefined;
  }

  /** client calls now waiting for their ancestry link (bounded by awaitMaxNs of calls) */
  get pendingAncestryCalls(): number {
    let n = 0;
    for (const list of this.#pendingAncestry.values()) n += list.length;
    return n;
  }

  /** call `r` no longer waits for its ancestry link (resolved as a root, dropped, abandoned) */
  #unpend(r: LinkRecord): void {
    const s = r.awaiting;
    if (!s) return;
    r.awaiting = undefined;
    const list = this.#pendingAncestry.get(s);
    if (!list) return;
    const i = list.findIndex((p) => p.call === r);
    if (i >= 0) list.splice(i, 1);
    if (!list.length) this.#pendingAncestry.delete(s);
  }

  /**
   * Server request `s` was answered at `end` (kernel ns): each call waiting for it by ancestry
   * is linked if every goroutine on its way had ended by then, else left without a parent.
   * undefined `end`: the request will never be answered (dropped), no link.
   */
  #decideAncestry(s: LinkRecord, end: number | undefined): void {
    const list = this.#pendingAncestry.get(s);
    if (!list) return;
    this.#pendingAncestry.delete(s);
    for (const { call, chain } of list) {
      // resolved meanwhile (its hold ran out): already counted as expired
      if (call.awaiting !== s) continue;
      call.awaiting = undefined;
      if (end === undefined) {
        this.counters.runtime_ancestry_expired++;
        continue;
      }
      let ended = true;
      for (const g of chain) {
        const info = this.#rtxParent?.(call.pid, g);
        if (!info || !info.exitNs || info.exitNs > end) {
          ended = false;
          break;
        }
      }
      if (!ended) {
        this.counters.runtime_ancestry_outlived++;
        continue;
      }
      this.#setParent(call, s, 'runtime');
      this.counters.linked_runtime_ancestry++;
    }
  }

  /**
   * `s` got a late parent that settles its trace: it and the held records under it go out with
   * the next drain instead of after their hold (spans that wait survive collections: the
   * garbage collector's cost grows with them). Those are among the records finished since `s`
   * started, at the end of the held list; the walk back stops at the first that finished before.
   */
  #releaseUnder(s: LinkRecord): void {
    const held = this.#held;
    for (let i = held.length - 1; i >= this.#heldHead; i--) {
      const x = held[i]!;
      if (x.end! < s.start) break;
      if (x !== s && this.#chainTop(x) === x) continue;
      if (!this.#settled(x)) continue;
      held.splice(i, 1);
      x.emitAt = 0;
      this.#ready.push(x);
    }
  }

  #setParent(r: LinkRecord, parent: LinkRecord, how: 'tuple' | 'thread' | 'runtime'): void {
    r.parent = parent;
    if (how === 'tuple') {
      // a client request answers one server request: no longer a candidate
      parent.claimed = true;
      this.#unlistClient(parent);
      // linked late: the server request may have ended already
      if (r.end !== undefined && r.whole) parent.childEnd = r.end;
    }
    r.link = how;
    if (how === 'tuple') this.counters.linked_tuple++;
    else if (how === 'runtime') this.counters.linked_runtime++;
    else this.counters.linked_thread++;
  }

  /**
   * the request's exchange finished at ts, with a whole response or not (`whole`); the record
   * is emitted after the hold. Its end may move by r.endShift to nest a tuple pair (#nestEnds).
   */
  finish(r: LinkRecord, ts: number, now: number, whole = false): void {
    r.end = Math.max(ts, r.start);
    r.whole = whole;
    if (whole) this.#nestEnds(r);
    this.#unserve(r);
    if (r.kind === 'server') this.#decideAncestry(r, r.answered ?? r.end);
    // a finished client request no server request has claimed may still be claimed by one
    // reported whole a little later (CLIENT_GRACE_NS): it stays listed until it goes out
    const unclaimed = r.kind === 'client' && !r.claimed;
    // no later parent can change its trace: out with the next drain, no hold
    if (this.#settled(r)) {
      if (unclaimed) {
        r.emitAt = now + this.#clientGraceNs;
        this.#grace.push(r);
        return;
      }
      r.emitAt = now;
      this.#ready.push(r);
      return;
    }
    r.emitAt = now + this.#holdNs;
    this.#held.push(r);
  }

  /**
   * The two ends of one exchange are timed on different CPUs. The server's last write and the
   * client's last read both return after the response's last bytes reached the client's socket,
   * in either order: on loopback the reader, woken on the other CPU, may return before the
   * writer does. Both ends are upper bounds of that moment, so the lower one is as true as the
   * other, and the pair is made to nest: a server request that ends after its tuple parent ends
   * where its parent does; a parent that ended first (and went out, or is held) ends where its
   * child does. Only for whole responses: a client that gave up before the answer ended first
   * for real. The moves are a few microseconds (the wake-up of the reader); ends_nested counts them.
   */
  #nestEnds(r: LinkRecord): void {
    if (r.kind === 'server') {
      const p = r.link === 'tuple' ? r.parent : undefined;
      if (p === undefined) return;
      if (p.end === undefined) p.childEnd = r.end;
      else if (p.whole && p.end < r.end!) this.#moveEnd(r, Math.max(p.end, r.start));
    } else if (r.childEnd !== undefined && r.childEnd > r.end!) this.#moveEnd(r, r.childEnd);
  }

  #moveEnd(r: LinkRecord, end: number): void {
    r.endShift += end - r.end!;
    r.end = end;
    this.counters.ends_nested++;
  }

  /**
   * Whether a record's trace is final: its chain leads to a trace id already fixed, or to a
   * client request without a parent (a client only gets a parent when it starts). A chain
   * that ends in a server request without a parent may still get one late (tuple link), so
   * that record waits for the hold.
   */
  #settled(r: LinkRecord): boolean {
    const cur = this.#chainTop(r);
    // a call waiting for its ancestry link (the runtime rule) may still get a parent
    return cur.trace !== undefined || (cur.kind === 'client' && cur.parent === undefined && cur.awaiting === undefined);
  }

  /** records whose hold passed (and the settled ones), with trace ids fixed */
  drain(now: number): LinkRecord[] {
    const held = this.#held;
    let n = this.#heldHead;
    while (n < held.length && held[n]!.emitAt <= now) n++;
    const grace = this.#grace;
    if (grace.length && grace[0]!.emitAt <= now) {
      let g = 1;
      while (g < grace.length && grace[g]!.emitAt <= now) g++;
      for (const r of grace.splice(0, g)) this.#ready.push(r);
    }
    let out = this.#ready;
    if (out.length) this.#ready = [];
    if (n > this.#heldHead) {
      const due = held.slice(this.#heldHead, n);
      out = out.length ? out.concat(due) : due;
      // drop the emitted front now and then, not on every drain (a slice per drain copies
      // everything still held)
      if (n === held.length) {
        held.length = 0;
        this.#heldHead = 0;
      } else if (n > 4096 && n * 2 > held.length) {
        held.splice(0, n);
        this.#heldHead = 0;
      } else this.#heldHead = n;
    } else if (!out.length) out = [];
    // a record whose chain ends in a call waiting for its ancestry link waits on (a handler
    // may work a while after its started goroutines' calls before it answers)
    if (this.#pendingAncestry.size && out.length) {
      const kept: LinkRecord[] = [];
      for (const r of out) {
        const top = this.#chainTop(r);
        if (top.awaiting !== undefined && now - top.start < this.#awaitMaxNs) {
          r.emitAt = now + this.#holdNs;
          held.push(r);
        } else kept.push(r);
      }
      out = kept;
    }
    for (const r of out) {
      this.#resolve(r);
      this.#forget(r);
    }
    this.#expire(now);
    return out;
  }

  /** the end of a record's parent chain (short of a record whose trace id is fixed) */
  #chainTop(r: LinkRecord): LinkRecord {
    let cur = r;
    for (let n = 0; !cur.trace && cur.parent && n < 64; n++) cur = cur.parent;
    return cur;
  }

  /** everything held, now (shutdown) */
  flush(): LinkRecord[] {
    const out = this.#ready.concat(this.#grace, this.#held.slice(this.#heldHead));
    this.#held = [];
    this.#heldHead = 0;
    this.#ready = [];
    this.#grace = [];
    for (const r of out) {
      this.#resolve(r);
      this.#forget(r);
    }
    return out;
  }

  #resolve(r: LinkRecord): void {
    // walk up to the first record with a fixed trace id (or the root), then down
    const chain = this.#chain;
    let cur: LinkRecord | undefined = r;
    while (cur && !cur.trace && chain.length < 64) {
      chain.push(cur);
      cur = cur.parent;
    }
    let trace = cur?.trace;
    for (let i = chain.length - 1; i >= 0; i--) {
      const x = chain[i]!;
      if (x.parent && trace) {
        x.trace = trace;
        x.p0 = x.parent.s0;
        x.p1 = x.parent.s1;
      } else {
        // a call still waiting for its ancestry link: its trace is fixed now, as a root
        if (x.awaiting) {
          this.#unpend(x);
          this.counters.runtime_ancestry_expired++;
        }
        x.parent = undefined;
        x.link = 'none';
        x.trace = trace = newTraceId();
        this.counters.roots++;
      }
    }
    while (chain.length) chain.pop();
  }

  #unlistClient(r: LinkRecord): void {
    if ((r.listed & IN_CLIENTS) === 0) return;
    r.listed &= ~IN_CLIENTS;
    this.#clients.remove(r.connKey, r);
  }

  #forget(r: LinkRecord): void {
    if (r.live) {
      r.live = false;
      const prev = r.livePrev;
      const next = r.liveNext;
      if (prev !== undefined) prev.liveNext = next;
      else this.#liveHead = next;
      if (next !== undefined) next.livePrev = prev;
      else this.#liveTail = prev;
      r.livePrev = r.liveNext = undefined;
      this.#liveCount--;
    }
    if (r.kind === 'client') this.#unlistClient(r);
    else if (r.listed & IN_WAITING) {
      r.listed &= ~IN_WAITING;
      this.#waiting.remove(r.peerKey, r);
    }
  }

  /** in-flight records older than maxAge never finish: drop them */
  #expire(now: number): void {
    for (let r = this.#liveHead; r !== undefined; ) {
      if (r.start > now - this.#maxAge) break;
      const next = r.liveNext;
      if (r.end === undefined) this.#drop(r);
      r = next;
    }
  }

  /** the table is full: the oldest record goes, emitted early if finished, else dropped (O(1)) */
  #evictOldest(): void {
    const oldest = this.#liveHead;
    if (!oldest) return;
    if (oldest.end === undefined) {
      this.#drop(oldest);
      return;
    }
    // finished: out with the next drain (a settled one is in #ready already); a call waiting
    // for its ancestry link goes as it stands (it would otherwise be held again, unbounded)
    if (oldest.awaiting) {
      this.#unpend(oldest);
      this.counters.runtime_ancestry_expired++;
    }
    const i = this.#held.indexOf(oldest, this.#heldHead);
    if (i >= 0) {
      this.#held.splice(i, 1);
      this.#ready.push(oldest);
    }
    this.#forget(oldest);
    this.counters.emitted_early++;
  }

  /** a request that will never finish (its connection went away unparsed) */
  abandon(r: LinkRecord): void {
    if (r.end !== undefined || !r.live) return;
    this.counters.abandoned++;
    this.#forget(r);
    this.#unserve(r);
    if (r.kind === 'server') this.#decideAncestry(r, undefined);
    else this.#unpend(r);
  }

  #drop(r: LinkRecord): void {
    this.counters.evicted++;
    this.#forget(r);
    this.#unserve(r);
    if (r.kind === 'server') this.#decideAncestry(r, undefined);
    else if (r.awaiting) {
      this.#unpend(r);
      this.counters.runtime_ancestry_expired++;
    }
  }

  #unserve(r: LinkRecord): void {
    if (r.kind !== 'server') return;
    if (r.listed & IN_SERVING_RTX) {
      r.listed &= ~IN_SERVING_RTX;
      this.#servingRtx.remove(rtxKey(r.pid, r.rtx), r);
    }
    if (r.listed & IN_SERVING) {
      r.listed &= ~IN_SERVING;
      this.#serving.remove(threadKey(r.pid, r.tid), r);
    }
  }
}
