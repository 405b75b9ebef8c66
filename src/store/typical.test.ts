// The typical trace of the same root (typical.ts): the peer nearest the median root duration.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Span } from '../model/index.js';
import { DuckStore } from './index.js';

const NOW = BigInt(Date.now()) * 1_000_000n;
const MS = 1_000_000n;
let n = 0;
const hex = (v: number, w: number) => v.toString(16).padStart(w, '0');

/** a trace: a root span (its parent stored or not) and one child */
function trace(name: string, svc: string, durMs: number, agoMs: number, orphanRoot = false): { id: string; spans: Span[] } {
  const id = hex(0x7000 + ++n, 32);
  const start = NOW - BigInt(agoMs) * MS;
  const root = Span.from({ traceId: id, spanId: hex(n * 10, 16), parentSpanId: orphanRoot ? hex(0xdead, 16) : '', name, kind: 'server', startTimeUnixNano: start, durationNano: durMs * 1e6, status: 'unset', resource: { 'service.name': svc }, attributes: {} });
  const child = Span.from({ traceId: id, spanId: hex(n * 10 + 1, 16), parentSpanId: root.spanId, name, kind: 'server', startTimeUnixNano: start + MS, durationNano: durMs * 0.5e6, status: 'unset', resource: { 'service.name': svc }, attributes: {} });
  return { id, spans: [root, child] };
}

describe('typical trace of the same root', () => {
  let store: DuckStore;
  const made: Record<string, { id: string; spans: Span[] }> = {};
  before(async () => {
    store = await DuckStore.open();
    made.slow = trace('GET /x', 'web', 900, 1000);
    // peers of GET /x on web: 10, 20 (root not stored: still a root), 30, 40, 50 ms → median 30
    made.p10 = trace('GET /x', 'web', 10, 2000);
    made.p20 = trace('GET /x', 'web', 20, 3000, true);
    made.p30 = trace('GET /x', 'web', 30, 4000);
    made.p40 = trace('GET /x', 'web', 40, 5000);
    made.p50 = trace('GET /x', 'web', 50, 6000);
    // not peers: another name, another service, and a span of that name that is not a root
    made.other = trace('GET /y', 'web', 30, 1000);
    made.otherSvc = trace('GET /x', 'api', 30, 1000);
    // far in the past: outside a 1 h neighbourhood
    made.old = trace('GET /x', 'web', 30, 3 * 3600 * 1000);
    store.append(Object.values(made).flatMap((t) => t.spans));
    await store.flush();
  });
  after(() => store.shutdown());

  it('finds the peer at the median; its own trace, other roots and far traces are left out', async () => {
    const t = await store.analysis.typicalTrace(made.slow!.id);
    assert.ok(t);
    assert.deepEqual(t.root, { service: 'web', name: 'GET /x', durationNs: 900e6, startNs: made.slow!.spans[0]!.startTimeUnixNano });
    // the children named GET /x have a stored parent: not roots, not peers
    assert.equal(t.peers, 5);
    assert.equal(t.medianNs, 30e6);
    assert.deepEqual(t.typical, { traceId: made.p30!.id, durationNs: 30e6 });
    // a wider neighbourhood takes the old trace in: 6 peers, median 30 still (the nearer 30 ms peer wins the tie)
    const wide = await store.analysis.typicalTrace(made.slow!.id, 4n * 3600n * 1000n * MS);
    assert.equal(wide?.peers, 6);
    assert.equal(wide?.typical?.traceId, made.p30!.id);
  });

  it('a root with no peer has no typical trace; an unknown trace is undefined', async () => {
    const t = await store.analysis.typicalTrace(made.other!.id);
    assert.equal(t?.peers, 0);
    assert.equal(t?.typical, undefined);
    assert.equal(await store.analysis.typicalTrace('f'.repeat(32)), undefined);
  });
});
