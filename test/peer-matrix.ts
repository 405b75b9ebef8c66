// Checks shared by the real-peer matrix tests (issue 13): every request is identified by a
// unique path, and its server and client spans must carry the right method, path, status and
// protocol, sane durations, and the server span must be the child of exactly its own client
// span. A "wrong parent" is a server span whose parent is the client span of another request.
import assert from 'node:assert/strict';
import type { Span } from '../src/model/index.js';
import type { SpanCollector } from './agent-helpers.js';

export interface Expect {
  path: string;
  method?: string;
  status: number;
  /** the process that served it, when it is one the test knows */
  serverPid?: number;
  clientPid?: number;
  /** '2' or '1.1' */
  version?: string;
  /** the server span needs no client span (the client is not probed) */
  noClient?: boolean;
}

/** the spans of a request: server and client */
export function pairOf(col: SpanCollector, path: string, serverPid?: number): { server: Span[]; client: Span[] } {
  const spans = col.byPath(path);
  return {
    server: spans.filter((s) => s.kind === 'server' && (serverPid === undefined || s.resource['process.pid'] === serverPid)),
    client: spans.filter((s) => s.kind === 'client'),
  };
}

export function show(spans: Span[]): string {
  return JSON.stringify(spans.map((s) => [s.kind, s.resource['process.pid'], s.attributes['url.path'], s.attributes['http.response.status_code'], s.attributes['network.protocol.version'], s.parentSpanId]));
}

/** waits for every request's spans */
export async function waitPairs(col: SpanCollector, reqs: Expect[], timeoutMs = 20_000): Promise<void> {
  const missing = (): Expect[] => reqs.filter((r) => {
    const p = pairOf(col, r.path, r.serverPid);
    return !(p.server.length >= 1 && (r.noClient || p.client.length >= 1));
  });
  try {
    await col.waitSpans(`spans of ${reqs.length} requests`, () => missing().length === 0, timeoutMs);
  } catch (e) {
    const c = col.agent.capture?.counters();
    const what = missing().map((r) => `${r.path}: ${show(col.byPath(r.path))}`).join('\n');
    throw new Error(`${(e as Error).message}; missing:\n${what}\ncapture counters: ${JSON.stringify(c)}`);
  }
}

/**
 * Asserts every request's pair, and returns the number of wrong parents (asserted 0 here, and
 * returned so a test can report it).
 */
export function checkPairs(col: SpanCollector, reqs: Expect[]): { wrongParents: number; linked: number } {
  const clientById = new Map<string, Span>();
  for (const s of col.spans) if (s.kind === 'client') clientById.set(s.spanId, s);
  let wrongParents = 0;
  let linked = 0;
  for (const r of reqs) {
    const { server, client } = pairOf(col, r.path, r.serverPid);
    assert.equal(server.length, 1, `${r.path}: one server span, got ${show(col.byPath(r.path))}`);
    const s = server[0]!;
    const parent = clientById.get(s.parentSpanId);
    if (parent && parent.attributes['url.path'] !== r.path) wrongParents++;
    const spans = [s];
    if (!r.noClient) {
      assert.equal(client.length, 1, `${r.path}: one client span, got ${show(col.byPath(r.path))}`);
      const c = client[0]!;
      spans.push(c);
      if (r.clientPid !== undefined) assert.equal(c.resource['process.pid'], r.clientPid, `${r.path}: client pid`);
      assert.equal(s.traceId, c.traceId, `${r.path}: one trace`);
      assert.equal(s.parentSpanId, c.spanId, `${r.path}: the server span is its client span's child`);
      linked++;
      // the client waits for the whole exchange; 5 ms slack for the two probes' clocks
      assert.ok(c.durationNano + 5e6 >= s.durationNano, `${r.path}: client ${c.durationNano} ns >= server ${s.durationNano} ns`);
      assert.equal(c.status, r.status >= 400 ? 'error' : 'unset', `${r.path}: client status`);
    }
    assert.equal(s.status, r.status >= 500 ? 'error' : 'unset', `${r.path}: server status`);
    for (const x of spans) {
      assert.equal(x.attributes['http.request.method'], r.method ?? 'GET', `${r.path}: method`);
      assert.equal(x.attributes['http.response.status_code'], r.status, `${r.path}: ${x.kind} status: ${JSON.stringify(x)}`);
      if (r.version) assert.equal(x.attributes['network.protocol.version'], r.version, `${r.path}: ${x.kind} protocol`);
      assert.ok(x.durationNano > 0 && x.durationNano < 30e9, `${r.path}: ${x.kind} duration ${x.durationNano} ns`);
    }
  }
  assert.equal(wrongParents, 0, 'wrong parents');
  return { wrongParents, linked };
}

export interface GrpcCall {
  /** /demo.Echo/<method> */
  path: string;
  method: string;
  code: number;
  messages: number;
  /** the least the server span must last: the handler's wait, or the time the client holds its side of the stream open */
  minMs: number;
}

/**
 * The kinds of call every gRPC fixture (test/fixtures/grpcgo, h2/grpc-py.py, h2/grpc-js-matrix.cjs)
 * knows by the prefix of the method name. Client and bidirectional streams are held open by the
 * client for a known time (three messages 10 ms apart), and one kind of each ends with a non-OK
 * status; Drop ends from the server's side while the client's side is still open.
 */
export const GRPC_KINDS = [
  /** unary */
  { prefix: 'Say', code: 0, messages: 1, minMs: 0 },
  /** unary, INVALID_ARGUMENT */
  { prefix: 'Fail', code: 3, messages: 0, minMs: 0 },
  /** server streaming: three replies */
  { prefix: 'Count', code: 0, messages: 3, minMs: 0 },
  /** unary, answered after 20 ms */
  { prefix: 'Slow', code: 0, messages: 1, minMs: 18 },
  /** client streaming: three messages 10 ms apart, then half-close; one reply */
  { prefix: 'Gather', code: 0, messages: 1, minMs: 18 },
  /** client streaming as Gather, answered FAILED_PRECONDITION once the client half-closed */
  { prefix: 'Refuse', code: 9, messages: 0, minMs: 18 },
  /** bidirectional: three messages 10 ms apart, each echoed as it arrives, then half-close */
  { prefix: 'Chat', code: 0, messages: 3, minMs: 18 },
  /** bidirectional: one message echoed, a second 10 ms later answered ABORTED, the client's side still open */
  { prefix: 'Drop', code: 10, messages: 1, minMs: 8 },
] as const;

/** the calls of a round: each kind of GRPC_KINDS `per` times, with unique names */
export function grpcCalls(tag: string, per: number): GrpcCall[] {
  const out: GrpcCall[] = [];
  for (let i = 0; i < per; i++) for (const k of GRPC_KINDS) out.push({ path: `/demo.Echo/${k.prefix}_${tag}_${i}`, method: `${k.prefix}_${tag}_${i}`, code: k.code, messages: k.messages, minMs: k.minMs });
  return out;
}

/** waits for and asserts every call's linked server/client pair with its rpc attributes */
export async function checkGrpc(col: SpanCollector, calls: GrpcCall[], serverPid: number, clientPid: number): Promise<void> {
  await waitPairs(col, calls.map((x) => ({ path: x.path, status: 200, serverPid })));
  const clientById = new Map(col.spans.filter((s) => s.kind === 'client').map((s) => [s.spanId, s]));
  let wrong = 0;
  for (const x of calls) {
    const { server, client } = pairOf(col, x.path, serverPid);
    assert.deepEqual([server.length, client.length], [1, 1], `${x.path}: ${show(col.byPath(x.path))}`);
    const [s, cl] = [server[0]!, client[0]!];
    const parent = clientById.get(s.parentSpanId);
    if (parent && parent.attributes['url.path'] !== x.path) wrong++;
    assert.equal(cl.resource['process.pid'], clientPid);
    for (const sp of [s, cl]) {
      assert.equal(sp.attributes['rpc.system'], 'grpc');
      assert.equal(sp.attributes['rpc.service'], 'demo.Echo');
      assert.equal(sp.attributes['rpc.method'], x.method);
      assert.equal(sp.attributes['rpc.grpc.status_code'], x.code, `${x.path} ${sp.kind}`);
      assert.equal(sp.attributes['http.request.method'], 'POST');
      assert.equal(sp.attributes['http.response.status_code'], 200);
      assert.equal(sp.attributes['network.protocol.version'], '2');
      assert.equal(sp.name, `demo.Echo/${x.method}`);
      assert.ok(sp.durationNano > 0 && sp.durationNano < 30e9);
    }
    assert.equal(cl.status, x.code === 0 ? 'unset' : 'error');
    // the error is the gRPC status, not a stream cut short (a reset, or one that lingered to the close)
    for (const sp of [s, cl]) assert.equal(sp.errorType, x.code === 0 || sp === s ? undefined : String(x.code), `${x.path}: ${sp.kind} error type`);
    // no code of GRPC_KINDS is one the conventions count as the server's own failure
    assert.equal(s.status, 'unset', `${x.path}: status ${x.code} is the caller's error`);
    assert.equal(s.parentSpanId, cl.spanId, `${x.path}: server span is its client span's child`);
    assert.equal(s.traceId, cl.traceId);
    assert.ok(cl.durationNano + 5e6 >= s.durationNano, `${x.path}: durations`);
    for (const sp of [s, cl]) assert.ok(sp.durationNano >= x.minMs * 1e6, `${x.path}: ${sp.kind} at least ${x.minMs} ms, ${sp.durationNano / 1e6} ms`);
  }
  assert.equal(wrong, 0, 'wrong parents');
}

/** events this agent lost so far: the kernel's ring buffer drops and its own dropped batches */
function lostSoFar(col: SpanCollector): number {
  return col.agent.capture!.counters().ringbuf_dropped + col.agent.counters.batches_dropped;
}

/**
 * Runs a round of requests (which makes its own unique paths); when it fails and this agent
 * lost events meanwhile (the kernel is shared with other tests: their traffic can outrun the
 * reader on this 2-core machine, in the ring buffer or in the agent's bounded queue of batches;
 * both are counted, never silent), runs it once more. A failure without loss is a failure.
 */
export async function despiteDrops(col: SpanCollector, round: () => Promise<void>): Promise<void> {
  const before = lostSoFar(col);
  try {
    await round();
  } catch (e) {
    const lost = lostSoFar(col) - before;
    if (lost === 0) throw e;
    console.log(`a round lost ${lost} events or batches (load on the shared kernel): once more`);
    await round();
  }
}
